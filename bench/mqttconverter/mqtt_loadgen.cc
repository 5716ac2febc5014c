// mqtt_loadgen: publishes simulated device messages to an MQTT broker at a given rate.
//
//   mqtt_loadgen --broker tcp://127.0.0.1:1883 --count 10000 --rate 2000
//                --payload-size 256 --topic-pattern 'devices/{device}/data' --devices 10 --qos 1
//
// Each payload is a JSON reading ({"device_id", "seq", "ts", "temp", "pad"}) padded to
// --payload-size bytes. {device} in the pattern becomes device-<n>, cycling over --devices.
// Stands in for `dataflow loadgen mqtt` until the dataflow program has that subcommand.
#include <mqtt/async_client.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

namespace {

std::string Payload(int device, long seq, std::size_t size) {
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  std::string body = "{\"device_id\":\"device-" + std::to_string(device) +
                     "\",\"seq\":" + std::to_string(seq) + ",\"ts\":" + std::to_string(now) +
                     ",\"temp\":" + std::to_string(18 + (seq % 100) / 10.0) + ",\"pad\":\"";
  const std::size_t tail = 2;  // "}
  if (body.size() + tail < size) body.append(size - body.size() - tail, 'x');
  body += "\"}";
  return body;
}

std::string TopicFor(const std::string& pattern, int device) {
  std::string out = pattern;
  const std::string key = "{device}";
  if (auto pos = out.find(key); pos != std::string::npos) {
    out.replace(pos, key.size(), "device-" + std::to_string(device));
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Publish simulated device messages to an MQTT broker"};
  std::string broker = "tcp://127.0.0.1:1883";
  long count = 10000;
  double rate = 0;  // messages per second; 0 = as fast as possible
  std::size_t payload_size = 256;
  std::string pattern = "devices/{device}/data";
  int devices = 10;
  int qos = 1;
  int max_inflight = 1000;
  app.add_option("--broker", broker, "Broker URL (tcp://host:port)");
  app.add_option("--count", count, "Messages to publish")->check(CLI::PositiveNumber);
  app.add_option("--rate", rate, "Messages per second (0: unlimited)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--payload-size", payload_size, "Payload bytes")->check(CLI::Range(1, 1 << 28));
  app.add_option("--topic-pattern", pattern, "Topic; {device} becomes device-<n>");
  app.add_option("--devices", devices, "Simulated devices")->check(CLI::PositiveNumber);
  app.add_option("--qos", qos, "QoS 0, 1 or 2")->check(CLI::Range(0, 2));
  app.add_option("--max-inflight", max_inflight, "QoS 1/2 publishes awaiting ack")
      ->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);

  try {
    mqtt::async_client client(broker, "loadgen-" + std::to_string(::getpid()), nullptr);
    client
        .connect(mqtt::connect_options_builder()
                     .clean_session(true)
                     .max_inflight(max_inflight)
                     .finalize())
        ->wait();
    const auto start = std::chrono::steady_clock::now();
    mqtt::delivery_token_ptr last;
    for (long i = 0; i < count; ++i) {
      if (rate > 0) {
        auto due = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                               std::chrono::duration<double>(i / rate));
        std::this_thread::sleep_until(due);
      }
      const int device = static_cast<int>(i % devices);
      auto msg = mqtt::make_message(TopicFor(pattern, device), Payload(device, i, payload_size),
                                    qos, false);
      while (true) {
        try {
          last = client.publish(msg);
          break;
        } catch (const mqtt::exception& e) {
          // Too many in flight: wait for the window to open.
          if (e.get_return_code() != MQTTASYNC_MAX_MESSAGES_INFLIGHT &&
              e.get_return_code() != MQTTASYNC_MAX_BUFFERED_MESSAGES &&
              e.get_return_code() != MQTTASYNC_OPERATION_INCOMPLETE) {
            throw;
          }
          std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
      }
    }
    if (last) last->wait();
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    client.disconnect()->wait();
    std::printf("published=%ld seconds=%.3f rate=%.0f msg/s qos=%d payload=%zu\n", count, secs,
                count / std::max(secs, 1e-9), qos, payload_size);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mqtt_loadgen: %s\n", e.what());
    return 1;
  }
  return 0;
}

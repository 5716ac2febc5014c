// mqtt_consume_bench: how fast an MqttConsumer drains a stream, for bench/mqttconverter/run.sh.
//
//   mqtt_consume_bench --broker URL --topic T --count N --qos Q
//
// Subscribes, prints "ready" once subscribed (run.sh starts the publisher then), and times
// the stream from the first to the last message beside mosquitto_sub. A pipeline stand-in
// pops batches from the channel and acks each message.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <vector>

#include "dataflow/mqttconverter/mqtt_consumer.h"

using dataflow::mqttconverter::MqttClientOptions;
using dataflow::mqttconverter::MqttConsumer;

int main(int argc, char** argv) {
  CLI::App app{"Time an MqttConsumer receiving N messages"};
  std::string broker = "tcp://127.0.0.1:1883";
  std::string topic;
  std::string client_id = "consume-bench";
  long count = 100000;
  int qos = 1;
  bool subscribe_only = false;
  bool persistent = false;
  app.add_option("--broker", broker);
  app.add_option("--topic", topic)->required();
  app.add_option("--client-id", client_id);
  app.add_option("--count", count)->check(CLI::PositiveNumber);
  app.add_option("--qos", qos)->check(CLI::Range(0, 2));
  app.add_flag("--subscribe-only", subscribe_only, "Create the session and exit");
  app.add_flag("--persistent", persistent,
               "clean_session=false: drain what the broker queued for --client-id");
  CLI11_PARSE(app, argc, argv);

  auto consumer = MqttConsumer::Create(
      MqttClientOptions{.broker_url = broker,
                        .client_id = client_id,
                        .topic_mappings = {{.name = "bench", .topic = topic, .qos = qos}},
                        .clean_session = !persistent,
                        .channel_capacity = 10000});
  if (!consumer.ok()) {
    std::fprintf(stderr, "%s\n", consumer.status().ToString().c_str());
    return 1;
  }
  if (auto s = (*consumer)->Start(); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  auto deadline = [] { return std::chrono::steady_clock::now() + std::chrono::seconds(10); };
  if (subscribe_only) return (*consumer)->Stop(deadline()).ok() ? 0 : 1;

  std::printf("ready\n");
  std::fflush(stdout);
  auto& channel = (*consumer)->Messages();
  std::vector<dataflow::messagepipeline::Message> batch;
  long received = 0;
  std::chrono::steady_clock::time_point first;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (received < count && std::chrono::steady_clock::now() < give_up) {
    batch.clear();
    if (channel.PopBatchUntil(
            batch, 512, std::chrono::steady_clock::now() + std::chrono::milliseconds(200)) == 0) {
      continue;
    }
    if (received == 0) first = std::chrono::steady_clock::now();
    received += static_cast<long>(batch.size());
    for (auto& m : batch) m.Ack();
  }
  const auto last = std::chrono::steady_clock::now();
  (void)(*consumer)->Stop(deadline());
  const double secs = std::chrono::duration<double>(last - first).count();
  std::printf("mqttconsumer received=%ld seconds=%.3f rate=%.0f\n", received, secs,
              received > 1 ? (received - 1) / secs : 0.0);
  return received == count ? 0 : 2;
}

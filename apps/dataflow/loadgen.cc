// `dataflow loadgen mqtt|pubsub`: the command line and the run that reports on it. The
// readings are in loadgen_readings.cc, the publishing in loadgen_publish.cc.
#include "loadgen.h"

#include <absl/strings/str_cat.h>

#include <cmath>
#include <cstdio>
#include <map>

#include "loadgen_internal.h"

namespace dataflow::app {
namespace {

using loadgen_internal::kMaxInFlight;
using loadgen_internal::PubsubProject;
using loadgen_internal::ValidateMqtt;
using loadgen_internal::ValidatePubsub;
using SteadyClock = std::chrono::steady_clock;

#ifdef DATAFLOW_APP_HAS_PUBSUB
constexpr bool kHasPubsub = true;
#else
constexpr bool kHasPubsub = false;
#endif

void PrintResult(const char* transport, std::uint64_t published, std::int64_t count, double seconds,
                 const std::string& detail) {
  std::printf("published=%llu of=%lld seconds=%.3f rate=%.0f msg/s transport=%s %s\n",
              static_cast<unsigned long long>(published), static_cast<long long>(count), seconds,
              seconds > 0 ? static_cast<double>(published) / seconds : 0.0, transport,
              detail.c_str());
  std::fflush(stdout);
}

void AddLoadOptions(CLI::App& cmd, ReadingLoad& load) {
  cmd.add_option("--devices", load.devices, "simulated devices (device-0 … device-<N-1>)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd.add_option("--count", load.count, "messages in total, over all devices")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd.add_option("--rate", load.rate, "messages/s over all devices; 0: as fast as acknowledged")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd.add_option("--payload-size", load.payload_size,
                 "pad each reading with a \"pad\" field to this many bytes; 0: no padding")
      ->capture_default_str();
  cmd.add_option("--seed", load.seed, "seed of the simulated values")->capture_default_str();
  cmd.add_option("--max-in-flight", load.max_in_flight,
                 "messages published but not yet acknowledged")
      ->check(CLI::Range(1, kMaxInFlight))
      ->capture_default_str();
  cmd.add_option_function<double>(
         "--ack-timeout",
         [&load](double seconds) {
           load.ack_timeout = std::chrono::milliseconds(std::llround(seconds * 1000));
         },
         "seconds one publish may wait for its acknowledgement (default 30)")
      ->check(CLI::PositiveNumber);
  cmd.add_flag_callback(
      "--quiet", [&load] { load.progress = false; }, "no progress lines on stderr");
}

constexpr const char* kLoadgenFooter =
    "Readings: {\"deviceId\":\"device-<n>\",\"temperature\":…,\"humidity\":…,\"seq\":…,"
    "\"sentAt\":\"<RFC 3339, µs, UTC>\"}.\n"
    "Prints progress on stderr and published=… seconds=… rate=… on stdout.\n"
    "Exit codes: 0 every message acknowledged, 1 a failed run, 2 bad usage.";

}  // namespace

CLI::App* AddLoadgenCommand(CLI::App& app, LoadgenOptions& options) {
  CLI::App* cmd = app.add_subcommand(
      "loadgen", "Publish simulated device readings at a given rate and count (load testing)");
  cmd->require_subcommand(1);
  cmd->footer(kLoadgenFooter);

  CLI::App* mqtt = cmd->add_subcommand(
      "mqtt",
      "Publish readings to an MQTT broker, one topic per device; waits for the broker's "
      "acknowledgement of each (QoS 1/2)");
  AddLoadOptions(*mqtt, options.mqtt.load);
  mqtt->add_option("--url", options.mqtt.url, "broker URL")->capture_default_str();
  mqtt->add_option("--topic", options.mqtt.topic,
                   "topic; {device} becomes the device id (device-<n>)")
      ->capture_default_str();
  mqtt->add_option("--qos", options.mqtt.qos,
                   "0: at most once (counted when sent), 1: at least once, 2: exactly once")
      ->check(CLI::Range(0, 2))
      ->capture_default_str();
  mqtt->add_option("--client-id", options.mqtt.client_id,
                   "MQTT client id (default: dataflow-loadgen-<pid>-<n>)");
  mqtt->footer(kLoadgenFooter);
  mqtt->callback([&options] { options.transport = LoadgenOptions::Transport::kMqtt; });

  CLI::App* ps = cmd->add_subcommand("pubsub",
#ifdef DATAFLOW_APP_HAS_PUBSUB
                                     "Publish readings to a Google Cloud Pub/Sub topic "
                                     "($PUBSUB_EMULATOR_HOST selects an emulator)"
#else
                                     "Publish readings to a Google Cloud Pub/Sub topic (not in "
                                     "this build: it has no pubsub package)"
#endif
  );
  AddLoadOptions(*ps, options.pubsub.load);
  ps->add_option("--project", options.pubsub.project,
                 "Google Cloud project (default: $GOOGLE_CLOUD_PROJECT)");
  ps->add_option("--topic", options.pubsub.topic, "topic id in the project")->required();
  const std::map<std::string, PubsubPayload> formats = {{"envelope", PubsubPayload::kEnvelope},
                                                        {"raw", PubsubPayload::kRaw}};
  ps->add_option("--format", options.pubsub.payload,
                 "envelope: the MessageData JSON envelope (what ingestion publishes by default, "
                 "as the Go ingestion does); raw: the reading JSON itself (ingestion with "
                 "payload_format: raw). The consuming services read either")
      ->transform(CLI::CheckedTransformer(formats, CLI::ignore_case))
      ->default_str("envelope");
  ps->footer(kLoadgenFooter);
  ps->callback([&options] { options.transport = LoadgenOptions::Transport::kPubsub; });
  return cmd;
}

int RunLoadgen(const LoadgenOptions& options) {
  using Transport = LoadgenOptions::Transport;
  if (options.transport == Transport::kNone) {
    std::fprintf(stderr, "loadgen: name a transport: dataflow loadgen mqtt|pubsub …\n");
    return 2;
  }
  const bool is_mqtt = options.transport == Transport::kMqtt;
  const ReadingLoad& load = is_mqtt ? options.mqtt.load : options.pubsub.load;
  absl::Status valid;
  if (is_mqtt) {
    valid = ValidateMqtt(options.mqtt);
  } else {
    valid = kHasPubsub ? ValidatePubsub(options.pubsub)
                       : absl::InvalidArgumentError(
                             "this dataflow program was built without the pubsub package: "
                             "no Pub/Sub client");
  }
  if (!valid.ok()) {
    std::fprintf(stderr, "loadgen: %s\n", std::string(valid.message()).c_str());
    return 2;
  }

  std::string target;
  std::string detail;
  if (is_mqtt) {
    target = absl::StrCat(options.mqtt.url, " topic ", options.mqtt.topic);
    detail = absl::StrCat("qos=", options.mqtt.qos);
  } else {
    target =
        absl::StrCat("projects/", PubsubProject(options.pubsub), "/topics/", options.pubsub.topic);
    detail = options.pubsub.payload == PubsubPayload::kRaw ? "format=raw" : "format=envelope";
  }
  if (load.payload_size > 0) absl::StrAppend(&detail, " payload_size=", load.payload_size);
  if (load.progress) {
    std::fprintf(
        stderr, "loadgen: %lld readings from %d devices to %s, %s\n",
        static_cast<long long>(load.count), load.devices, target.c_str(),
        load.rate > 0 ? absl::StrCat(load.rate, " msg/s").c_str() : "as fast as acknowledged");
  }

  std::atomic<std::uint64_t> published{0};
  const auto start = SteadyClock::now();
  const absl::Status s = is_mqtt ? PublishReadings(options.mqtt, published)
                                 : PublishReadings(options.pubsub, published);
  const double seconds = std::chrono::duration<double>(SteadyClock::now() - start).count();
  PrintResult(is_mqtt ? "mqtt" : "pubsub", published.load(), load.count, seconds, detail);
  if (!s.ok()) {
    std::fprintf(stderr, "loadgen: FAILED after %llu acknowledged: %s\n",
                 static_cast<unsigned long long>(published.load()), s.ToString().c_str());
    return 1;
  }
  return 0;
}

}  // namespace dataflow::app

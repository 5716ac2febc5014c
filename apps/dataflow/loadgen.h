// The load generator: simulated devices that publish readings at a given rate and count,
// over MQTT (Paho, QoS 0/1/2) or Google Cloud Pub/Sub (when the program is built with the
// pubsub package). The one implementation of the simulated devices: `dataflow loadgen`,
// the demo and bench/mqttconverter/run.sh all use it.
//
// A reading is the JSON object
//   {"deviceId":"device-<n>","temperature":21.3,"humidity":48.0,"seq":7,
//    "sentAt":"2024-05-01T12:00:00.123456Z"}
// optionally padded to a byte size with a "pad" field. Device n sends message n, n+devices,
// … (seq counts per device); values come from a seeded generator, so a run is repeatable
// except for sentAt. Publishing keeps at most max_in_flight messages unacknowledged.
//
// Thread-safety: the functions are reentrant; ReadingGenerator is not thread-safe.
#pragma once

#include <absl/status/status.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <random>
#include <string>

namespace dataflow::app {

// What the simulated devices send, whatever the transport.
struct ReadingLoad {
  int devices = 10;
  std::int64_t count = 1000;     // messages over all devices
  double rate = 0;               // messages/s over all devices; 0: as fast as acknowledged
  std::size_t payload_size = 0;  // pad each payload to this many bytes; 0: no padding
  std::uint64_t seed = 42;
  int max_in_flight = 1000;  // published but not yet acknowledged
  // How long one publish may wait for its acknowledgement before the run fails.
  std::chrono::milliseconds ack_timeout{std::chrono::seconds(30)};
  bool progress = false;  // a progress line on stderr about once a second
};

struct MqttLoadOptions {
  ReadingLoad load;
  std::string url = "tcp://127.0.0.1:1883";
  std::string topic = "devices/{device}/telemetry";  // {device} becomes device-<n>
  int qos = 1;
  std::string client_id;  // empty: "dataflow-loadgen-<pid>-<n>"
};

// How a reading travels over Pub/Sub.
enum class PubsubPayload {
  kEnvelope,  // the MessageData JSON envelope, as ingestion publishes by default
  kRaw,       // the reading JSON itself
};

struct PubsubLoadOptions {
  ReadingLoad load;
  std::string project;  // empty: $GOOGLE_CLOUD_PROJECT
  std::string topic;
  PubsubPayload payload = PubsubPayload::kEnvelope;  // ingestion's default payload_format
};

// `dataflow loadgen mqtt|pubsub`: filled by AddLoadgenCommand, read by RunLoadgen.
struct LoadgenOptions {
  enum class Transport { kNone, kMqtt, kPubsub };
  Transport transport = Transport::kNone;  // set by the subcommand given
  MqttLoadOptions mqtt{.load = {.progress = true}};
  PubsubLoadOptions pubsub{.load = {.progress = true}};
};

// Adds `loadgen` with the subcommands `mqtt` and `pubsub` to `app`; parsing fills
// `options`, which must outlive the parse. Returns the `loadgen` subcommand.
CLI::App* AddLoadgenCommand(CLI::App& app, LoadgenOptions& options);

// Runs the parsed command; prints progress to stderr and a final line
//   published=<n> seconds=<s> rate=<r> msg/s …
// to stdout. Returns the exit code: 0 if every message was acknowledged, 1 if not (or the
// broker could not be reached), 2 for bad options (with a message on stderr).
int RunLoadgen(const LoadgenOptions& options);

// Publishes options.load.count readings over MQTT; `published` counts acknowledged ones as
// they arrive (another thread may read it). OK only if all were acknowledged;
// InvalidArgument for bad options, Unavailable/DeadlineExceeded for a failed run. With
// QoS 0 "acknowledged" means handed to the network: MQTT has no acknowledgement for it.
absl::Status PublishReadings(const MqttLoadOptions& options, std::atomic<std::uint64_t>& published);

// The same over Pub/Sub: a message counts once the server has stored it. Unimplemented
// when the program was built without the pubsub package.
absl::Status PublishReadings(const PubsubLoadOptions& options,
                             std::atomic<std::uint64_t>& published);

absl::Status ValidateReadingLoad(const ReadingLoad& load);

// "device-<n>".
std::string DeviceId(int device);

// The readings of a load, in publish order.
class ReadingGenerator {
 public:
  struct Reading {
    int device = 0;
    std::string device_id;
    std::int64_t seq = 0;  // per device
    std::string payload;
  };
  explicit ReadingGenerator(const ReadingLoad& load);
  // The next reading, stamped with `sent_at`.
  Reading Next(std::chrono::system_clock::time_point sent_at);

 private:
  int devices_;
  std::size_t payload_size_;
  std::int64_t n_ = 0;
  std::mt19937_64 rng_;
  std::normal_distribution<double> temperature_{21.0, 3.0};
  std::uniform_real_distribution<double> humidity_{30, 70};
};

// RFC 3339 in UTC with exactly six fractional digits, e.g. 2024-05-01T12:00:00.123456Z.
std::string FormatSentAt(std::chrono::system_clock::time_point t);

}  // namespace dataflow::app

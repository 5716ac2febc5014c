#include "loadgen.h"

#include <absl/status/statusor.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_replace.h>
#include <absl/time/clock.h>
#include <absl/time/time.h>
#include <mqtt/async_client.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#ifdef DATAFLOW_APP_HAS_PUBSUB
#include "dataflow/pubsub/producer.h"
#include "dataflow/pubsub/pubsub_stub.h"
#endif

namespace dataflow::app {
namespace {

using SteadyClock = std::chrono::steady_clock;
using SystemClock = std::chrono::system_clock;

#ifdef DATAFLOW_APP_HAS_PUBSUB
constexpr bool kHasPubsub = true;
#else
constexpr bool kHasPubsub = false;
#endif

// MQTT packet ids are 16 bits, so no broker can have more QoS 1/2 messages of one client in
// flight.
constexpr int kMaxInFlight = 65535;
// MQTT's largest packet (268,435,455 bytes) less room for the header and topic.
constexpr std::size_t kMaxMqttPayload = 256 * 1024 * 1024;
// Pub/Sub takes messages up to 10 MB; the envelope's base64 adds a third.
constexpr std::size_t kMaxPubsubPayload = 7 * 1000 * 1000;

absl::Status ValidateMqtt(const MqttLoadOptions& o) {
  if (auto s = ValidateReadingLoad(o.load); !s.ok()) return s;
  if (o.load.payload_size > kMaxMqttPayload) {
    return absl::InvalidArgumentError(
        absl::StrCat("--payload-size must be at most ", kMaxMqttPayload, " for MQTT"));
  }
  if (o.url.empty()) return absl::InvalidArgumentError("--url must not be empty");
  if (o.qos < 0 || o.qos > 2) return absl::InvalidArgumentError("--qos must be 0, 1 or 2");
  if (o.topic.empty()) return absl::InvalidArgumentError("--topic must not be empty");
  if (o.topic.find_first_of("+#") != std::string::npos) {
    return absl::InvalidArgumentError("--topic must not contain the wildcards + or #: \"" +
                                      o.topic + "\"");
  }
  return absl::OkStatus();
}

std::string PubsubProject(const PubsubLoadOptions& o) {
  if (!o.project.empty()) return o.project;
  const char* env = std::getenv("GOOGLE_CLOUD_PROJECT");
  return env ? env : "";
}

absl::Status ValidatePubsub(const PubsubLoadOptions& o) {
  if (auto s = ValidateReadingLoad(o.load); !s.ok()) return s;
  if (o.load.payload_size > kMaxPubsubPayload) {
    return absl::InvalidArgumentError(
        absl::StrCat("--payload-size must be at most ", kMaxPubsubPayload, " for Pub/Sub"));
  }
  if (PubsubProject(o).empty()) {
    return absl::InvalidArgumentError("no project: pass --project or set GOOGLE_CLOUD_PROJECT");
  }
  if (o.topic.empty()) return absl::InvalidArgumentError("--topic is required");
  return absl::OkStatus();
}

std::string TopicFor(const std::string& pattern, const std::string& device_id) {
  return absl::StrReplaceAll(pattern, {{"{device}", device_id}});
}

// The publish loop shared by both transports. `publish(reading)` starts one publish and
// returns its token; `done(token)` says without blocking whether it has settled;
// `await(token, timeout)` waits for it and returns its outcome (DeadlineExceeded when it
// took longer than the timeout).
template <typename Token, typename Publish, typename Done, typename Await>
absl::Status PublishLoop(const ReadingLoad& load, std::atomic<std::uint64_t>& published,
                         Publish publish, Done done, Await await) {
  ReadingGenerator generator(load);
  std::deque<Token> window;
  const auto start = SteadyClock::now();
  auto next_progress = start + std::chrono::seconds(1);
  auto settle_oldest = [&]() -> absl::Status {
    absl::Status s = await(window.front(), load.ack_timeout);
    window.pop_front();
    if (s.ok()) published.fetch_add(1, std::memory_order_relaxed);
    return s;
  };
  auto report = [&](bool final) {
    const auto now = SteadyClock::now();
    if (!load.progress || (!final && now < next_progress)) return;
    next_progress = now + std::chrono::seconds(1);
    const double secs = std::chrono::duration<double>(now - start).count();
    const auto acked = published.load(std::memory_order_relaxed);
    std::fprintf(stderr, "loadgen: %6.1fs  acknowledged %llu/%lld  (%.0f msg/s)\n", secs,
                 static_cast<unsigned long long>(acked), static_cast<long long>(load.count),
                 secs > 0 ? static_cast<double>(acked) / secs : 0.0);
  };
  for (std::int64_t n = 0; n < load.count; ++n) {
    if (load.rate > 0) {
      std::this_thread::sleep_until(start + std::chrono::duration_cast<SteadyClock::duration>(
                                                std::chrono::duration<double>(n / load.rate)));
    }
    while (window.size() >= static_cast<std::size_t>(load.max_in_flight)) {
      if (auto s = settle_oldest(); !s.ok()) return s;
    }
    absl::StatusOr<Token> token = publish(generator.Next(SystemClock::now()));
    if (!token.ok()) return token.status();
    window.push_back(*std::move(token));
    // Count what has already settled, so `published` is live even when the window never
    // fills (rate-limited runs).
    while (!window.empty() && done(window.front())) {
      if (auto s = settle_oldest(); !s.ok()) return s;
    }
    report(false);
  }
  while (!window.empty()) {
    if (auto s = settle_oldest(); !s.ok()) return s;
    report(false);
  }
  report(true);
  return absl::OkStatus();
}

std::atomic<int> client_counter{0};

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

std::string DeviceId(int device) { return "device-" + std::to_string(device); }

std::string FormatSentAt(SystemClock::time_point t) {
  return absl::FormatTime("%Y-%m-%d%ET%H:%M:%E6SZ", absl::FromChrono(t), absl::UTCTimeZone());
}

absl::Status ValidateReadingLoad(const ReadingLoad& load) {
  if (load.devices <= 0) return absl::InvalidArgumentError("--devices must be > 0");
  if (load.count <= 0) return absl::InvalidArgumentError("--count must be > 0");
  if (!std::isfinite(load.rate) || load.rate < 0) {
    return absl::InvalidArgumentError("--rate must be >= 0 (0: as fast as acknowledged)");
  }
  if (load.max_in_flight < 1 || load.max_in_flight > kMaxInFlight) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max-in-flight must be between 1 and ", kMaxInFlight));
  }
  if (load.ack_timeout <= std::chrono::milliseconds::zero()) {
    return absl::InvalidArgumentError("--ack-timeout must be > 0");
  }
  return absl::OkStatus();
}

ReadingGenerator::ReadingGenerator(const ReadingLoad& load)
    : devices_(std::max(load.devices, 1)), payload_size_(load.payload_size), rng_(load.seed) {}

ReadingGenerator::Reading ReadingGenerator::Next(SystemClock::time_point sent_at) {
  Reading r;
  r.device = static_cast<int>(n_ % devices_);
  r.seq = n_ / devices_;
  r.device_id = DeviceId(r.device);
  ++n_;
  // ordered_json keeps the documented field order.
  nlohmann::ordered_json body = {{"deviceId", r.device_id},
                                 {"temperature", std::round(temperature_(rng_) * 10) / 10},
                                 {"humidity", std::round(humidity_(rng_))},
                                 {"seq", r.seq},
                                 {"sentAt", FormatSentAt(sent_at)}};
  r.payload = body.dump();
  if (payload_size_ > r.payload.size()) {
    const std::size_t gap = payload_size_ - r.payload.size();
    constexpr std::string_view kEmptyPad = ",\"pad\":\"\"";
    r.payload.pop_back();  // the closing brace
    if (gap >= kEmptyPad.size()) {
      r.payload += kEmptyPad.substr(0, kEmptyPad.size() - 1);
      r.payload.append(gap - kEmptyPad.size(), 'x');
      r.payload += '"';
    } else {
      // Too little room for a field: JSON whitespace pads exactly as well.
      r.payload.append(gap, ' ');
    }
    r.payload += '}';
  }
  return r;
}

absl::Status PublishReadings(const MqttLoadOptions& o, std::atomic<std::uint64_t>& published) {
  if (auto s = ValidateMqtt(o); !s.ok()) return s;
  const std::string client_id =
      o.client_id.empty() ? absl::StrCat("dataflow-loadgen-", ::getpid(), "-", client_counter++)
                          : o.client_id;
  // Declared before the client, whose callback thread writes them.
  std::atomic<bool> lost{false};
  std::string lost_cause;
  std::mutex lost_mu;
  try {
    // Paho queues at most max_buffered_messages publishes not yet written (default 100) and
    // refuses more; the window is the bound here, so make room for all of it.
    mqtt::create_options create;
    create.set_max_buffered_messages(o.load.max_in_flight);
    create.set_send_while_disconnected(false);
    mqtt::async_client client(o.url, client_id, create);
    client.set_connection_lost_handler([&](const std::string& cause) {
      std::lock_guard lock(lost_mu);
      lost_cause = cause.empty() ? "connection lost" : "connection lost: " + cause;
      lost = true;
    });
    auto connect = client.connect(mqtt::connect_options_builder()
                                      .clean_session(true)
                                      .connect_timeout(std::chrono::seconds(10))
                                      .max_inflight(o.load.max_in_flight)
                                      .finalize());
    if (!connect->wait_for(std::chrono::seconds(15))) {
      return absl::UnavailableError("MQTT: no answer from " + o.url);
    }
    auto lost_status = [&] {
      std::lock_guard lock(lost_mu);
      return absl::UnavailableError("MQTT " + o.url + ": " + lost_cause);
    };
    absl::Status result = PublishLoop<mqtt::delivery_token_ptr>(
        o.load, published,
        [&](ReadingGenerator::Reading r) -> absl::StatusOr<mqtt::delivery_token_ptr> {
          if (lost) return lost_status();
          return client.publish(mqtt::make_message(TopicFor(o.topic, r.device_id),
                                                   std::move(r.payload), o.qos, false));
        },
        [](const mqtt::delivery_token_ptr& t) { return t->is_complete(); },
        [&](const mqtt::delivery_token_ptr& t, std::chrono::milliseconds timeout) {
          // In slices, so a lost connection (whose tokens may never complete) ends the wait.
          const auto deadline = SteadyClock::now() + timeout;
          while (!t->wait_for(std::chrono::milliseconds(100))) {
            if (lost) return lost_status();
            if (SteadyClock::now() >= deadline) {
              return absl::DeadlineExceededError(absl::StrCat(
                  "MQTT: a publish was not acknowledged within ", timeout.count(), " ms"));
            }
          }
          return absl::OkStatus();
        });
    if (client.is_connected()) client.disconnect()->wait_for(std::chrono::seconds(10));
    return result;
  } catch (const mqtt::exception& e) {
    return absl::UnavailableError(absl::StrCat("MQTT ", o.url, ": ", e.what()));
  }
}

absl::Status PublishReadings(const PubsubLoadOptions& o, std::atomic<std::uint64_t>& published) {
#ifndef DATAFLOW_APP_HAS_PUBSUB
  (void)o;
  (void)published;
  return absl::UnimplementedError(
      "this dataflow program was built without the pubsub package: no Pub/Sub client");
#else
  if (auto s = ValidatePubsub(o); !s.ok()) return s;
  auto stub = pubsub::MakePubsubStub();
  if (!stub.ok()) return stub.status();
  auto producer = pubsub::GooglePubsubProducer::Create(
      *stub, {.project_id = PubsubProject(o), .topic_id = o.topic});
  if (!producer.ok()) return producer.status();
  using Future = std::future<pubsub::GooglePubsubProducer::Result>;
  // Envelope ids unique across runs too, in case a sink deduplicates by them.
  const std::string run_id = absl::StrCat("loadgen-", absl::ToUnixMicros(absl::Now()), "-");
  absl::Status result = PublishLoop<Future>(
      o.load, published,
      [&](ReadingGenerator::Reading r) -> absl::StatusOr<Future> {
        messagepipeline::Attributes attributes = {{"deviceId", r.device_id}};
        if (o.payload == PubsubPayload::kRaw) {
          return (*producer)->PublishRaw(std::move(r.payload), std::move(attributes));
        }
        messagepipeline::MessageData data{.id = absl::StrCat(run_id, r.device_id, "-", r.seq),
                                          .payload = std::move(r.payload),
                                          .publish_time = SystemClock::now()};
        return (*producer)->Publish(data, std::move(attributes));
      },
      [](Future& f) { return f.wait_for(std::chrono::seconds(0)) == std::future_status::ready; },
      [](Future& f, std::chrono::milliseconds timeout) -> absl::Status {
        if (f.wait_for(timeout) != std::future_status::ready) {
          return absl::DeadlineExceededError(absl::StrCat(
              "Pub/Sub: a publish was not acknowledged within ", timeout.count(), " ms"));
        }
        auto id = f.get();
        return id.ok() ? absl::OkStatus() : id.status();
      });
  // Resolves whatever an early failure left pending before the producer goes away.
  absl::Status stopped = (*producer)->Stop(SteadyClock::now() + std::chrono::seconds(10));
  return result.ok() ? stopped : result;
#endif
}

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

// Publishing a load: the in-flight window shared by both transports, then MQTT (Paho) and
// Pub/Sub (when the program has the pubsub package).
#include <absl/status/statusor.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_replace.h>
#include <absl/time/clock.h>
#include <absl/time/time.h>
#include <mqtt/async_client.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <thread>

#include "loadgen.h"
#include "loadgen_internal.h"

#ifdef DATAFLOW_APP_HAS_PUBSUB
#include "dataflow/pubsub/producer.h"
#include "dataflow/pubsub/pubsub_stub.h"
#endif

namespace dataflow::app {
namespace loadgen_internal {
namespace {

// MQTT's largest packet (268,435,455 bytes) less room for the header and topic.
constexpr std::size_t kMaxMqttPayload = 256 * 1024 * 1024;
// Pub/Sub takes messages up to 10 MB; the envelope's base64 adds a third.
constexpr std::size_t kMaxPubsubPayload = 7 * 1000 * 1000;

}  // namespace

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

}  // namespace loadgen_internal

namespace {

using loadgen_internal::PubsubProject;
using loadgen_internal::ValidateMqtt;
using loadgen_internal::ValidatePubsub;
using SteadyClock = std::chrono::steady_clock;
using SystemClock = std::chrono::system_clock;

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

}  // namespace

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

}  // namespace dataflow::app

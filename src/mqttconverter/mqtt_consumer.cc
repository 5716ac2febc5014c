// MqttConsumer: the thin adapter that composes the MQTT units into a MessageConsumer.
//   Session      (session.h)      connect, subscribe, read, keep-alive, reconnect; calls
//                                 OnPublish for each message, on its reader thread.
//   Connection   (connection.h)   one connection's writer and AckSequencer (in-order PUBACKs).
//   Redeliverer  (redeliverer.h)  nacked messages back into the channel after a backoff.
// What is left here: a PUBLISH becomes a Message (id, route, attributes) charged to the byte
// budget, its ack handler settles it on its connection, a nack goes to the redeliverer, and
// Start/Stop order the units. The delivery contract is in the public header.
#include "dataflow/mqttconverter/mqtt_consumer.h"

#include <absl/strings/str_cat.h>

#include <algorithm>
#include <mutex>
#include <optional>
#include <random>

#include "dataflow/messagepipeline/logging.h"
#include "delivery.h"
#include "mqtt_codec.h"
#include "mqtt_transport.h"
#include "redeliverer.h"
#include "session.h"

namespace dataflow::mqttconverter {

using messagepipeline::AckHandler;
using messagepipeline::BoundedQueue;
using messagepipeline::Deadline;
using messagepipeline::Message;
namespace mi = internal;

namespace {

std::string RandomHex(std::mt19937_64& rng, int words) {
  std::string out;
  for (int i = 0; i < words; ++i) absl::StrAppend(&out, absl::Hex(rng(), absl::kZeroPad16));
  return out;
}

bool AnyQosAbove0(const std::vector<TopicMapping>& mappings) {
  return std::any_of(mappings.begin(), mappings.end(),
                     [](const TopicMapping& m) { return m.qos > 0; });
}

}  // namespace

class MqttConsumer::Impl : public std::enable_shared_from_this<Impl>, public mi::SessionListener {
 public:
  Impl(MqttClientOptions config, std::string client_id,
       std::shared_ptr<mi::TransportFactory> factory)
      : config_(std::move(config)),
        client_id_(std::move(client_id)),
        channel_(config_.channel_capacity),
        budget_(std::make_shared<mi::ByteBudget>(config_.max_outstanding_bytes)),
        done_(done_promise_.get_future().share()),
        session_(mi::SessionOptions::From(config_, client_id_), std::move(factory), *this),
        redeliverer_({.min_backoff = config_.redelivery_min_backoff,
                      .max_backoff = config_.redelivery_max_backoff},
                     [this](std::shared_ptr<mi::Delivery> d) { Redeliver(std::move(d)); }),
        rng_(std::random_device{}()) {}

  ~Impl() override { StopNow(mi::RealNow() + std::chrono::seconds(5)).IgnoreError(); }

  absl::Status Start() {
    {
      std::lock_guard lock(mu_);
      if (state_ != State::kIdle) {
        return absl::FailedPreconditionError("mqtt consumer: Start() called twice or after Stop()");
      }
      state_ = State::kStarting;
    }
    if (config_.ack_mode == AckMode::kAfterPipelineAck && config_.clean_session &&
        AnyQosAbove0(config_.topic_mappings)) {
      Log()->warn(
          "mqtt consumer: clean_session=true, so QoS 1/2 messages not yet acked by the pipeline "
          "when the connection ends are dropped by the broker (lost); set clean_session=false and "
          "a fixed client_id to have them redelivered client_id={} broker={}",
          client_id_, config_.broker_url);
    }
    session_.Start();
    const auto wait = config_.connect_timeout + std::chrono::seconds(1);
    std::optional<absl::Status> first = session_.WaitFirstResult(wait);
    if (!first.has_value()) {
      return Fail(absl::UnavailableError(absl::StrCat(
          "mqtt: no CONNACK/SUBACK from ", config_.broker_url, " within ", wait.count(), "s")));
    }
    if (!first->ok()) return Fail(*first);
    {
      std::lock_guard lock(mu_);
      state_ = State::kRunning;
    }
    redeliverer_.Start();
    Log()->info("mqtt consumer started client_id={} broker={} subscriptions={} ack_mode={}",
                client_id_, config_.broker_url, config_.topic_mappings.size(),
                AckModeName(config_.ack_mode));
    return absl::OkStatus();
  }

  absl::Status StopNow(Deadline deadline) {
    {
      std::lock_guard lock(mu_);
      if (state_ == State::kStopped) return absl::OkStatus();
      state_ = State::kStopped;
    }
    // Nacks from here on are settled at once instead of queued (Redeliver checks it).
    redeliverer_.Close();
    std::shared_ptr<mi::Connection> conn = session_.BeginStop();
    // No new messages from here on (a reader blocked on a full channel returns); the
    // pipeline drains what is in the channel and its acks still reach the broker below.
    CloseChannel();
    if (conn) {
      conn->WaitSettled(deadline);
      conn->Write(mi::EncodeDisconnect());
      // Bounded by the deadline, not write_timeout: a broker that stopped reading must not
      // hold up Stop; what was not written is reported below. The reader keeps the connection
      // open meanwhile (stopping it first let it close the socket under acks still queued).
      conn->Flush(deadline);
    }
    session_.Stop();  // closes the connection
    for (const auto& d : redeliverer_.Stop()) Undeliverable(*d, "nacked during shutdown");
    Resolve(absl::OkStatus());
    const MqttConsumerStats s = Stats();
    Log()->info(
        "mqtt consumer stopped client_id={} received={} acked={} nacked={} left_with_broker={} "
        "lost={}",
        client_id_, s.received, s.acked, s.nacked, s.left_with_broker, s.lost);
    const std::size_t unwritten = conn ? conn->UnwrittenAcks() : 0;
    if (unwritten > 0) {
      return absl::DeadlineExceededError(absl::StrCat(
          "mqtt consumer stopped with ", unwritten,
          " acknowledgements (PUBACK/PUBREC) of pipeline-acked messages not written to ",
          config_.broker_url, " (",
          conn->WriteError().ok() ? "deadline reached" : conn->WriteError().message(), "); ",
          config_.clean_session ? "with clean_session=true the broker drops them"
                                : "the persistent session redelivers them, as duplicates of "
                                  "processed messages"));
    }
    return absl::OkStatus();
  }

  MqttConsumerStats Stats() const {
    const mi::Session::Stats session = session_.stats();
    return MqttConsumerStats{.received = received_.load(),
                             .acked = acked_.load(),
                             .nacked = nacked_.load(),
                             .redelivered = redelivered_.load(),
                             .lost = lost_.load(),
                             .unrouted = unrouted_.load(),
                             .connects = session.connects,
                             .left_with_broker = session.left_with_broker,
                             .oversize_skipped = session.oversize_skipped,
                             .outstanding_bytes = budget_->held()};
  }

  bool IsConnected() const { return session_.IsConnected(); }

  const MqttClientOptions config_;
  const std::string client_id_;
  std::promise<absl::Status> done_promise_;
  BoundedQueue<Message> channel_;
  const std::shared_ptr<mi::ByteBudget> budget_;
  std::shared_future<absl::Status> done_;

 private:
  enum class State { kIdle, kStarting, kRunning, kStopped };

  class Handler : public AckHandler {
   public:
    Handler(std::weak_ptr<Impl> impl, std::shared_ptr<mi::Delivery> d)
        : impl_(std::move(impl)), delivery_(std::move(d)) {}
    void OnAck() override {
      if (lost_) return;  // already accounted for by Undeliverable
      if (auto impl = impl_.lock()) impl->acked_.fetch_add(1, std::memory_order_relaxed);
      delivery_->ReleaseBudget();
      if (delivery_->conn) delivery_->conn->Settle(delivery_->seq, mi::Connection::State::kAcked);
    }
    void OnNack() override {
      if (lost_) return;
      if (auto impl = impl_.lock()) {
        impl->Nacked(std::move(delivery_));
      } else {
        Log()->error("mqtt message nacked after its consumer was destroyed id={}",
                     delivery_->data.id);
      }
    }
    bool lost_ = false;

   private:
    std::weak_ptr<Impl> impl_;
    std::shared_ptr<mi::Delivery> delivery_;
  };

  // SessionListener, on the session's reader thread.
  void OnPublish(const std::shared_ptr<mi::Connection>& conn, const mi::Publish& publish) override {
    auto d = std::make_shared<mi::Delivery>();
    d->data.id = RandomHex(rng_, 2);
    d->data.payload.assign(publish.payload);
    d->data.publish_time = messagepipeline::Clock::now();
    // A broker resend (DUP) may already have been seen by an earlier connection.
    d->attempt = publish.dup ? 2 : 1;
    if (const TopicMapping* route = FindRoute(config_.topic_mappings, publish.topic)) {
      d->attributes.emplace("route_name", route->name);
    } else {
      unrouted_.fetch_add(1, std::memory_order_relaxed);
      if (unrouted_log_.Allow()) {
        Log()->warn(
            "mqtt message matches no topic mapping; delivered without route_name "
            "mqtt_topic={} suppressed={}",
            publish.topic, unrouted_log_.suppressed());
      }
    }
    d->attributes.emplace("mqtt_topic", publish.topic);
    d->attributes.emplace("mqtt_qos", std::to_string(publish.qos));
    if (publish.qos > 0) {
      if (config_.ack_mode == AckMode::kAfterPipelineAck) {
        d->conn = conn;
        d->seq = conn->Track(publish.packet_id, publish.qos);
      } else {
        std::string ack;
        mi::AppendAck(publish.qos == 2 ? mi::PacketType::kPubrec : mi::PacketType::kPuback,
                      publish.packet_id, ack);
        conn->Write(std::move(ack));
      }
    }
    Deliver(std::move(d), /*first=*/true);
  }

  // No new messages, and nacks are settled at once from here on, as after Stop().
  void OnGiveUp(const absl::Status& status) override {
    redeliverer_.Close();
    CloseChannel();
    Resolve(status);
  }

  // Blocks while the channel is full or the byte budget spent: that is the backpressure.
  void Deliver(std::shared_ptr<mi::Delivery> d, bool first) {
    if (first) {
      received_.fetch_add(1, std::memory_order_relaxed);
      const std::size_t bytes = d->data.payload.size();
      if (!budget_->Acquire(bytes)) {
        Undeliverable(*d, "the consumer stopped before the pipeline took it");
        return;
      }
      d->budget = budget_;
      d->charged = bytes;
    }
    auto handler = std::make_unique<Handler>(weak_from_this(), d);
    Handler* h = handler.get();
    Message m(d->data, d->attributes, std::move(handler));
    m.delivery_attempt = d->attempt;
    if (!channel_.Push(std::move(m))) {
      h->lost_ = true;
      Undeliverable(*d, "the consumer stopped before the pipeline took it");
      m.Ack();  // settled here; keeps the destructor from nacking it again
    }
  }

  // A worker nacked the message: back into the channel after a backoff that grows with the
  // attempt that failed, unless the consumer is stopping.
  void Nacked(std::shared_ptr<mi::Delivery> d) {
    nacked_.fetch_add(1, std::memory_order_relaxed);
    if (!redeliverer_.Add(d)) Undeliverable(*d, "nacked after Stop()");
  }

  // The redeliverer's thread: the backoff is over.
  void Redeliver(std::shared_ptr<mi::Delivery> d) {
    // Its connection ended: a persistent session has the broker resend it (DUP), so a
    // local copy too would only be a duplicate.
    if (d->conn && !config_.clean_session && !d->conn->IsOpen()) {
      Undeliverable(*d, "nacked, and its connection ended");
      return;
    }
    d->attempt += 1;
    redelivered_.fetch_add(1, std::memory_order_relaxed);
    Deliver(std::move(d), /*first=*/false);
  }

  // A message the pipeline did not process and this consumer cannot hand out again. If
  // the broker still holds it (QoS 1/2, PUBACK withheld, persistent session) it comes back
  // on the next connection; otherwise it is lost.
  void Undeliverable(mi::Delivery& d, const char* why) {
    d.ReleaseBudget();
    if (d.conn) d.conn->Settle(d.seq, mi::Connection::State::kAbandoned);
    if (d.conn && !config_.clean_session) {
      Log()->debug("mqtt message left with the broker for redelivery: {} id={}", why, d.data.id);
      return;
    }
    lost_.fetch_add(1, std::memory_order_relaxed);
    Log()->error("mqtt message lost: {}; the broker will not redeliver it ({}) id={} mqtt_topic={}",
                 why, d.conn ? "clean session" : "QoS 0 or ack_mode=receipt", d.data.id,
                 d.attributes.contains("mqtt_topic") ? d.attributes.at("mqtt_topic") : "");
  }

  absl::Status Fail(absl::Status status) {
    {
      std::lock_guard lock(mu_);
      state_ = State::kStopped;
    }
    redeliverer_.Close();
    CloseChannel();  // first: a reader blocked on the full channel must return to be joined
    session_.Stop();
    Resolve(status);
    return status;
  }

  // Also wakes a reader waiting for the byte budget.
  void CloseChannel() {
    channel_.Close();
    budget_->Close();
  }

  void Resolve(absl::Status status) {
    std::call_once(done_once_, [&] { done_promise_.set_value(std::move(status)); });
  }

  std::mutex mu_;
  State state_ = State::kIdle;
  mi::Session session_;
  mi::Redeliverer redeliverer_;
  std::mt19937_64 rng_;  // reader thread only
  LogRateLimit unrouted_log_;
  std::atomic<std::uint64_t> received_{0}, acked_{0}, nacked_{0}, redelivered_{0}, lost_{0},
      unrouted_{0};
  std::once_flag done_once_;
};

absl::StatusOr<std::unique_ptr<MqttConsumer>> MqttConsumer::Create(MqttClientOptions config) {
  if (auto s = ValidateMqttClientOptions(config); !s.ok()) return s;
  if (auto address = mi::ParseBrokerUrl(config.broker_url); !address.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("mqtt config: broker_url: ", address.status().message()));
  }
  std::string client_id = config.client_id;
  if (client_id.empty()) {
    std::mt19937_64 rng(std::random_device{}());
    client_id = config.client_id_prefix + RandomHex(rng, 1);
  }
  // Not derived from max_packet_bytes: see WebSocketLimits.
  auto factory = std::make_shared<mi::DialingTransportFactory>(
      config.broker_url, mi::TlsOptions{.ca_cert_file = config.ca_cert_file,
                                        .client_cert_file = config.client_cert_file,
                                        .client_key_file = config.client_key_file,
                                        .insecure_skip_verify = config.insecure_skip_verify});
  auto impl = std::make_shared<Impl>(std::move(config), std::move(client_id), std::move(factory));
  return std::unique_ptr<MqttConsumer>(new MqttConsumer(std::move(impl)));
}

MqttConsumer::~MqttConsumer() {
  if (impl_) impl_->StopNow(mi::RealNow() + std::chrono::seconds(5)).IgnoreError();
}

absl::Status MqttConsumer::Start() { return impl_->Start(); }
absl::Status MqttConsumer::Stop(Deadline deadline) { return impl_->StopNow(deadline); }
BoundedQueue<Message>& MqttConsumer::Messages() { return impl_->channel_; }
std::shared_future<absl::Status> MqttConsumer::Done() { return impl_->done_; }
bool MqttConsumer::IsConnected() const { return impl_->IsConnected(); }
MqttConsumerStats MqttConsumer::stats() const { return impl_->Stats(); }
const std::string& MqttConsumer::client_id() const { return impl_->client_id_; }

}  // namespace dataflow::mqttconverter

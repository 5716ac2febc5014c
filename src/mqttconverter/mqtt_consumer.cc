#include "dataflow/mqttconverter/mqtt_consumer.h"

#include <absl/strings/str_cat.h>
#include <mqtt/async_client.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <random>
#include <stop_token>
#include <thread>

#include "dataflow/messagepipeline/logging.h"

namespace dataflow::mqttconverter {

using messagepipeline::AckHandler;
using messagepipeline::Attributes;
using messagepipeline::BoundedQueue;
using messagepipeline::Deadline;
using messagepipeline::Message;
using messagepipeline::MessageData;

namespace {

std::string RandomHex(std::mt19937_64& rng, int words) {
  std::string out;
  for (int i = 0; i < words; ++i) absl::StrAppend(&out, absl::Hex(rng(), absl::kZeroPad16));
  return out;
}

// What a local redelivery needs: the message as it first reached the channel.
struct Delivery {
  MessageData data;
  Attributes attributes;
  int attempt = 1;
};

bool IsTlsUrl(const std::string& url) {
  return url.starts_with("ssl://") || url.starts_with("wss://") || url.starts_with("mqtts://");
}

}  // namespace

class MqttConsumer::Impl : public std::enable_shared_from_this<Impl> {
 public:
  Impl(MQTTClientConfig config, std::string client_id)
      : config_(std::move(config)),
        client_id_(std::move(client_id)),
        channel_(config_.channel_capacity),
        done_(done_promise_.get_future().share()),
        rng_(std::random_device{}()) {}

  ~Impl() {
    StopNow(std::chrono::steady_clock::now() + std::chrono::seconds(5)).IgnoreError();
    if (client_) {
      // Paho may still call back while being destroyed; the handlers only touch members
      // declared before client_, which is destroyed first.
      client_.reset();
    }
  }

  absl::Status Init() {
    try {
      // nullptr persistence: no files in the working directory; the broker's persistent
      // session is what survives a restart of this process.
      client_ = std::make_unique<mqtt::async_client>(config_.broker_url, client_id_, nullptr);
    } catch (const std::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat("mqtt: cannot create client for broker_url '",
                                                     config_.broker_url, "': ", e.what()));
    }
    for (const TopicMapping& m : config_.topic_mappings) {
      filters_->push_back(m.topic);
      qos_.push_back(m.qos);
    }
    return absl::OkStatus();
  }

  absl::Status Start() {
    {
      std::lock_guard lock(mu_);
      if (state_ != State::kIdle) {
        return absl::FailedPreconditionError("mqtt consumer: Start() called twice or after Stop()");
      }
      state_ = State::kStarting;
    }
    client_->set_message_callback([this](mqtt::const_message_ptr msg) { OnMessage(*msg); });
    client_->set_connected_handler([this](const std::string& /*cause*/) { OnConnected(); });
    client_->set_connection_lost_handler([this](const std::string& cause) {
      connected_.store(false);
      Log()->warn("mqtt connection lost; reconnecting client_id={} broker={} cause={}", client_id_,
                  config_.broker_url, cause);
    });
    auto builder =
        mqtt::connect_options_builder()
            .mqtt_version(MQTTVERSION_3_1_1)
            .clean_session(config_.clean_session)
            .keep_alive_interval(config_.keep_alive)
            .connect_timeout(config_.connect_timeout)
            .automatic_reconnect(config_.reconnect_min_backoff, config_.reconnect_max_backoff);
    if (!config_.username.empty()) builder.user_name(config_.username);
    if (!config_.password.empty()) builder.password(config_.password);
    if (IsTlsUrl(config_.broker_url)) {
      auto ssl = mqtt::ssl_options_builder()
                     .enable_server_cert_auth(!config_.insecure_skip_verify)
                     .verify(!config_.insecure_skip_verify);
      if (!config_.ca_cert_file.empty()) ssl.trust_store(config_.ca_cert_file);
      if (!config_.client_cert_file.empty()) ssl.key_store(config_.client_cert_file);
      if (!config_.client_key_file.empty()) ssl.private_key(config_.client_key_file);
      builder.ssl(ssl.finalize());
    }
    const auto wait = config_.connect_timeout + std::chrono::seconds(1);
    try {
      auto token = client_->connect(builder.finalize());
      if (!token->wait_for(wait)) {
        return Fail(absl::DeadlineExceededError(absl::StrCat(
            "mqtt: no CONNACK from ", config_.broker_url, " within ", wait.count(), "s")));
      }
    } catch (const std::exception& e) {
      return Fail(absl::UnavailableError(
          absl::StrCat("mqtt: cannot connect to ", config_.broker_url, ": ", e.what())));
    }
    // The connected handler subscribes (on every connect, so reconnects renew the
    // subscriptions); wait here for the first SUBACK so Start() returning means subscribed.
    std::unique_lock lock(mu_);
    if (!subscribed_cv_.wait_for(lock, wait, [&] { return subscribe_result_.has_value(); })) {
      lock.unlock();
      return Fail(absl::DeadlineExceededError("mqtt: no SUBACK within the connect timeout"));
    }
    absl::Status result = *subscribe_result_;
    if (!result.ok()) {
      lock.unlock();
      return Fail(result);
    }
    state_ = State::kRunning;
    lock.unlock();
    redeliverer_ = std::jthread([this](std::stop_token st) { RedeliverLoop(st); });
    Log()->info("mqtt consumer started client_id={} broker={} subscriptions={}", client_id_,
                config_.broker_url, filters_->size());
    return absl::OkStatus();
  }

  absl::Status StopNow(Deadline deadline) {
    {
      std::lock_guard lock(mu_);
      if (state_ == State::kStopped) return absl::OkStatus();
      state_ = State::kStopped;
    }
    stopping_.store(true);
    absl::Status status;
    if (client_ && client_->is_connected()) {
      try {
        // Stop reading first, so nothing more is PUBACKed; the channel stays open meanwhile
        // so a Paho thread blocked on a full channel can still hand over its message.
        auto token = client_->disconnect(std::chrono::milliseconds(0));
        auto left = deadline - std::chrono::steady_clock::now();
        if (left < std::chrono::milliseconds(1)) left = std::chrono::milliseconds(1);
        if (!token->wait_for(std::chrono::duration_cast<std::chrono::milliseconds>(left))) {
          status = absl::DeadlineExceededError("mqtt: disconnect did not finish by the deadline");
        }
      } catch (const std::exception& e) {
        Log()->warn("mqtt disconnect failed client_id={} error={}", client_id_, e.what());
      }
    }
    connected_.store(false);
    if (redeliverer_.joinable()) {
      redeliverer_.request_stop();
      redeliverer_.join();
    }
    std::deque<std::shared_ptr<Delivery>> left_over;
    {
      std::lock_guard lock(redeliver_mu_);
      left_over.swap(redeliver_);
    }
    for (const auto& d : left_over) ReportLost(*d, "nacked during shutdown");
    channel_.Close();
    done_promise_.set_value(status);
    return status;
  }

  // Called from a worker thread by a nacked message.
  void Redeliver(std::shared_ptr<Delivery> d) {
    nacked_.fetch_add(1, std::memory_order_relaxed);
    if (stopping_.load()) {
      ReportLost(*d, "nacked after Stop()");
      return;
    }
    {
      std::lock_guard lock(redeliver_mu_);
      redeliver_.push_back(std::move(d));
    }
    redeliver_cv_.notify_one();
  }

  void ReportLost(const Delivery& d, const char* why) {
    lost_.fetch_add(1, std::memory_order_relaxed);
    Log()->error(
        "mqtt message lost: {}; its PUBACK was already sent, the broker will not redeliver "
        "id={} mqtt_topic={}",
        why, d.data.id, d.attributes.contains("mqtt_topic") ? d.attributes.at("mqtt_topic") : "");
  }

  MqttConsumerStats Stats() const {
    return MqttConsumerStats{.received = received_.load(),
                             .acked = acked_.load(),
                             .nacked = nacked_.load(),
                             .redelivered = redelivered_.load(),
                             .lost = lost_.load(),
                             .unrouted = unrouted_.load(),
                             .connects = connects_.load()};
  }

  const MQTTClientConfig config_;
  const std::string client_id_;
  std::promise<absl::Status> done_promise_;
  BoundedQueue<Message> channel_;
  std::atomic<bool> connected_{false};
  std::atomic<std::uint64_t> acked_{0};

 private:
  enum class State { kIdle, kStarting, kRunning, kStopped };

  class Handler : public AckHandler {
   public:
    Handler(std::weak_ptr<Impl> impl, std::shared_ptr<Delivery> d)
        : impl_(std::move(impl)), delivery_(std::move(d)) {}
    void OnAck() override {
      if (lost_) return;  // already counted and logged by ReportLost
      if (auto impl = impl_.lock()) impl->acked_.fetch_add(1, std::memory_order_relaxed);
    }
    void OnNack() override {
      if (lost_) return;
      if (auto impl = impl_.lock()) {
        impl->Redeliver(std::move(delivery_));
      } else {
        Log()->error("mqtt message lost: nacked after its consumer was destroyed id={}",
                     delivery_->data.id);
      }
    }
    bool lost_ = false;

   private:
    std::weak_ptr<Impl> impl_;
    std::shared_ptr<Delivery> delivery_;
  };

  // Reports the SUBACK of each (re)subscription; lives as long as the client.
  class SubscribeListener : public mqtt::iaction_listener {
   public:
    explicit SubscribeListener(Impl* impl) : impl_(impl) {}
    void on_failure(const mqtt::token& tok) override {
      impl_->SetSubscribeResult(absl::UnavailableError(
          absl::StrCat("mqtt: subscribe failed, reason code ", tok.get_reason_code())));
    }
    void on_success(const mqtt::token& tok) override {
      absl::Status s;
      try {
        auto codes = tok.get_subscribe_response().get_reason_codes();
        for (std::size_t i = 0; i < codes.size() && i < impl_->filters_->size(); ++i) {
          if (codes[i] >= 0x80) {
            s = absl::PermissionDeniedError(
                absl::StrCat("mqtt: broker refused subscription to '", (*impl_->filters_)[i], "'"));
            break;
          }
        }
      } catch (const std::exception&) {
        // No per-topic codes available: the SUBACK itself arrived.
      }
      impl_->SetSubscribeResult(s);
    }

   private:
    Impl* impl_;
  };

  absl::Status Fail(absl::Status status) {
    {
      std::lock_guard lock(mu_);
      state_ = State::kStopped;
    }
    stopping_.store(true);
    try {
      if (client_->is_connected()) client_->disconnect()->wait_for(std::chrono::seconds(2));
    } catch (const std::exception&) {
      // Best effort: the start already failed with a better error.
    }
    channel_.Close();
    done_promise_.set_value(status);
    return status;
  }

  void OnConnected() {
    connected_.store(true);
    connects_.fetch_add(1, std::memory_order_relaxed);
    if (connects_.load() > 1) {
      Log()->info("mqtt reconnected; renewing subscriptions client_id={}", client_id_);
    }
    try {
      client_->subscribe(filters_, qos_, nullptr, listener_);
    } catch (const std::exception& e) {
      SetSubscribeResult(absl::UnavailableError(absl::StrCat("mqtt: subscribe: ", e.what())));
    }
  }

  void SetSubscribeResult(absl::Status s) {
    if (!s.ok())
      Log()->error("mqtt subscribe failed client_id={} error={}", client_id_, s.ToString());
    {
      std::lock_guard lock(mu_);
      if (!subscribe_result_.has_value()) subscribe_result_ = s;
    }
    subscribed_cv_.notify_all();
  }

  void OnMessage(const mqtt::message& msg) {
    received_.fetch_add(1, std::memory_order_relaxed);
    auto d = std::make_shared<Delivery>();
    d->data.id = RandomHex(rng_, 2);
    d->data.payload = msg.get_payload_str();
    d->data.publish_time = messagepipeline::Clock::now();
    const std::string& topic = msg.get_topic();
    if (const TopicMapping* route = FindRoute(config_.topic_mappings, topic)) {
      d->attributes.emplace("route_name", route->name);
    } else {
      unrouted_.fetch_add(1, std::memory_order_relaxed);
      if (unrouted_log_.Allow()) {
        Log()->warn(
            "mqtt message matches no topic mapping; delivered without route_name "
            "mqtt_topic={} suppressed={}",
            topic, unrouted_log_.suppressed());
      }
    }
    d->attributes.emplace("mqtt_topic", topic);
    d->attributes.emplace("mqtt_qos", std::to_string(msg.get_qos()));
    Deliver(std::move(d));
  }

  // Blocks while the channel is full: that is the backpressure.
  void Deliver(std::shared_ptr<Delivery> d) {
    auto handler = std::make_unique<Handler>(weak_from_this(), d);
    Handler* h = handler.get();
    Message m(d->data, d->attributes, std::move(handler));
    m.delivery_attempt = d->attempt;
    if (!channel_.Push(std::move(m))) {
      h->lost_ = true;
      ReportLost(*d, "the consumer stopped before the pipeline took it");
      m.Ack();  // settled as lost; keeps the destructor from nacking it again
    }
  }

  void RedeliverLoop(std::stop_token st) {
    while (true) {
      std::shared_ptr<Delivery> d;
      {
        std::unique_lock lock(redeliver_mu_);
        if (!redeliver_cv_.wait(lock, st, [&] { return !redeliver_.empty(); })) return;
        d = std::move(redeliver_.front());
        redeliver_.pop_front();
      }
      d->attempt += 1;
      redelivered_.fetch_add(1, std::memory_order_relaxed);
      Deliver(std::move(d));
    }
  }

  std::mutex mu_;
  std::condition_variable subscribed_cv_;
  State state_ = State::kIdle;
  std::optional<absl::Status> subscribe_result_;
  std::atomic<bool> stopping_{false};

 public:
  std::shared_future<absl::Status> done_;

 private:
  SubscribeListener listener_{this};
  mqtt::string_collection_ptr filters_ = std::make_shared<mqtt::string_collection>();
  mqtt::iasync_client::qos_collection qos_;
  std::mt19937_64 rng_;  // used on Paho's callback thread only
  LogRateLimit unrouted_log_;
  std::atomic<std::uint64_t> received_{0}, nacked_{0}, redelivered_{0}, lost_{0}, unrouted_{0},
      connects_{0};
  std::mutex redeliver_mu_;
  std::condition_variable_any redeliver_cv_;
  std::deque<std::shared_ptr<Delivery>> redeliver_;
  std::jthread redeliverer_;
  std::unique_ptr<mqtt::async_client> client_;
};

absl::StatusOr<std::unique_ptr<MqttConsumer>> MqttConsumer::Create(MQTTClientConfig config) {
  if (auto s = ValidateMQTTClientConfig(config); !s.ok()) return s;
  std::string client_id = config.client_id;
  if (client_id.empty()) {
    std::mt19937_64 rng(std::random_device{}());
    client_id = config.client_id_prefix + RandomHex(rng, 1);
  }
  auto impl = std::make_shared<Impl>(std::move(config), std::move(client_id));
  if (auto s = impl->Init(); !s.ok()) return s;
  return std::unique_ptr<MqttConsumer>(new MqttConsumer(std::move(impl)));
}

MqttConsumer::~MqttConsumer() {
  if (impl_)
    impl_->StopNow(std::chrono::steady_clock::now() + std::chrono::seconds(5)).IgnoreError();
}

absl::Status MqttConsumer::Start() { return impl_->Start(); }
absl::Status MqttConsumer::Stop(Deadline deadline) { return impl_->StopNow(deadline); }
BoundedQueue<Message>& MqttConsumer::Messages() { return impl_->channel_; }
std::shared_future<absl::Status> MqttConsumer::Done() { return impl_->done_; }
bool MqttConsumer::IsConnected() const { return impl_->connected_.load(); }
MqttConsumerStats MqttConsumer::stats() const { return impl_->Stats(); }
const std::string& MqttConsumer::client_id() const { return impl_->client_id_; }

}  // namespace dataflow::mqttconverter

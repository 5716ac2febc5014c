#include "dataflow/messagepipeline/in_process_broker.h"

#include <absl/strings/str_cat.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <future>
#include <map>
#include <thread>

#include "dataflow/messagepipeline/logging.h"
#include "in_process_subscription.h"

namespace dataflow::messagepipeline {

namespace {

class InProcessAckHandler final : public AckHandler {
 public:
  InProcessAckHandler(std::shared_ptr<InProcessSubscription> subscription, std::uint64_t seq,
                      int attempt, std::shared_ptr<EntryState> state)
      : subscription_(std::move(subscription)),
        state_(std::move(state)),
        seq_(seq),
        attempt_(attempt) {}
  void OnAck() override { subscription_->Ack(seq_, attempt_, *state_); }
  void OnNack() override { subscription_->Nack(seq_, attempt_); }

 private:
  std::shared_ptr<InProcessSubscription> subscription_;
  std::shared_ptr<EntryState> state_;
  std::uint64_t seq_;
  int attempt_;
};

class InProcessConsumer final : public MessageConsumer {
 public:
  InProcessConsumer(std::string name, std::shared_ptr<InProcessSubscription> subscription,
                    InProcessConsumerOptions options)
      : name_(std::move(name)),
        subscription_(std::move(subscription)),
        channel_(options.channel_capacity),
        done_(done_promise_.get_future().share()) {}

  ~InProcessConsumer() override { (void)Stop(SteadyClock::now()); }

  absl::Status Start() override {
    std::lock_guard lock(mu_);
    if (started_) return absl::FailedPreconditionError(name_ + ": consumer already started");
    if (stopped_) return absl::FailedPreconditionError(name_ + ": consumer was stopped");
    started_ = true;
    puller_ = std::jthread([this] { PullLoop(); });
    return absl::OkStatus();
  }

  absl::Status Stop(Deadline /*deadline*/) override {
    std::lock_guard lock(mu_);
    if (stopped_) return absl::OkStatus();
    stopped_ = true;
    stop_.store(true, std::memory_order_release);
    // Closing unblocks a puller waiting for room; what it could not hand over it nacks.
    channel_.Close();
    subscription_->WakeAll();
    if (puller_.joinable()) puller_.join();
    done_promise_.set_value(absl::OkStatus());
    return absl::OkStatus();
  }

  BoundedQueue<Message>& Messages() override { return channel_; }
  std::shared_future<absl::Status> Done() override { return done_; }

 private:
  void PullLoop() {
    constexpr std::size_t kMaxTake = 64;
    std::vector<const InProcessSubscription::Entry*> entries;
    std::vector<Message> messages;
    std::vector<std::pair<std::uint64_t, int>> leases;
    entries.reserve(kMaxTake);
    messages.reserve(kMaxTake);
    leases.reserve(kMaxTake);
    while (subscription_->Take(entries, kMaxTake, stop_) > 0) {
      for (const auto* entry : entries) {
        const PublishedMessage& published = *entry->message;
        Message& m =
            messages.emplace_back(published.data, published.attributes,
                                  std::make_unique<InProcessAckHandler>(
                                      subscription_, entry->seq, entry->attempts, entry->state));
        m.ordering_key = published.ordering_key;
        m.delivery_attempt = entry->attempts;
        m.envelope = published.envelope;
        leases.emplace_back(entry->seq, entry->attempts);
      }
      // After PushAll, entries may be settled (and freed) by workers: only `leases` is used.
      const std::size_t pushed = channel_.PushAll(messages);
      subscription_->StartLeases(leases, pushed);
      for (std::size_t i = pushed; i < messages.size(); ++i) messages[i].Nack();
      entries.clear();
      messages.clear();
      leases.clear();
    }
    channel_.Close();
  }

  const std::string name_;
  const std::shared_ptr<InProcessSubscription> subscription_;
  BoundedQueue<Message> channel_;
  std::promise<absl::Status> done_promise_;
  std::shared_future<absl::Status> done_;
  std::mutex mu_;
  bool started_ = false;
  bool stopped_ = false;
  std::atomic<bool> stop_{false};
  std::jthread puller_;
};

class InProcessDeadLetterSink final : public DeadLetterSink {
 public:
  InProcessDeadLetterSink(std::weak_ptr<InProcessBroker> broker, std::string topic,
                          std::chrono::milliseconds timeout)
      : broker_(std::move(broker)), topic_(std::move(topic)), timeout_(timeout) {}

  // Durable means: every subscription of the dead-letter topic acked it.
  absl::Status Send(const Message& message, const absl::Status& reason,
                    std::string_view source) override {
    auto broker = broker_.lock();
    if (!broker) return absl::FailedPreconditionError("dead-letter sink: broker is gone");
    auto done = std::make_shared<std::promise<absl::Status>>();
    auto result = done->get_future();
    broker->PublishAsync(
        topic_, message.data, DeadLetterAttributes(message, reason, source), message.ordering_key,
        [done](const absl::StatusOr<std::string>& id) { done->set_value(id.status()); });
    if (result.wait_for(timeout_) != std::future_status::ready) {
      return absl::DeadlineExceededError(absl::StrCat("dead-letter topic \"", topic_,
                                                      "\": not acked by its subscriptions within ",
                                                      timeout_.count(), "ms"));
    }
    return result.get();
  }

 private:
  std::weak_ptr<InProcessBroker> broker_;
  std::string topic_;
  std::chrono::milliseconds timeout_;
};

class InProcessPublisher final : public MessagePublisher {
 public:
  explicit InProcessPublisher(std::weak_ptr<InProcessBroker> broker) : broker_(std::move(broker)) {}

  void PublishAsync(const std::string& topic, OutgoingMessage message,
                    PublishCallback done) override {
    if (stopped_.load(std::memory_order_acquire)) {
      done(absl::FailedPreconditionError("in-process publisher is stopped"));
      return;
    }
    auto broker = broker_.lock();
    if (!broker) {
      done(absl::FailedPreconditionError("in-process broker is gone"));
      return;
    }
    MessageData data;
    data.payload = std::move(message.payload);
    broker->PublishAsync(topic, std::move(data), std::move(message.attributes),
                         std::move(message.ordering_key), done, std::move(message.envelope));
  }

  [[nodiscard]] bool TakesEnvelopes() const override { return true; }

  absl::Status Stop(Deadline /*deadline*/) override {
    stopped_.store(true, std::memory_order_release);
    return absl::OkStatus();
  }

 private:
  std::weak_ptr<InProcessBroker> broker_;
  std::atomic<bool> stopped_{false};
};

}  // namespace

std::shared_ptr<MessagePublisher> InProcessBroker::NewPublisher() {
  return std::make_shared<InProcessPublisher>(weak_from_this());
}

std::shared_ptr<InProcessBroker> InProcessBroker::Create(InProcessBrokerOptions options) {
  return std::shared_ptr<InProcessBroker>(new InProcessBroker(options));
}

InProcessBroker::~InProcessBroker() = default;

absl::Status InProcessBroker::CreateTopic(std::string_view topic) {
  if (topic.empty()) return absl::InvalidArgumentError("topic name is empty");
  std::lock_guard lock(mu_);
  if (!topics_.try_emplace(std::string(topic)).second) {
    return absl::AlreadyExistsError(
        absl::StrCat("topic \"", std::string(topic), "\" already exists"));
  }
  return absl::OkStatus();
}

absl::Status InProcessBroker::CreateSubscription(std::string_view subscription,
                                                 std::string_view topic) {
  if (subscription.empty()) return absl::InvalidArgumentError("subscription name is empty");
  std::lock_guard lock(mu_);
  auto t = topics_.find(std::string(topic));
  if (t == topics_.end()) {
    return absl::NotFoundError(absl::StrCat("topic \"", std::string(topic), "\" does not exist"));
  }
  auto sub = std::make_shared<InProcessSubscription>(options_);
  if (!subscriptions_.try_emplace(std::string(subscription), sub).second) {
    return absl::AlreadyExistsError(
        absl::StrCat("subscription \"", std::string(subscription), "\" already exists"));
  }
  t->second.push_back(std::move(sub));
  return absl::OkStatus();
}

absl::StatusOr<std::string> InProcessBroker::Enqueue(std::string_view topic, MessageData data,
                                                     Attributes attributes,
                                                     std::string ordering_key,
                                                     const InProcessPublishCallback& done,
                                                     std::shared_ptr<const MessageData> envelope) {
  std::vector<std::shared_ptr<InProcessSubscription>> subs;
  {
    std::lock_guard lock(mu_);
    auto t = topics_.find(std::string(topic));
    if (t == topics_.end()) {
      return absl::NotFoundError(absl::StrCat("topic \"", std::string(topic), "\" does not exist"));
    }
    if (t->second.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("topic \"", std::string(topic),
                       "\" has no subscription: a message published to it would be lost"));
    }
    if (data.id.empty()) data.id = absl::StrCat(next_id_++);
    subs = t->second;
  }
  const std::size_t bytes = data.payload.size();
  const auto deadline = SteadyClock::now() + options_.max_publish_block;
  for (std::size_t i = 0; i < subs.size(); ++i) {
    if (!subs[i]->Reserve(bytes, deadline)) {
      for (std::size_t j = 0; j < i; ++j) subs[j]->Release(bytes);
      return absl::ResourceExhaustedError(absl::StrCat(
          "topic \"", std::string(topic), "\": a subscription is full (",
          options_.max_subscription_messages, " messages or ", options_.max_subscription_bytes,
          " bytes unacked) for ", options_.max_publish_block.count(), "ms"));
    }
  }
  if (data.publish_time == Clock::time_point{}) data.publish_time = Clock::now();
  std::string id = data.id;
  auto tracker = done ? std::make_shared<PublishTracker>(id, subs.size(), done) : nullptr;
  // One copy for every subscription: it is freed once the last of them settled the message.
  auto published = std::make_shared<const PublishedMessage>(
      PublishedMessage{.data = std::move(data),
                       .attributes = std::move(attributes),
                       .ordering_key = std::move(ordering_key),
                       .envelope = std::move(envelope)});
  for (const auto& sub : subs) {
    auto state = std::make_shared<EntryState>();
    state->tracker = tracker;
    state->bytes = bytes;
    sub->Enqueue({.message = published, .state = std::move(state)});
  }
  return id;
}

void InProcessBroker::PublishAsync(std::string_view topic, MessageData data, Attributes attributes,
                                   std::string ordering_key, const InProcessPublishCallback& done,
                                   std::shared_ptr<const MessageData> envelope) {
  auto enqueued = Enqueue(topic, std::move(data), std::move(attributes), std::move(ordering_key),
                          done, std::move(envelope));
  // On success `done` belongs to the subscriptions' acks; an error never reached them.
  if (!enqueued.ok() && done) done(enqueued.status());
}

absl::StatusOr<std::string> InProcessBroker::Publish(std::string_view topic, MessageData data,
                                                     Attributes attributes,
                                                     std::string ordering_key) {
  return Enqueue(topic, std::move(data), std::move(attributes), std::move(ordering_key), nullptr,
                 nullptr);
}

absl::StatusOr<std::shared_ptr<MessageConsumer>> InProcessBroker::NewConsumer(
    std::string_view subscription, InProcessConsumerOptions options) {
  std::lock_guard lock(mu_);
  auto s = subscriptions_.find(std::string(subscription));
  if (s == subscriptions_.end()) {
    return absl::NotFoundError(
        absl::StrCat("subscription \"", std::string(subscription), "\" does not exist"));
  }
  if (options.channel_capacity == 0) {
    return absl::InvalidArgumentError("in-process consumer: channel_capacity must be > 0");
  }
  return std::make_shared<InProcessConsumer>(absl::StrCat("in-process:", std::string(subscription)),
                                             s->second, options);
}

std::shared_ptr<DeadLetterSink> InProcessBroker::NewDeadLetterSink(
    std::string topic, std::chrono::milliseconds timeout) {
  return std::make_shared<InProcessDeadLetterSink>(weak_from_this(), std::move(topic), timeout);
}

std::vector<std::string> InProcessBroker::TopicsWithoutSubscriptions() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const auto& [topic, subs] : topics_) {
    if (subs.empty()) out.push_back(topic);
  }
  std::sort(out.begin(), out.end());
  return out;
}

absl::StatusOr<SubscriptionStats> InProcessBroker::Stats(std::string_view subscription) const {
  std::lock_guard lock(mu_);
  auto s = subscriptions_.find(std::string(subscription));
  if (s == subscriptions_.end()) {
    return absl::NotFoundError(
        absl::StrCat("subscription \"", std::string(subscription), "\" does not exist"));
  }
  return s->second->Stats();
}

std::vector<InProcessBroker::SubscriptionInfo> InProcessBroker::Subscriptions() const {
  std::lock_guard lock(mu_);
  std::vector<SubscriptionInfo> out;
  out.reserve(subscriptions_.size());
  for (const auto& [name, subscription] : subscriptions_) {
    SubscriptionInfo info{.name = name, .stats = subscription->Stats()};
    // Subscriptions do not know their topic; a pipeline has a handful of each.
    for (const auto& [topic, subs] : topics_) {
      if (std::find(subs.begin(), subs.end(), subscription) != subs.end()) info.topic = topic;
    }
    out.push_back(std::move(info));
  }
  std::sort(out.begin(), out.end(),
            [](const SubscriptionInfo& a, const SubscriptionInfo& b) { return a.name < b.name; });
  return out;
}

}  // namespace dataflow::messagepipeline

#include "dataflow/messagepipeline/in_process_broker.h"

#include <absl/strings/str_cat.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <future>
#include <thread>

#include "dataflow/messagepipeline/logging.h"

namespace dataflow::messagepipeline {

using SteadyClock = std::chrono::steady_clock;

class InProcessSubscription : public std::enable_shared_from_this<InProcessSubscription> {
 public:
  struct Entry {
    std::uint64_t seq = 0;
    MessageData data;
    Attributes attributes;
    std::string ordering_key;
    int attempts = 0;  // deliveries so far; also names the current lease
  };

  explicit InProcessSubscription(InProcessBrokerOptions options) : options_(options) {}

  void Enqueue(Entry entry) {
    std::lock_guard lock(mu_);
    entry.seq = next_seq_++;
    ready_.push_back(std::move(entry));
    cv_.notify_one();
  }

  // Waits until messages are deliverable (or `stop`), then marks up to `max` of them
  // outstanding and returns pointers to them. The pointers stay valid until the message is
  // settled, which cannot happen before the caller has delivered it.
  std::size_t Take(std::vector<const Entry*>& out, std::size_t max, const std::atomic<bool>& stop) {
    std::unique_lock lock(mu_);
    for (;;) {
      if (stop.load(std::memory_order_acquire)) return 0;
      const auto now = SteadyClock::now();
      ApplySettlementsLocked();  // before expiry: a message acked in time is not redelivered
      ExpireLocked(now);
      PromoteDelayedLocked(now);
      if (!ready_.empty()) break;
      auto wake = now + std::chrono::seconds(1);
      if (!leases_.empty()) wake = std::min(wake, leases_.front().deadline);
      if (!delayed_.empty()) wake = std::min(wake, delayed_.front().first);
      cv_.wait_until(lock, wake);
    }
    const std::size_t n = std::min(max, ready_.size());
    for (std::size_t i = 0; i < n; ++i) {
      Entry entry = std::move(ready_.front());
      ready_.pop_front();
      ++entry.attempts;
      const std::uint64_t seq = entry.seq;
      auto [it, inserted] = outstanding_.emplace(seq, std::move(entry));
      out.push_back(&it->second);
    }
    delivered_ += n;
    return n;
  }

  // Starts the ack deadline of messages that reached a consumer's channel. Takes (seq,
  // attempt) pairs, not entries: a worker may already have acked and erased an entry.
  void StartLeases(const std::vector<std::pair<std::uint64_t, int>>& delivered, std::size_t count) {
    std::lock_guard lock(mu_);
    const auto deadline = SteadyClock::now() + options_.ack_deadline;
    for (std::size_t i = 0; i < count; ++i) {
      leases_.push_back(Lease{delivered[i].first, delivered[i].second, deadline});
    }
  }

  // Settlements are queued under their own small lock and applied in bulk by the puller,
  // so acking workers do not contend with delivery for the subscription's main lock.
  void Ack(std::uint64_t seq, int attempt) {
    std::lock_guard lock(settle_mu_);
    settlements_.push_back(Settlement{seq, attempt, /*ack=*/true});
  }

  void Nack(std::uint64_t seq, int attempt) {
    {
      std::lock_guard lock(settle_mu_);
      settlements_.push_back(Settlement{seq, attempt, /*ack=*/false});
    }
    // Taking mu_ orders this with a puller about to wait, so the wake-up is not lost.
    std::lock_guard lock(mu_);
    cv_.notify_one();
  }

  void WakeAll() {
    std::lock_guard lock(mu_);
    cv_.notify_all();
  }

  SubscriptionStats Stats() {
    std::lock_guard lock(mu_);
    ApplySettlementsLocked();
    return SubscriptionStats{.pending = ready_.size() + delayed_.size(),
                             .outstanding = outstanding_.size(),
                             .delivered = delivered_,
                             .acked = acked_,
                             .nacked = nacked_,
                             .expired = expired_};
  }

 private:
  struct Lease {
    std::uint64_t seq;
    int attempt;
    SteadyClock::time_point deadline;
  };

  struct Settlement {
    std::uint64_t seq;
    int attempt;
    bool ack;
  };

  void ApplySettlementsLocked() {
    {
      std::lock_guard lock(settle_mu_);
      applying_.swap(settlements_);
    }
    const auto now = SteadyClock::now();
    for (const Settlement& s : applying_) {
      auto it = outstanding_.find(s.seq);
      if (it == outstanding_.end() || it->second.attempts != s.attempt) continue;  // stale lease
      if (s.ack) {
        ++acked_;
      } else {
        delayed_.emplace_back(now + options_.redelivery_delay, std::move(it->second));
        ++nacked_;
      }
      outstanding_.erase(it);
    }
    applying_.clear();
  }

  void ExpireLocked(SteadyClock::time_point now) {
    // All leases have the same length, so the deque is ordered by deadline.
    while (!leases_.empty() && leases_.front().deadline <= now) {
      const Lease lease = leases_.front();
      leases_.pop_front();
      auto it = outstanding_.find(lease.seq);
      if (it == outstanding_.end() || it->second.attempts != lease.attempt) continue;
      ready_.push_back(std::move(it->second));
      outstanding_.erase(it);
      ++expired_;
    }
  }

  void PromoteDelayedLocked(SteadyClock::time_point now) {
    while (!delayed_.empty() && delayed_.front().first <= now) {
      ready_.push_back(std::move(delayed_.front().second));
      delayed_.pop_front();
    }
  }

  const InProcessBrokerOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Entry> ready_;
  std::deque<std::pair<SteadyClock::time_point, Entry>> delayed_;
  std::unordered_map<std::uint64_t, Entry> outstanding_;
  std::deque<Lease> leases_;
  std::mutex settle_mu_;
  std::vector<Settlement> settlements_;  // guarded by settle_mu_
  std::vector<Settlement> applying_;     // guarded by mu_
  std::uint64_t next_seq_ = 1;
  std::uint64_t delivered_ = 0;
  std::uint64_t acked_ = 0;
  std::uint64_t nacked_ = 0;
  std::uint64_t expired_ = 0;
};

namespace {

class InProcessAckHandler final : public AckHandler {
 public:
  InProcessAckHandler(std::shared_ptr<InProcessSubscription> subscription, std::uint64_t seq,
                      int attempt)
      : subscription_(std::move(subscription)), seq_(seq), attempt_(attempt) {}
  void OnAck() override { subscription_->Ack(seq_, attempt_); }
  void OnNack() override { subscription_->Nack(seq_, attempt_); }

 private:
  std::shared_ptr<InProcessSubscription> subscription_;
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
        Message& m = messages.emplace_back(
            entry->data, entry->attributes,
            std::make_unique<InProcessAckHandler>(subscription_, entry->seq, entry->attempts));
        m.ordering_key = entry->ordering_key;
        m.delivery_attempt = entry->attempts;
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
  InProcessDeadLetterSink(std::weak_ptr<InProcessBroker> broker, std::string topic)
      : broker_(std::move(broker)), topic_(std::move(topic)) {}

  absl::Status Send(const Message& message, const absl::Status& reason,
                    std::string_view source) override {
    auto broker = broker_.lock();
    if (!broker) return absl::FailedPreconditionError("dead-letter sink: broker is gone");
    auto published = broker->Publish(
        topic_, message.data, DeadLetterAttributes(message, reason, source), message.ordering_key);
    return published.status();
  }

 private:
  std::weak_ptr<InProcessBroker> broker_;
  std::string topic_;
};

class InProcessPublisher final : public MessagePublisher {
 public:
  explicit InProcessPublisher(std::weak_ptr<InProcessBroker> broker) : broker_(std::move(broker)) {}

  std::future<absl::StatusOr<std::string>> Publish(const std::string& topic,
                                                   OutgoingMessage message) override {
    if (stopped_.load(std::memory_order_acquire)) {
      return ReadyFuture(absl::FailedPreconditionError("in-process publisher is stopped"));
    }
    auto broker = broker_.lock();
    if (!broker) return ReadyFuture(absl::FailedPreconditionError("in-process broker is gone"));
    MessageData data;
    data.payload = std::move(message.payload);
    return ReadyFuture(broker->Publish(topic, std::move(data), std::move(message.attributes),
                                       std::move(message.ordering_key)));
  }

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

absl::StatusOr<std::string> InProcessBroker::Publish(std::string_view topic, MessageData data,
                                                     Attributes attributes,
                                                     std::string ordering_key) {
  std::vector<std::shared_ptr<InProcessSubscription>> subs;
  {
    std::lock_guard lock(mu_);
    auto t = topics_.find(std::string(topic));
    if (t == topics_.end()) {
      return absl::NotFoundError(absl::StrCat("topic \"", std::string(topic), "\" does not exist"));
    }
    if (data.id.empty()) data.id = absl::StrCat(next_id_++);
    subs = t->second;
  }
  if (data.publish_time == Clock::time_point{}) data.publish_time = Clock::now();
  std::string id = data.id;
  auto make_entry = [&](bool may_move) {
    InProcessSubscription::Entry entry;
    entry.data = may_move ? std::move(data) : data;
    entry.attributes = may_move ? std::move(attributes) : attributes;
    entry.ordering_key = may_move ? std::move(ordering_key) : ordering_key;
    return entry;
  };
  // Every subscription but the last gets a copy; the last one takes the original.
  for (std::size_t i = 0; i + 1 < subs.size(); ++i) subs[i]->Enqueue(make_entry(false));
  if (!subs.empty()) subs.back()->Enqueue(make_entry(true));
  return id;
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

std::shared_ptr<DeadLetterSink> InProcessBroker::NewDeadLetterSink(std::string topic) {
  return std::make_shared<InProcessDeadLetterSink>(weak_from_this(), std::move(topic));
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

}  // namespace dataflow::messagepipeline

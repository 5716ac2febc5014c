#include "dataflow/messagepipeline/in_process_broker.h"

#include <absl/strings/str_cat.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <future>
#include <map>
#include <thread>

#include "dataflow/messagepipeline/backoff.h"
#include "dataflow/messagepipeline/logging.h"

namespace dataflow::messagepipeline {

using SteadyClock = std::chrono::steady_clock;

// Completes one publish once every subscription acked its copy.
class PublishTracker {
 public:
  PublishTracker(std::string id, std::size_t subscriptions, InProcessPublishCallback done)
      : id_(std::move(id)), remaining_(subscriptions), done_(std::move(done)) {}

  void Acked() {
    if (remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1) Finish(id_);
  }
  void Finish(const absl::StatusOr<std::string>& result) {
    if (!finished_.exchange(true, std::memory_order_acq_rel) && done_) done_(result);
  }

 private:
  const std::string id_;
  std::atomic<std::size_t> remaining_;
  std::atomic<bool> finished_{false};
  InProcessPublishCallback done_;
};

// What every delivery attempt of one message in one subscription shares: whether it was acked
// (the first ack of any attempt counts), and the publish it completes.
struct EntryState {
  std::shared_ptr<PublishTracker> tracker;  // null for Publish() without a callback
  std::size_t bytes = 0;
  std::atomic<bool> acked{false};
};

class InProcessSubscription : public std::enable_shared_from_this<InProcessSubscription> {
 public:
  struct Entry {
    std::uint64_t seq = 0;
    MessageData data;
    Attributes attributes;
    std::string ordering_key;
    int attempts = 0;  // deliveries so far; also names the current lease
    std::shared_ptr<EntryState> state;
  };

  explicit InProcessSubscription(InProcessBrokerOptions options) : options_(options) {}

  // Waits up to `deadline` until the subscription has room for a message of `bytes` (one
  // message always fits an empty subscription, however large) and counts it as held.
  bool Reserve(std::size_t bytes, SteadyClock::time_point deadline) {
    std::unique_lock lock(room_mu_);
    const bool room = room_cv_.wait_until(lock, deadline, [&] {
      return held_messages_ == 0 || (held_messages_ < options_.max_subscription_messages &&
                                     held_bytes_ + bytes <= options_.max_subscription_bytes);
    });
    if (!room) return false;
    ++held_messages_;
    held_bytes_ += bytes;
    return true;
  }

  void Release(std::size_t bytes) {
    std::lock_guard lock(room_mu_);
    --held_messages_;
    held_bytes_ -= bytes;
    room_cv_.notify_all();
  }

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
      // A copy whose earlier attempt was acked after its lease expired is done.
      while (!ready_.empty() && ready_.front().state->acked.load(std::memory_order_acquire)) {
        ready_.pop_front();
      }
      if (!ready_.empty()) break;
      auto wake = now + std::chrono::seconds(1);
      if (!leases_.empty()) wake = std::min(wake, leases_.front().deadline);
      if (!delayed_.empty()) wake = std::min(wake, NextDelayedLocked());
      cv_.wait_until(lock, wake);
    }
    std::size_t n = 0;
    while (n < max && !ready_.empty()) {
      Entry entry = std::move(ready_.front());
      ready_.pop_front();
      if (entry.state->acked.load(std::memory_order_acquire)) continue;
      ++entry.attempts;
      const std::uint64_t seq = entry.seq;
      auto [it, inserted] = outstanding_.insert_or_assign(seq, std::move(entry));
      out.push_back(&it->second);
      ++n;
    }
    delivered_ += n;
    return n;
  }

  // Starts the lease of messages that reached a consumer's channel. Takes (seq, attempt)
  // pairs, not entries: a worker may already have acked and erased an entry.
  void StartLeases(const std::vector<std::pair<std::uint64_t, int>>& delivered, std::size_t count) {
    std::lock_guard lock(mu_);
    const auto deadline = SteadyClock::now() + options_.max_lease;
    for (std::size_t i = 0; i < count; ++i) {
      leases_.push_back(Lease{delivered[i].first, delivered[i].second, deadline});
    }
  }

  // Settlements are queued under their own small lock and applied in bulk by the puller,
  // so acking workers do not contend with delivery for the subscription's main lock. The
  // publish is completed and the room released at once, on the acking thread.
  void Ack(std::uint64_t seq, int attempt, EntryState& state) {
    if (!state.acked.exchange(true, std::memory_order_acq_rel)) {
      Release(state.bytes);
      if (state.tracker) state.tracker->Acked();
    }
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
    std::size_t held_bytes = 0;
    {
      std::lock_guard lock(room_mu_);
      held_bytes = held_bytes_;
    }
    std::lock_guard lock(mu_);
    ApplySettlementsLocked();
    std::size_t pending = 0;
    for (const Entry& e : ready_) pending += e.state->acked.load() ? 0 : 1;
    pending += delayed_.size();
    return SubscriptionStats{.pending = pending,
                             .outstanding = outstanding_.size(),
                             .delivered = delivered_,
                             .acked = acked_,
                             .nacked = nacked_,
                             .expired = expired_,
                             .held_bytes = held_bytes};
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

  // Called under mu_ (rng_ is guarded by it).
  std::chrono::milliseconds BackoffFor(int attempt) {
    return BackoffDelay({.initial = options_.min_redelivery_backoff,
                         .maximum = options_.max_redelivery_backoff,
                         .multiplier = 2},
                        attempt, rng_);
  }

  void ApplySettlementsLocked() {
    {
      std::lock_guard lock(settle_mu_);
      applying_.swap(settlements_);
    }
    const auto now = SteadyClock::now();
    for (const Settlement& s : applying_) {
      auto it = outstanding_.find(s.seq);
      if (it == outstanding_.end()) continue;
      if (s.ack) {
        // Any attempt's ack ends the message (EntryState::acked); count the current one.
        ++acked_;
        outstanding_.erase(it);
        continue;
      }
      if (it->second.attempts != s.attempt) continue;  // a stale lease's nack
      ++nacked_;
      if (!it->second.state->acked.load(std::memory_order_acquire)) {
        delayed_.emplace(now + BackoffFor(s.attempt), std::move(it->second));
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

  SteadyClock::time_point NextDelayedLocked() const { return delayed_.begin()->first; }

  void PromoteDelayedLocked(SteadyClock::time_point now) {
    while (!delayed_.empty() && delayed_.begin()->first <= now) {
      ready_.push_back(std::move(delayed_.begin()->second));
      delayed_.erase(delayed_.begin());
    }
  }

  const InProcessBrokerOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Entry> ready_;
  // Backoffs differ by attempt, so nacked messages wait ordered by their due time.
  std::multimap<SteadyClock::time_point, Entry> delayed_;
  std::unordered_map<std::uint64_t, Entry> outstanding_;
  std::deque<Lease> leases_;
  std::mutex settle_mu_;
  std::vector<Settlement> settlements_;  // guarded by settle_mu_
  std::vector<Settlement> applying_;     // guarded by mu_
  std::mutex room_mu_;
  std::condition_variable room_cv_;
  std::size_t held_messages_ = 0;  // guarded by room_mu_
  std::size_t held_bytes_ = 0;     // guarded by room_mu_
  std::uint64_t next_seq_ = 1;
  std::minstd_rand rng_{std::random_device{}()};
  std::uint64_t delivered_ = 0;
  std::uint64_t acked_ = 0;
  std::uint64_t nacked_ = 0;
  std::uint64_t expired_ = 0;
};

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
        Message& m =
            messages.emplace_back(entry->data, entry->attributes,
                                  std::make_unique<InProcessAckHandler>(
                                      subscription_, entry->seq, entry->attempts, entry->state));
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
                         std::move(message.ordering_key), done);
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

absl::StatusOr<std::string> InProcessBroker::Enqueue(std::string_view topic, MessageData data,
                                                     Attributes attributes,
                                                     std::string ordering_key,
                                                     const InProcessPublishCallback& done) {
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
  auto make_entry = [&](bool may_move) {
    InProcessSubscription::Entry entry;
    entry.data = may_move ? std::move(data) : data;
    entry.attributes = may_move ? std::move(attributes) : attributes;
    entry.ordering_key = may_move ? std::move(ordering_key) : ordering_key;
    entry.state = std::make_shared<EntryState>();
    entry.state->tracker = tracker;
    entry.state->bytes = bytes;
    return entry;
  };
  // Every subscription but the last gets a copy; the last one takes the original.
  for (std::size_t i = 0; i + 1 < subs.size(); ++i) subs[i]->Enqueue(make_entry(false));
  subs.back()->Enqueue(make_entry(true));
  return id;
}

void InProcessBroker::PublishAsync(std::string_view topic, MessageData data, Attributes attributes,
                                   std::string ordering_key, const InProcessPublishCallback& done) {
  auto enqueued =
      Enqueue(topic, std::move(data), std::move(attributes), std::move(ordering_key), done);
  // On success `done` belongs to the subscriptions' acks; an error never reached them.
  if (!enqueued.ok() && done) done(enqueued.status());
}

absl::StatusOr<std::string> InProcessBroker::Publish(std::string_view topic, MessageData data,
                                                     Attributes attributes,
                                                     std::string ordering_key) {
  return Enqueue(topic, std::move(data), std::move(attributes), std::move(ordering_key), nullptr);
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

}  // namespace dataflow::messagepipeline

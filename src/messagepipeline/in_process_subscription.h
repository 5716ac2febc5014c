// The in-process broker's subscription (private to src/messagepipeline): its queue of ready,
// delayed and outstanding messages, leases, settlements and room, and what every delivery of
// one message shares. See in_process_broker.h for the behaviour.
#pragma once

#include <absl/status/statusor.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "dataflow/messagepipeline/backoff.h"
#include "dataflow/messagepipeline/in_process_broker.h"

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

// What was published, once: every subscription of the topic and every delivery reads it (each
// delivery copies it into its Message, which the receiver may change).
struct PublishedMessage {
  MessageData data;
  Attributes attributes;
  std::string ordering_key;
  std::shared_ptr<const MessageData> envelope;  // Message::envelope of every delivery
};

class InProcessSubscription : public std::enable_shared_from_this<InProcessSubscription> {
 public:
  struct Entry {
    std::uint64_t seq = 0;
    int attempts = 0;  // deliveries so far; also names the current lease
    std::shared_ptr<const PublishedMessage> message;
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

}  // namespace dataflow::messagepipeline

// BoundedQueue: the channel between pipeline stages.
//
// A mutex-guarded FIFO with a capacity: Push blocks while the queue is full, which is how
// backpressure reaches a consumer (a full channel stops it pulling). Close() ends pushing;
// consumers still drain what is queued, then Pop reports the end. Thread-safe, any number
// of producers and consumers.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <vector>

namespace dataflow::messagepipeline {

template <typename T>
class BoundedQueue {
 public:
  explicit BoundedQueue(std::size_t capacity) : capacity_(std::max<std::size_t>(capacity, 1)) {}
  BoundedQueue(const BoundedQueue&) = delete;
  BoundedQueue& operator=(const BoundedQueue&) = delete;

  // Blocks while full. Returns false if the queue is closed; `item` is then left untouched,
  // so the caller still owns it (and, for a Message, must settle it).
  bool Push(T&& item) {
    std::unique_lock lock(mu_);
    if (items_.size() >= capacity_) {
      ++push_waiters_;
      not_full_.wait(lock, [&] { return closed_ || items_.size() < capacity_; });
      --push_waiters_;
    }
    if (closed_) return false;
    items_.push_back(std::move(item));
    NotifyPopper(lock);
    return true;
  }

  // Pushes items[from..] in order, blocking for room as needed. Returns how many were
  // pushed; fewer than items.size() - from only if the queue was closed, and those items
  // are left untouched for the caller to settle.
  std::size_t PushAll(std::vector<T>& items, std::size_t from = 0) {
    std::unique_lock lock(mu_);
    std::size_t pushed = 0;
    for (std::size_t i = from; i < items.size(); ++i) {
      if (items_.size() >= capacity_) {
        NotifyPopper(lock);
        ++push_waiters_;
        not_full_.wait(lock, [&] { return closed_ || items_.size() < capacity_; });
        --push_waiters_;
      }
      if (closed_) break;
      items_.push_back(std::move(items[i]));
      ++pushed;
    }
    if (pushed > 0) NotifyPopper(lock, /*all=*/pushed > 1);
    return pushed;
  }

  // Like Push, but never blocks: false if full or closed (item untouched).
  bool TryPush(T&& item) {
    std::unique_lock lock(mu_);
    if (closed_ || items_.size() >= capacity_) return false;
    items_.push_back(std::move(item));
    NotifyPopper(lock);
    return true;
  }

  // Blocks until an item is available; nullopt once closed and empty.
  std::optional<T> Pop() {
    std::unique_lock lock(mu_);
    WaitForItems(lock);
    if (items_.empty()) return std::nullopt;
    std::optional<T> out(std::move(items_.front()));
    items_.pop_front();
    NotifyPusher(lock);
    return out;
  }

  // Blocks until at least one item is available, then appends up to `max_items` to `out`.
  // With `share_among` > 1, takes at most a 1/share_among share of what is queued (at least
  // one), so one of several workers does not hoard a backlog while the others idle.
  // Returns the number appended; 0 means closed and empty.
  std::size_t PopBatch(std::vector<T>& out, std::size_t max_items, std::size_t share_among = 1) {
    std::unique_lock lock(mu_);
    WaitForItems(lock);
    return TakeLocked(lock, out, max_items, share_among);
  }

  // Like PopBatch but gives up at `deadline`; returns 0 on timeout or when closed and empty
  // (tell them apart with closed_and_empty()).
  template <typename Clock, typename Duration>
  std::size_t PopBatchUntil(std::vector<T>& out, std::size_t max_items,
                            std::chrono::time_point<Clock, Duration> deadline) {
    std::unique_lock lock(mu_);
    if (items_.empty() && !closed_ && !interrupted_) {
      ++pop_waiters_;
      not_empty_.wait_until(lock, deadline,
                            [&] { return closed_ || interrupted_ || !items_.empty(); });
      --pop_waiters_;
    }
    interrupted_ = false;
    return TakeLocked(lock, out, max_items, 1);
  }

  // Makes the PopBatchUntil waiting now (or the next one) return at once, so its caller can
  // act on a condition that changed (a batcher told to flush now).
  void Interrupt() {
    std::lock_guard lock(mu_);
    interrupted_ = true;
    not_empty_.notify_all();
  }

  // No more pushes; blocked pushers return false, poppers drain what is left.
  void Close() {
    std::lock_guard lock(mu_);
    closed_ = true;
    not_full_.notify_all();
    not_empty_.notify_all();
  }

  [[nodiscard]] bool closed() const {
    std::lock_guard lock(mu_);
    return closed_;
  }
  [[nodiscard]] bool closed_and_empty() const {
    std::lock_guard lock(mu_);
    return closed_ && items_.empty();
  }
  [[nodiscard]] std::size_t size() const {
    std::lock_guard lock(mu_);
    return items_.size();
  }
  [[nodiscard]] std::size_t capacity() const { return capacity_; }

 private:
  void WaitForItems(std::unique_lock<std::mutex>& lock) {
    if (!items_.empty() || closed_) return;
    ++pop_waiters_;
    not_empty_.wait(lock, [&] { return closed_ || !items_.empty(); });
    --pop_waiters_;
  }

  std::size_t TakeLocked(std::unique_lock<std::mutex>& lock, std::vector<T>& out,
                         std::size_t max_items, std::size_t share_among) {
    std::size_t n = std::min(items_.size(), max_items);
    if (share_among > 1) n = std::min(n, std::max<std::size_t>(1, items_.size() / share_among));
    for (std::size_t i = 0; i < n; ++i) {
      out.push_back(std::move(items_.front()));
      items_.pop_front();
    }
    if (n > 0) NotifyPusher(lock);
    return n;
  }

  // Notifying only when someone waits keeps the uncontended path free of futex calls.
  void NotifyPopper(std::unique_lock<std::mutex>& /*held*/, bool all = false) {
    if (pop_waiters_ == 0) return;
    if (all) {
      not_empty_.notify_all();
    } else {
      not_empty_.notify_one();
    }
  }
  void NotifyPusher(std::unique_lock<std::mutex>& /*held*/) {
    if (push_waiters_ > 0) not_full_.notify_all();
  }

  const std::size_t capacity_;
  mutable std::mutex mu_;
  std::condition_variable not_full_;
  std::condition_variable not_empty_;
  std::deque<T> items_;
  bool closed_ = false;
  bool interrupted_ = false;
  int push_waiters_ = 0;
  int pop_waiters_ = 0;
};

}  // namespace dataflow::messagepipeline

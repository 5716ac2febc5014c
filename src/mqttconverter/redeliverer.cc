#include "redeliverer.h"

namespace dataflow::mqttconverter::internal {

Redeliverer::Redeliverer(Options options, Hand hand, NowFn now)
    : options_(options), hand_(std::move(hand)), now_(std::move(now)) {}

bool Redeliverer::Add(std::shared_ptr<Delivery>& d) {
  {
    // Checked under the lock Stop() takes to empty the queue: checked before it, a nack
    // racing Stop() could queue a message after the queue was emptied, where it held its
    // byte budget and was never settled.
    std::lock_guard lock(mu_);
    if (closed_) return false;
    const auto delay = RetryDelay(options_.min_backoff, options_.max_backoff, d->attempt, rng_);
    queue_.emplace(now_() + delay, std::move(d));
  }
  cv_.notify_one();
  return true;
}

std::size_t Redeliverer::HandDue() {
  std::vector<std::shared_ptr<Delivery>> due;
  {
    std::lock_guard lock(mu_);
    const SteadyTime now = now_();
    while (!queue_.empty() && queue_.begin()->first <= now) {
      due.push_back(std::move(queue_.begin()->second));
      queue_.erase(queue_.begin());
    }
  }
  for (auto& d : due) hand_(std::move(d));
  return due.size();
}

std::optional<SteadyTime> Redeliverer::NextDue() {
  std::lock_guard lock(mu_);
  if (queue_.empty()) return std::nullopt;
  return queue_.begin()->first;
}

void Redeliverer::Start() {
  thread_ = std::jthread([this](std::stop_token st) { Loop(st); });
}

void Redeliverer::Close() {
  std::lock_guard lock(mu_);
  closed_ = true;
}

std::vector<std::shared_ptr<Delivery>> Redeliverer::Stop() {
  Close();
  if (thread_.joinable()) {
    thread_.request_stop();
    thread_.join();
  }
  std::vector<std::shared_ptr<Delivery>> left;
  std::lock_guard lock(mu_);
  for (auto& [due, d] : queue_) left.push_back(std::move(d));
  queue_.clear();
  return left;
}

void Redeliverer::Loop(std::stop_token st) {
  while (!st.stop_requested()) {
    HandDue();
    std::unique_lock lock(mu_);
    if (queue_.empty()) {
      cv_.wait(lock, st, [&] { return !queue_.empty(); });
      continue;
    }
    // Until the first is due, or an earlier one is queued.
    const SteadyTime due = queue_.begin()->first;
    const auto left = due - now_();
    if (left.count() <= 0) continue;
    cv_.wait_for(lock, st, left, [&] { return queue_.empty() || queue_.begin()->first < due; });
  }
}

}  // namespace dataflow::mqttconverter::internal

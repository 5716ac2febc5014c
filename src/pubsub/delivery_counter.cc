#include "delivery_counter.h"

namespace dataflow::pubsub {

int DeliveryCounter::Count(const std::string& message_id) {
  if (capacity_ == 0 || message_id.empty()) return 0;
  std::lock_guard lock(mu_);
  auto [it, inserted] = counts_.try_emplace(message_id);
  if (!inserted) lru_.erase(it->second.lru);
  lru_.push_front(message_id);
  it->second.lru = lru_.begin();
  const int count = ++it->second.count;
  if (counts_.size() > capacity_) {
    counts_.erase(lru_.back());
    lru_.pop_back();
    ++evicted_;
  }
  return count;
}

void DeliveryCounter::Forget(const std::string& message_id) {
  std::lock_guard lock(mu_);
  auto it = counts_.find(message_id);
  if (it == counts_.end()) return;
  lru_.erase(it->second.lru);
  counts_.erase(it);
}

std::size_t DeliveryCounter::size() const {
  std::lock_guard lock(mu_);
  return counts_.size();
}

std::size_t DeliveryCounter::evicted() const {
  std::lock_guard lock(mu_);
  return evicted_;
}

}  // namespace dataflow::pubsub

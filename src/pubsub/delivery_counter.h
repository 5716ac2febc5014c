// DeliveryCounter: the deliveries of each message id to this consumer, for when the server
// does not count them (Pub/Sub does only for a subscription with a dead-letter policy), so a
// service's max_delivery_attempts still ends a redelivery loop. Bounded: past `capacity` ids
// the one delivered longest ago is forgotten. Thread-safe; its own lock.
#pragma once

#include <cstddef>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

namespace dataflow::pubsub {

class DeliveryCounter {
 public:
  explicit DeliveryCounter(std::size_t capacity) : capacity_(capacity) {}

  // Counts a delivery and returns the count (1 the first time); 0 when counting is off
  // (capacity 0) or the id is empty.
  int Count(const std::string& message_id);
  // An acked message is done with: its count is no longer needed.
  void Forget(const std::string& message_id);

  [[nodiscard]] std::size_t size() const;
  [[nodiscard]] std::size_t evicted() const;

 private:
  struct Entry {
    int count = 0;
    std::list<std::string>::iterator lru;  // its place in lru_
  };
  const std::size_t capacity_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> counts_;
  std::list<std::string> lru_;  // the most recently delivered first
  std::size_t evicted_ = 0;
};

}  // namespace dataflow::pubsub

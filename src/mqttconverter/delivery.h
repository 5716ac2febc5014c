// What the MQTT consumer keeps of a message between the socket and its settlement: the
// Delivery (for local redelivery and its acknowledgement) and the ByteBudget its payload is
// charged to (max_outstanding_bytes).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

#include "connection.h"
#include "dataflow/messagepipeline/message.h"

namespace dataflow::mqttconverter::internal {

// Payload bytes of the messages a consumer holds (channel, pipeline, waiting for a
// redelivery). Shared with the Deliveries, which may outlive the consumer. Thread-safe.
class ByteBudget {
 public:
  explicit ByteBudget(std::size_t limit) : limit_(limit) {}

  // Waits until `n` more bytes fit, or nothing is held (a message larger than the budget
  // still passes alone), or Close(); false once closed.
  bool Acquire(std::size_t n) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return closed_ || held_ == 0 || held_ + n <= limit_; });
    if (closed_) return false;
    held_ += n;
    return true;
  }
  void Release(std::size_t n) {
    {
      std::lock_guard lock(mu_);
      held_ -= n;
    }
    cv_.notify_all();
  }
  // Wakes a blocked Acquire for good (the consumer stops).
  void Close() {
    {
      std::lock_guard lock(mu_);
      closed_ = true;
    }
    cv_.notify_all();
  }
  std::size_t held() const {
    std::lock_guard lock(mu_);
    return held_;
  }

 private:
  const std::size_t limit_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::size_t held_ = 0;
  bool closed_ = false;
};

// What a local redelivery needs: the message as it first reached the channel, and where
// its acknowledgement goes (conn is null for QoS 0 and in kOnReceipt mode). Its payload
// counts against the byte budget until the message is settled for good: acked, or given
// up (a nack only sends it round again).
struct Delivery {
  Delivery() = default;
  Delivery(const Delivery&) = delete;
  Delivery& operator=(const Delivery&) = delete;
  ~Delivery() { ReleaseBudget(); }
  void ReleaseBudget() {
    if (budget) budget->Release(charged);
    budget.reset();
  }

  messagepipeline::MessageData data;
  messagepipeline::Attributes attributes;
  int attempt = 1;
  std::shared_ptr<Connection> conn;
  std::uint64_t seq = 0;
  std::shared_ptr<ByteBudget> budget;  // set once `charged` bytes were acquired from it
  std::size_t charged = 0;
};

}  // namespace dataflow::mqttconverter::internal

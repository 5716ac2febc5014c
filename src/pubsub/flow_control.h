// FlowControl: the consumer's client-side limits on messages handed to the channel or the
// pipeline and not yet settled (max outstanding messages and bytes). The emulator ignores the
// stream's server-side limits; Google's clients enforce both. Thread-safe; its own lock.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <mutex>

namespace dataflow::pubsub {

class FlowControl {
 public:
  FlowControl(std::size_t max_messages, std::size_t max_bytes)
      : max_messages_(max_messages), max_bytes_(max_bytes) {}

  // Waits for room for one message of `bytes` (one message always fits when none is out, so
  // a message over max_bytes does not wait forever) and counts it. False, without counting,
  // once Shutdown() was called.
  bool Acquire(std::size_t bytes);
  // Messages counted by Acquire were settled or given up (`bytes` in all).
  void Release(std::size_t bytes, std::size_t messages = 1);
  // Wakes every waiter; Acquire fails from now on.
  void Shutdown();

  struct Stats {
    std::size_t messages = 0;
    std::size_t bytes = 0;
    std::size_t waiting = 0;  // callers blocked in Acquire
  };
  [[nodiscard]] Stats stats() const;

 private:
  const std::size_t max_messages_;
  const std::size_t max_bytes_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  Stats now_;
  bool shutdown_ = false;
};

}  // namespace dataflow::pubsub

#include "flow_control.h"

namespace dataflow::pubsub {

bool FlowControl::Acquire(std::size_t bytes) {
  std::unique_lock lock(mu_);
  auto room = [&] {
    return shutdown_ || now_.messages == 0 ||
           (now_.messages < max_messages_ && now_.bytes + bytes <= max_bytes_);
  };
  if (!room()) {
    ++now_.waiting;
    cv_.wait(lock, room);
    --now_.waiting;
  }
  if (shutdown_) return false;
  ++now_.messages;
  now_.bytes += bytes;
  return true;
}

void FlowControl::Release(std::size_t bytes, std::size_t messages) {
  std::lock_guard lock(mu_);
  now_.messages -= messages;
  now_.bytes -= bytes;
  cv_.notify_all();
}

void FlowControl::Shutdown() {
  std::lock_guard lock(mu_);
  shutdown_ = true;
  cv_.notify_all();
}

FlowControl::Stats FlowControl::stats() const {
  std::lock_guard lock(mu_);
  return now_;
}

}  // namespace dataflow::pubsub

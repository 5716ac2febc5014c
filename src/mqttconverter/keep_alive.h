// The keep-alive decision the session makes on each tick, as a pure function so its bounds
// are tested without a clock: a PINGREQ when nothing was written for half the keep-alive (not
// while a write is pending: that write counts, and a stalled one fails on its own), and the
// connection declared dead when the broker has been silent (no PINGRESP, nothing else) for
// more than 1.5 x keep-alive; never while the reader itself is blocked on a full channel, since
// then nobody reads what the broker sends.
#pragma once

#include <chrono>
#include <cstdint>

namespace dataflow::mqttconverter::internal {

struct KeepAliveAction {
  bool ping = false;
  bool dead = false;
};

struct KeepAliveState {
  std::int64_t now_ns = 0;
  std::int64_t last_write_ns = 0;
  std::int64_t last_read_ns = 0;
  bool writer_idle = true;
  bool reader_blocked = false;
};

inline KeepAliveAction CheckKeepAlive(std::chrono::seconds keep_alive, const KeepAliveState& s) {
  const std::int64_t ka = std::chrono::duration_cast<std::chrono::nanoseconds>(keep_alive).count();
  if (ka == 0) return {};
  return {.ping = s.now_ns - s.last_write_ns >= ka / 2 && s.writer_idle,
          .dead = !s.reader_blocked && s.now_ns - s.last_read_ns > ka * 3 / 2};
}

}  // namespace dataflow::mqttconverter::internal

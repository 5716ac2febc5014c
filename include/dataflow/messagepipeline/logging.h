// Logging for the whole library: one spdlog logger named "dataflow".
//
// Messages carry structured key=value fields after the text, e.g.
//   Log()->warn("message nacked on destruction id={} source={}", id, source);
// The level comes from DATAFLOW_LOG_LEVEL (trace|debug|info|warn|error|off), default info.
// Thread-safe.
#pragma once

#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace dataflow {

// The library's logger. Never null.
spdlog::logger* Log();

// Lets through at most `per_second` events a second; for log lines on hot paths (a flood of
// bad messages must not become a flood of log lines). Thread-safe; one per call site.
class LogRateLimit {
 public:
  explicit LogRateLimit(int per_second = 5) : per_second_(per_second) {}
  // True if this event may be logged; counts the ones suppressed in between.
  bool Allow();
  // Events suppressed since the last allowed one (read after Allow() returned true).
  [[nodiscard]] std::uint64_t suppressed() const {
    return last_suppressed_.load(std::memory_order_relaxed);
  }

 private:
  const int per_second_;
  std::atomic<std::int64_t> window_{0};
  std::atomic<int> in_window_{0};
  std::atomic<std::uint64_t> suppressed_{0};
  std::atomic<std::uint64_t> last_suppressed_{0};
};

// `text` cut to at most `max_bytes` (on a UTF-8 character boundary) with a marker naming the
// original size; for log lines and attributes that may carry outside data (an error that
// quotes a payload must not put the payload into every log line).
std::string BoundedText(std::string_view text, std::size_t max_bytes = 512);

// Sets the level by name; returns false (and leaves the level as it was) for an unknown name.
bool SetLogLevel(std::string_view level);

}  // namespace dataflow

#include "dataflow/messagepipeline/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <chrono>
#include <cstdlib>
#include <string>

namespace dataflow {
namespace {

std::shared_ptr<spdlog::logger> MakeLogger() {
  // stderr, so a program's stdout stays free for its own output (progress, summaries).
  auto logger = spdlog::stderr_color_mt("dataflow");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%fZ %^%l%$ %v", spdlog::pattern_time_type::utc);
  logger->set_level(spdlog::level::info);
  // Read once, during static initialisation of the logger.
  if (const char* env = std::getenv("DATAFLOW_LOG_LEVEL")) {  // NOLINT(concurrency-mt-unsafe)
    auto level = spdlog::level::from_str(env);
    // from_str maps unknown names to "off"; only accept it when asked for by name.
    if (level != spdlog::level::off || std::string(env) == "off") logger->set_level(level);
  }
  return logger;
}

}  // namespace

std::string BoundedText(std::string_view text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) return std::string(text);
  const std::string marker = "...(" + std::to_string(text.size()) + " bytes)";
  if (max_bytes <= marker.size()) return marker.substr(0, max_bytes);
  std::size_t keep = max_bytes - marker.size();
  // Back up over UTF-8 continuation bytes (10xxxxxx) so no character is cut in half.
  while (keep > 0 && (static_cast<unsigned char>(text[keep]) & 0xC0) == 0x80) --keep;
  return std::string(text.substr(0, keep)) + marker;
}

spdlog::logger* Log() {
  static const std::shared_ptr<spdlog::logger> logger = MakeLogger();
  return logger.get();
}

bool LogRateLimit::Allow() {
  const std::int64_t now_s = std::chrono::duration_cast<std::chrono::seconds>(
                                 std::chrono::steady_clock::now().time_since_epoch())
                                 .count();
  std::int64_t window = window_.load(std::memory_order_relaxed);
  if (window != now_s && window_.compare_exchange_strong(window, now_s)) {
    in_window_.store(0, std::memory_order_relaxed);
  }
  if (in_window_.fetch_add(1, std::memory_order_relaxed) < per_second_) {
    last_suppressed_.store(suppressed_.exchange(0, std::memory_order_relaxed),
                           std::memory_order_relaxed);
    return true;
  }
  suppressed_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

bool SetLogLevel(std::string_view level) {
  const std::string name(level);
  auto parsed = spdlog::level::from_str(name);
  if (parsed == spdlog::level::off && name != "off") return false;
  Log()->set_level(parsed);
  return true;
}

}  // namespace dataflow

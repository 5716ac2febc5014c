#include "dataflow/messagepipeline/logging.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "dataflow/messagepipeline/log_format.h"

namespace dataflow {
namespace {

std::atomic<LogFormat> g_format{LogFormat::kText};

// Cloud Logging's LogSeverity names.
const char* Severity(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
    case spdlog::level::debug:
      return "DEBUG";
    case spdlog::level::info:
      return "INFO";
    case spdlog::level::warn:
      return "WARNING";
    case spdlog::level::err:
      return "ERROR";
    case spdlog::level::critical:
      return "CRITICAL";
    default:
      return "DEFAULT";
  }
}

std::string Rfc3339(std::chrono::system_clock::time_point time) {
  const auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(time.time_since_epoch()).count();
  auto secs = static_cast<std::time_t>(micros / 1000000);
  std::int64_t frac = micros % 1000000;
  if (frac < 0) {
    frac += 1000000;
    --secs;
  }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  const std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%06lldZ",
                static_cast<long long>(frac));  // NOLINT(google-runtime-int): printf's type
  return buf;
}

bool IsKeyStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsKeyChar(char c) { return IsKeyStart(c) || (c >= '0' && c <= '9') || c == '.'; }

// Where a " key=" field starts at or after `from` (the position of the key), or npos.
std::size_t NextField(std::string_view text, std::size_t from) {
  for (std::size_t i = from; i < text.size(); ++i) {
    if (!IsKeyStart(text[i]) || (i > 0 && text[i - 1] != ' ')) continue;
    std::size_t j = i;
    while (j < text.size() && IsKeyChar(text[j])) ++j;
    if (j < text.size() && text[j] == '=') return i;
  }
  return std::string_view::npos;
}

// "message key=value key=\"quoted value\"" → message and fields. A value runs to the next
// " key=" (so an unquoted error text with spaces stays whole); a quoted one to the next
// " key=" after its closing quote.
void SplitFields(std::string_view text, std::string_view* message,
                 std::vector<std::pair<std::string_view, std::string_view>>* fields) {
  std::size_t at = NextField(text, 0);
  *message = text.substr(0, at == std::string_view::npos ? text.size() : at);
  while (!message->empty() && message->back() == ' ') message->remove_suffix(1);
  while (at != std::string_view::npos) {
    const std::size_t eq = text.find('=', at);
    const std::string_view key = text.substr(at, eq - at);
    const std::size_t value_start = eq + 1;
    std::size_t next = NextField(text, value_start);
    if (value_start < text.size() && text[value_start] == '"') {
      // Extend over " key=" inside the quotes: the value ends where a quote ends it.
      while (next != std::string_view::npos && (next < 2 || text[next - 2] != '"')) {
        next = NextField(text, next + 1);
      }
    }
    std::string_view value =
        text.substr(value_start, next == std::string_view::npos ? std::string_view::npos
                                                                : next - 1 - value_start);
    while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
      value = value.substr(1, value.size() - 2);
    }
    fields->emplace_back(key, value);
    at = next;
  }
}

bool IsInteger(std::string_view v) {
  if (v.empty() || v.size() > 18) return false;  // fits an int64 without checking
  std::size_t i = v[0] == '-' ? 1 : 0;
  if (i == v.size()) return false;
  for (; i < v.size(); ++i) {
    if (v[i] < '0' || v[i] > '9') return false;
  }
  return true;
}

class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const std::string line = FormatJsonLogLine(
        msg.level, msg.time, std::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(line.data(), line.data() + line.size());
    dest.push_back('\n');
  }
  [[nodiscard]] std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

void ApplyFormat(spdlog::logger& logger, LogFormat format) {
  if (format == LogFormat::kJson) {
    logger.set_formatter(std::make_unique<JsonFormatter>());
  } else {
    logger.set_formatter(std::make_unique<spdlog::pattern_formatter>(
        "%Y-%m-%dT%H:%M:%S.%fZ %^%l%$ %v", spdlog::pattern_time_type::utc));
  }
}

std::shared_ptr<spdlog::logger> MakeLogger() {
  // stderr, so a program's stdout stays free for its own output (progress, summaries).
  auto logger = spdlog::stderr_color_mt("dataflow");
  if (const char* env = std::getenv("DATAFLOW_LOG_FORMAT")) {  // NOLINT(concurrency-mt-unsafe)
    if (std::string_view(env) == "json") g_format.store(LogFormat::kJson);
  }
  ApplyFormat(*logger, g_format.load());
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

std::string FormatJsonLogLine(spdlog::level::level_enum severity,
                              std::chrono::system_clock::time_point time, std::string_view text) {
  std::string_view message;
  std::vector<std::pair<std::string_view, std::string_view>> fields;
  SplitFields(text, &message, &fields);
  nlohmann::ordered_json line;
  line["severity"] = Severity(severity);
  line["time"] = Rfc3339(time);
  line["message"] = std::string(message);
  for (const auto& [key, value] : fields) {
    // Cloud Logging's own members are not ours to set from a field.
    if (key == "severity" || key == "time" || key == "message") continue;
    if (IsInteger(value)) {
      line[std::string(key)] = std::stoll(std::string(value));
    } else {
      line[std::string(key)] = std::string(value);
    }
  }
  // Invalid UTF-8 (outside data in a message) is replaced, never a throw.
  return line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void SetLogFormat(LogFormat format) {
  g_format.store(format);
  ApplyFormat(*Log(), format);
}

bool SetLogFormat(std::string_view format) {
  if (format == "json") {
    SetLogFormat(LogFormat::kJson);
  } else if (format == "text") {
    SetLogFormat(LogFormat::kText);
  } else {
    return false;
  }
  return true;
}

LogFormat CurrentLogFormat() {
  (void)Log();  // reads DATAFLOW_LOG_FORMAT
  return g_format.load();
}

void Announce(spdlog::level::level_enum severity, std::string_view text) {
  std::string line = CurrentLogFormat() == LogFormat::kJson
                         ? FormatJsonLogLine(severity, std::chrono::system_clock::now(), text)
                         : "dataflow: " + std::string(text);
  line.push_back('\n');
  // One write of the whole line, so it does not interleave with the logger's lines.
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace dataflow

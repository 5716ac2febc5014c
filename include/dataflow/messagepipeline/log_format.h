// The format of the library's log lines (logging.h): text or one JSON object per line.
// Thread-safe.
#pragma once

#include <spdlog/common.h>

#include <chrono>
#include <string>
#include <string_view>

namespace dataflow {

enum class LogFormat {
  // 2026-11-30T00:14:15.123456Z warn message nacked id=7 source=raw
  kText,
  // {"severity":"WARNING","time":"2026-11-30T00:14:15.123456Z","message":"message nacked",
  //  "id":7,"source":"raw"}: Cloud Logging's severity, time and message, and the line's
  // key=value fields as members (integers as numbers, quoted values unquoted).
  kJson,
};

// Sets the format of every later line.
void SetLogFormat(LogFormat format);
// By name ("text" or "json"); returns false (and changes nothing) for another name.
bool SetLogFormat(std::string_view format);
LogFormat CurrentLogFormat();

// A line for the operator whatever the level (a program's start/stop report): on stderr,
// "dataflow: <text>" in the text format, a JSON object of the given severity in JSON.
void Announce(spdlog::level::level_enum severity, std::string_view text);

// The JSON line (without the newline) for a message; exposed for tests.
std::string FormatJsonLogLine(spdlog::level::level_enum severity,
                              std::chrono::system_clock::time_point time, std::string_view text);

}  // namespace dataflow

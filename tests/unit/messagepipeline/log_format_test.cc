// The JSON log line: Cloud Logging's members and the key=value fields of the text.
#include "dataflow/messagepipeline/log_format.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace dataflow {
namespace {

nlohmann::json Line(spdlog::level::level_enum level, std::string_view text) {
  // 2026-11-30T00:14:15.5Z
  const auto time = std::chrono::system_clock::time_point(std::chrono::seconds(1795997655)) +
                    std::chrono::milliseconds(500);
  return nlohmann::json::parse(FormatJsonLogLine(level, time, text));
}

TEST(LogFormatTest, SeverityTimeAndMessage) {
  const auto j = Line(spdlog::level::warn, "stop deadline expired; nacking what is left");
  EXPECT_EQ(j["severity"], "WARNING");
  EXPECT_EQ(j["time"], "2026-11-30T00:14:15.500000Z");
  EXPECT_EQ(j["message"], "stop deadline expired; nacking what is left");
  EXPECT_EQ(j.size(), 3U);
  EXPECT_EQ(Line(spdlog::level::debug, "x")["severity"], "DEBUG");
  EXPECT_EQ(Line(spdlog::level::info, "x")["severity"], "INFO");
  EXPECT_EQ(Line(spdlog::level::err, "x")["severity"], "ERROR");
  EXPECT_EQ(Line(spdlog::level::critical, "x")["severity"], "CRITICAL");
}

TEST(LogFormatTest, FieldsBecomeMembers) {
  const auto j = Line(spdlog::level::warn,
                      "pubsub publish retry topic=raw messages=12 error=UNAVAILABLE: connection "
                      "refused delay_ms=-3");
  EXPECT_EQ(j["message"], "pubsub publish retry");
  EXPECT_EQ(j["topic"], "raw");
  EXPECT_EQ(j["messages"], 12);
  // An unquoted value with spaces runs to the next field.
  EXPECT_EQ(j["error"], "UNAVAILABLE: connection refused");
  EXPECT_EQ(j["delay_ms"], -3);
}

TEST(LogFormatTest, QuotedValuesKeepWhatLooksLikeFields) {
  const auto j = Line(spdlog::level::err,
                      R"(service handler threw; nacking name=enrich id=7 what="bad x=1 "y"" n=2)");
  EXPECT_EQ(j["message"], "service handler threw; nacking");
  EXPECT_EQ(j["name"], "enrich");
  EXPECT_EQ(j["what"], R"(bad x=1 "y")");
  EXPECT_EQ(j["n"], 2);
}

TEST(LogFormatTest, ReservedNamesAndBadUtf8DoNotBreakTheLine) {
  const auto j = Line(spdlog::level::info, "odd severity=fake message=m payload=\xff\xfe");
  EXPECT_EQ(j["severity"], "INFO");
  EXPECT_EQ(j["message"], "odd");
  EXPECT_TRUE(j["payload"].is_string());
}

TEST(LogFormatTest, FormatByName) {
  EXPECT_TRUE(SetLogFormat("json"));
  EXPECT_EQ(CurrentLogFormat(), LogFormat::kJson);
  EXPECT_FALSE(SetLogFormat("xml"));
  EXPECT_EQ(CurrentLogFormat(), LogFormat::kJson);
  EXPECT_TRUE(SetLogFormat("text"));
  EXPECT_EQ(CurrentLogFormat(), LogFormat::kText);
}

}  // namespace
}  // namespace dataflow

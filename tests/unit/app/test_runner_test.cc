#include "test_runner.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace dataflow::app {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

TEST(TestRunner, AnExpectationMatchesTheFieldsItNamesRecursively) {
  const Json actual = {{"a", 1}, {"b", {{"c", "x"}, {"d", true}}}, {"list", {1, 2}}};
  EXPECT_TRUE(JsonMatches(Json::object(), actual));
  EXPECT_TRUE(JsonMatches({{"b", {{"c", "x"}}}}, actual));
  EXPECT_TRUE(JsonMatches({{"a", 1.0}}, actual));  // YAML/SQLite lose int vs float
  EXPECT_TRUE(JsonMatches({{"list", {1, 2}}}, actual));
  EXPECT_FALSE(JsonMatches({{"list", {1}}}, actual));  // lists element by element
  EXPECT_FALSE(JsonMatches({{"b", {{"c", "y"}}}}, actual));
  EXPECT_FALSE(JsonMatches({{"missing", nullptr}}, actual));  // null is a value, not "absent"
  EXPECT_FALSE(JsonMatches({{"a", "1"}}, actual));
}

TEST(TestRunner, JsonTextMatchesAnExpectedObject) {
  // SQLite keeps RECORD and JSON columns as text.
  EXPECT_TRUE(JsonMatches({{"k", 1}}, Json(R"({"k":1,"j":2})")));
  EXPECT_FALSE(JsonMatches({{"k", 1}}, Json("not json")));
}

TEST(TestRunner, ARegexMatchesStrings) {
  const Json pattern = {{"$regex", "^\\d{4}/plant-a$"}};
  EXPECT_TRUE(JsonMatches(pattern, Json("2026/plant-a")));
  EXPECT_FALSE(JsonMatches(pattern, Json("2026/plant-b")));
  EXPECT_FALSE(JsonMatches(pattern, Json(2026)));
}

TEST(TestRunner, ExpectationsPairWithOutputsOneToOneInAnyOrder) {
  // A first-fit pairing would give {} the only {"a":1} and leave {"a":1} unmatched.
  auto u = MatchAll({Json::object(), {{"a", 1}}}, {{{"a", 1}}, {{"b", 2}}});
  EXPECT_TRUE(u.expected.empty());
  EXPECT_TRUE(u.actual.empty());
  // Two expectations cannot share one output; an output nobody expected is reported.
  u = MatchAll({{{"a", 1}}, {{"a", 1}}}, {{{"a", 1}}, {{"c", 3}}});
  EXPECT_EQ(u.expected, std::vector<std::size_t>{1});
  EXPECT_EQ(u.actual, std::vector<std::size_t>{1});
}

TEST(TestRunner, ATestFileWithProblemsNamesEachOne) {
  auto file = ParseTestFile(R"(
cases:
  - name: x
    input:
      - {mqtt_topic: a, topic: b, payload: p}
      - {topic: b}
    expect: {rows: {s: [{}]}, tables: {}}
    extra: 1
)",
                            "t.test.yaml");
  ASSERT_FALSE(file.ok());
  const std::string message(file.status().message());
  for (const char* expected :
       {"t.test.yaml.config: missing", "t.test.yaml.cases[0].extra: unknown key",
        "t.test.yaml.cases[0].input[0]: give one of mqtt_topic", "input[1].payload: missing",
        "t.test.yaml.cases[0].expect.tables: unknown key"}) {
    EXPECT_NE(message.find(expected), std::string::npos) << expected << " in\n" << message;
  }
}

TEST(TestRunner, MapPayloadsAreWrittenAsJson) {
  auto file = ParseTestFile(R"(
config: c.yaml
cases:
  - name: x
    input: [{topic: t, payload: {a: 1, b: [x]}}, {topic: t, payload: plain text}]
    expect: {}
)",
                            "dir/t.test.yaml");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->config_path, "dir/c.yaml");  // relative to the test file
  ASSERT_EQ(file->cases[0].input.size(), 2u);
  EXPECT_EQ(Json::parse(file->cases[0].input[0].payload), Json({{"a", 1}, {"b", {"x"}}}));
  EXPECT_EQ(file->cases[0].input[1].payload, "plain text");
}

// Every test file shipped with the project passes: they are the documentation's examples.
TEST(TestRunner, ShippedTestFilesPass) {
  int files = 0;
  for (const char* dir : {"config", "examples"}) {
    for (const auto& e : fs::recursive_directory_iterator(fs::path(DATAFLOW_SOURCE_DIR) / dir)) {
      const std::string name = e.path().filename().string();
      if (!name.ends_with(".test.yaml")) continue;
      ++files;
      EXPECT_EQ(RunTestFile(e.path().string()), 0) << e.path();
    }
  }
  EXPECT_GE(files, 2);
}

class TestRunnerFile : public ::testing::Test {
 protected:
  // Runs a test file of `cases` against config/local.yaml; the exit code and what it printed.
  std::pair<int, std::string> Run(const std::string& cases) {
    const fs::path dir =
        fs::temp_directory_path() / ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::create_directories(dir);
    const fs::path file = dir / "t.test.yaml";
    std::ofstream(file) << "config: " << fs::path(DATAFLOW_SOURCE_DIR) / "config/local.yaml"
                        << "\ncases:\n"
                        << cases;
    ::testing::internal::CaptureStdout();
    const int code = RunTestFile(file.string());
    return {code, ::testing::internal::GetCapturedStdout()};
  }
};

constexpr char kReading[] = R"(
  - name: one reading
    fixtures: {enrichment: {dev-1: {name: Boiler 1, location: plant-a}}}
    input:
      - {mqtt_topic: devices/dev-1/telemetry, payload: {deviceId: dev-1, temperature: 21.5}}
)";

TEST_F(TestRunnerFile, AWrongValueFailsNamingWhatWasNotFound) {
  auto [code, out] = Run(std::string(kReading) + R"(
    expect:
      rows: {bigquery: [{device_id: dev-1, temperature: 99}]}
)");
  EXPECT_EQ(code, 1) << out;
  EXPECT_NE(out.find("FAIL  one reading"), std::string::npos) << out;
  EXPECT_NE(out.find("rows of bigquery: 1 expected, 1 found"), std::string::npos) << out;
  EXPECT_NE(out.find(R"(not found:  {"device_id":"dev-1","temperature":99})"), std::string::npos)
      << out;
  EXPECT_NE(out.find(R"("temperature":21.5)"), std::string::npos) << out;  // what was there
}

TEST_F(TestRunnerFile, AnOutputNobodyExpectedFails) {
  auto [code, out] = Run(std::string(kReading) + R"(
      - {mqtt_topic: devices/dev-1/telemetry, payload: not json}
    expect:
      topics: {dead-letters: []}
)");
  EXPECT_EQ(code, 1) << out;
  EXPECT_NE(out.find("topic dead-letters: 0 expected, 1 found"), std::string::npos) << out;
  EXPECT_NE(out.find("unexpected: "), std::string::npos) << out;
}

TEST_F(TestRunnerFile, TheRightExpectationsPass) {
  auto [code, out] = Run(std::string(kReading) + R"(
    expect:
      rows: {bigquery: [{device_id: dev-1, temperature: 21.5, location: plant-a}]}
      topics:
        enriched: [{envelope: true, payload: {deviceId: dev-1}, enrichment: {name: Boiler 1}}]
        dead-letters: []
)");
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("1 case(s), 1 passed, 0 failed"), std::string::npos) << out;
}

TEST_F(TestRunnerFile, FixturesForAServiceTheConfigLacksAreAnError) {
  auto [code, out] = Run(R"(
  - name: typo
    fixtures: {enrichmnt: {dev-1: {}}}
    input: [{mqtt_topic: devices/dev-1/telemetry, payload: x}]
    expect: {}
)");
  EXPECT_EQ(code, 2) << out;
  EXPECT_NE(out.find("fixtures.enrichmnt: no enrichment service has this name"), std::string::npos)
      << out;
}

}  // namespace
}  // namespace dataflow::app

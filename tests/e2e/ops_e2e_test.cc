// The dataflow program as an operator runs it: the shipped config/local.yaml (Mosquitto is
// the only server it needs) with --log-format json. Every line the program writes (stdout
// and stderr) must be a JSON object with Cloud Logging's severity, message and time;
// /metrics must pass `promtool check metrics` (Debian's prometheus package); SIGTERM must
// stop it with exit code 0.
//
// DATAFLOW_TEST_BINARY, when set, names the program to run instead of the build tree's: the
// packaging test runs this test against the staged install (tests/packaging/staged.sh).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "dataflow_testing/mosquitto_server.h"
#include "dataflow_testing/server_process.h"

namespace dataflow::testing {
namespace {

namespace fs = std::filesystem;

std::string Binary() {
  const char* env = std::getenv("DATAFLOW_TEST_BINARY");  // NOLINT(concurrency-mt-unsafe)
  return env != nullptr && *env != '\0' ? env : DATAFLOW_BINARY;
}

// Runs `command` with `input` on stdin; its exit status and combined output.
int RunWithInput(const std::string& command, const std::string& input, std::string* output) {
  const fs::path in = fs::temp_directory_path() / ("dataflow-ops-in-" + std::to_string(getpid()));
  const fs::path out = fs::temp_directory_path() / ("dataflow-ops-out-" + std::to_string(getpid()));
  std::ofstream(in) << input;
  // NOLINTNEXTLINE(concurrency-mt-unsafe): the test's only thread runs it.
  const int rc =
      std::system((command + " < " + in.string() + " > " + out.string() + " 2>&1").c_str());
  std::ifstream o(out);
  std::stringstream s;
  s << o.rdbuf();
  *output = s.str();
  fs::remove(in);
  fs::remove(out);
  return rc;
}

TEST(OpsE2ETest, JsonLogsPromtoolCleanMetricsAndExitZeroOnSigterm) {
  const std::string promtool = FindExecutable("promtool");
  ASSERT_FALSE(promtool.empty()) << "promtool not found: scripts/setup.sh installs Debian's "
                                    "prometheus package, which ships it";
  auto mosquitto = MosquittoServer::Start();
  ASSERT_TRUE(mosquitto.ok()) << mosquitto.status();
  const fs::path dir = fs::temp_directory_path() / ("dataflow-ops-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "registry.json") << "{}";
  const int ops_port = FreeTcpPort();
  auto process = ServerProcess::Start(
      {.name = "dataflow-ops",
       .argv = {Binary(), "--log-format", "json", "--log-level", "debug", "run",
                std::string(DATAFLOW_SOURCE_DIR) + "/config/local.yaml"},
       .env = {{"MQTT_URL", (*mosquitto)->url()},
               {"DATAFLOW_REGISTRY", (dir / "registry.json").string()},
               {"DATAFLOW_OUT", dir.string()},
               {"DATAFLOW_OPS_PORT", std::to_string(ops_port)}},
       .ready = [ops_port] { return HttpGetStatus(ops_port, "/readyz") == 200; }});
  ASSERT_TRUE(process.ok()) << process.status();
  EXPECT_EQ(HttpGetStatus(ops_port, "/healthz"), 200);

  std::string metrics;
  ASSERT_EQ(HttpGetStatus(ops_port, "/metrics", &metrics), 200);
  std::string promtool_output;
  EXPECT_EQ(RunWithInput(promtool + " check metrics", metrics, &promtool_output), 0)
      << promtool_output << "\n--- /metrics:\n"
      << metrics;
  EXPECT_NE(metrics.find("dataflow_build_info"), std::string::npos) << metrics;
  // Every family served is documented (docs/operations.md "Metric families"), and the MQTT
  // consumer's own counters are among them.
  std::ifstream doc_file(std::string(DATAFLOW_SOURCE_DIR) + "/docs/operations.md");
  std::stringstream doc;
  doc << doc_file.rdbuf();
  std::set<std::string> families;
  std::istringstream metric_lines(metrics);
  for (std::string line; std::getline(metric_lines, line);) {
    if (line.rfind("# TYPE ", 0) == 0) families.insert(line.substr(7, line.find(' ', 7) - 7));
  }
  EXPECT_TRUE(families.contains("dataflow_mqtt_lost_total")) << metrics;
  EXPECT_TRUE(families.contains("dataflow_mqtt_left_with_broker_total")) << metrics;
  EXPECT_TRUE(families.contains("dataflow_ingestion_rejected_total")) << metrics;
  EXPECT_TRUE(families.contains("dataflow_archive_objects_written_total")) << metrics;
  EXPECT_NE(
      metrics.find(
          R"(dataflow_in_process_pending_messages{subscription="raw-enrichment",topic="raw"})"),
      std::string::npos)
      << metrics;
  for (const auto& family : families) {
    EXPECT_NE(doc.str().find("`" + family), std::string::npos)
        << family << " is served on /metrics but not documented in docs/operations.md";
  }

  (*process)->Stop(std::chrono::seconds(40));  // SIGTERM; shutdown_timeout is 30 s
  EXPECT_EQ((*process)->last_exit_code(), 0) << "log: " << (*process)->log_path();

  // stdout and stderr both go to the log file.
  std::ifstream log((*process)->log_path());
  const std::regex rfc3339(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)");
  const std::set<std::string> severities = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"};
  int lines = 0;
  bool saw_ops_port_field = false;
  bool saw_summary = false;
  for (std::string line; std::getline(log, line);) {
    ++lines;
    const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    ASSERT_TRUE(j.is_object()) << "line " << lines << " is not a JSON object: " << line;
    ASSERT_TRUE(j.contains("severity") && j["severity"].is_string()) << line;
    EXPECT_TRUE(severities.count(j["severity"].get<std::string>())) << line;
    ASSERT_TRUE(j.contains("message") && j["message"].is_string()) << line;
    ASSERT_TRUE(j.contains("time") && j["time"].is_string()) << line;
    EXPECT_TRUE(std::regex_match(j["time"].get<std::string>(), rfc3339)) << line;
    if (j["message"] == "ops endpoint listening" && j.value("port", -1) == ops_port) {
      saw_ops_port_field = true;
    }
    if (j["message"] == "service stopped" && j.value("name", "") == "ingestion" &&
        j.contains("received") && j["received"].is_number()) {
      saw_summary = true;
    }
  }
  EXPECT_GT(lines, 5);
  EXPECT_TRUE(saw_ops_port_field) << "no structured port field on the ops endpoint line";
  EXPECT_TRUE(saw_summary) << "no structured stop summary for the ingestion service";
  fs::remove_all(dir);
}

}  // namespace
}  // namespace dataflow::testing

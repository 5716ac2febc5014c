// What the program's /metrics serves: the shipped config/local.yaml built into a Pipeline,
// every component registering its own families with the service's label (the families
// themselves are tested next to their packages: tests/unit/<package>/*metrics_test.cc).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include "dataflow/messagepipeline/in_process_broker.h"
#include "dataflow/metrics/service_families.h"
#include "runner.h"

namespace dataflow::app {
namespace {

namespace fs = std::filesystem;
namespace mp = messagepipeline;

// Checks the text the way a scraper reads it: every family's HELP and TYPE once, before its
// samples, and all of a family's samples in one group.
void ExpectWellFormed(const std::string& text) {
  std::istringstream lines(text);
  std::string line;
  std::set<std::string> closed;  // families whose group has ended
  std::string current;
  std::map<std::string, int> types;
  while (std::getline(lines, line)) {
    ASSERT_FALSE(line.empty());
    if (line.starts_with("# HELP ")) continue;
    if (line.starts_with("# TYPE ")) {
      std::string name = line.substr(7, line.find(' ', 7) - 7);
      EXPECT_EQ(++types[name], 1) << "TYPE twice for " << name;
      if (!current.empty()) closed.insert(current);
      current = name;
      continue;
    }
    std::string sample = line.substr(0, line.find_first_of("{ "));
    EXPECT_TRUE(sample.starts_with(current)) << line << " outside family " << current;
    EXPECT_FALSE(closed.contains(sample)) << "family " << sample << " split";
  }
}

void ExpectLines(const std::string& text, const std::vector<std::string>& lines) {
  for (const auto& line : lines) {
    EXPECT_NE(text.find(line + "\n"), std::string::npos) << line << "\n" << text;
  }
}

class PipelineMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("app_metrics_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::ofstream(dir_ / "registry.json") << R"({"device-1": {"location": "plant-a"}})";
  }
  void TearDown() override { fs::remove_all(dir_); }

  // config/local.yaml, its outputs under dir_.
  ProgramConfig LocalConfig() const {
    std::ifstream in(std::string(DATAFLOW_SOURCE_DIR) + "/config/local.yaml");
    std::stringstream text;
    text << in.rdbuf();
    const std::map<std::string, std::string> env{
        {"DATAFLOW_OUT", dir_.string()}, {"DATAFLOW_REGISTRY", (dir_ / "registry.json").string()}};
    auto loaded = ParseConfig(text.str(), {}, [env](const std::string& name) {
      auto it = env.find(name);
      return it == env.end() ? std::nullopt : std::optional<std::string>(it->second);
    });
    EXPECT_TRUE(loaded.ok()) << (loaded.errors.empty() ? "" : loaded.errors[0].ToString());
    loaded.config.ops.enabled = false;
    return loaded.config;
  }

  fs::path dir_;
};

// The MQTT consumer is made (not connected: Build does not start it), so its families are
// there too, beside the ingestion service's, the enricher's, the LRU layer's and the
// archives'; and every service has the common ones.
TEST_F(PipelineMetricsTest, EveryComponentRegistersItsFamiliesWithItsServiceLabel) {
  auto pipeline = Pipeline::Build(LocalConfig());
  ASSERT_TRUE(pipeline.ok()) << pipeline.status();
  metrics::RegisterBuildInfo((*pipeline)->telemetry(), "1.2.3");
  const metrics::Telemetry& telemetry = (*pipeline)->telemetry();
  const std::string text = telemetry.Render();
  EXPECT_EQ(telemetry.rejected(), 0u) << text;
  ExpectWellFormed(text);
  ExpectLines(text, {
                        R"(dataflow_mqtt_received_total{service="ingestion"} 0)",
                        R"(dataflow_mqtt_left_with_broker_total{service="ingestion"} 0)",
                        R"(dataflow_ingestion_rejected_total{service="ingestion"} 0)",
                        R"(dataflow_consumer_connected{service="ingestion"} 0)",
                        R"(dataflow_publish_latency_seconds_count{service="ingestion"} 0)",
                        R"(dataflow_enrichment_enriched_total{service="enrichment"} 0)",
                        R"(dataflow_cache_hits_total{layer="lru",service="enrichment"} 0)",
                        R"(dataflow_cache_entries{layer="lru",service="enrichment"} 0)",
                        R"(dataflow_archive_objects_written_total{service="icestore"} 0)",
                        R"(dataflow_archive_objects_written_total{service="dead-letters"} 0)",
                        R"(dataflow_build_info{version="1.2.3"} 1)",
                    });
  for (const char* service : {"ingestion", "enrichment", "bigquery", "icestore", "dead-letters"}) {
    ExpectLines(text,
                {"dataflow_messages_received_total{service=\"" + std::string(service) + "\"} 0"});
  }
}

// The values are the components' own, read at scrape time.
TEST_F(PipelineMetricsTest, AReadingThroughThePipelineIsCountedByEachComponent) {
  auto broker = mp::InProcessBroker::Create();
  ASSERT_TRUE(broker->CreateTopic("mqtt-in").ok());
  ASSERT_TRUE(broker->CreateSubscription("mqtt-in", "mqtt-in").ok());
  auto pipeline = Pipeline::Build(
      LocalConfig(), {.broker = broker, .ingestion_inputs = {{"ingestion", "mqtt-in"}}});
  ASSERT_TRUE(pipeline.ok()) << pipeline.status();
  ASSERT_TRUE((*pipeline)->Start().ok());
  auto id =
      broker->Publish("mqtt-in",
                      {.payload = R"({"deviceId": "device-1", "temperature": 20, "humidity": 40})",
                       .publish_time = mp::Clock::now()},
                      {{"route_name", "telemetry"}, {"mqtt_topic", "devices/device-1/telemetry"}});
  ASSERT_TRUE(id.ok()) << id.status();
  // Stop drains every in-process topic upstream first: the reading is stored when it returns.
  ASSERT_TRUE((*pipeline)->Stop(std::chrono::seconds(30)).ok());
  const std::string text = (*pipeline)->telemetry().Render();
  ExpectLines(text, {
                        R"(dataflow_messages_processed_total{service="bigquery"} 1)",
                        R"(dataflow_enrichment_enriched_total{service="enrichment"} 1)",
                        R"(dataflow_cache_misses_total{layer="lru",service="enrichment"} 1)",
                        R"(dataflow_archive_objects_written_total{service="icestore"} 1)",
                        R"(dataflow_publish_latency_seconds_count{service="ingestion"} 1)",
                    });
}

}  // namespace
}  // namespace dataflow::app

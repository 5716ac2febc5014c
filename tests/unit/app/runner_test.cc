// Pipeline::Build over the shipped config/local.yaml with in-process backends only: MQTT is
// replaced by an in-process input (PipelineHooks, as `dataflow test` does), SQLite and the
// archives go to a temporary directory.
#include "runner.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "backends.h"
#include "dataflow/messagepipeline/in_process_broker.h"
#include "dataflow_testing/test_dir.h"
#include "pipeline_outputs.h"
#include "prometheus/text_serializer.h"

namespace dataflow::app {
namespace {

namespace fs = std::filesystem;
namespace mp = messagepipeline;
using Json = nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;

constexpr auto kStopTimeout = std::chrono::seconds(30);
constexpr const char* kInput = "mqtt-in";  // what the ingestion service reads instead of MQTT

class RunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = dataflow::testing::FreshTestDir("runner_test");
    std::ofstream(dir_ / "registry.json")
        << R"({"device-1": {"name": "Boiler 1", "location": "plant-a"}})";
    broker_ = mp::InProcessBroker::Create();
    ASSERT_TRUE(broker_->CreateTopic(kInput).ok());
    ASSERT_TRUE(broker_->CreateSubscription(kInput, kInput).ok());
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

  PipelineHooks Hooks() const {
    return {.broker = broker_, .ingestion_inputs = {{"ingestion", kInput}}};
  }

  // A reading as the MQTT consumer hands it to ingestion.
  void PublishReading(const std::string& device, double temperature) {
    const Json payload = {{"deviceId", device}, {"temperature", temperature}, {"humidity", 40}};
    auto id =
        broker_->Publish(kInput, {.payload = payload.dump(), .publish_time = mp::Clock::now()},
                         {{"route_name", "telemetry"},
                          {"mqtt_topic", "devices/" + device + "/telemetry"},
                          {"mqtt_qos", "1"}});
    ASSERT_TRUE(id.ok()) << id.status();
  }

  fs::path dir_;
  std::shared_ptr<mp::InProcessBroker> broker_;
};

TEST_F(RunnerTest, ReadingsGoThroughEveryServiceIntoSqliteAndTheArchive) {
  auto pipeline = Pipeline::Build(LocalConfig(), Hooks());
  ASSERT_TRUE(pipeline.ok()) << pipeline.status();
  ASSERT_TRUE((*pipeline)->Start().ok());
  PublishReading("device-1", 21.5);
  PublishReading("device-1", 22.0);
  PublishReading("unknown-device", 19.0);  // not in the registry: passes unenriched
  // Stop drains every in-process topic upstream first, so all three are stored when it returns.
  ASSERT_TRUE((*pipeline)->Stop(kStopTimeout).ok());

  auto rows = ReadRows((dir_ / "warehouse.db").string(), "readings");
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_THAT(*rows, SizeIs(3));
  std::map<double, Json> by_temperature;
  for (const Json& row : *rows) by_temperature[row["temperature"].get<double>()] = row;
  EXPECT_EQ(by_temperature[21.5]["device_id"], "device-1");
  EXPECT_EQ(by_temperature[21.5]["device_name"], "Boiler 1");
  EXPECT_EQ(by_temperature[22.0]["location"], "plant-a");
  EXPECT_EQ(by_temperature[19.0]["device_name"], nullptr);

  auto archived = ReadArchive((dir_ / "archive").string());
  ASSERT_TRUE(archived.ok()) << archived.status();
  ASSERT_THAT(*archived, SizeIs(3));
  for (const Json& line : *archived) {
    EXPECT_EQ(line["envelope"], true) << line.dump();
    if (line["payload"]["deviceId"] == "device-1") {
      EXPECT_EQ(line["enrichment"]["location"], "plant-a") << line.dump();
    }
  }
  auto dead = ReadArchive((dir_ / "dead-letters").string());
  ASSERT_TRUE(dead.ok());
  EXPECT_THAT(*dead, SizeIs(0));
}

TEST_F(RunnerTest, StatusAndReadinessNameEveryServiceInConfigOrder) {
  auto pipeline = Pipeline::Build(LocalConfig(), Hooks());
  ASSERT_TRUE(pipeline.ok()) << pipeline.status();
  std::vector<std::string> names;
  std::vector<std::string> kinds;
  for (const auto& s : (*pipeline)->Status()) {
    names.push_back(s.name);
    kinds.push_back(s.kind);
  }
  EXPECT_THAT(names,
              ElementsAre("ingestion", "enrichment", "bigquery", "icestore", "dead-letters"));
  EXPECT_THAT(kinds, ElementsAre("ingestion", "enrichment", "bigquery", "icestore", "icestore"));

  ASSERT_TRUE((*pipeline)->Start().ok());
  const auto readiness = (*pipeline)->Readiness();
  ASSERT_THAT(readiness, SizeIs(5));
  for (const auto& r : readiness) EXPECT_TRUE(r.ready) << r.name << ": " << r.detail;
  PublishReading("device-1", 20.0);
  ASSERT_TRUE((*pipeline)->Stop(kStopTimeout).ok());

  std::map<std::string, mp::ServiceMetrics> metrics;
  for (const auto& s : (*pipeline)->Status()) metrics[s.name] = s.metrics;
  for (const char* name : {"ingestion", "enrichment", "bigquery", "icestore"}) {
    EXPECT_EQ(metrics[name].received, 1u) << name;
    EXPECT_EQ(metrics[name].processed, 1u) << name;
  }
  EXPECT_EQ(metrics["dead-letters"].received, 0u);
  // The scrape reads the same members.
  EXPECT_THAT(prometheus::TextSerializer().Serialize((*pipeline)->telemetry().Collect()),
              HasSubstr("dataflow_messages_processed_total{service=\"bigquery\"} 1"));
}

TEST_F(RunnerTest, ABackendTheBuildLacksIsAnErrorListingTheOnesItHas) {
  Backends without_sqlite = DefaultBackends();
  without_sqlite.tables.Unregister("sqlite");
  PipelineHooks hooks = Hooks();
  hooks.backends = &without_sqlite;
  auto pipeline = Pipeline::Build(LocalConfig(), hooks);
  ASSERT_FALSE(pipeline.ok());
  EXPECT_EQ(pipeline.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(
      pipeline.status().message(),
      HasSubstr("services[2] (bigquery): unknown table backend \"sqlite\" (this build has: "));
  EXPECT_THAT(pipeline.status().message(), HasSubstr("build with the release or dev preset"));
}

TEST_F(RunnerTest, ABackendThatCannotBeMadeNamesTheServiceAndTheBackend) {
  fs::remove(dir_ / "registry.json");
  auto pipeline = Pipeline::Build(LocalConfig(), Hooks());
  ASSERT_FALSE(pipeline.ok());
  EXPECT_THAT(pipeline.status().message(),
              HasSubstr("services[1] (enrichment): cache.json_file: "));
}

TEST_F(RunnerTest, TheDefaultBackendsAreEveryOneThisBuildHas) {
  const Backends& b = DefaultBackends();
  EXPECT_TRUE(b.transports.Has("in_process"));
  EXPECT_TRUE(b.cache_sources.Has("json_file"));
  EXPECT_TRUE(b.tables.Has("sqlite"));
  EXPECT_TRUE(b.archives.Has("local"));
  EXPECT_TRUE(b.archives.Has("gcs"));
#ifdef DATAFLOW_APP_HAS_PUBSUB
  EXPECT_TRUE(b.transports.Has("pubsub"));
#endif
#ifdef DATAFLOW_APP_HAS_FIRESTORE
  EXPECT_TRUE(b.cache_sources.Has("firestore"));
#endif
#ifdef DATAFLOW_APP_HAS_STORAGE_WRITE
  EXPECT_TRUE(b.tables.Has("bigquery"));
#endif
}

}  // namespace
}  // namespace dataflow::app

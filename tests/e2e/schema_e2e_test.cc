// End to end: a payload unlike the demo's readings (nested objects, arrays, integers, a
// timestamp string, a field absent in some messages) through the `dataflow` program:
//   MQTT (Mosquitto) → ingestion → Pub/Sub (emulator) → enrichment, keyed by a segment of the
//   MQTT topic → Pub/Sub → two `bigquery` services with the same YAML schema, one writing to
//   the BigQuery test server (Storage Write API), one to SQLite.
// Every row's columns are checked value by value in both sinks, and the rows that cannot be
// converted are dead-lettered (Pub/Sub) with the column named in the reason.
#include <gtest/gtest.h>
#include <mqtt/async_client.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "bigquery_test_server.h"
#include "dataflow/pubsub/admin.h"
#include "dataflow/pubsub/consumer.h"
#include "dataflow_testing/mosquitto_server.h"
#include "dataflow_testing/pubsub_emulator.h"
#include "dataflow_testing/server_process.h"
#include "pipeline_outputs.h"

namespace dataflow::testing {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

constexpr char kProject[] = "e2e-schema";
constexpr char kDataset[] = "e2e";
constexpr int kGood = 12;

struct Servers {
  std::unique_ptr<MosquittoServer> mosquitto;
  std::unique_ptr<PubsubEmulator> pubsub;
  std::unique_ptr<BigQueryTestServer> bigquery;
};
Servers* g_servers = nullptr;

class ServersEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    g_servers = new Servers;
    auto check = [](auto started, const char* what) {
      if (!started.ok()) {
        std::fprintf(stderr, "e2e: %s: %s\n", what, started.status().ToString().c_str());
        std::abort();
      }
      return *std::move(started);
    };
    g_servers->mosquitto = check(MosquittoServer::Start(), "mosquitto");
    g_servers->pubsub = check(PubsubEmulator::Start(), "pubsub emulator");
    g_servers->bigquery = check(BigQueryTestServer::Start(), "bigquery test server");
    ::setenv("PUBSUB_EMULATOR_HOST", g_servers->pubsub->host().c_str(), 1);
  }
  void TearDown() override {
    delete g_servers;
    g_servers = nullptr;
  }
};

// The columns both sinks share. Sources: payload paths, a RECORD, a REPEATED column, the
// enrichment data and the MQTT topic attribute.
constexpr char kSchema[] = R"(
      schema:
        - {name: meter_id, type: STRING, mode: REQUIRED, source: payload.meter.id}
        - {name: firmware, type: INT64, source: payload.meter.firmware}
        - name: meter
          type: RECORD
          source: payload.meter
          fields: [{name: id, type: STRING}, {name: firmware, type: INT64}]
        - {name: readings, type: FLOAT64, mode: REPEATED}
        - {name: count, type: INT64, mode: REQUIRED}
        - {name: at, type: TIMESTAMP, mode: REQUIRED}
        - {name: note, type: STRING}
        - {name: owner, type: STRING, source: enrichment.owner}
        - {name: topic, type: STRING, source: mqtt_topic}
)";

// Meter i: m-0 and m-1 are in the registry, m-2 is not (its rows have no owner).
std::string Meter(int i) { return "m-" + std::to_string(i % 3); }
std::string Owner(int i) { return i % 3 == 0 ? "acme" : "globex"; }

Json GoodPayload(int i) {
  Json p = {{"meter", {{"id", Meter(i)}, {"firmware", 100 + i}}},
            {"readings", {i + 0.5, i + 1.25}},
            {"count", i},
            {"at", "2026-11-30T10:00:" + std::string(i < 10 ? "0" : "") + std::to_string(i) +
                       ".5+01:00"}};
  if (i % 2 == 0) p["note"] = "note " + std::to_string(i);  // absent in odd ones
  return p;
}

class SchemaPipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (char c : std::string(::testing::UnitTest::GetInstance()->current_test_info()->name())) {
      if (std::isalnum(static_cast<unsigned char>(c)) != 0) {
        tag_ += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      }
    }
    dir_ = fs::temp_directory_path() / ("dataflow-e2e-" + tag_ + "-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::ofstream(dir_ / "registry.json")
        << Json{{"m-0", {{"owner", "acme"}}}, {"m-1", {{"owner", "globex"}}}}.dump();
  }
  void TearDown() override {
    process_.reset();
    if (!HasFailure()) fs::remove_all(dir_);
  }

  std::string Topic(const std::string& name) const { return tag_ + "-" + name; }
  std::string Table() const { return "meters_" + tag_; }

  void StartDataflow() {
    const int ops_port = FreeTcpPort();
    const fs::path config = dir_ / "config.yaml";
    std::ofstream(config) << "project: " << kProject
                          << "\ncreate_pubsub_resources: true\nshutdown_timeout: 20s\n"
                          << "ops: {host: 127.0.0.1, port: " << ops_port << "}\nservices:\n"
                          << "  - name: ingestion\n    ingestion:\n      mqtt:\n"
                          << "        broker_url: tcp://127.0.0.1:" << g_servers->mosquitto->port()
                          << "\n"
                          << "        client_id: e2e-" << tag_ << "\n        clean_session: false\n"
                          << "        topic_mappings: [{name: meters, topic: \"" << tag_
                          << "/sites/+/meters/+\", qos: 1}]\n"
                          << "      sink: pubsub\n      routes: {meters: " << Topic("raw") << "}\n"
                          << "  - name: enrichment\n    enrichment:\n"
                          << "      source: {pubsub: {subscription: " << Topic("raw-enrichment")
                          << ", topic: " << Topic("raw") << "}}\n"
                          << "      sink: pubsub\n      topic: " << Topic("enriched") << "\n"
                          << "      key: {topic_segment: 4}  # <tag>/sites/<site>/meters/<meter>\n"
                          << "      cache: {json_file: \"" << (dir_ / "registry.json").string()
                          << "\"}\n"
                          << "      on_not_found: pass_unenriched\n"
                          << "  - name: warehouse\n    bigquery:\n"
                          << "      source: {pubsub: {subscription: " << Topic("enriched-warehouse")
                          << ", topic: " << Topic("enriched") << "}}\n"
                          << "      batch_size: 50\n      flush_interval: 200ms\n"
                          << "      table: {dataset: " << kDataset << ", table: " << Table()
                          << ", create_dataset: true, rest_endpoint: \""
                          << g_servers->bigquery->rest_endpoint() << "\", grpc_endpoint: \""
                          << g_servers->bigquery->grpc_endpoint() << "\"}\n"
                          << "      dead_letter_topic: " << Topic("dead-letters") << kSchema
                          << "  - name: embedded\n    bigquery:\n"
                          << "      source: {pubsub: {subscription: " << Topic("enriched-embedded")
                          << ", topic: " << Topic("enriched") << "}}\n"
                          << "      batch_size: 50\n      flush_interval: 200ms\n"
                          << "      sqlite: {path: \"" << (dir_ / "meters.db").string()
                          << "\", table: meters}\n"
                          << "      dead_letter_topic: " << Topic("dead-letters") << kSchema;
    auto process = ServerProcess::Start(
        {.name = "dataflow",
         .argv = {DATAFLOW_BINARY, "run", config.string()},
         .env = {{"PUBSUB_EMULATOR_HOST", g_servers->pubsub->host()}},
         .ready = [ops_port] { return HttpGetStatus(ops_port, "/readyz") == 200; },
         .ready_timeout = std::chrono::seconds(60)});
    ASSERT_TRUE(process.ok()) << process.status();
    process_ = *std::move(process);
  }

  void Publish(const std::vector<std::pair<std::string, std::string>>& messages) {
    mqtt::async_client client("tcp://127.0.0.1:" + std::to_string(g_servers->mosquitto->port()),
                              "e2e-meters-" + tag_);
    client.connect(mqtt::connect_options_builder().clean_session(true).finalize())->wait();
    for (const auto& [topic, payload] : messages) {
      client.publish(mqtt::make_message(topic, payload, 1, false))->wait();
    }
    client.disconnect()->wait();
  }

  std::vector<Json> SqliteRows() const {
    auto rows = app::ReadRows((dir_ / "meters.db").string(), "meters");
    EXPECT_TRUE(rows.ok()) << rows.status();
    return rows.ok() ? *std::move(rows) : std::vector<Json>{};
  }

  std::string tag_;
  fs::path dir_;
  std::unique_ptr<ServerProcess> process_;
};

std::optional<messagepipeline::Message> PopFor(
    messagepipeline::BoundedQueue<messagepipeline::Message>& q, std::chrono::milliseconds timeout) {
  std::vector<messagepipeline::Message> out;
  q.PopBatchUntil(out, 1, std::chrono::steady_clock::now() + timeout);
  if (out.empty()) return std::nullopt;
  return std::move(out.front());
}

TEST_F(SchemaPipelineTest, EveryColumnArrivesInBothSinksAndBadRowsAreDeadLetteredByColumn) {
  // The dead-letter topic's subscription exists before anything can be dead-lettered.
  auto stub = pubsub::MakePubsubStub();
  ASSERT_TRUE(stub.ok()) << stub.status();
  ASSERT_TRUE(pubsub::CreateTopic(**stub, kProject, Topic("dead-letters")).ok());
  ASSERT_TRUE(pubsub::CreateSubscription(**stub, kProject, Topic("dead-letters-check"),
                                         Topic("dead-letters"))
                  .ok());
  ASSERT_NO_FATAL_FAILURE(StartDataflow());

  std::vector<std::pair<std::string, std::string>> messages;
  auto topic_of = [&](int i) {
    return tag_ + "/sites/site-" + std::to_string(i % 2) + "/meters/" + Meter(i);
  };
  for (int i = 0; i < kGood; ++i) messages.emplace_back(topic_of(i), GoodPayload(i).dump());
  Json fractional = GoodPayload(100);
  fractional["count"] = 1.5;  // INT64 column: not an integer
  Json no_id = GoodPayload(101);
  no_id["meter"].erase("id");  // REQUIRED meter_id absent
  messages.emplace_back(topic_of(1), fractional.dump());
  messages.emplace_back(topic_of(1), no_id.dump());
  Publish(messages);

  ASSERT_TRUE(WaitFor(
      [&] {
        return g_servers->bigquery->Rows(kProject, kDataset, Table()).size() >= kGood &&
               SqliteRows().size() >= kGood;
      },
      std::chrono::seconds(60), std::chrono::milliseconds(100)))
      << "BigQuery rows " << g_servers->bigquery->Rows(kProject, kDataset, Table()).size()
      << ", SQLite rows " << SqliteRows().size() << "; see " << process_->log_path();

  // Value by value. BigQuery's rows are the test server's decoding of the proto rows;
  // SQLite's keep RECORD/REPEATED as JSON text and TIMESTAMP as RFC 3339 UTC.
  const auto bq_rows = g_servers->bigquery->Rows(kProject, kDataset, Table());
  const auto sqlite_rows = SqliteRows();
  std::map<std::int64_t, Json> bq_by_count, sqlite_by_count;
  for (const auto& r : bq_rows) bq_by_count[r.at("count").get<std::int64_t>()] = r;
  for (const auto& r : sqlite_rows) sqlite_by_count[r.at("count").get<std::int64_t>()] = r;
  ASSERT_EQ(bq_by_count.size(), static_cast<std::size_t>(kGood)) << Json(bq_rows).dump();
  ASSERT_EQ(sqlite_by_count.size(), static_cast<std::size_t>(kGood)) << Json(sqlite_rows).dump();
  for (int i = 0; i < kGood; ++i) {
    SCOPED_TRACE("count " + std::to_string(i));
    const Json& bq = bq_by_count.at(i);
    const Json& lite = sqlite_by_count.at(i);
    const std::string topic = topic_of(i);
    const Json owner = i % 3 == 2 ? Json(nullptr) : Json(Owner(i));
    const Json note = i % 2 == 0 ? Json("note " + std::to_string(i)) : Json(nullptr);
    const Json meter = {{"id", Meter(i)}, {"firmware", 100 + i}};
    const Json readings = {i + 0.5, i + 1.25};
    // 10:00:ss.5+01:00 is 09:00:ss.5 UTC.
    const std::string at_utc =
        "2026-11-30T09:00:" + std::string(i < 10 ? "0" : "") + std::to_string(i) + ".5Z";
    for (const Json* row : {&bq, &lite}) {
      EXPECT_EQ(row->at("meter_id"), Meter(i)) << *row;
      EXPECT_EQ(row->at("firmware"), 100 + i) << *row;
      EXPECT_EQ(row->value("note", Json()), note) << *row;
      EXPECT_EQ(row->value("owner", Json()), owner) << *row;
      EXPECT_EQ(row->at("topic"), topic) << *row;
    }
    EXPECT_EQ(bq.at("meter"), meter) << bq;
    EXPECT_EQ(bq.at("readings"), readings) << bq;
    EXPECT_EQ(Json::parse(lite.at("meter").get<std::string>()), meter) << lite;
    EXPECT_EQ(Json::parse(lite.at("readings").get<std::string>()), readings) << lite;
    EXPECT_EQ(lite.at("at"), at_utc) << lite;
    EXPECT_EQ(bq.at("at"), at_utc) << bq;
  }

  // Each bad message is dead-lettered once per sink, naming its column.
  auto consumer = pubsub::GooglePubsubConsumer::Create(
      *stub, {.project_id = kProject, .subscription_id = Topic("dead-letters-check")});
  ASSERT_TRUE(consumer.ok()) << consumer.status();
  ASSERT_TRUE((*consumer)->Start().ok());
  std::multiset<std::string> reasons;  // "<service>: <column>"
  for (int n = 0; n < 4; ++n) {
    auto m = PopFor((*consumer)->Messages(), std::chrono::seconds(30));
    ASSERT_TRUE(m.has_value()) << "dead letters so far: " << reasons.size();
    const std::string error = m->attributes["dataflow_error"];
    const std::string source = m->attributes["dataflow_source"];
    if (error.find("column count: number 1.5 is not an integer") != std::string::npos) {
      reasons.insert(source + ": count");
    } else if (error.find("column meter_id: REQUIRED value is missing") != std::string::npos) {
      reasons.insert(source + ": meter_id");
    } else {
      ADD_FAILURE() << "unexpected dead letter from " << source << ": " << error;
    }
    m->Ack();
  }
  EXPECT_EQ(reasons, (std::multiset<std::string>{"embedded: count", "embedded: meter_id",
                                                 "warehouse: count", "warehouse: meter_id"}));
  EXPECT_TRUE((*consumer)->Stop(std::chrono::steady_clock::now() + std::chrono::seconds(10)).ok());

  process_->Stop(std::chrono::seconds(30));
  EXPECT_EQ(process_->last_exit_code(), 0) << "see " << process_->log_path();
}

}  // namespace
}  // namespace dataflow::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new dataflow::testing::ServersEnvironment);
  return RUN_ALL_TESTS();
}

// The wire contract with the Go fleet, on real servers (Google's Pub/Sub emulator, Mosquitto).
//
// In: envelopes byte for byte as Go's encoding/json writes the Go MessageData struct (padded
// standard base64 payloads, `"payload":null`, RFC 3339 with nanoseconds and trailing zeros
// trimmed, `+01:00` offsets, `<>&` escaped as \u003c \u003e \u0026, map keys sorted, nested
// enrichmentData), published with no attributes as the Go ingestion does, into each of our
// consuming services: enrichment, bigquery (schema kind, into SQLite) and icestore.
// Out: what ours publish or write (ingestion's envelope, enrichment's output, icestore's
// ArchivalData lines) through a strict decoder written here from Go's struct tags, as
// json.Decoder with DisallowUnknownFields would read them: an unknown key or a wrong type is a
// failure.
#include <absl/strings/escaping.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "dataflow/bqstore/bigquery_service.h"
#include "dataflow/bqstore/json_schema_rows.h"
#include "dataflow/bqstore/schema_sqlite_inserter.h"
#include "dataflow/enrichment/enricher.h"
#include "dataflow/enrichment/enrichment_service.h"
#include "dataflow/enrichment/keys.h"
#include "dataflow/icestore/archival.h"
#include "dataflow/icestore/gzip.h"
#include "dataflow/icestore/ice_storage_service.h"
#include "dataflow/icestore/local_directory_uploader.h"
#include "dataflow/messagepipeline/publisher.h"
#include "dataflow/mqttconverter/ingestion_service.h"
#include "dataflow/mqttconverter/mqtt_consumer.h"
#include "dataflow/pubsub/admin.h"
#include "dataflow/pubsub/consumer.h"
#include "dataflow/pubsub/producer.h"
#include "dataflow_testing/pubsub_emulator.h"
#include "dataflow_testing/server_process.h"
#include "mqtt_test_util.h"

namespace dataflow {
namespace {

using Json = nlohmann::json;
using messagepipeline::Message;
using std::chrono::seconds;
using std::chrono::steady_clock;

constexpr char kProject[] = "go-contract";

// --- What Go writes -------------------------------------------------------------------------

// {"deviceId":"dev-1","temp":21.5,"note":"<b> & c"}: 50 bytes, so base64 pads with "==".
constexpr char kPayload1[] = R"({"deviceId":"dev-1","temp":21.5,"note":"<b> & c"})";
// {"deviceId":"dev-3","temp":-4,"tags":["a","b"]}: 47 bytes, one "=".
constexpr char kPayload3[] = R"({"deviceId":"dev-3","temp":-4,"tags":["a","b"]})";

// json.Marshal(MessageData{...}) of the Go library: fields in struct order, enrichmentData
// omitted when empty, map keys sorted, HTML characters escaped, time.Time as RFC3339Nano.
const std::string kGo1 =
    R"({"id":"go-\u003c1\u003e","payload":"eyJkZXZpY2VJZCI6ImRldi0xIiwidGVtcCI6MjEuNSwibm90ZSI6IjxiPiAmIGMifQ==",)"
    R"("publishTime":"2026-03-04T05:06:07.1234Z",)"
    R"("enrichmentData":{"location":"lab-1","note":"x \u003c y \u0026\u0026 z \u003e w",)"
    R"("site":{"floors":[1,2],"name":"A \u0026 B"}}})";
// A nil payload, an offset time: 06:06:07.5+01:00 is 05:06:07.5Z.
const std::string kGo2 =
    R"({"id":"go-null","payload":null,"publishTime":"2026-03-04T06:06:07.5+01:00",)"
    R"("enrichmentData":{"location":"lab-2"}})";
// Nanoseconds, no enrichment (omitempty).
const std::string kGo3 =
    R"({"id":"go-3","payload":"eyJkZXZpY2VJZCI6ImRldi0zIiwidGVtcCI6LTQsInRhZ3MiOlsiYSIsImIiXX0=",)"
    R"("publishTime":"2026-03-04T23:59:59.123456789-02:00"})";

// --- A strict decoder from Go's struct tags --------------------------------------------------

// Go's []byte: standard alphabet, padded (base64.StdEncoding).
bool IsPaddedStdBase64(const std::string& s) {
  static const std::regex re(R"(^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$)");
  return std::regex_match(s, re);
}

// What time.Time.UnmarshalJSON accepts (RFC 3339, Go 1.20+: two-digit offsets, 'T', 'Z').
bool IsGoRfc3339(const std::string& s) {
  static const std::regex re(R"(^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$)");
  return std::regex_match(s, re);
}

// What time.Time.MarshalJSON writes for a UTC time: RFC3339Nano, trailing zeros trimmed.
bool IsGoRfc3339NanoUtc(const std::string& s) {
  static const std::regex re(R"(^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d*[1-9])?Z$)");
  return std::regex_match(s, re);
}

struct GoField {
  enum Kind { kString, kBytes, kTime, kMap } kind;
  bool required;  // no omitempty: Go's encoder always writes it
};

// Decodes `text` as Go would into a struct with these json tags, refusing unknown keys and
// wrong types; returns the problems (empty: it decodes).
std::vector<std::string> GoStrictProblems(const std::string& text,
                                          const std::map<std::string, GoField>& fields, Json* out) {
  std::vector<std::string> problems;
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return {"not a JSON object: " + text};
  for (auto it = j.begin(); it != j.end(); ++it) {
    auto f = fields.find(it.key());
    if (f == fields.end()) {
      problems.push_back("unknown field \"" + it.key() + "\"");
      continue;
    }
    const Json& v = it.value();
    if (v.is_null()) continue;  // Go leaves the field as it is
    switch (f->second.kind) {
      case GoField::kString:
        if (!v.is_string()) problems.push_back(it.key() + ": not a string");
        break;
      case GoField::kBytes:
        if (!v.is_string() || !IsPaddedStdBase64(v.get<std::string>())) {
          problems.push_back(it.key() + ": not padded standard base64");
        }
        break;
      case GoField::kTime:
        if (!v.is_string() || !IsGoRfc3339(v.get<std::string>())) {
          problems.push_back(it.key() + ": not an RFC 3339 time");
        }
        break;
      case GoField::kMap:
        if (!v.is_object()) problems.push_back(it.key() + ": not an object");
        break;
    }
  }
  for (const auto& [name, f] : fields) {
    if (f.required && !j.contains(name)) problems.push_back("missing \"" + name + "\"");
  }
  if (out) *out = std::move(j);
  return problems;
}

// type MessageData struct { ID string `json:"id"`; Payload []byte `json:"payload"`;
// PublishTime time.Time `json:"publishTime"`; EnrichmentData map[string]interface{}
// `json:"enrichmentData,omitempty"` }
const std::map<std::string, GoField> kGoMessageData = {{"id", {GoField::kString, true}},
                                                       {"payload", {GoField::kBytes, true}},
                                                       {"publishTime", {GoField::kTime, true}},
                                                       {"enrichmentData", {GoField::kMap, false}}};
// type ArchivalData struct { ID string `json:"id"`; BatchKey string `json:"batchKey"`;
// OriginalPubSubPayload []byte `json:"originalPubSubPayload"`; ArchivedAt time.Time
// `json:"archivedAt"` }
const std::map<std::string, GoField> kGoArchivalData = {
    {"id", {GoField::kString, true}},
    {"batchKey", {GoField::kString, true}},
    {"originalPubSubPayload", {GoField::kBytes, true}},
    {"archivedAt", {GoField::kTime, true}}};

std::string Unbase64(const Json& v) {
  std::string out;
  if (v.is_string()) {
    EXPECT_TRUE(absl::Base64Unescape(v.get<std::string>(), &out));
  }
  return out;
}

// The strict decoder must fail on what it is there to catch (else the test proves nothing).
TEST(GoStrictDecoder, RefusesUnknownKeysAndWrongTypes) {
  EXPECT_TRUE(GoStrictProblems(kGo1, kGoMessageData, nullptr).empty());
  EXPECT_TRUE(GoStrictProblems(kGo2, kGoMessageData, nullptr).empty());
  EXPECT_FALSE(
      GoStrictProblems(R"({"id":"1","payload":"aGk=","publishTime":"2026-01-01T00:00:00Z",)"
                       R"("extra":1})",
                       kGoMessageData, nullptr)
          .empty());
  EXPECT_FALSE(GoStrictProblems(R"({"id":1,"payload":"aGk=","publishTime":"2026-01-01T00:00:00Z"})",
                                kGoMessageData, nullptr)
                   .empty());
  EXPECT_FALSE(
      GoStrictProblems(R"({"id":"1","payload":"aGk","publishTime":"2026-01-01T00:00:00Z"})",
                       kGoMessageData, nullptr)
          .empty());
  EXPECT_FALSE(
      GoStrictProblems(R"({"id":"1","payload":"aGk=","publishTime":"2026-01-01 00:00:00"})",
                       kGoMessageData, nullptr)
          .empty());
  EXPECT_FALSE(GoStrictProblems(R"({"id":"1","payload":"aGk="})", kGoMessageData, nullptr).empty());
}

// --- Servers ----------------------------------------------------------------------------------

testing::PubsubEmulator* g_emulator = nullptr;

class EmulatorEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    if (testing::FindPubsubEmulator().empty()) return;  // the tests skip with the reason
    auto e = testing::PubsubEmulator::Start();
    ASSERT_TRUE(e.ok()) << e.status();
    emulator_ = *std::move(e);
    g_emulator = emulator_.get();
    setenv("PUBSUB_EMULATOR_HOST", g_emulator->host().c_str(), 1);
    setenv("GOOGLE_CLOUD_PROJECT", kProject, 1);
  }
  void TearDown() override {
    g_emulator = nullptr;
    emulator_.reset();
  }

 private:
  std::unique_ptr<testing::PubsubEmulator> emulator_;
};

// Topics and subscriptions of one test, a producer, and readers.
class GoContractTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (g_emulator == nullptr) GTEST_SKIP() << testing::PubsubEmulatorMissingReason();
    auto stub = pubsub::MakePubsubStub();
    ASSERT_TRUE(stub.ok()) << stub.status();
    stub_ = *stub;
    static std::atomic<int> n{0};
    id_ = std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "-" +
          std::to_string(n++);
    auto producer = pubsub::GooglePubsubProducer::Create(
        stub_, {.project_id = kProject, .max_batch_delay = std::chrono::milliseconds(10)});
    ASSERT_TRUE(producer.ok()) << producer.status();
    producer_ = *std::move(producer);
  }
  void TearDown() override {
    if (producer_) {
      EXPECT_TRUE(producer_->Stop(steady_clock::now() + seconds(10)).ok());
    }
  }

  // A topic with one subscription; returns the subscription.
  std::string Topic(const std::string& name) {
    const std::string topic = name + "-" + id_;
    EXPECT_TRUE(pubsub::CreateTopic(*stub_, kProject, topic).ok());
    EXPECT_TRUE(pubsub::CreateSubscription(*stub_, kProject, topic + "-sub", topic,
                                           {.ack_deadline = seconds(30)})
                    .ok());
    return topic;
  }
  std::shared_ptr<pubsub::GooglePubsubConsumer> Consumer(const std::string& topic) {
    auto c = pubsub::GooglePubsubConsumer::Create(
        stub_, {.project_id = kProject, .subscription_id = topic + "-sub"});
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::shared_ptr<pubsub::GooglePubsubConsumer>(*std::move(c)) : nullptr;
  }
  // As the Go ingestion and enrichment publish: the envelope bytes, no attributes.
  void PublishGo(const std::string& topic, const std::vector<std::string>& envelopes) {
    for (const auto& e : envelopes) {
      auto id = producer_->Publish(topic, messagepipeline::OutgoingMessage{.payload = e}).get();
      ASSERT_TRUE(id.ok()) << id.status();
    }
  }
  // Reads `n` messages from `topic`'s subscription (acked), keyed by nothing: in order read.
  std::vector<Message> Read(const std::string& topic, std::size_t n) {
    auto reader = Consumer(topic);
    if (!reader) return {};
    EXPECT_TRUE(reader->Start().ok());
    auto got = mqttconverter::testing::PopN(reader->Messages(), n, seconds(60));
    for (auto& m : got) m.Ack();
    EXPECT_TRUE(reader->Stop(steady_clock::now() + seconds(10)).ok());
    return got;
  }

  std::shared_ptr<pubsub::PubsubStub> stub_;
  std::shared_ptr<pubsub::GooglePubsubProducer> producer_;
  std::string id_;
};

// --- Enrichment -------------------------------------------------------------------------------

// The device registry the enrichment looks in.
struct Registry {
  absl::StatusOr<Json> Fetch(const std::string& key) {
    if (key == "dev-1") return Json{{"name", "Device <one> & co"}, {"model", "T-1"}};
    return absl::NotFoundError("no device " + key);
  }
};

TEST_F(GoContractTest, EnrichmentReadsGoEnvelopesAndPublishesOneEnvelopeGoDecodes) {
  const std::string in = Topic("go-raw");
  const std::string out = Topic("ours-enriched");
  auto enricher = enrichment::MakeEnricher<std::string, Json>(
      std::make_shared<Registry>(), enrichment::JsonPayloadKey("deviceId"),
      enrichment::SelectingApplier({}),
      {.on_not_found = enrichment::FailurePolicy::kPassUnenriched});
  ASSERT_TRUE(enricher.ok()) << enricher.status();
  auto service = enrichment::EnrichmentService::CreateAsync(
      {.common = {.name = "contract-enrichment", .num_workers = 2}}, Consumer(in), *enricher,
      messagepipeline::PublishEnvelope(producer_, out));
  ASSERT_TRUE(service.ok()) << service.status();
  ASSERT_TRUE((*service)->Start().ok());
  PublishGo(in, {kGo1, kGo2, kGo3});

  std::map<std::string, Json> by_id;
  for (Message& m : Read(out, 3)) {
    Json j;
    const auto problems = GoStrictProblems(m.data.payload, kGoMessageData, &j);
    EXPECT_TRUE(problems.empty()) << problems.front() << " in " << m.data.payload;
    by_id[j.value("id", "")] = j;
  }
  ASSERT_TRUE((*service)->Stop(steady_clock::now() + seconds(10)).ok());
  ASSERT_EQ(by_id.size(), 3u);

  // One envelope, not one inside another: the payload is the device's JSON itself.
  const Json& e1 = by_id.at("go-<1>");
  EXPECT_EQ(Unbase64(e1["payload"]), kPayload1);
  EXPECT_EQ(e1["publishTime"], "2026-03-04T05:06:07.1234Z");
  EXPECT_TRUE(IsGoRfc3339NanoUtc(e1["publishTime"].get<std::string>()));
  // The upstream enrichment kept, ours added.
  EXPECT_EQ(e1["enrichmentData"], (Json{{"location", "lab-1"},
                                        {"note", "x < y && z > w"},
                                        {"site", {{"floors", {1, 2}}, {"name", "A & B"}}},
                                        {"name", "Device <one> & co"},
                                        {"model", "T-1"}}));

  // A nil payload has no key: passed on unenriched, still null-free and decodable by Go.
  const Json& e2 = by_id.at("go-null");
  EXPECT_EQ(Unbase64(e2["payload"]), "");
  EXPECT_EQ(e2["publishTime"], "2026-03-04T05:06:07.5Z");
  EXPECT_EQ(e2["enrichmentData"], (Json{{"location", "lab-2"}}));

  // Unknown device (pass_unenriched): no enrichmentData at all (Go's omitempty).
  const Json& e3 = by_id.at("go-3");
  EXPECT_EQ(Unbase64(e3["payload"]), kPayload3);
  EXPECT_EQ(e3["publishTime"], "2026-03-05T01:59:59.123456789Z");
  EXPECT_FALSE(e3.contains("enrichmentData"));
  EXPECT_EQ((*service)->enrichment_metrics().enriched, 1u);
}

// --- BigQuery (schema kind) into SQLite --------------------------------------------------------

TEST_F(GoContractTest, BigQuerySchemaKindStoresGoEnvelopesColumnByColumn) {
  const std::string in = Topic("go-enriched-bq");
  const std::string dead = Topic("bq-dead");
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("go_contract_" + std::to_string(::getpid()) + ".db"))
                               .string();
  std::filesystem::remove(path);
  auto columns = bqstore::ColumnsFromJson(Json::parse(R"([
    {"name": "device_id", "type": "STRING", "mode": "REQUIRED", "source": "payload.deviceId"},
    {"name": "temp", "type": "FLOAT64"},
    {"name": "note", "type": "STRING"},
    {"name": "tags", "type": "STRING", "mode": "REPEATED"},
    {"name": "message_id", "type": "STRING", "source": "message_id"},
    {"name": "published", "type": "TIMESTAMP", "source": "publish_time"},
    {"name": "location", "type": "STRING", "source": "enrichment.location"},
    {"name": "site", "type": "STRING", "source": "enrichment.site.name"}
  ])"));
  ASSERT_TRUE(columns.ok()) << columns.status();
  auto converter = bqstore::RowConverter::Create(*columns);
  ASSERT_TRUE(converter.ok()) << converter.status();
  auto sqlite =
      bqstore::SchemaSqliteInserter::Create({.path = path, .table = "events"}, *converter);
  ASSERT_TRUE(sqlite.ok()) << sqlite.status();
  std::shared_ptr<bqstore::DataBatchInserter<bqstore::RowInput>> inserter = *std::move(sqlite);
  auto dead_sink = std::make_shared<pubsub::PubsubDeadLetterSink>(producer_, dead);
  auto service = bqstore::NewBigQueryService<bqstore::RowInput>(
      {.common = {.name = "contract-bq", .num_workers = 2, .dead_letter = dead_sink},
       .flush_interval = std::chrono::milliseconds(100),
       .flush_when_idle = true},
      Consumer(in), bqstore::RowInputTransformer(), inserter);
  ASSERT_TRUE(service.ok()) << service.status();
  ASSERT_TRUE((*service)->Start().ok());
  PublishGo(in, {kGo1, kGo3, kGo2});

  // The nil payload is no JSON: dead-lettered saying so, as received (the Go bytes).
  auto dead_letters = Read(dead, 1);
  ASSERT_EQ(dead_letters.size(), 1u);
  EXPECT_EQ(dead_letters[0].data.payload, kGo2);
  EXPECT_NE(dead_letters[0]
                .attributes.at(std::string(messagepipeline::kDeadLetterErrorAttribute))
                .find("payload: not valid JSON"),
            std::string::npos);
  ASSERT_TRUE(testing::WaitFor(
      [&] { return (*service)->metrics().processed + (*service)->metrics().dead_lettered >= 3; },
      std::chrono::seconds(30)));
  ASSERT_TRUE((*service)->Stop(steady_clock::now() + seconds(10)).ok());
  ASSERT_TRUE(inserter->Close().ok());

  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db,
                               "SELECT device_id, temp, note, tags, message_id, published, "
                               "location, site FROM events ORDER BY device_id",
                               -1, &stmt, nullptr),
            SQLITE_OK);
  auto text = [&](int k) -> Json {
    if (sqlite3_column_type(stmt, k) == SQLITE_NULL) return nullptr;
    return std::string(reinterpret_cast<const char*>(sqlite3_column_text(stmt, k)));
  };
  std::vector<Json> rows;
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    rows.push_back({{"device_id", text(0)},
                    {"temp", sqlite3_column_double(stmt, 1)},
                    {"note", text(2)},
                    {"tags", text(3)},
                    {"message_id", text(4)},
                    {"published", text(5)},
                    {"location", text(6)},
                    {"site", text(7)}});
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  std::filesystem::remove(path);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0], (Json{{"device_id", "dev-1"},
                           {"temp", 21.5},
                           {"note", "<b> & c"},
                           {"tags", "[]"},
                           {"message_id", "go-<1>"},
                           {"published", "2026-03-04T05:06:07.1234Z"},
                           {"location", "lab-1"},
                           {"site", "A & B"}}));
  EXPECT_EQ(rows[1], (Json{{"device_id", "dev-3"},
                           {"temp", -4.0},
                           {"note", nullptr},
                           {"tags", R"(["a","b"])"},
                           {"message_id", "go-3"},
                           // BigQuery's TIMESTAMP holds microseconds.
                           {"published", "2026-03-05T01:59:59.123456Z"},
                           {"location", nullptr},
                           {"site", nullptr}}));
}

// --- icestore ----------------------------------------------------------------------------------

TEST_F(GoContractTest, IceStoreArchivesGoEnvelopesInLinesGoDecodes) {
  const std::string in = Topic("go-enriched-ice");
  const auto root = std::filesystem::temp_directory_path() /
                    ("go_contract_archive_" + std::to_string(::getpid()));
  std::filesystem::remove_all(root);
  // The Go README's prefix, with its trailing slash.
  auto uploader =
      icestore::LocalDirectoryUploader::Create({.root = root.string(), .prefix = "archive/"});
  ASSERT_TRUE(uploader.ok()) << uploader.status();
  icestore::IceStorageServiceOptions options{
      .common = {.name = "contract-icestore", .num_workers = 2}, .flush_when_idle = true};
  options.batcher.flush_interval = std::chrono::milliseconds(100);
  auto service = icestore::IceStorageService::Create(options, Consumer(in), *std::move(uploader));
  ASSERT_TRUE(service.ok()) << service.status();
  ASSERT_TRUE((*service)->Start().ok());
  PublishGo(in, {kGo1, kGo2, kGo3});
  ASSERT_TRUE(testing::WaitFor([&] { return (*service)->metrics().processed >= 3; },
                               std::chrono::seconds(30)));
  ASSERT_TRUE((*service)->Stop(steady_clock::now() + seconds(10)).ok());

  std::map<std::string, std::pair<std::string, Json>> by_id;  // id → (object name, line)
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    if (!entry.is_regular_file()) continue;
    const std::string name = std::filesystem::relative(entry.path(), root).string();
    EXPECT_EQ(name.find("//"), std::string::npos) << name;
    std::ifstream file(entry.path(), std::ios::binary);
    const std::string gz((std::istreambuf_iterator<char>(file)), {});
    auto jsonl = icestore::GzipDecompress(gz);
    ASSERT_TRUE(jsonl.ok()) << jsonl.status();
    std::size_t start = 0;
    while (start < jsonl->size()) {
      const std::size_t end = jsonl->find('\n', start);
      ASSERT_NE(end, std::string::npos);
      Json j;
      const auto problems =
          GoStrictProblems(jsonl->substr(start, end - start), kGoArchivalData, &j);
      EXPECT_TRUE(problems.empty()) << problems.front();
      EXPECT_TRUE(IsGoRfc3339NanoUtc(j.value("archivedAt", "")));
      by_id[j.value("id", "")] = {name, j};
      start = end + 1;
    }
  }
  std::filesystem::remove_all(root);
  ASSERT_EQ(by_id.size(), 3u);
  // Archived as received (the Go envelope, byte for byte), keyed by what the envelope says.
  const std::pair<std::string, std::string> expected[] = {
      {"go-<1>", kGo1}, {"go-null", kGo2}, {"go-3", kGo3}};
  for (const auto& [id, bytes] : expected) {
    EXPECT_EQ(Unbase64(by_id.at(id).second["originalPubSubPayload"]), bytes) << id;
  }
  EXPECT_EQ(by_id.at("go-<1>").second["batchKey"], "2026/03/04/lab-1");
  EXPECT_EQ(by_id.at("go-null").second["batchKey"], "2026/03/04/lab-2");
  EXPECT_EQ(by_id.at("go-3").second["batchKey"], "2026/03/05");  // UTC day of -02:00
  EXPECT_TRUE(by_id.at("go-<1>").first.starts_with("archive/2026/03/04/lab-1/"))
      << by_id.at("go-<1>").first;

  // And a line Go writes for a nil payload reads back.
  auto go_line = icestore::DecodeArchivalLine(
      R"({"id":"go-null","batchKey":"2026/03/04","originalPubSubPayload":null,)"
      R"("archivedAt":"2026-03-04T06:06:07.000000001+01:00"})");
  ASSERT_TRUE(go_line.ok()) << go_line.status();
  EXPECT_EQ(go_line->original_payload, "");
}

// --- Ingestion ---------------------------------------------------------------------------------

TEST_F(GoContractTest, IngestionPublishesTheEnvelopeGoDecodes) {
  const std::string out = Topic("ours-raw");
  const std::string base = mqttconverter::testing::UniqueTopic("contract");
  auto mqtt = mqttconverter::MqttConsumer::Create(mqttconverter::MqttClientOptions{
      .broker_url = mqttconverter::testing::Broker()->url(),
      .topic_mappings = {{.name = "telemetry", .topic = base + "/+/data"}}});
  ASSERT_TRUE(mqtt.ok()) << mqtt.status();
  std::shared_ptr<mqttconverter::MqttConsumer> consumer(*std::move(mqtt));
  // The defaults: the envelope, as the Go ingestion publishes.
  auto service = mqttconverter::IngestionService::Create(
      {.route_topics = {{"telemetry", out}},
       .unmapped = mqttconverter::UnmappedRoutePolicy::kReject},
      consumer, producer_);
  ASSERT_TRUE(service.ok()) << service.status();
  ASSERT_TRUE((*service)->Start().ok());
  const std::string binary("<\x00\xff&>", 5);
  mqttconverter::testing::TestPublisher pub;
  pub.Publish(base + "/dev-1/data", kPayload1);
  pub.Publish(base + "/dev-2/data", binary);

  std::map<std::string, std::pair<Json, messagepipeline::Attributes>> by_payload;
  for (Message& m : Read(out, 2)) {
    Json j;
    const auto problems = GoStrictProblems(m.data.payload, kGoMessageData, &j);
    EXPECT_TRUE(problems.empty()) << problems.front() << " in " << m.data.payload;
    EXPECT_FALSE(j.contains("enrichmentData"));  // omitempty, as Go writes it
    EXPECT_TRUE(IsGoRfc3339NanoUtc(j.value("publishTime", ""))) << j;
    EXPECT_FALSE(j.value("id", "").empty());
    by_payload[Unbase64(j["payload"])] = {j, m.attributes};
  }
  ASSERT_TRUE((*service)->Stop(steady_clock::now() + seconds(10)).ok());
  ASSERT_EQ(by_payload.size(), 2u);
  ASSERT_TRUE(by_payload.contains(kPayload1));
  ASSERT_TRUE(by_payload.contains(binary));
  // Attributes are carried as well (Go ignores them).
  EXPECT_EQ(by_payload[binary].second.at("mqtt_topic"), base + "/dev-2/data");
  EXPECT_EQ(by_payload[binary].second.at("route_name"), "telemetry");
}

}  // namespace
}  // namespace dataflow

[[maybe_unused]] ::testing::Environment* const kMosquitto = ::testing::AddGlobalTestEnvironment(
    new dataflow::mqttconverter::testing::MosquittoEnvironment());
[[maybe_unused]] ::testing::Environment* const kEmulator =
    ::testing::AddGlobalTestEnvironment(new dataflow::EmulatorEnvironment());

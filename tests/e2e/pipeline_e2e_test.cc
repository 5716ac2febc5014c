// End to end: the `dataflow` program, run from configs as separate processes, against real
// servers — Mosquitto, Google's Pub/Sub and Firestore emulators, Redis, the Cloud Storage
// emulator — and the BigQuery test server (no BigQuery emulator can run here):
//   MQTT → ingestion → Pub/Sub → enrichment (LRU → Redis → Firestore) → Pub/Sub →
//   {BigQuery, GCS gzip JSONL}
// Each reading carries a unique number (its temperature), so rows and archive lines can be
// matched to what was sent: loss fails a test, duplicates (allowed: at-least-once) are
// counted and printed.
#include <absl/strings/str_split.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <mqtt/async_client.h>
#include <sqlite3.h>

#include <cctype>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "bigquery_test_server.h"
#include "dataflow/cache/firestore.h"
#include "dataflow/icestore/archival.h"
#include "dataflow/icestore/gzip.h"
#include "dataflow/messagepipeline/message.h"
#include "dataflow_testing/firestore_emulator.h"
#include "dataflow_testing/mosquitto_server.h"
#include "dataflow_testing/pubsub_emulator.h"
#include "dataflow_testing/redis_server.h"
#include "dataflow_testing/server_process.h"
#include "dataflow_testing/storage_emulator.h"
#include "e2e_readings.h"

namespace dataflow::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr char kProject[] = "e2e-project";
constexpr char kDataset[] = "e2e";
constexpr char kBucket[] = "e2e-archive";
// Every Pub/Sub source: short leases, and streams renewed every 10 s. The emulator never
// ends the StreamingPull of a SIGKILLed copy by itself; the stream's deadline does, and until
// then it keeps leasing messages into it (see docs/pubsub.md).
constexpr char kLeaseAndStream[] = ", ack_deadline: 10s, max_stream_duration: 10s";
constexpr int kDevices = 6;  // device-5 has no registry document: it passes unenriched

std::string DeviceLocation(int i) { return i % 2 == 0 ? "london" : "paris"; }

struct Servers {
  std::unique_ptr<MosquittoServer> mosquitto;
  std::unique_ptr<PubsubEmulator> pubsub;
  std::unique_ptr<FirestoreEmulator> firestore;
  std::unique_ptr<RedisServer> redis;
  std::unique_ptr<StorageEmulator> storage;
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
    g_servers->firestore = check(FirestoreEmulator::Start(), "firestore emulator");
    g_servers->redis = check(RedisServer::Start(), "redis");
    g_servers->storage = check(StorageEmulator::Start(), "storage emulator");
    g_servers->bigquery = check(BigQueryTestServer::Start(), "bigquery test server");
    // This process seeds Firestore; the dataflow processes get the variables explicitly.
    ::setenv("FIRESTORE_EMULATOR_HOST", g_servers->firestore->host().c_str(), 1);
  }
  void TearDown() override {
    delete g_servers;
    g_servers = nullptr;
  }
};

// `dataflow ARGS...` to completion: exit code and combined output.
struct CommandResult {
  int exit_code = -1;
  std::string output;
};
CommandResult RunDataflow(const std::string& args) {
  CommandResult r;
  const std::string command = std::string(DATAFLOW_BINARY) + " " + args + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return r;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof(buf), pipe)) r.output.append(buf, n);
  const int status = ::pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// One test's resources (unique names) and the configs of its dataflow processes.
class PipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    // Letters and digits only: it names topics, a table and MQTT topics ("Test/param" too).
    for (char c : std::string(info->name())) {
      if (std::isalnum(static_cast<unsigned char>(c)) != 0) {
        tag_ += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      }
    }
    static int runs = 0;  // unique names under --gtest_repeat too: the servers keep state
    tag_ += std::to_string(++runs);
    dir_ = fs::temp_directory_path() / ("dataflow-e2e-" + tag_ + "-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    g_servers->bigquery->FailNextAppends(0, absl::OkStatus());  // a failed test's injection
    SeedRegistry();
  }
  void TearDown() override {
    processes_.clear();  // stops whatever a failed test left running
    if (!HasFailure()) fs::remove_all(dir_);
  }

  std::string Topic(const std::string& name) const { return tag_ + "-" + name; }
  std::string Table() const { return "readings_" + tag_; }
  std::string Collection() const { return "devices-" + tag_; }

  void SeedRegistry() {
    auto registry = cache::FirestorePresenceCache<std::string, nlohmann::json>::Create(
        {.project_id = kProject, .collection_name = Collection()});
    ASSERT_TRUE(registry.ok()) << registry.status();
    for (int i = 0; i + 1 < kDevices; ++i) {
      ASSERT_TRUE((*registry)
                      ->Set(DeviceId(i), {{"name", "Sensor " + std::to_string(i)},
                                          {"location", DeviceLocation(i)}})
                      .ok());
    }
  }

  std::string IngestionYaml() const {
    return "  - name: ingestion\n"
           "    ingestion:\n"
           "      mqtt:\n"
           "        broker_url: tcp://127.0.0.1:" +
           std::to_string(g_servers->mosquitto->port()) +
           "\n"
           "        client_id: e2e-" +
           tag_ +
           "\n"
           "        clean_session: false\n"
           "        topic_mappings: [{name: telemetry, topic: \"" +
           tag_ +
           "/+/telemetry\", qos: 1}]\n"
           "      sink: pubsub\n"
           "      routes: {telemetry: " +
           Topic("raw") + "}\n";
  }
  std::string EnrichmentYaml(const std::string& name) const {
    return "  - name: " + name +
           "\n"
           "    enrichment:\n"
           "      source: {pubsub: {subscription: " +
           Topic("raw-enrichment") + ", topic: " + Topic("raw") + kLeaseAndStream +
           "}}\n"
           "      sink: pubsub\n"
           "      topic: " +
           Topic("enriched") +
           "\n"
           "      key: {json_field: deviceId}\n"
           "      cache:\n"
           "        lru: {max_size: 100}\n"
           "        redis: {addr: \"" +
           g_servers->redis->addr() + "\", cache_ttl: 1m, key_prefix: \"" + tag_ +
           ":\"}\n"
           "        firestore: {collection: " +
           Collection() +
           "}\n"
           "      on_not_found: pass_unenriched\n"
           "      on_error: nack\n";
  }
  std::string SinksYaml() const { return BigQueryYaml() + IceStoreYaml(); }
  std::string BigQueryYaml() const {
    return "  - name: bigquery\n"
           "    bigquery:\n"
           "      source: {pubsub: {subscription: " +
           Topic("enriched-bigquery") + ", topic: " + Topic("enriched") + kLeaseAndStream +
           "}}\n"
           "      batch_size: 50\n"
           "      flush_interval: 200ms\n"
           "      table: {dataset: " +
           kDataset + ", table: " + Table() + ", create_dataset: true, rest_endpoint: \"" +
           g_servers->bigquery->rest_endpoint() + "\", grpc_endpoint: \"" +
           g_servers->bigquery->grpc_endpoint() + "\"}\n" + kReadingsSchemaYaml;
  }
  std::string IceStoreYaml() const {
    return "  - name: icestore\n"
           "    icestore:\n"
           "      source: {pubsub: {subscription: " +
           Topic("enriched-icestore") + ", topic: " + Topic("enriched") + kLeaseAndStream +
           "}}\n"
           "      batch_size: 100\n"
           "      flush_interval: 300ms\n"
           "      gcs: {bucket: " +
           kBucket + ", prefix: " + tag_ + "}\n";
  }

  // Writes a config with `services` and starts `dataflow run` on it; ready when /readyz is 200.
  ServerProcess* StartDataflow(const std::string& name, const std::string& services) {
    const int ops_port = FreeTcpPort();
    const fs::path config = dir_ / (name + ".yaml");
    std::ofstream(config) << "project: " << kProject
                          << "\ncreate_pubsub_resources: true\nshutdown_timeout: 20s\n"
                          << "ops: {host: 127.0.0.1, port: " << ops_port << "}\nservices:\n"
                          << services;
    auto process = ServerProcess::Start(
        {.name = "dataflow-" + name,
         .argv = {DATAFLOW_BINARY, "run", config.string()},
         .env = {{"PUBSUB_EMULATOR_HOST", g_servers->pubsub->host()},
                 {"FIRESTORE_EMULATOR_HOST", g_servers->firestore->host()},
                 {"STORAGE_EMULATOR_HOST", g_servers->storage->host()},
                 {"DATAFLOW_LOG_LEVEL", "info"}},
         .ready = [ops_port] { return HttpGetStatus(ops_port, "/readyz") == 200; },
         .ready_timeout = std::chrono::seconds(60)});
    EXPECT_TRUE(process.ok()) << process.status();
    if (!process.ok()) return nullptr;
    ops_ports_[name] = ops_port;
    return (processes_[name] = *std::move(process)).get();
  }

  // A counter from a process's /metrics, summed over the label sets that contain `labels`.
  double Metric(const std::string& process, const std::string& family, const std::string& labels) {
    std::string body;
    if (HttpGetStatus(ops_ports_[process], "/metrics", &body) != 200) return -1;
    double sum = 0;
    std::istringstream lines(body);
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind(family + "{", 0) != 0 || line.find(labels) == std::string::npos) continue;
      sum += std::stod(line.substr(line.rfind(' ') + 1));
    }
    return sum;
  }

  void PublishReadings(int first, int count) {
    dataflow::testing::PublishReadings(g_servers->mosquitto->url(), "e2e-devices-" + tag_, tag_,
                                       first, count, kDevices);
  }

  using Seen = SeenReadings;

  Seen Rows(std::vector<nlohmann::json>* rows_out = nullptr) const {
    Seen seen;
    auto rows = g_servers->bigquery->Rows(kProject, kDataset, Table());
    for (const auto& row : rows) {
      seen.Add(static_cast<int>(row.at("temperature").get<double>()));
    }
    if (rows_out) *rows_out = std::move(rows);
    return seen;
  }

  // With `keys_out`: the batch key of every line, by reading number.
  Seen ArchivedLines(std::multimap<int, std::string>* keys_out = nullptr) const {
    Seen seen;
    auto names = g_servers->storage->List(kBucket, tag_ + "/");
    if (!names.ok()) return seen;
    for (const auto& name : *names) {
      auto bytes = g_servers->storage->Download(kBucket, name);
      if (!bytes.ok()) continue;
      if (auto added = AddArchivedReadings(*bytes, seen, keys_out); !added.ok()) {
        ADD_FAILURE() << name << ": " << added;
      }
    }
    return seen;
  }

  // Waits until both sinks hold every reading in [0, count).
  void ExpectEveryReadingArrives(int count, std::chrono::seconds timeout) {
    const bool arrived = WaitFor(
        [&] {
          return Rows().distinct() >= static_cast<std::size_t>(count) &&
                 ArchivedLines().distinct() >= static_cast<std::size_t>(count);
        },
        timeout, std::chrono::milliseconds(250));
    const Seen rows = Rows();
    const Seen lines = ArchivedLines();
    EXPECT_TRUE(arrived) << "rows " << rows.distinct() << "/" << count << ", archived lines "
                         << lines.distinct() << "/" << count;
    for (int n = 0; n < count; ++n) {
      EXPECT_TRUE(rows.copies.contains(n)) << "reading " << n << " has no row";
      EXPECT_TRUE(lines.copies.contains(n)) << "reading " << n << " was not archived";
    }
    std::printf(
        "[e2e %s] %d readings: %zu rows (%zu duplicates), %zu archived lines (%zu "
        "duplicates)\n",
        tag_.c_str(), count, rows.total, rows.duplicates(), lines.total, lines.duplicates());
  }

  int StopAndExitCode(const std::string& name) {
    processes_[name]->Stop(std::chrono::seconds(30));
    return processes_[name]->last_exit_code();
  }

  std::string tag_;
  fs::path dir_;
  std::map<std::string, std::unique_ptr<ServerProcess>> processes_;
  std::map<std::string, int> ops_ports_;
};

TEST_F(PipelineTest, EveryReadingIsStoredAndArchivedEnriched) {
  ASSERT_NE(StartDataflow("all", IngestionYaml() + EnrichmentYaml("enrichment") + SinksYaml()),
            nullptr);
  constexpr int kReadings = 300;
  PublishReadings(0, kReadings);
  ExpectEveryReadingArrives(kReadings, std::chrono::seconds(90));

  std::vector<nlohmann::json> rows;
  Rows(&rows);
  for (const auto& row : rows) {
    const int n = static_cast<int>(row.at("temperature").get<double>());
    const int device = n % kDevices;
    ASSERT_EQ(row.at("device_id"), DeviceId(device));
    if (device + 1 < kDevices) {
      EXPECT_EQ(row.at("device_name"), "Sensor " + std::to_string(device)) << row.dump();
      EXPECT_EQ(row.at("location"), DeviceLocation(device)) << row.dump();
    } else {
      EXPECT_TRUE(row.at("device_name").is_null()) << "unknown device enriched: " << row.dump();
    }
  }
  // Archives are grouped by date/location: the location from the registry.
  // Each line sits under YYYY/MM/DD/<the device's location>; the unknown device has none.
  std::multimap<int, std::string> keys;
  ArchivedLines(&keys);
  for (const auto& [n, key] : keys) {
    const int device = n % kDevices;
    const std::vector<std::string> parts = absl::StrSplit(key, '/');
    if (device + 1 < kDevices) {
      ASSERT_EQ(parts.size(), 4u) << key;
      EXPECT_EQ(parts[3], DeviceLocation(device)) << "reading " << n;
    } else {
      EXPECT_EQ(parts.size(), 3u) << "unknown device archived under " << key;
    }
  }

  EXPECT_EQ(Metric("all", "dataflow_messages_received_total", "service=\"enrichment\""),
            static_cast<double>(kReadings));
  EXPECT_EQ(StopAndExitCode("all"), 0) << Slurp(processes_["all"]->log_path());
}

TEST_F(PipelineTest, TwoEnrichmentCopiesShareTheSubscription) {
  ASSERT_NE(StartDataflow("edges", IngestionYaml() + SinksYaml()), nullptr);
  ASSERT_NE(StartDataflow("enrich-a", EnrichmentYaml("enrichment")), nullptr);
  ASSERT_NE(StartDataflow("enrich-b", EnrichmentYaml("enrichment")), nullptr);
  constexpr int kReadings = 600;
  PublishReadings(0, kReadings);
  ExpectEveryReadingArrives(kReadings, std::chrono::seconds(90));
  const double a =
      Metric("enrich-a", "dataflow_messages_processed_total", "service=\"enrichment\"");
  const double b =
      Metric("enrich-b", "dataflow_messages_processed_total", "service=\"enrichment\"");
  std::printf("[e2e %s] enrichment copies processed %.0f and %.0f\n", tag_.c_str(), a, b);
  EXPECT_GE(a + b, kReadings);
  for (const char* p : {"enrich-a", "enrich-b", "edges"}) EXPECT_EQ(StopAndExitCode(p), 0) << p;
}

// Each kind of service, one per process, SIGKILLed while it works and restarted: nothing is
// lost; duplicates (at-least-once) are counted and printed.
class PipelineKillTest : public PipelineTest, public ::testing::WithParamInterface<const char*> {};

TEST_P(PipelineKillTest, AKilledServiceLosesNothingAfterRestart) {
  const std::string victim = GetParam();
  const std::map<std::string, std::string> services = {{"ingestion", IngestionYaml()},
                                                       {"enrichment", EnrichmentYaml("enrichment")},
                                                       {"bigquery", BigQueryYaml()},
                                                       {"icestore", IceStoreYaml()}};
  // Sinks first, so nothing published is left without a subscription.
  for (const char* name : {"bigquery", "icestore", "enrichment", "ingestion"}) {
    ASSERT_NE(StartDataflow(name, services.at(name)), nullptr) << name;
  }
  constexpr int kReadings = 400;
  PublishReadings(0, kReadings / 2);
  // Kill it while it works: some readings stored, some in flight, some not pulled yet.
  ASSERT_TRUE(WaitFor(
      [&] {
        return Rows().distinct() >= kReadings / 8 && ArchivedLines().distinct() >= kReadings / 8;
      },
      std::chrono::seconds(60)));
  ServerProcess* process = processes_[victim].get();
  process->Kill();
  EXPECT_EQ(process->last_exit_code(), 128 + SIGKILL);
  const auto killed = std::chrono::steady_clock::now();
  PublishReadings(kReadings / 2, kReadings / 2);  // arrives while the service is down
  ASSERT_TRUE(process->Restart().ok());
  const auto restarted = std::chrono::steady_clock::now();
  // Pub/Sub: the emulator does not notice that the killed copy's StreamingPull is dead. It
  // keeps leasing batches into it, an expired lease often going back to the same dead
  // stream, until the stream's gRPC deadline (max_stream_duration, 10 s) ends it; then what
  // it held comes back once its 10 s leases run out. (Without the deadline, recovery took
  // 10 s steps up to 91 s.) MQTT: the broker keeps the persistent session's unacknowledged
  // and queued messages for the restarted ingestion.
  ExpectEveryReadingArrives(kReadings, std::chrono::seconds(120));
  auto seconds = [](auto d) { return std::chrono::duration<double>(d).count(); };
  std::printf(
      "[e2e %s] %s killed: restart ready after %.1f s, every reading stored %.1f s "
      "after the kill\n",
      tag_.c_str(), victim.c_str(), seconds(restarted - killed),
      seconds(std::chrono::steady_clock::now() - killed));
  for (const char* name : {"ingestion", "enrichment", "bigquery", "icestore"}) {
    EXPECT_EQ(StopAndExitCode(name), 0) << name;
  }
}

INSTANTIATE_TEST_SUITE_P(EachServiceKind, PipelineKillTest,
                         ::testing::Values("ingestion", "enrichment", "bigquery", "icestore"),
                         [](const auto& info) { return std::string(info.param); });

// The default flush_interval (1 min) holds a partial batch far longer than the 10 s ack
// deadline: the consumer's lease extensions (across stream renewals every 10 s) must keep it
// from being redelivered, and SIGTERM flushes it. Without faults: every reading exactly once.
TEST_F(PipelineTest, HeldPartialBatchIsNotRedeliveredAndStoppingStoresItOnce) {
  // BigQueryYaml() with the default flush_interval and full batches of 100.
  const std::string bigquery =
      "  - name: bigquery\n"
      "    bigquery:\n"
      "      source: {pubsub: {subscription: " +
      Topic("enriched-bigquery") + ", topic: " + Topic("enriched") + kLeaseAndStream +
      "}}\n"
      "      batch_size: 100\n"
      "      table: {dataset: " +
      kDataset + ", table: " + Table() + ", create_dataset: true, rest_endpoint: \"" +
      g_servers->bigquery->rest_endpoint() + "\", grpc_endpoint: \"" +
      g_servers->bigquery->grpc_endpoint() + "\"}\n" + kReadingsSchemaYaml;
  ASSERT_NE(StartDataflow("held", bigquery + EnrichmentYaml("enrichment") + IngestionYaml()),
            nullptr);
  constexpr int kReadings = 250;
  PublishReadings(0, kReadings);
  auto received = [&] {
    return Metric("held", "dataflow_messages_received_total", "service=\"bigquery\"");
  };
  // Two full batches stored, the rest of the readings received and held.
  ASSERT_TRUE(WaitFor([&] { return Rows().total >= 200 && received() >= kReadings; },
                      std::chrono::seconds(60)))
      << Rows().total << " rows, " << received() << " received";
  // Past the ack deadline (10 s) and a stream renewal: nothing more arrives.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(12);
  while (std::chrono::steady_clock::now() < until) {
    ASSERT_EQ(received(), kReadings);
    ASSERT_EQ(Rows().total, 200u);  // the 50 are held for the flush interval
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  EXPECT_EQ(StopAndExitCode("held"), 0) << Slurp(processes_["held"]->log_path());
  const Seen rows = Rows();
  EXPECT_EQ(rows.total, static_cast<std::size_t>(kReadings));
  EXPECT_EQ(rows.distinct(), static_cast<std::size_t>(kReadings));
  EXPECT_EQ(rows.duplicates(), 0u);
}

// A sink that keeps failing: at SIGTERM the messages it holds are nacked, the process says
// so and exits 1 (the broker redelivers them; nothing is acked that was not stored).
TEST_F(PipelineTest, NackedAtStopMeansExitCode1) {
  // Attempts enough to outlast the test: the readings must still be nacked when it stops
  // (with the default 5 they would be given up on and dropped, and the stop would be clean).
  std::string sinks = SinksYaml();
  const std::string batch = "      batch_size: 50\n";
  sinks.replace(sinks.find(batch), batch.size(), batch + "      max_delivery_attempts: 1000\n");
  ASSERT_NE(StartDataflow("failing", IngestionYaml() + EnrichmentYaml("enrichment") + sinks),
            nullptr);
  g_servers->bigquery->FailNextAppends(1000000, absl::UnavailableError("injected outage"));
  PublishReadings(0, 100);
  const bool nacking = WaitFor(
      [&] {
        return Metric("failing", "dataflow_messages_nacked_total", "service=\"bigquery\"") > 0;
      },
      std::chrono::seconds(60), std::chrono::milliseconds(100));
  EXPECT_TRUE(nacking);
  EXPECT_EQ(Rows().total, 0u);
  EXPECT_EQ(StopAndExitCode("failing"), 1);
  EXPECT_THAT(Slurp(processes_["failing"]->log_path()), HasSubstr("stop was not clean"));
}

long long SqliteCount(const fs::path& db, const std::string& table) {
  sqlite3* conn = nullptr;
  long long rows = -1;
  if (sqlite3_open_v2(db.c_str(), &conn, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* stmt = nullptr;
    const std::string sql = "SELECT COUNT(DISTINCT temperature) FROM " + table;
    if (sqlite3_prepare_v2(conn, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      rows = sqlite3_column_int64(stmt, 0);
    }
    sqlite3_finalize(stmt);
  }
  sqlite3_close(conn);
  return rows;
}

std::size_t LocalArchiveLines(const fs::path& root) {
  std::size_t lines = 0;
  if (!fs::exists(root)) return 0;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (!entry.is_regular_file() || entry.path().extension() != ".gz") continue;
    auto text = icestore::GzipDecompress(Slurp(entry.path().string()));
    if (text.ok()) lines += static_cast<std::size_t>(std::count(text->begin(), text->end(), '\n'));
  }
  return lines;
}

// The shipped one-process config: in-process topics, SQLite, local archive; SIGTERM drains
// the in-process topics before the process exits 0.
TEST_F(PipelineTest, ShippedLocalConfigRunsAndStopsCleanly) {
  const int ops_port = FreeTcpPort();
  std::ofstream(dir_ / "registry.json")
      << R"({"device-0": {"name": "Sensor 0", "location": "london"}})";
  auto process = ServerProcess::Start(
      {.name = "dataflow-local",
       .argv = {DATAFLOW_BINARY, "run", std::string(DATAFLOW_SOURCE_DIR) + "/config/local.yaml"},
       .env = {{"MQTT_URL", "tcp://127.0.0.1:" + std::to_string(g_servers->mosquitto->port())},
               {"DATAFLOW_REGISTRY", (dir_ / "registry.json").string()},
               {"DATAFLOW_OUT", dir_.string()},
               {"DATAFLOW_OPS_PORT", std::to_string(ops_port)}},
       .ready = [ops_port] { return HttpGetStatus(ops_port, "/readyz") == 200; }});
  ASSERT_TRUE(process.ok()) << process.status();
  // The shipped config subscribes to devices/+/telemetry.
  mqtt::async_client client("tcp://127.0.0.1:" + std::to_string(g_servers->mosquitto->port()),
                            "e2e-local-devices");
  client.connect(mqtt::connect_options_builder().clean_session(true).finalize())->wait();
  constexpr int kReadings = 200;
  for (int n = 0; n < kReadings; ++n) {
    const nlohmann::json body = {{"deviceId", DeviceId(n % 2)}, {"temperature", n}};
    client
        .publish(
            mqtt::make_message("devices/" + DeviceId(n % 2) + "/telemetry", body.dump(), 1, false))
        ->wait();
  }
  client.disconnect()->wait();
  EXPECT_TRUE(WaitFor(
      [&] {
        return SqliteCount(dir_ / "warehouse.db", "readings") == kReadings &&
               LocalArchiveLines(dir_ / "archive") == kReadings;
      },
      std::chrono::seconds(60), std::chrono::milliseconds(100)))
      << "rows " << SqliteCount(dir_ / "warehouse.db", "readings") << ", lines "
      << LocalArchiveLines(dir_ / "archive");
  (*process)->Stop(std::chrono::seconds(40));
  EXPECT_EQ((*process)->last_exit_code(), 0) << Slurp((*process)->log_path());
}

TEST(DataflowProgramTest, BadConfigsExitWithCode2AndSayWhere) {
  const fs::path dir =
      fs::temp_directory_path() / ("dataflow-e2e-bad-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "bad.yaml") << "services:\n  - name: e\n    enrichment:\n"
                                     "      source: {pubsub: {subscription: s}}\n"
                                     "      sink: pubsub\n      topic: t\n"
                                     "      key: {json_field: id}\n"
                                     "      cache: {redis: {db: 1}, json_file: r.json}\n";
  for (const char* command : {"validate", "run"}) {
    auto r = RunDataflow(std::string(command) + " " + (dir / "bad.yaml").string());
    EXPECT_EQ(r.exit_code, 2) << command << ": " << r.output;
    EXPECT_THAT(r.output, HasSubstr("services[0].enrichment.cache.redis.addr: missing")) << command;
  }
  auto missing = RunDataflow("run " + (dir / "nope.yaml").string());
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_THAT(missing.output, HasSubstr("cannot read the config file"));
  auto usage = RunDataflow("run");
  EXPECT_EQ(usage.exit_code, 2) << usage.output;
  fs::remove_all(dir);
}

TEST(DataflowProgramTest, AnUnreachableBackendFailsTheStartClearly) {
  const fs::path dir =
      fs::temp_directory_path() / ("dataflow-e2e-unreachable-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "registry.json") << R"({"d1": {"name": "x", "location": "y"}})";
  const int closed_port = FreeTcpPort();  // nothing listens there
  std::ofstream(dir / "c.yaml")
      << "ops: {enabled: false}\n"
         "in_process: {topics: [a, b], subscriptions: [{name: s2, topic: b}, {name: s, "
         "topic: a}]}\nservices:\n  - name: e\n    enrichment:\n"
         "      source: {in_process: {subscription: s}}\n"
         "      sink: in_process\n      topic: b\n"
         "      key: {json_field: id}\n"
         "      cache: {redis: {addr: \"127.0.0.1:"
      << closed_port << "\"}, json_file: " << (dir / "registry.json").string() << "}\n";
  auto r = RunDataflow("run " + (dir / "c.yaml").string());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("services[0] (e)"));
  EXPECT_THAT(r.output, HasSubstr("127.0.0.1:" + std::to_string(closed_port)));
  fs::remove_all(dir);
}

// gtest owns the environment.
[[maybe_unused]] const auto* const kServers =
    ::testing::AddGlobalTestEnvironment(new ServersEnvironment);

}  // namespace
}  // namespace dataflow::testing

// End to end, the shipped one-process pipeline (config/local.yaml: MQTT → ingestion →
// in-process topics → enrichment → {SQLite, local gzip archive}) killed with SIGKILL at three
// points while 20 000 QoS 1 readings flow, and restarted each time. In-process topics keep
// messages in memory only, so this holds only because an MQTT PUBACK goes out once the
// reading is stored by *both* sinks (end-to-end acknowledgement): what a crash takes with it
// was never acknowledged, and the broker sends it again to the persistent session.
// Each reading carries a unique number (its temperature): loss fails the test, duplicates
// (at-least-once) are counted and printed.
#include <gtest/gtest.h>
#include <mqtt/async_client.h>
#include <sqlite3.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "dataflow/icestore/archival.h"
#include "dataflow/icestore/gzip.h"
#include "dataflow/messagepipeline/message.h"
#include "dataflow_testing/mosquitto_server.h"
#include "dataflow_testing/server_process.h"

namespace dataflow::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr int kReadings = 20000;
constexpr int kDevices = 10;

std::string DeviceId(int i) { return "device-" + std::to_string(i); }

std::string Slurp(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Reading numbers → copies seen.
struct Seen {
  std::map<int, int> copies;
  std::size_t total = 0;
  [[nodiscard]] std::size_t distinct() const { return copies.size(); }
  [[nodiscard]] std::size_t duplicates() const { return total - copies.size(); }
};

Seen SqliteReadings(const fs::path& db) {
  Seen seen;
  sqlite3* conn = nullptr;
  if (sqlite3_open_v2(db.c_str(), &conn, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_busy_timeout(conn, 2000);
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(conn, "SELECT temperature FROM readings", -1, &stmt, nullptr) ==
        SQLITE_OK) {
      while (sqlite3_step(stmt) == SQLITE_ROW) {
        ++seen.copies[static_cast<int>(sqlite3_column_double(stmt, 0))];
        ++seen.total;
      }
    }
    sqlite3_finalize(stmt);
  }
  sqlite3_close(conn);
  return seen;
}

// Objects are written under a temporary name and renamed, so every .gz is whole.
Seen ArchivedReadings(const fs::path& root) {
  Seen seen;
  if (!fs::exists(root)) return seen;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (!entry.is_regular_file() || entry.path().extension() != ".gz") continue;
    auto text = icestore::GzipDecompress(Slurp(entry.path()));
    if (!text.ok()) {
      ADD_FAILURE() << entry.path() << " is not gzip: " << text.status();
      continue;
    }
    std::istringstream lines(*text);
    for (std::string line; std::getline(lines, line);) {
      auto data = icestore::DecodeArchivalLine(line);
      if (!data.ok()) {
        ADD_FAILURE() << entry.path() << ": " << data.status();
        continue;
      }
      auto envelope = messagepipeline::DecodeMessageData(data->original_payload);
      if (!envelope.ok()) {
        ADD_FAILURE() << entry.path() << ": " << envelope.status();
        continue;
      }
      // The archive keeps whatever it is given; only readings have a number to count.
      const auto body = nlohmann::json::parse(envelope->payload, nullptr, false);
      if (!body.is_object() || !body.contains("temperature")) continue;
      ++seen.copies[body.at("temperature").get<int>()];
      ++seen.total;
    }
  }
  return seen;
}

// `dataflow run config/local.yaml` writing under `dir`, on `broker_url`, ready once /readyz
// answers 200.
absl::StatusOr<std::unique_ptr<ServerProcess>> StartLocalPipeline(
    const fs::path& dir, const std::string& broker_url, int ops_port,
    std::map<std::string, std::string> extra_env = {}) {
  std::map<std::string, std::string> env = {{"MQTT_URL", broker_url},
                                            {"DATAFLOW_REGISTRY", (dir / "registry.json").string()},
                                            {"DATAFLOW_OUT", dir.string()},
                                            {"DATAFLOW_OPS_PORT", std::to_string(ops_port)}};
  env.merge(extra_env);
  return ServerProcess::Start(
      {.name = "dataflow-local",
       .argv = {DATAFLOW_BINARY, "run", std::string(DATAFLOW_SOURCE_DIR) + "/config/local.yaml"},
       .env = std::move(env),
       .ready = [ops_port] { return HttpGetStatus(ops_port, "/readyz") == 200; }});
}

TEST(LocalPipelineCrashTest, SigkillAtThreePointsLosesNoReading) {
  auto mosquitto = MosquittoServer::Start();
  ASSERT_TRUE(mosquitto.ok()) << mosquitto.status();
  const fs::path dir = fs::temp_directory_path() / ("dataflow-crash-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  {
    nlohmann::json registry;
    for (int i = 0; i < kDevices; ++i) {
      registry[DeviceId(i)] = {{"name", "Sensor " + std::to_string(i)},
                               {"location", i % 2 == 0 ? "london" : "paris"}};
    }
    std::ofstream(dir / "registry.json") << registry.dump();
  }
  const int ops_port = FreeTcpPort();
  const std::string broker_url = "tcp://127.0.0.1:" + std::to_string((*mosquitto)->port());
  auto process = StartLocalPipeline(dir, broker_url, ops_port, {{"DATAFLOW_LOG_LEVEL", "warn"}});
  ASSERT_TRUE(process.ok()) << process.status();

  // The devices: QoS 1, each publish acknowledged by the broker before the next.
  std::atomic<int> published{0};
  std::jthread devices([&] {
    mqtt::async_client client(broker_url, "crash-test-devices");
    client.connect(mqtt::connect_options_builder().clean_session(true).finalize())->wait();
    for (int n = 0; n < kReadings; ++n) {
      const nlohmann::json body = {{"deviceId", DeviceId(n % kDevices)}, {"temperature", n}};
      client
          .publish(mqtt::make_message("devices/" + DeviceId(n % kDevices) + "/telemetry",
                                      body.dump(), 1, false))
          ->wait();
      published.store(n + 1);
    }
    client.disconnect()->wait();
  });

  const fs::path db = dir / "warehouse.db";
  const fs::path archive = dir / "archive";
  auto stored = [&] { return SqliteReadings(db).distinct(); };
  // Early, in the middle, and during the final flush (the last readings still in batches).
  struct KillPoint {
    const char* name;
    std::function<bool()> reached;
  };
  const KillPoint points[] = {
      {"early", [&] { return stored() >= 500; }},
      {"middle", [&] { return stored() >= kReadings / 2; }},
      {"final flush",
       [&] { return published.load() == kReadings && stored() >= kReadings - 1500; }},
  };
  for (const KillPoint& point : points) {
    ASSERT_TRUE(WaitFor(point.reached, 180s, 5ms))
        << point.name << ": stored " << stored() << ", published " << published.load() << "\n"
        << Slurp((*process)->log_path());
    const std::size_t before = stored();
    (*process)->Kill();
    std::printf("killed %s: %zu readings stored, %d published\n", point.name, before,
                published.load());
    ASSERT_TRUE((*process)->Restart().ok()) << Slurp((*process)->log_path());
  }
  devices.join();

  const bool complete = WaitFor(
      [&] {
        return SqliteReadings(db).distinct() == kReadings &&
               ArchivedReadings(archive).distinct() == kReadings;
      },
      180s, 250ms);
  const Seen rows = SqliteReadings(db);
  const Seen lines = ArchivedReadings(archive);
  EXPECT_TRUE(complete) << "rows " << rows.distinct() << "/" << kReadings << ", archived "
                        << lines.distinct() << "/" << kReadings;
  for (int n = 0; n < kReadings; ++n) {
    if (!rows.copies.contains(n)) ADD_FAILURE() << "reading " << n << " has no row";
    if (!lines.copies.contains(n)) ADD_FAILURE() << "reading " << n << " was not archived";
    if (HasFailure()) break;  // one missing reading is enough to see
  }
  std::printf("after 3 SIGKILLs: %zu rows (%zu duplicates), %zu archived lines (%zu duplicates)\n",
              rows.total, rows.duplicates(), lines.total, lines.duplicates());
  EXPECT_EQ(ArchivedReadings(dir / "dead-letters").total, 0u);
  (*process)->Stop(40s);
  EXPECT_EQ((*process)->last_exit_code(), 0) << Slurp((*process)->log_path());
  if (!HasFailure()) fs::remove_all(dir);
}

// A counter of /metrics for one service, or -1.
long long MetricValue(int ops_port, const std::string& family, const std::string& service) {
  std::string body;
  if (HttpGetStatus(ops_port, "/metrics", &body) != 200) return -1;
  const std::string prefix = family + "{service=\"" + service + "\"} ";
  const auto at = body.find(prefix);
  if (at == std::string::npos) return -1;
  return std::atoll(body.c_str() + at + prefix.size());
}

// With the sinks' default flush_interval (1 min), readings wait in a half-full batch far longer
// than a Pub/Sub-style 10 s lease: held messages must not be redelivered meanwhile, so a run
// without faults stores each reading exactly once.
TEST(LocalPipelineTest, DefaultFlushIntervalWritesEachReadingOnce) {
  auto mosquitto = MosquittoServer::Start();
  ASSERT_TRUE(mosquitto.ok()) << mosquitto.status();
  const fs::path dir = fs::temp_directory_path() / ("dataflow-once-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "registry.json")
      << R"({"device-0": {"name": "Sensor 0", "location": "london"}})";
  const int ops_port = FreeTcpPort();
  const std::string broker_url = "tcp://127.0.0.1:" + std::to_string((*mosquitto)->port());
  // The library's default flush interval instead of the demo's 500 ms, and no idle flush: only
  // a full batch (of 100 here; the shipped cap is larger), or the stop, writes.
  auto process =
      StartLocalPipeline(dir, broker_url, ops_port,
                         {{"DATAFLOW__SERVICES__BIGQUERY__BIGQUERY__BATCH_SIZE", "100"},
                          {"DATAFLOW__SERVICES__BIGQUERY__BIGQUERY__FLUSH_INTERVAL", "1m"},
                          {"DATAFLOW__SERVICES__BIGQUERY__BIGQUERY__FLUSH_WHEN_IDLE", "false"},
                          {"DATAFLOW__SERVICES__ICESTORE__ICESTORE__FLUSH_INTERVAL", "1m"},
                          {"DATAFLOW__SERVICES__ICESTORE__ICESTORE__FLUSH_WHEN_IDLE", "false"}});
  ASSERT_TRUE(process.ok()) << process.status();
  mqtt::async_client client(broker_url, "once-test-devices");
  client.connect(mqtt::connect_options_builder().clean_session(true).finalize())->wait();
  constexpr int kCount = 250;  // bigquery: two full batches of 100, then 50 held for 1 min
  for (int n = 0; n < kCount; ++n) {
    const nlohmann::json body = {{"deviceId", DeviceId(0)}, {"temperature", n}};
    client.publish(mqtt::make_message("devices/device-0/telemetry", body.dump(), 1, false))->wait();
  }
  client.disconnect()->wait();
  ASSERT_TRUE(WaitFor(
      [&] {
        return MetricValue(ops_port, "dataflow_messages_received_total", "bigquery") == kCount;
      },
      60s, 50ms));
  // Past the 10 s a lease used to last: nothing comes back while the batch holds it.
  EXPECT_FALSE(WaitFor(
      [&] {
        return MetricValue(ops_port, "dataflow_messages_received_total", "bigquery") > kCount;
      },
      12s, 200ms));
  EXPECT_EQ(SqliteReadings(dir / "warehouse.db").total, 200u) << "the last 50 wait for the flush";
  (*process)->Stop(40s);  // SIGTERM: the held batch is flushed
  EXPECT_EQ((*process)->last_exit_code(), 0) << Slurp((*process)->log_path());
  const Seen rows = SqliteReadings(dir / "warehouse.db");
  const Seen lines = ArchivedReadings(dir / "archive");
  EXPECT_EQ(rows.distinct(), static_cast<std::size_t>(kCount));
  EXPECT_EQ(rows.duplicates(), 0u);
  EXPECT_EQ(lines.distinct(), static_cast<std::size_t>(kCount));
  EXPECT_EQ(lines.duplicates(), 0u);
  if (!HasFailure()) fs::remove_all(dir);
}

// Poison among good readings: messages that can never be stored by one of the sinks are
// dead-lettered by that sink on their first attempt (permanent errors), archived with the
// reason, and never hold back or lose the good readings around them.
TEST(LocalPipelineTest, PoisonReadingsAreDeadLetteredAndTheGoodOnesAllStored) {
  auto mosquitto = MosquittoServer::Start();
  ASSERT_TRUE(mosquitto.ok()) << mosquitto.status();
  const fs::path dir =
      fs::temp_directory_path() / ("dataflow-poison-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  // device-far's location is too long to become an archive directory (a permanent error in
  // icestore for each of its readings; SQLite stores them).
  std::ofstream(dir / "registry.json")
      << R"({"device-0": {"name": "Sensor 0", "location": "london"},)"
      << R"("device-far": {"name": "Far", "location": ")" << std::string(300, 'x') << R"("}})";
  const int ops_port = FreeTcpPort();
  const std::string broker_url = "tcp://127.0.0.1:" + std::to_string((*mosquitto)->port());
  auto process = StartLocalPipeline(dir, broker_url, ops_port);
  ASSERT_TRUE(process.ok()) << process.status();
  mqtt::async_client client(broker_url, "poison-test-devices");
  client.connect(mqtt::connect_options_builder().clean_session(true).finalize())->wait();
  constexpr int kGood = 10000;
  auto send = [&](const std::string& device, const std::string& body) {
    client.publish(mqtt::make_message("devices/" + device + "/telemetry", body, 1, false))->wait();
  };
  for (int n = 0; n < kGood; ++n) {
    send(DeviceId(0), nlohmann::json{{"deviceId", DeviceId(0)}, {"temperature", n}}.dump());
    if (n == 100) send(DeviceId(0), "garbage, not JSON");            // SQLite cannot store it
    if (n == 5000) send(DeviceId(0), R"({"deviceId":"device-0"})");  // no temperature
    if (n == 9000) {
      send("device-far", R"({"deviceId":"device-far","temperature":-1})");  // icestore cannot
    }
  }
  client.disconnect()->wait();
  const bool stored = WaitFor(
      [&] {
        return SqliteReadings(dir / "warehouse.db").distinct() >= kGood &&
               ArchivedReadings(dir / "archive").distinct() >= kGood;
      },
      180s, 250ms);
  EXPECT_TRUE(stored) << "rows " << SqliteReadings(dir / "warehouse.db").distinct() << ", archived "
                      << ArchivedReadings(dir / "archive").distinct();
  // Three dead letters: two from the SQLite sink, one from the archive.
  ASSERT_TRUE(WaitFor(
      [&] {
        return MetricValue(ops_port, "dataflow_messages_dead_lettered_total", "bigquery") == 2 &&
               MetricValue(ops_port, "dataflow_messages_dead_lettered_total", "icestore") == 1;
      },
      60s, 100ms));
  // Permanent errors are given up on at once: nothing was nacked for another try.
  EXPECT_EQ(MetricValue(ops_port, "dataflow_messages_nacked_total", "bigquery"), 0);
  EXPECT_EQ(MetricValue(ops_port, "dataflow_messages_nacked_total", "icestore"), 0);
  (*process)->Stop(40s);
  EXPECT_EQ((*process)->last_exit_code(), 0) << Slurp((*process)->log_path());
  std::size_t dead_letters = 0;
  std::set<std::string> poison;  // the envelopes the sinks dead-lettered
  for (const auto& entry : fs::recursive_directory_iterator(dir / "dead-letters")) {
    if (!entry.is_regular_file() || entry.path().extension() != ".gz") continue;
    auto text = icestore::GzipDecompress(Slurp(entry.path()));
    ASSERT_TRUE(text.ok());
    std::istringstream lines(*text);
    for (std::string line; std::getline(lines, line);) {
      auto data = icestore::DecodeArchivalLine(line);
      ASSERT_TRUE(data.ok()) << data.status();
      ++dead_letters;
      auto envelope = messagepipeline::DecodeMessageData(data->original_payload);
      ASSERT_TRUE(envelope.ok()) << envelope.status();
      poison.insert(envelope->payload);
    }
  }
  EXPECT_EQ(dead_letters, 3u);
  std::string all;
  for (const auto& p : poison) all += p + "\n";
  EXPECT_NE(all.find("garbage"), std::string::npos) << all;
  EXPECT_NE(all.find("device-far"), std::string::npos) << all;

  EXPECT_EQ(SqliteReadings(dir / "warehouse.db").copies.count(-1), 1u) << "device-far in SQLite";
  if (!HasFailure()) fs::remove_all(dir);
}

}  // namespace
}  // namespace dataflow::testing

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
      ++seen.copies[nlohmann::json::parse(envelope->payload).at("temperature").get<int>()];
      ++seen.total;
    }
  }
  return seen;
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
  auto process = ServerProcess::Start(
      {.name = "dataflow-local",
       .argv = {DATAFLOW_BINARY, "run", std::string(DATAFLOW_SOURCE_DIR) + "/config/local.yaml"},
       .env = {{"MQTT_URL", broker_url},
               {"DATAFLOW_REGISTRY", (dir / "registry.json").string()},
               {"DATAFLOW_OUT", dir.string()},
               {"DATAFLOW_OPS_PORT", std::to_string(ops_port)},
               {"DATAFLOW_LOG_LEVEL", "warn"}},
       .ready = [ops_port] { return HttpGetStatus(ops_port, "/readyz") == 200; }});
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

}  // namespace
}  // namespace dataflow::testing

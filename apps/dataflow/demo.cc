#include "demo.h"

#include <absl/strings/str_cat.h>
#include <sqlite3.h>
#include <zlib.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <thread>

#include "child_process.h"
#include "config.h"
#include "demo_latency.h"
#include "loadgen.h"
#include "local_yaml.h"
#include "runner.h"

namespace dataflow::app {
namespace {

namespace fs = std::filesystem;
namespace mp = messagepipeline;
using SteadyClock = std::chrono::steady_clock;

void WriteDefaultRegistry(const fs::path& path, int devices) {
  static const char* kLocations[] = {"london", "paris", "berlin"};
  nlohmann::json j = nlohmann::json::object();
  // The last device is left out on purpose: the summary shows it passing unenriched.
  for (int i = 0; i + 1 < devices || (devices == 1 && i == 0); ++i) {
    j[DeviceId(i)] = {{"name", "Sensor " + std::to_string(i)}, {"location", kLocations[i % 3]}};
  }
  std::ofstream(path) << j.dump(2) << "\n";
}

struct ArchiveCount {
  std::size_t objects = 0;
  std::size_t lines = 0;
};

ArchiveCount CountArchive(const fs::path& root) {
  ArchiveCount count;
  if (!fs::exists(root)) return count;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (!entry.is_regular_file() || entry.path().extension() != ".gz") continue;
    ++count.objects;
    gzFile f = gzopen(entry.path().c_str(), "rb");
    if (!f) continue;
    char buf[1 << 16];
    while (gzgets(f, buf, sizeof(buf))) ++count.lines;
    gzclose(f);
  }
  return count;
}

// Rows of `table` (that match `where`, if given); -1 if the warehouse cannot be read.
long long CountRows(const fs::path& db, const std::string& table, const std::string& where = "") {
  sqlite3* conn = nullptr;
  long long rows = -1;
  if (sqlite3_open_v2(db.c_str(), &conn, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* stmt = nullptr;
    const std::string sql =
        "SELECT COUNT(*) FROM " + table + (where.empty() ? "" : " WHERE " + where);
    if (sqlite3_prepare_v2(conn, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      rows = sqlite3_column_int64(stmt, 0);
    }
    sqlite3_finalize(stmt);
  }
  sqlite3_close(conn);
  return rows;
}

template <typename T>
T OrDie(absl::StatusOr<T> v, const char* what) {
  if (!v.ok()) {
    std::fprintf(stderr, "demo: %s: %s\n", what, v.status().ToString().c_str());
    std::exit(1);
  }
  return *std::move(v);
}

void Check(const absl::Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "demo: %s: %s\n", what, s.ToString().c_str());
    std::exit(1);
  }
}

}  // namespace

CLI::App* AddDemoCommand(CLI::App& app, DemoOptions& options) {
  CLI::App* cmd = app.add_subcommand(
      "demo",
      "Run the whole pipeline in one process: simulated devices → MQTT → ingestion → "
      "enrichment → SQLite warehouse and gzip JSONL archive");
  CLI::Option* devices = cmd->add_option("--devices", options.devices, "simulated devices")
                             ->check(CLI::PositiveNumber)
                             ->capture_default_str();
  CLI::Option* messages =
      cmd->add_option("--messages", options.messages_per_device, "readings per device")
          ->check(CLI::PositiveNumber)
          ->capture_default_str();
  cmd->add_option("--rate", options.rate, "messages/s over all devices (0: as fast as acked)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--out", options.out_dir, "directory for the registry, warehouse, archive")
      ->capture_default_str();
  cmd->add_option("--mqtt-url", options.mqtt_url,
                  "use this MQTT broker instead of starting a local Mosquitto");
  cmd->add_option("--timeout", options.timeout_seconds, "seconds to wait for the sinks")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_flag("--bench", options.bench,
                "also measure end-to-end msg/s and latency (p50/p99/max, MQTT publish → "
                "SQLite row)");
  cmd->footer(absl::StrCat(
      "Benchmark: dataflow demo --bench [--rate R] runs ", kBenchDevices, " devices x ",
      kBenchMessagesPerDevice,
      " readings (unless --devices/--messages say otherwise), checks the result as usual and "
      "prints messages, elapsed, msg/s and p50/p99/max latency from MQTT publish to SQLite "
      "row on this machine."));
  cmd->callback([&options, devices, messages] {
    if (!options.bench) return;
    if (devices->count() == 0) options.devices = kBenchDevices;
    if (messages->count() == 0) options.messages_per_device = kBenchMessagesPerDevice;
  });
  return cmd;
}

int RunDemo(const DemoOptions& o) {
  if (o.devices <= 0 || o.messages_per_device <= 0) {
    std::fprintf(stderr, "demo: --devices and --messages must be > 0\n");
    return 2;
  }
  const fs::path out = fs::absolute(o.out_dir);
  fs::create_directories(out);
  const fs::path registry_path = out / "registry.json";
  const fs::path db_path = out / "warehouse.db";
  const fs::path archive_root = out / "archive";
  if (!fs::exists(registry_path)) WriteDefaultRegistry(registry_path, o.devices);
  fs::remove(db_path);  // each run starts with an empty warehouse and archive
  fs::remove(db_path.string() + "-wal");
  fs::remove(db_path.string() + "-shm");
  fs::remove_all(archive_root);
  fs::remove_all(out / "dead-letters");

  // 1. An MQTT broker: the user's, or a local Mosquitto on a free loopback port.
  std::unique_ptr<ChildProcess> mosquitto;
  std::string url = o.mqtt_url;
  if (url.empty()) {
    const int port = FreeLoopbackPort();
    const fs::path conf = out / "mosquitto.conf";
    // max_queued_messages 0: no limit on the QoS 1 messages queued for a subscriber that is
    // behind (default 1000, beyond which Mosquitto drops them), so a fast load cannot lose
    // readings between the broker and ingestion. max_inflight_messages 0: ingestion withholds
    // each PUBACK until the pipeline acked, so the default window of 20 unacked messages
    // would cap it at 20 per pipeline latency.
    std::ofstream(conf) << "listener " << port << " 127.0.0.1\nallow_anonymous true\n"
                        << "persistence false\nmax_queued_messages 0\nmax_inflight_messages 0\n";
    mosquitto = OrDie(
        ChildProcess::Start({"mosquitto", "-c", conf.string()}, (out / "mosquitto.log").string()),
        "starting mosquitto (install it, or pass --mqtt-url)");
    const auto deadline = SteadyClock::now() + std::chrono::seconds(10);
    while (!LoopbackPortAnswers(port) && SteadyClock::now() < deadline && mosquitto->running()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (!LoopbackPortAnswers(port)) {
      std::fprintf(stderr, "demo: mosquitto did not come up; see %s\n",
                   (out / "mosquitto.log").c_str());
      return 1;
    }
    url = "tcp://127.0.0.1:" + std::to_string(port);
  }

  // 2. The pipeline: config/local.yaml (compiled in), the code path of `dataflow run`, with
  // this run's broker and directories.
  const std::map<std::string, std::string> env = {{"MQTT_URL", url},
                                                  {"DATAFLOW_OUT", out.string()},
                                                  {"DATAFLOW_REGISTRY", registry_path.string()},
                                                  {"DATAFLOW_OPS_PORT", "0"}};
  ConfigLoadResult loaded =
      ParseConfig(kLocalYaml, {}, [&env](const std::string& name) -> std::optional<std::string> {
        auto it = env.find(name);
        if (it == env.end()) return std::nullopt;
        return it->second;
      });
  if (!loaded.ok()) {
    for (const auto& e : loaded.errors) {
      std::fprintf(stderr, "demo: config/local.yaml: %s\n", e.ToString().c_str());
    }
    return 1;
  }
  ProgramConfig config = std::move(loaded.config);
  config.ops.enabled = false;  // the demo reports on the terminal
  auto pipeline = OrDie(Pipeline::Build(config), "building config/local.yaml's pipeline");
  Check(pipeline->Start(), "starting the pipeline");
  auto metrics = [&pipeline](const std::string& service) {
    for (const auto& s : pipeline->Status()) {
      if (s.name == service) return s.metrics;
    }
    return mp::ServiceMetrics{};
  };

  const std::uint64_t total = static_cast<std::uint64_t>(o.devices) * o.messages_per_device;
  std::printf("dataflow demo: %d devices x %d readings over MQTT (%s)\n", o.devices,
              o.messages_per_device, url.c_str());
  std::printf(
      "  config/local.yaml: MQTT → ingestion → raw → enrichment → enriched → {SQLite, "
      "gzip archive}\n");
  std::optional<LatencyProbe> probe;
  if (o.bench) probe.emplace(db_path, "readings");
  std::atomic<std::uint64_t> published{0};
  absl::Status devices_status;
  const auto started = SteadyClock::now();
  const MqttLoadOptions device_load{
      .load = {.devices = o.devices, .count = static_cast<std::int64_t>(total), .rate = o.rate},
      .url = url,
      .topic = "devices/{device}/telemetry",
      .qos = 1,
      .client_id = "dataflow-demo-devices"};
  std::atomic<bool> devices_failed{false};
  std::jthread devices([&] {
    devices_status = PublishReadings(device_load, published);
    if (!devices_status.ok()) devices_failed = true;
  });

  auto done = [&] {
    const auto bq = metrics("bigquery");
    return bq.processed + bq.dead_lettered >= total && metrics("icestore").processed >= total;
  };
  const auto deadline = started + std::chrono::seconds(o.timeout_seconds);
  bool finished = false;
  while (SteadyClock::now() < deadline) {
    finished = done();
    const double secs = std::chrono::duration<double>(SteadyClock::now() - started).count();
    const auto ingestion = metrics("ingestion");
    const auto bq = metrics("bigquery");
    const auto ice = metrics("icestore");
    std::printf(
        "\r  %5.1fs  published %llu  ingested %llu  enriched %llu  stored %llu  archived "
        "%llu  errors %llu  (%.0f msg/s)   ",
        secs, static_cast<unsigned long long>(published.load()),
        static_cast<unsigned long long>(ingestion.processed),
        static_cast<unsigned long long>(metrics("enrichment").processed),
        static_cast<unsigned long long>(bq.processed),
        static_cast<unsigned long long>(ice.processed),
        static_cast<unsigned long long>(ingestion.nacked + bq.dead_lettered + bq.nacked +
                                        ice.nacked),
        secs > 0 ? static_cast<double>(bq.processed) / secs : 0.0);
    std::fflush(stdout);
    // What was not published will never arrive: no point waiting for it.
    if (finished || devices_failed) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  std::printf("\n");
  devices.join();
  const double elapsed = std::chrono::duration<double>(SteadyClock::now() - started).count();
  if (probe) probe->Stop();

  // Stop as `dataflow run` does on SIGTERM: upstream first, each draining what it has.
  const auto ingestion = metrics("ingestion");
  const auto dead_letters = metrics("dead-letters");
  const absl::Status stopped = pipeline->Stop(std::chrono::seconds(30));
  if (!stopped.ok()) {
    std::fprintf(stderr, "demo: the pipeline did not stop cleanly: %s\n",
                 stopped.ToString().c_str());
  }

  const long long rows = CountRows(db_path, "readings");
  // Readings of devices the registry does not know: enrichment passed them on without a
  // location.
  const long long unenriched = CountRows(db_path, "readings", "location IS NULL");
  const ArchiveCount archived = CountArchive(archive_root);
  std::printf("\nsummary (%.1f s, %.0f messages/s end to end)\n", elapsed,
              static_cast<double>(total) / elapsed);
  std::printf("  published over MQTT      %llu\n",
              static_cast<unsigned long long>(published.load()));
  std::printf("  ingested to 'raw'        %llu\n",
              static_cast<unsigned long long>(ingestion.processed));
  std::printf("  enriched                 %lld (unknown device, passed unenriched: %lld)\n",
              rows - unenriched, unenriched);
  std::printf("  rows in SQLite           %lld  (%s, table readings)\n", rows, db_path.c_str());
  std::printf("  archived                 %zu lines in %zu gzip objects under %s\n", archived.lines,
              archived.objects, archive_root.c_str());
  std::printf("  dead letters             %llu  (under %s)\n",
              static_cast<unsigned long long>(dead_letters.received),
              (out / "dead-letters").c_str());
  LatencyProbe::Summary latency;
  if (o.bench) {
    latency = probe->Summarise();
    const double secs = latency.seconds;
    std::printf("\nbenchmark: MQTT publish → SQLite row, on this machine%s\n",
                o.rate > 0 ? "" : " (publishing as fast as acknowledged)");
    std::printf("  messages         %lld\n", rows);
    std::printf("  elapsed          %.3f s (first publish → last row seen)\n", secs);
    std::printf("  throughput       %.0f msg/s\n",
                secs > 0 ? static_cast<double>(rows) / secs : 0.0);
    std::printf("  latency p50      %.1f ms\n", latency.p50_ms);
    std::printf("  latency p99      %.1f ms\n", latency.p99_ms);
    std::printf("  latency max      %.1f ms  (%zu rows timed; rows are polled every 5 ms)\n",
                latency.max_ms, latency.samples);
    if (o.rate <= 0) {
      std::printf("  (latency at saturation is mostly queueing; --rate R measures it at a load)\n");
    }
  } else {
    std::printf(
        "\ntry:\n  sqlite3 %s 'SELECT location, COUNT(*), ROUND(AVG(temperature),1) FROM "
        "readings GROUP BY location'\n  zcat $(find %s -name \"*.gz\" | head -1) | head -2\n",
        db_path.c_str(), archive_root.c_str());
  }

  const bool ok = finished && stopped.ok() && devices_status.ok() &&
                  rows == static_cast<long long>(total) && archived.lines == total &&
                  (!o.bench || latency.samples == total);
  if (!devices_status.ok()) std::fprintf(stderr, "demo: %s\n", devices_status.ToString().c_str());
  if (!ok) std::fprintf(stderr, "demo: FAILED: not every message reached both sinks\n");
  if (o.bench && latency.samples != total) {
    std::fprintf(stderr, "demo: FAILED: %zu of %llu stored rows carried a usable sentAt\n",
                 latency.samples, static_cast<unsigned long long>(total));
  }
  return ok ? 0 : 1;
}

}  // namespace dataflow::app

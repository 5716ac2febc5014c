#include "demo.h"

#include <absl/strings/str_cat.h>
#include <sqlite3.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <thread>

#include "child_process.h"
#include "dataflow/bqstore/bigquery_service.h"
#include "dataflow/bqstore/row.h"
#include "dataflow/bqstore/sqlite_inserter.h"
#include "dataflow/cache/lru_cache.h"
#include "dataflow/enrichment/enrichment_service.h"
#include "dataflow/icestore/ice_storage_service.h"
#include "dataflow/icestore/local_directory_uploader.h"
#include "dataflow/messagepipeline/errors.h"
#include "dataflow/messagepipeline/in_process_broker.h"
#include "dataflow/messagepipeline/publisher.h"
#include "dataflow/mqttconverter/ingestion_service.h"
#include "dataflow/mqttconverter/mqtt_consumer.h"
#include "device_model.h"
#include "loadgen.h"

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
    j[DeviceId(i)] = DeviceInfo{"Sensor " + std::to_string(i), kLocations[i % 3]};
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

long long CountRows(const fs::path& db, const std::string& table) {
  sqlite3* conn = nullptr;
  long long rows = -1;
  if (sqlite3_open_v2(db.c_str(), &conn, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* stmt = nullptr;
    const std::string sql = "SELECT COUNT(*) FROM " + table;
    if (sqlite3_prepare_v2(conn, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      rows = sqlite3_column_int64(stmt, 0);
    }
    sqlite3_finalize(stmt);
  }
  sqlite3_close(conn);
  return rows;
}

// Wraps the warehouse inserter to record, for every stored row that carries its device's
// send time, how long it took to get there: publish → MQTT → pipeline → SQLite commit; and
// the span from the first send to the last commit, on the same clock as the send times.
// Thread-safe (the service may insert from several workers).
class LatencyRecorder final : public bqstore::DataBatchInserter<Reading> {
 public:
  explicit LatencyRecorder(std::shared_ptr<bqstore::DataBatchInserter<Reading>> inner)
      : inner_(std::move(inner)) {}

  absl::StatusOr<std::vector<bqstore::RowError>> Insert(std::span<const Reading> rows) override {
    auto result = inner_->Insert(rows);
    if (!result.ok()) return result;
    const auto now = std::chrono::system_clock::now();
    std::vector<bool> rejected(rows.size(), false);
    for (const auto& e : *result) {
      if (e.index < rows.size()) rejected[e.index] = true;
    }
    std::lock_guard lock(mu_);
    for (std::size_t i = 0; i < rows.size(); ++i) {
      if (rejected[i] || !rows[i].sent_at) continue;
      latencies_ms_.push_back(
          std::chrono::duration<double, std::milli>(now - *rows[i].sent_at).count());
      if (!first_sent_ || *rows[i].sent_at < *first_sent_) first_sent_ = rows[i].sent_at;
      last_stored_ = now;
    }
    return result;
  }
  absl::Status Close() override { return inner_->Close(); }

  struct Summary {
    std::size_t samples = 0;
    double p50_ms = 0, p99_ms = 0, max_ms = 0;
    double seconds = 0;  // first send → last commit
  };
  Summary Summarise() const {
    std::vector<double> sorted;
    Summary out;
    {
      std::lock_guard lock(mu_);
      sorted = latencies_ms_;
      if (first_sent_) {
        out.seconds = std::chrono::duration<double>(last_stored_ - *first_sent_).count();
      }
    }
    std::sort(sorted.begin(), sorted.end());
    out.samples = sorted.size();
    if (sorted.empty()) return out;
    // Nearest rank: the smallest sample with at least p of all samples at or below it.
    auto rank = [&](double p) {
      const auto n = static_cast<std::size_t>(std::ceil(p * static_cast<double>(sorted.size())));
      return sorted[std::clamp<std::size_t>(n, 1, sorted.size()) - 1];
    };
    out.p50_ms = rank(0.50);
    out.p99_ms = rank(0.99);
    out.max_ms = sorted.back();
    return out;
  }

 private:
  std::shared_ptr<bqstore::DataBatchInserter<Reading>> inner_;
  mutable std::mutex mu_;
  std::vector<double> latencies_ms_;
  std::optional<std::chrono::system_clock::time_point> first_sent_;
  std::chrono::system_clock::time_point last_stored_;
};

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

  // 2. In-process topics between the services.
  auto broker = mp::InProcessBroker::Create();
  for (const char* t : {"raw", "enriched", "dead-letters"}) Check(broker->CreateTopic(t), t);
  Check(broker->CreateSubscription("raw-enrichment", "raw"), "subscription");
  Check(broker->CreateSubscription("enriched-bigquery", "enriched"), "subscription");
  Check(broker->CreateSubscription("enriched-icestore", "enriched"), "subscription");
  Check(broker->CreateSubscription("dead-letters-sub", "dead-letters"), "subscription");
  auto dead_letters = broker->NewDeadLetterSink("dead-letters");

  // 3. Ingestion: MQTT → raw.
  mqttconverter::MQTTClientConfig mqtt_config{
      .broker_url = url,
      .client_id = "dataflow-demo-ingestion",
      .topic_mappings = {{.name = "telemetry", .topic = "devices/+/telemetry", .qos = 1}}};
  auto mqtt_consumer = OrDie(mqttconverter::MqttConsumer::Create(mqtt_config), "MQTT consumer");
  auto ingestion = OrDie(mqttconverter::IngestionService::Create(
                             {.name = "ingestion",
                              .route_topics = {{"telemetry", "raw"}},
                              .unmapped = mqttconverter::UnmappedRoutePolicy::kReject},
                             std::move(mqtt_consumer), broker->NewPublisher()),
                         "ingestion service");

  // 4. Enrichment: raw → (LRU → registry file) → enriched.
  auto registry = OrDie(JsonFileRegistry::Load(registry_path), "device registry");
  auto lru =
      OrDie(cache::InMemoryLRUCache<std::string, DeviceInfo>::Create({.max_size = 1000}, registry),
            "LRU cache");
  std::shared_ptr<cache::Fetcher<std::string, DeviceInfo>> chain = std::move(lru);
  auto applier = [json = enrichment::JsonApplier<DeviceInfo>()](mp::Message& m,
                                                                const DeviceInfo& d) {
    json(m, d);
    m.attributes["location"] = d.location;  // icestore groups archives by it
  };
  auto enricher = OrDie(enrichment::MakeEnricher<std::string, DeviceInfo>(
                            chain, enrichment::JsonPayloadKey("deviceId"), applier,
                            {.on_not_found = enrichment::FailurePolicy::kPassUnenriched,
                             .on_error = enrichment::FailurePolicy::kNack}),
                        "enricher");
  auto enrich = OrDie(enrichment::EnrichmentService::CreateAsync(
                          {.name = "enrichment"}, *broker->NewConsumer("raw-enrichment"), enricher,
                          mp::PublishEnvelope(broker->NewPublisher(), "enriched")),
                      "enrichment service");

  // 5. Warehouse: enriched → SQLite (the embedded stand-in for BigQuery).
  auto inserter = std::make_shared<LatencyRecorder>(OrDie(
      bqstore::SQLiteInserter<Reading>::Create({.path = db_path.string(), .table = "readings"}),
      "SQLite inserter"));
  auto bigquery = OrDie(bqstore::NewBigQueryService<Reading>(
                            {.name = "bigquery",
                             .batch_size = 100,
                             .flush_interval = std::chrono::milliseconds(500),
                             .flush_when_idle = true,  // as config/local.yaml
                             .dead_letter = dead_letters},
                            *broker->NewConsumer("enriched-bigquery"),
                            [](const mp::Message& m) { return ToReading(m); }, inserter),
                        "bigquery service");

  // 6. Archive: enriched → gzip JSONL objects grouped by date/location.
  auto uploader = OrDie(icestore::LocalDirectoryUploader::Create({.root = archive_root.string()}),
                        "archive uploader");
  icestore::IceStorageServiceOptions ice_options{.name = "icestore", .flush_when_idle = true};
  ice_options.batcher.batch_size = 250;
  ice_options.batcher.flush_interval = std::chrono::milliseconds(500);
  auto icestore = OrDie(icestore::IceStorageService::Create(
                            ice_options, *broker->NewConsumer("enriched-icestore"),
                            std::shared_ptr<icestore::DataUploader>(std::move(uploader))),
                        "icestore service");

  // 7. Dead letters: archived beside the readings, so a dead-lettered reading is stored
  // (an in-process dead-letter publish completes only once a subscriber has it).
  auto dead_uploader = OrDie(
      icestore::LocalDirectoryUploader::Create({.root = (archive_root / "dead-letters").string()}),
      "dead-letter uploader");
  icestore::IceStorageServiceOptions dead_options{.name = "dead-letters", .flush_when_idle = true};
  dead_options.batcher.flush_interval = std::chrono::milliseconds(500);
  auto dead_archive = OrDie(icestore::IceStorageService::Create(
                                dead_options, *broker->NewConsumer("dead-letters-sub"),
                                std::shared_ptr<icestore::DataUploader>(std::move(dead_uploader))),
                            "dead-letter archive");

  Check(dead_archive->Start(), "starting the dead-letter archive");
  Check(bigquery->Start(), "starting bigquery");
  Check(icestore->Start(), "starting icestore");
  Check(enrich->Start(), "starting enrichment");
  Check(ingestion->Start(), "starting ingestion");

  const std::uint64_t total = static_cast<std::uint64_t>(o.devices) * o.messages_per_device;
  std::printf("dataflow demo: %d devices x %d readings over MQTT (%s)\n", o.devices,
              o.messages_per_device, url.c_str());
  std::printf("  MQTT → ingestion → raw → enrichment → enriched → {SQLite, gzip archive}\n");
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
    const auto bq = bigquery->metrics();
    return bq.processed + bq.dead_lettered >= total && icestore->metrics().processed >= total;
  };
  const auto deadline = started + std::chrono::seconds(o.timeout_seconds);
  bool finished = false;
  while (SteadyClock::now() < deadline) {
    finished = done();
    const double secs = std::chrono::duration<double>(SteadyClock::now() - started).count();
    const auto bq = bigquery->metrics();
    std::printf(
        "\r  %5.1fs  published %llu  ingested %llu  enriched %llu  stored %llu  archived "
        "%llu  errors %llu  (%.0f msg/s)   ",
        secs, static_cast<unsigned long long>(published.load()),
        static_cast<unsigned long long>(ingestion->metrics().processed),
        static_cast<unsigned long long>(enrich->enrichment_metrics().enriched),
        static_cast<unsigned long long>(bq.processed),
        static_cast<unsigned long long>(icestore->metrics().processed),
        static_cast<unsigned long long>(ingestion->metrics().nacked + bq.dead_lettered + bq.nacked +
                                        icestore->metrics().nacked),
        secs > 0 ? static_cast<double>(bq.processed) / secs : 0.0);
    std::fflush(stdout);
    // What was not published will never arrive: no point waiting for it.
    if (finished || devices_failed) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  std::printf("\n");
  devices.join();
  const double elapsed = std::chrono::duration<double>(SteadyClock::now() - started).count();

  // Stop front to back, each draining what it already has.
  bool clean = true;
  for (auto [name, stopped] :
       {std::pair{"ingestion", ingestion->Stop(SteadyClock::now() + std::chrono::seconds(10))},
        std::pair{"enrichment", enrich->Stop(std::chrono::seconds(10))},
        std::pair{"bigquery", bigquery->Stop(std::chrono::seconds(10))},
        std::pair{"icestore", icestore->Stop(std::chrono::seconds(10))},
        std::pair{"dead-letters", dead_archive->Stop(std::chrono::seconds(10))}}) {
    if (!stopped.ok()) {
      std::fprintf(stderr, "demo: %s did not stop cleanly: %s\n", name, stopped.ToString().c_str());
      clean = false;
    }
  }

  const long long rows = CountRows(db_path, "readings");
  const ArchiveCount archived = CountArchive(archive_root);
  const auto em = enrich->enrichment_metrics();
  std::printf("\nsummary (%.1f s, %.0f messages/s end to end)\n", elapsed,
              static_cast<double>(total) / elapsed);
  std::printf("  published over MQTT      %llu\n",
              static_cast<unsigned long long>(published.load()));
  std::printf("  ingested to 'raw'        %llu\n",
              static_cast<unsigned long long>(ingestion->metrics().processed));
  std::printf("  enriched                 %llu (unknown device, passed unenriched: %llu)\n",
              static_cast<unsigned long long>(em.enriched),
              static_cast<unsigned long long>(em.not_found));
  std::printf("  registry lookups         %llu (the LRU answered the rest)\n",
              static_cast<unsigned long long>(registry->lookups()));
  std::printf("  rows in SQLite           %lld  (%s, table readings)\n", rows, db_path.c_str());
  std::printf("  archived                 %zu lines in %zu gzip objects under %s\n", archived.lines,
              archived.objects, archive_root.c_str());
  std::printf("  dead letters             %llu\n",
              static_cast<unsigned long long>(dead_archive->metrics().received));
  if (o.bench) {
    // From the first reading's send to the last SQLite commit: neither the connecting before
    // nor the polling after counts.
    const auto latency = inserter->Summarise();
    const double secs = latency.seconds;
    std::printf("\nbenchmark: MQTT publish → SQLite row, on this machine%s\n",
                o.rate > 0 ? "" : " (publishing as fast as acknowledged)");
    std::printf("  messages         %lld\n", rows);
    std::printf("  elapsed          %.3f s (first publish → last row stored)\n", secs);
    std::printf("  throughput       %.0f msg/s\n",
                secs > 0 ? static_cast<double>(rows) / secs : 0.0);
    std::printf("  latency p50      %.1f ms\n", latency.p50_ms);
    std::printf("  latency p99      %.1f ms\n", latency.p99_ms);
    std::printf("  latency max      %.1f ms  (%zu rows timed)\n", latency.max_ms, latency.samples);
    if (o.rate <= 0) {
      std::printf("  (latency at saturation is mostly queueing; --rate R measures it at a load)\n");
    }
  } else {
    std::printf(
        "\ntry:\n  sqlite3 %s 'SELECT location, COUNT(*), ROUND(AVG(temperature),1) FROM "
        "readings GROUP BY location'\n  zcat $(find %s -name \"*.gz\" | head -1) | head -2\n",
        db_path.c_str(), archive_root.c_str());
  }

  const bool ok = finished && clean && devices_status.ok() &&
                  rows == static_cast<long long>(total) && archived.lines == total &&
                  (!o.bench || inserter->Summarise().samples == total);
  if (!devices_status.ok()) std::fprintf(stderr, "demo: %s\n", devices_status.ToString().c_str());
  if (!ok) std::fprintf(stderr, "demo: FAILED: not every message reached both sinks\n");
  if (o.bench && inserter->Summarise().samples != total) {
    std::fprintf(stderr, "demo: FAILED: %zu of %llu stored rows carried a usable sentAt\n",
                 inserter->Summarise().samples, static_cast<unsigned long long>(total));
  }
  return ok ? 0 : 1;
}

}  // namespace dataflow::app

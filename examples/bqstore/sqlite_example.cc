// bqstore in a few lines: describe a row type, and run a BigQueryService that batches
// messages from a broker into a warehouse table. Here the warehouse is the embedded SQLite
// inserter and the broker the in-process one; for BigQuery, swap in
// BigQueryInserter<MonitorReading>::Create({...}). Exits non-zero if a row is missing.
#include <sqlite3.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <thread>

#include "dataflow/bqstore/bigquery_service.h"
#include "dataflow/bqstore/sqlite_inserter.h"
#include "dataflow/messagepipeline/in_process_broker.h"
#include "dataflow/messagepipeline/streaming_service.h"

namespace example {

struct MonitorReading {
  std::string device_id;
  dataflow::bqstore::Timestamp timestamp;
  double temperature = 0;
  std::optional<double> humidity;
};
DATAFLOW_DESCRIBE(MonitorReading, device_id, timestamp, temperature, humidity);

}  // namespace example

int main() {
  using namespace dataflow;
  using example::MonitorReading;
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("bqstore_example_" + std::to_string(::getpid()) + ".db"))
                               .string();

  auto broker = messagepipeline::InProcessBroker::Create();
  (void)broker->CreateTopic("readings");
  (void)broker->CreateSubscription("readings-sub", "readings");
  (void)broker->CreateTopic("dead-letters");
  // A dead letter is stored once a subscriber of its topic acked it: here one that logs them.
  (void)broker->CreateSubscription("dead-letters-sub", "dead-letters");
  auto parked = messagepipeline::StreamingService<std::string>::Create(
      {.common = {.name = "dead-letters", .num_workers = 1}},
      *broker->NewConsumer("dead-letters-sub"), messagepipeline::RawPayloadTransformer,
      [](messagepipeline::Message& m, std::string& payload) {
        std::printf("dead letter: \"%s\" (%s)\n", payload.c_str(),
                    m.attributes["dataflow_error"].c_str());
        return absl::OkStatus();
      });
  if (!parked.ok() || !(*parked)->Start().ok()) return 1;
  auto consumer = broker->NewConsumer("readings-sub");
  auto inserter =
      bqstore::SqliteInserter<MonitorReading>::Create({.path = path, .table = "readings"});
  if (!consumer.ok() || !inserter.ok()) return 1;

  // The transformer: JSON payload -> row; undecodable input is dead-lettered, not retried.
  messagepipeline::MessageTransformer<MonitorReading> transformer =
      [](const messagepipeline::Message& m) -> messagepipeline::TransformResult<MonitorReading> {
    auto json = nlohmann::json::parse(m.data.payload, nullptr, false);
    auto row = bqstore::FromJson<MonitorReading>(json);
    if (!row.ok()) return messagepipeline::MarkPermanent(row.status());
    return std::optional<MonitorReading>(*std::move(row));
  };
  auto service = bqstore::NewBigQueryService<MonitorReading>(
      {.common = {.name = "bqstore-example",
                  .dead_letter = broker->NewDeadLetterSink("dead-letters")},
       .batch_size = 50,
       .flush_interval = std::chrono::milliseconds(200)},
      *consumer, transformer,
      std::shared_ptr<bqstore::DataBatchInserter<MonitorReading>>(*std::move(inserter)));
  if (!service.ok() || !(*service)->Start().ok()) return 1;

  for (int i = 0; i < 120; ++i) {
    MonitorReading r{.device_id = "sensor-" + std::to_string(i % 4),
                     .timestamp = std::chrono::system_clock::now(),
                     .temperature = 20 + i * 0.1};
    (void)broker->Publish("readings", {.payload = bqstore::ToJson(r).dump()});
  }
  (void)broker->Publish("readings", {.payload = "not json"});  // goes to dead-letters
  // Stop drains the channel and flushes the last batch before returning.
  for (int tries = 0; tries < 500; ++tries) {
    auto stats = broker->Stats("readings-sub");
    if (stats.ok() && stats->acked == 121) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // an example, not a test
  }
  (void)(*service)->Stop(std::chrono::seconds(10));
  (void)(*parked)->Stop(std::chrono::seconds(10));

  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  sqlite3_stmt* stmt = nullptr;
  sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM readings", -1, &stmt, nullptr);
  const long long count = sqlite3_step(stmt) == SQLITE_ROW ? sqlite3_column_int64(stmt, 0) : -1;
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  std::printf("rows in SQLite: %lld (expected 120)\n", count);
  return count == 120 ? 0 : 1;
}

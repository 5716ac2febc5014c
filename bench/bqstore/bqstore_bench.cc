// Encoding rows for the Storage Write API: bqstore's direct encoder (struct -> proto wire
// bytes via DATAFLOW_DESCRIBE) against the same rows through a protoc-generated message
// (fill + SerializeToString), both ending in a serialized AppendRowsRequest, in one run.
// Plus rows/s into SQLite (file database, WAL, one transaction per batch), and JSON payloads
// to proto rows through a runtime (config) schema vs through the described struct
// (FromJson + EncodeRow), on the same payloads: with and without the JSON parse.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>

#include "bench_row.pb.h"
#include "dataflow/bqstore/json_schema_rows.h"
#include "dataflow/bqstore/row_codec.h"
#include "dataflow/bqstore/sqlite_inserter.h"
#ifdef DATAFLOW_BENCH_HAS_STORAGE_WRITE
#include "google/cloud/bigquery/storage/v1/storage.pb.h"
#endif

namespace {

using dataflow::bqstore::Timestamp;

struct BenchRow {
  std::string device_id;
  Timestamp timestamp;
  double temperature = 0;
  double humidity = 0;
  std::int64_t sequence = 0;
  bool alarm = false;
  std::string location;
  double battery = 0;
  std::string firmware;
  std::int64_t readings_count = 0;
};
DATAFLOW_DESCRIBE(BenchRow, device_id, timestamp, temperature, humidity, sequence, alarm, location,
                  battery, firmware, readings_count);

constexpr int kBatch = 500;

std::vector<BenchRow> Rows() {
  std::vector<BenchRow> rows;
  for (int i = 0; i < kBatch; ++i) {
    rows.push_back({.device_id = "device-" + std::to_string(i % 97),
                    .timestamp = Timestamp(std::chrono::microseconds(1767225600000000 + i)),
                    .temperature = 20.0 + i * 0.01,
                    .humidity = 0.4 + i * 0.0001,
                    .sequence = i,
                    .alarm = i % 10 == 0,
                    .location = "building-7/floor-3",
                    .battery = 0.87,
                    .firmware = "v1.2.3",
                    .readings_count = i * 3});
  }
  return rows;
}

#ifdef DATAFLOW_BENCH_HAS_STORAGE_WRITE
using Request = google::cloud::bigquery::storage::v1::AppendRowsRequest;
#endif

// Rows as serialized_rows of a request, then the request on the wire.
template <typename EncodeFn>
void EncodeBatch(const std::vector<BenchRow>& rows, EncodeFn encode, std::string& wire) {
#ifdef DATAFLOW_BENCH_HAS_STORAGE_WRITE
  Request request;
  request.set_write_stream("projects/p/datasets/d/tables/t/streams/_default");
  auto* out = request.mutable_proto_rows()->mutable_rows()->mutable_serialized_rows();
  out->Reserve(static_cast<int>(rows.size()));
  for (const BenchRow& row : rows) encode(row, *out->Add());
  request.SerializeToString(&wire);
#else
  wire.clear();
  std::string one;
  for (const BenchRow& row : rows) {
    one.clear();
    encode(row, one);
    wire += one;
  }
#endif
}

void BM_DescribedEncode(benchmark::State& state) {
  const auto rows = Rows();
  std::string wire;
  for (auto _ : state) {
    EncodeBatch(
        rows, [](const BenchRow& row, std::string& out) { dataflow::bqstore::EncodeRow(row, out); },
        wire);
    benchmark::DoNotOptimize(wire.data());
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  state.counters["bytes_per_row"] = static_cast<double>(wire.size()) / kBatch;
}
BENCHMARK(BM_DescribedEncode);

void BM_GeneratedProtoBaseline(benchmark::State& state) {
  const auto rows = Rows();
  std::string wire;
  dataflow::bench::BenchRow message;
  for (auto _ : state) {
    EncodeBatch(
        rows,
        [&message](const BenchRow& row, std::string& out) {
          message.Clear();
          message.set_device_id(row.device_id);
          message.set_timestamp(dataflow::bqstore::internal::ToMicros(row.timestamp));
          message.set_temperature(row.temperature);
          message.set_humidity(row.humidity);
          message.set_sequence(row.sequence);
          message.set_alarm(row.alarm);
          message.set_location(row.location);
          message.set_battery(row.battery);
          message.set_firmware(row.firmware);
          message.set_readings_count(row.readings_count);
          message.SerializeToString(&out);
        },
        wire);
    benchmark::DoNotOptimize(wire.data());
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  state.counters["bytes_per_row"] = static_cast<double>(wire.size()) / kBatch;
}
BENCHMARK(BM_GeneratedProtoBaseline);

// The same rows as JSON payloads (what a device sends), and the config schema for them.
std::vector<std::string> Payloads() {
  std::vector<std::string> out;
  for (const BenchRow& row : Rows()) out.push_back(dataflow::bqstore::ToJson(row).dump());
  return out;
}

std::shared_ptr<const dataflow::bqstore::RowConverter> SchemaConverter() {
  auto columns = dataflow::bqstore::ColumnsFromJson(nlohmann::json::parse(R"([
    {"name": "device_id", "type": "STRING", "mode": "REQUIRED"},
    {"name": "timestamp", "type": "TIMESTAMP", "mode": "REQUIRED"},
    {"name": "temperature", "type": "FLOAT64", "mode": "REQUIRED"},
    {"name": "humidity", "type": "FLOAT64", "mode": "REQUIRED"},
    {"name": "sequence", "type": "INT64", "mode": "REQUIRED"},
    {"name": "alarm", "type": "BOOL", "mode": "REQUIRED"},
    {"name": "location", "type": "STRING", "mode": "REQUIRED"},
    {"name": "battery", "type": "FLOAT64", "mode": "REQUIRED"},
    {"name": "firmware", "type": "STRING", "mode": "REQUIRED"},
    {"name": "readings_count", "type": "INT64", "mode": "REQUIRED"}])"));
  return *dataflow::bqstore::RowConverter::Create(*columns);
}

// Payload text -> nlohmann::json -> FromJson<BenchRow> -> EncodeRow.
void BM_JsonToProtoDescribed(benchmark::State& state) {
  const auto payloads = Payloads();
  const bool parse = state.range(0) != 0;
  std::vector<nlohmann::json> parsed;
  for (const auto& p : payloads) parsed.push_back(nlohmann::json::parse(p));
  std::string wire;
  for (auto _ : state) {
    wire.clear();
    for (std::size_t i = 0; i < payloads.size(); ++i) {
      auto row = dataflow::bqstore::FromJson<BenchRow>(parse ? nlohmann::json::parse(payloads[i])
                                                             : parsed[i]);
      dataflow::bqstore::EncodeRow(*row, wire);
    }
    benchmark::DoNotOptimize(wire.data());
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  state.counters["bytes_per_row"] = static_cast<double>(wire.size()) / kBatch;
}
BENCHMARK(BM_JsonToProtoDescribed)->Arg(1)->Arg(0);

// Payload text -> nlohmann::json -> RowConverter (config schema) -> proto row.
void BM_JsonToProtoSchema(benchmark::State& state) {
  const auto payloads = Payloads();
  const auto converter = SchemaConverter();
  const bool parse = state.range(0) != 0;
  std::vector<dataflow::bqstore::RowInput> parsed(payloads.size());
  for (std::size_t i = 0; i < payloads.size(); ++i) {
    parsed[i].payload = nlohmann::json::parse(payloads[i]);
  }
  dataflow::bqstore::RowInput input;
  std::string wire;
  for (auto _ : state) {
    wire.clear();
    for (std::size_t i = 0; i < payloads.size(); ++i) {
      if (parse) input.payload = nlohmann::json::parse(payloads[i]);
      if (!converter->ToProto(parse ? input : parsed[i], wire).ok()) {
        state.SkipWithError("conversion failed");
        return;
      }
    }
    benchmark::DoNotOptimize(wire.data());
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  state.counters["bytes_per_row"] = static_cast<double>(wire.size()) / kBatch;
}
BENCHMARK(BM_JsonToProtoSchema)->Arg(1)->Arg(0);

// Arg 1: synchronous=FULL (the default: acked rows survive a power loss); 0: NORMAL.
void BM_SQLiteInsert(benchmark::State& state) {
  using Sync = dataflow::bqstore::SqliteInserterOptions::Synchronous;
  const auto rows = Rows();
  // TMPDIR must be on a disk to measure FULL: on a tmpfs fsync costs nothing.
  const std::filesystem::path path = std::filesystem::temp_directory_path() /
                                     ("bqstore_bench_" + std::to_string(::getpid()) + ".db");
  std::filesystem::remove(path);
  auto inserter = dataflow::bqstore::SqliteInserter<BenchRow>::Create(
      {.path = path.string(),
       .table = "rows",
       .synchronous = state.range(0) == 1 ? Sync::kFull : Sync::kNormal});
  if (!inserter.ok()) {
    state.SkipWithError(std::string(inserter.status().message()).c_str());
    return;
  }
  for (auto _ : state) {
    if (!(*inserter)->InsertBatch(rows).ok()) state.SkipWithError("insert failed");
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  (void)(*inserter)->Close();
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::filesystem::remove(path.string() + suffix);
  }
}
// Wall time: an fsync waits for the disk, not the CPU.
BENCHMARK(BM_SQLiteInsert)
    ->ArgName("full")
    ->Arg(0)
    ->Arg(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();

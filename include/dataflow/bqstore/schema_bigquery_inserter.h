// SchemaBigQueryInserter: schema-driven rows (json_schema_rows.h) into BigQuery over the
// Storage Write API, with the schema from config or from the table itself.
//
// With `columns` (a config schema) it makes sure the table exists as TableAdmin::EnsureTable
// does for described types (create if missing, else check that it fits). Without, the
// schema is the table's (tables.get), each column read from the payload field of its name
// unless `sources` says otherwise; and the table may grow while running: when a batch holds
// a payload field that no column reads, the schema is fetched again (at most once per
// `schema_refresh_interval`) and, if the table gained columns, rows are written with the
// new schema from that batch on (schema evolution without a restart).
// Rows that do not convert, and rows BigQuery rejects, are RowErrors (permanent, naming the
// column); the rest of the batch is written. Thread-safe (batches are serialised).
#pragma once

#include <absl/status/statusor.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "dataflow/bqstore/inserter.h"
#include "dataflow/bqstore/json_schema_rows.h"
#include "dataflow/bqstore/storage_write.h"
#include "dataflow/bqstore/table_admin.h"

namespace dataflow::bqstore {

struct SchemaBigQueryInserterOptions {
  BigQueryWriterOptions writer;  // project, dataset, table, limits, retries, channel
  TableOptions table;            // with `columns`: create if missing, partitioning, clustering
  TableAdminOptions admin;       // REST endpoint and token; project taken from `writer`
  // The config schema; empty: the table's schema (from_table).
  std::vector<ColumnSpec> columns;
  // from_table: column name → source text (ParseColumnSource); others read the payload.
  std::map<std::string, std::string> sources;
  // from_table: the least time between two schema fetches triggered by unknown fields.
  std::chrono::milliseconds schema_refresh_interval = std::chrono::seconds(10);
  bool manage_table = true;  // with `columns`: false skips the REST calls
};

class SchemaBigQueryInserter : public DataBatchInserter<RowInput> {
 public:
  // NotFound for a from_table table that does not exist; InvalidArgument for a bad schema,
  // bad sources or an existing table that does not fit the config schema.
  static absl::StatusOr<std::unique_ptr<SchemaBigQueryInserter>> Create(
      SchemaBigQueryInserterOptions options);
  ~SchemaBigQueryInserter() override;

  absl::StatusOr<std::vector<RowError>> Insert(std::span<const RowInput> rows) override;
  absl::Status Close() override;
  void Cancel() override;

  // The converter in use (it changes when the table's schema grows).
  std::shared_ptr<const RowConverter> converter() const;
  std::uint64_t schema_fetches() const;  // tables.get calls after creation

 private:
  explicit SchemaBigQueryInserter(SchemaBigQueryInserterOptions options);
  absl::Status UseSchema(const TableSchema& table_schema);
  void MaybeRefreshSchema(std::span<const RowInput> rows);

  SchemaBigQueryInserterOptions options_;
  bool from_table_ = false;
  std::unique_ptr<TableAdmin> admin_;
  std::mutex mu_;  // serialises Insert and schema changes
  std::chrono::steady_clock::time_point last_fetch_{};
  std::atomic<std::uint64_t> fetches_{0};
  // Read by Cancel() and converter() without mu_ (an Insert may hold it for long).
  mutable std::mutex state_mu_;
  std::shared_ptr<const RowConverter> converter_;
  std::shared_ptr<BigQueryWriter> writer_;
  bool cancelled_ = false;
};

}  // namespace dataflow::bqstore

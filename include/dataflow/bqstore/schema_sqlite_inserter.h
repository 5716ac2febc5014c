// SchemaSqliteInserter: schema-driven rows (json_schema_rows.h) into an SQLite table, the
// embedded stand-in for BigQuery, with the columns of the runtime schema.
//
// The table is created if missing (checked for the columns if it exists), with the column
// mapping of SqliteInserter: BOOL/INT64 → INTEGER, FLOAT64 → REAL, BYTES → BLOB, TIMESTAMP
// → TEXT (RFC 3339, UTC), DATE/TIME/DATETIME/NUMERIC/BIGNUMERIC/GEOGRAPHY/STRING → TEXT,
// JSON → TEXT holding the JSON, RECORD and REPEATED → TEXT holding JSON (an absent REPEATED
// column is []); REQUIRED columns are NOT NULL. A row that does not convert is a RowError
// (permanent, naming the column); the other rows are stored in one transaction.
// Thread-safe (batches are serialised).
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "dataflow/bqstore/inserter.h"
#include "dataflow/bqstore/json_schema_rows.h"
#include "dataflow/bqstore/sqlite_inserter.h"

namespace dataflow::bqstore {

class SchemaSqliteInserter : public DataBatchInserter<RowInput> {
 public:
  static absl::StatusOr<std::unique_ptr<SchemaSqliteInserter>> Create(
      SqliteInserterOptions options, std::shared_ptr<const RowConverter> converter);

  absl::StatusOr<std::vector<RowError>> Insert(std::span<const RowInput> rows) override;
  absl::Status Close() override;

 private:
  SchemaSqliteInserter(std::shared_ptr<const RowConverter> converter,
                       std::unique_ptr<internal::SqliteTableWriter> writer);
  std::shared_ptr<const RowConverter> converter_;
  std::unique_ptr<internal::SqliteTableWriter> writer_;
};

}  // namespace dataflow::bqstore

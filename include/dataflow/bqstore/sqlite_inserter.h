// SqliteInserter<T>: stores described rows in an SQLite table, the embedded stand-in for
// BigQuery in single-process runs and the demo.
//
// The table is created from InferSchema<T>() if missing (and checked against it if it
// exists). Column mapping: BOOLEAN/INTEGER → INTEGER, FLOAT → REAL, STRING → TEXT,
// BYTES → BLOB, TIMESTAMP → TEXT (RFC 3339, UTC), RECORD and REPEATED → TEXT holding JSON;
// REQUIRED columns are NOT NULL. One transaction per batch, the database in WAL mode, so
// readers never block the writer. A batch is acknowledged (its messages acked) once its
// COMMIT returns, so by default each COMMIT is synced to disk (synchronous=FULL): an acked
// row survives a power loss, not only a process crash. Thread-safe (batches are serialised).
#pragma once

#include <absl/status/statusor.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "dataflow/bqstore/inserter.h"
#include "dataflow/bqstore/row_codec.h"

namespace dataflow::bqstore {

struct SqliteInserterOptions {
  std::string path;            // database file; ":memory:" for a private in-memory one
  std::string table;           // created if missing
  int busy_timeout_ms = 5000;  // wait for another writer's lock instead of failing at once
  // kFull: every COMMIT fsyncs the WAL, so what was acknowledged survives a power loss.
  // kNormal: faster, survives a process crash, but the last commits before a power loss or
  // OS crash can be lost after their messages were acked (docs/bqstore.md has the cost).
  enum class Synchronous { kNormal, kFull };
  Synchronous synchronous = Synchronous::kFull;
};

// SQL NULL (the default value of a SqlValue).
struct SqlNull {
  friend bool operator==(SqlNull, SqlNull) = default;
};
using SqlValue = std::variant<SqlNull, std::int64_t, double, std::string, Bytes>;

namespace internal {

// The non-template part: connection, DDL and the batch transaction.
class SqliteTableWriter {
 public:
  static absl::StatusOr<std::unique_ptr<SqliteTableWriter>> Open(
      const SqliteInserterOptions& options, const TableSchema& schema);
  ~SqliteTableWriter();
  // Inserts all rows (each one value per top-level column) in one transaction.
  absl::Status InsertAll(const std::vector<std::vector<SqlValue>>& rows);
  absl::Status Close();
  // The integer value of `PRAGMA <name>` on this connection (tests, diagnostics).
  absl::StatusOr<std::int64_t> Pragma(const std::string& name);

 private:
  struct Impl;
  explicit SqliteTableWriter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

template <typename V>
SqlValue LeafToSql(const V& v) {
  if constexpr (std::is_same_v<V, bool> || kIsInteger<V>) {
    return static_cast<std::int64_t>(v);
  } else if constexpr (std::is_floating_point_v<V>) {
    return static_cast<double>(v);
  } else if constexpr (std::is_same_v<V, std::string> || std::is_same_v<V, Bytes>) {
    return v;
  } else if constexpr (std::is_same_v<V, Timestamp>) {
    return messagepipeline::FormatTimestamp(v);
  } else {
    return RowToJson(v).dump();
  }
}

template <typename T>
std::vector<SqlValue> RowToSql(const T& row) {
  std::vector<SqlValue> values;
  values.reserve(FieldCount<T>());
  ForEachField<T>([&](auto field) {
    using M = typename decltype(field)::type;
    const M& value = row.*(field.member);
    if constexpr (IsOptional<M>::value) {
      values.push_back(value.has_value() ? LeafToSql(*value) : SqlValue());
    } else if constexpr (IsVector<M>::value) {
      nlohmann::json array = nlohmann::json::array();
      for (const auto& element : value) array.push_back(LeafToJson(element));
      values.push_back(array.dump());
    } else {
      values.push_back(LeafToSql(value));
    }
  });
  return values;
}

}  // namespace internal

template <typename T>
class SqliteInserter : public DataBatchInserter<T> {
 public:
  static absl::StatusOr<std::unique_ptr<SqliteInserter>> Create(SqliteInserterOptions options) {
    auto writer = internal::SqliteTableWriter::Open(options, InferSchema<T>());
    if (!writer.ok()) return writer.status();
    return std::unique_ptr<SqliteInserter>(new SqliteInserter(*std::move(writer)));
  }

  // SQLite has no row-level rejection here: a constraint failure fails the whole batch
  // (rolled back), so the result is either all rows or an error.
  absl::StatusOr<std::vector<RowError>> Insert(std::span<const T> rows) override {
    std::vector<std::vector<SqlValue>> values;
    values.reserve(rows.size());
    for (const T& row : rows) values.push_back(internal::RowToSql(row));
    if (auto s = writer_->InsertAll(values); !s.ok()) return s;
    return std::vector<RowError>();
  }

  absl::Status Close() override { return writer_->Close(); }

  // The integer value of `PRAGMA <name>` on the inserter's connection (pragmas are per
  // connection), e.g. "synchronous": 2 is FULL; for tests and diagnostics.
  absl::StatusOr<std::int64_t> Pragma(const std::string& name) { return writer_->Pragma(name); }

 private:
  explicit SqliteInserter(std::unique_ptr<internal::SqliteTableWriter> writer)
      : writer_(std::move(writer)) {}
  std::unique_ptr<internal::SqliteTableWriter> writer_;
};

}  // namespace dataflow::bqstore

#include "dataflow/bqstore/sqlite_inserter.h"

#include <absl/strings/ascii.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>
#include <sqlite3.h>

#include <map>

namespace dataflow::bqstore::internal {
namespace {

absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::string Quote(std::string_view identifier) {
  std::string out = "\"";
  for (char c : identifier) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

std::string ColumnType(const FieldSchema& f) {
  if (f.mode == FieldMode::kRepeated || f.type == FieldType::kRecord) return "TEXT";
  switch (f.type) {
    case FieldType::kBool:
    case FieldType::kInt64:
      return "INTEGER";
    case FieldType::kFloat64:
      return "REAL";
    case FieldType::kBytes:
      return "BLOB";
    default:
      return "TEXT";
  }
}

}  // namespace

struct SqliteTableWriter::Impl {
  std::mutex mu;
  sqlite3* db = nullptr;
  sqlite3_stmt* insert = nullptr;
  std::string table;
  std::size_t columns = 0;

  absl::Status Error(std::string_view what) const {
    return absl::InternalError(absl::StrCat("sqlite ", table, ": ", Sv(what), ": ",
                                            db ? sqlite3_errmsg(db) : "no connection"));
  }
  absl::Status Exec(const std::string& sql) {
    char* message = nullptr;
    if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
      std::string text = message ? message : "unknown error";
      sqlite3_free(message);
      return absl::InternalError(absl::StrCat("sqlite ", table, ": ", text, " in: ", sql));
    }
    return absl::OkStatus();
  }
  void CloseLocked() {
    if (insert) sqlite3_finalize(insert);
    insert = nullptr;
    if (db) sqlite3_close(db);
    db = nullptr;
  }
};

SqliteTableWriter::SqliteTableWriter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SqliteTableWriter::~SqliteTableWriter() {
  std::lock_guard lock(impl_->mu);
  impl_->CloseLocked();
}

absl::StatusOr<std::unique_ptr<SqliteTableWriter>> SqliteTableWriter::Open(
    const SqliteInserterOptions& options, const TableSchema& schema) {
  if (options.path.empty()) return absl::InvalidArgumentError("sqlite inserter: path is empty");
  if (options.table.empty()) return absl::InvalidArgumentError("sqlite inserter: table is empty");
  if (schema.empty()) return absl::InvalidArgumentError("sqlite inserter: schema has no fields");
  auto impl = std::make_unique<Impl>();
  impl->table = options.table;
  impl->columns = schema.size();
  if (sqlite3_open_v2(options.path.c_str(), &impl->db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    absl::Status s = absl::UnavailableError(absl::StrCat(
        "sqlite: cannot open ", options.path, ": ", impl->db ? sqlite3_errmsg(impl->db) : "?"));
    impl->CloseLocked();
    return s;
  }
  sqlite3_busy_timeout(impl->db, options.busy_timeout_ms);
  if (options.path != ":memory:") {
    if (auto s = impl->Exec("PRAGMA journal_mode=WAL"); !s.ok()) return s;
    // Messages are acked once their batch commits: FULL syncs the WAL on every COMMIT, so an
    // acked row survives a power loss. NORMAL (WAL) only survives a process crash.
    if (auto s = impl->Exec(options.synchronous == SqliteInserterOptions::Synchronous::kFull
                                ? "PRAGMA synchronous=FULL"
                                : "PRAGMA synchronous=NORMAL");
        !s.ok()) {
      return s;
    }
  }
  std::vector<std::string> columns;
  std::vector<std::string> names;
  for (const FieldSchema& f : schema) {
    columns.push_back(absl::StrCat(Quote(f.name), " ", ColumnType(f),
                                   f.mode == FieldMode::kRequired ? " NOT NULL" : ""));
    names.push_back(Quote(f.name));
  }
  if (auto s = impl->Exec(absl::StrCat("CREATE TABLE IF NOT EXISTS ", Quote(options.table), " (",
                                       absl::StrJoin(columns, ", "), ")"));
      !s.ok()) {
    return s;
  }
  // An existing table must have every column we write.
  std::map<std::string, std::string> existing;
  sqlite3_stmt* info = nullptr;
  const std::string pragma = absl::StrCat("PRAGMA table_info(", Quote(options.table), ")");
  if (sqlite3_prepare_v2(impl->db, pragma.c_str(), -1, &info, nullptr) != SQLITE_OK) {
    return impl->Error("table_info");
  }
  while (sqlite3_step(info) == SQLITE_ROW) {
    existing[reinterpret_cast<const char*>(sqlite3_column_text(info, 1))] =
        reinterpret_cast<const char*>(sqlite3_column_text(info, 2));
  }
  sqlite3_finalize(info);
  std::vector<std::string> missing;
  for (const FieldSchema& f : schema) {
    if (!existing.contains(f.name)) missing.push_back(f.name);
  }
  if (!missing.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "sqlite table ", options.table, " exists without columns: ", absl::StrJoin(missing, ", ")));
  }
  const std::string insert = absl::StrCat(
      "INSERT INTO ", Quote(options.table), " (", absl::StrJoin(names, ", "), ") VALUES (",
      absl::StrJoin(std::vector<std::string>(schema.size(), "?"), ", "), ")");
  if (sqlite3_prepare_v2(impl->db, insert.c_str(), -1, &impl->insert, nullptr) != SQLITE_OK) {
    return impl->Error("prepare insert");
  }
  return std::unique_ptr<SqliteTableWriter>(new SqliteTableWriter(std::move(impl)));
}

absl::Status SqliteTableWriter::InsertAll(const std::vector<std::vector<SqlValue>>& rows) {
  Impl& d = *impl_;
  std::lock_guard lock(d.mu);
  if (d.db == nullptr) return absl::FailedPreconditionError("sqlite inserter is closed");
  if (rows.empty()) return absl::OkStatus();
  if (auto s = d.Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  absl::Status status;
  for (std::size_t r = 0; r < rows.size() && status.ok(); ++r) {
    const auto& row = rows[r];
    sqlite3_reset(d.insert);
    sqlite3_clear_bindings(d.insert);
    for (std::size_t i = 0; i < row.size(); ++i) {
      const int index = static_cast<int>(i) + 1;
      const SqlValue& v = row[i];
      if (const auto* n = std::get_if<std::int64_t>(&v)) {
        sqlite3_bind_int64(d.insert, index, *n);
      } else if (const auto* x = std::get_if<double>(&v)) {
        sqlite3_bind_double(d.insert, index, *x);
      } else if (const auto* s = std::get_if<std::string>(&v)) {
        sqlite3_bind_text(d.insert, index, s->data(), static_cast<int>(s->size()), SQLITE_STATIC);
      } else if (const auto* b = std::get_if<Bytes>(&v)) {
        sqlite3_bind_blob(d.insert, index, b->data.data(), static_cast<int>(b->data.size()),
                          SQLITE_STATIC);
      } else {
        sqlite3_bind_null(d.insert, index);
      }
    }
    if (sqlite3_step(d.insert) != SQLITE_DONE) {
      status = d.Error(absl::StrCat("insert row ", r));
    }
  }
  sqlite3_reset(d.insert);
  if (!status.ok()) {
    (void)d.Exec("ROLLBACK");
    return status;
  }
  if (auto s = d.Exec("COMMIT"); !s.ok()) {
    (void)d.Exec("ROLLBACK");
    return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::int64_t> SqliteTableWriter::Pragma(const std::string& name) {
  std::lock_guard lock(impl_->mu);
  if (impl_->db == nullptr) return absl::FailedPreconditionError("sqlite: closed");
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_') {
      return absl::InvalidArgumentError("sqlite: not a pragma name");
    }
  }
  sqlite3_stmt* stmt = nullptr;
  const std::string sql = "PRAGMA " + name;
  if (sqlite3_prepare_v2(impl_->db, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
    return impl_->Error(sql);
  }
  absl::StatusOr<std::int64_t> value = absl::NotFoundError("sqlite: " + sql + " has no value");
  if (sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_type(stmt, 0) == SQLITE_INTEGER) {
    value = sqlite3_column_int64(stmt, 0);
  }
  sqlite3_finalize(stmt);
  return value;
}

absl::Status SqliteTableWriter::Close() {
  std::lock_guard lock(impl_->mu);
  impl_->CloseLocked();
  return absl::OkStatus();
}

}  // namespace dataflow::bqstore::internal

// BigQueryInserter<T>: DataBatchInserter for described rows over the Storage Write API.
//
// At creation it makes sure the table exists (tables.insert with the inferred schema,
// optionally the dataset too) or that an existing table fits the row type; then each
// batch is encoded straight to proto rows and appended to the table's default stream by
// a BigQueryWriter (split under 10 MB, one reused stream, retries with backoff, per-row
// errors, each request bounded by append_timeout; Cancel() aborts an insert in flight).
// Default-stream appends are at-least-once: a batch retried after a lost response can be stored
// twice. Thread-safe.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "dataflow/bqstore/inserter.h"
#include "dataflow/bqstore/row_codec.h"
#include "dataflow/bqstore/storage_write.h"
#include "dataflow/bqstore/table_admin.h"

namespace dataflow::bqstore {

struct BigQueryInserterOptions {
  BigQueryWriterOptions writer;  // project, dataset, table, limits, retries, channel
  TableOptions table;            // create if missing, partitioning, clustering
  TableAdminOptions admin;       // REST endpoint and token; project taken from `writer`
  bool manage_table = true;      // false: skip the REST calls (the table is known to exist)
};

template <typename T>
class BigQueryInserter : public DataBatchInserter<T> {
 public:
  static absl::StatusOr<std::unique_ptr<BigQueryInserter>> Create(BigQueryInserterOptions options) {
    const TableSchema schema = InferSchema<T>();
    if (options.manage_table) {
      if (options.admin.project_id.empty()) options.admin.project_id = options.writer.project_id;
      auto admin = TableAdmin::Create(options.admin);
      if (!admin.ok()) return admin.status();
      auto ensured = (*admin)->EnsureTable(options.writer.dataset_id, options.writer.table_id,
                                           schema, options.table);
      if (!ensured.ok()) return ensured.status();
    }
    auto writer = BigQueryWriter::Create(std::move(options.writer), schema);
    if (!writer.ok()) return writer.status();
    return std::unique_ptr<BigQueryInserter>(new BigQueryInserter(*std::move(writer)));
  }

  absl::StatusOr<std::vector<RowError>> Insert(std::span<const T> rows) override {
    std::vector<std::string> encoded(rows.size());
    for (std::size_t i = 0; i < rows.size(); ++i) EncodeRow(rows[i], encoded[i]);
    return writer_->Append(encoded);
  }

  absl::Status Close() override {
    writer_->Close();
    return absl::OkStatus();
  }
  void Cancel() override { writer_->Cancel(); }

  BigQueryWriter& writer() { return *writer_; }

 private:
  explicit BigQueryInserter(std::unique_ptr<BigQueryWriter> writer) : writer_(std::move(writer)) {}
  std::unique_ptr<BigQueryWriter> writer_;
};

}  // namespace dataflow::bqstore

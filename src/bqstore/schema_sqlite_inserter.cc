#include "dataflow/bqstore/schema_sqlite_inserter.h"

#include "dataflow/messagepipeline/errors.h"

namespace dataflow::bqstore {

SchemaSqliteInserter::SchemaSqliteInserter(std::shared_ptr<const RowConverter> converter,
                                           std::unique_ptr<internal::SqliteTableWriter> writer)
    : converter_(std::move(converter)), writer_(std::move(writer)) {}

absl::StatusOr<std::unique_ptr<SchemaSqliteInserter>> SchemaSqliteInserter::Create(
    SqliteInserterOptions options, std::shared_ptr<const RowConverter> converter) {
  if (!converter) return absl::InvalidArgumentError("sqlite inserter: no row schema");
  auto writer = internal::SqliteTableWriter::Open(options, converter->schema());
  if (!writer.ok()) return writer.status();
  return std::unique_ptr<SchemaSqliteInserter>(
      new SchemaSqliteInserter(std::move(converter), *std::move(writer)));
}

absl::StatusOr<std::vector<RowError>> SchemaSqliteInserter::Insert(std::span<const RowInput> rows) {
  std::vector<RowError> rejected;
  std::vector<std::vector<SqlValue>> values;
  values.reserve(rows.size());
  ConvertedRow converted;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (auto s = converter_->Convert(rows[i], converted); !s.ok()) {
      rejected.push_back({i, messagepipeline::MarkPermanent(s)});
      continue;
    }
    values.push_back(converter_->ToSql(converted));
  }
  if (auto s = writer_->InsertAll(values); !s.ok()) return s;
  return rejected;
}

absl::Status SchemaSqliteInserter::Close() { return writer_->Close(); }

}  // namespace dataflow::bqstore

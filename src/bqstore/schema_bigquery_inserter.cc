#include "dataflow/bqstore/schema_bigquery_inserter.h"

#include <absl/strings/str_cat.h>

#include <algorithm>

#include "dataflow/messagepipeline/errors.h"
#include "dataflow/messagepipeline/logging.h"

namespace dataflow::bqstore {

SchemaBigQueryInserter::SchemaBigQueryInserter(SchemaBigQueryInserterOptions options)
    : options_(std::move(options)), from_table_(options_.columns.empty()) {}

SchemaBigQueryInserter::~SchemaBigQueryInserter() { (void)Close(); }

absl::StatusOr<std::unique_ptr<SchemaBigQueryInserter>> SchemaBigQueryInserter::Create(
    SchemaBigQueryInserterOptions options) {
  if (!options.columns.empty() && !options.sources.empty()) {
    return absl::InvalidArgumentError(
        "bigquery schema: `sources` is for from_table; give a config column its `source`");
  }
  if (options.schema_refresh_interval < std::chrono::milliseconds::zero()) {
    return absl::InvalidArgumentError("bigquery schema: schema_refresh_interval must be >= 0");
  }
  if (options.admin.project_id.empty()) options.admin.project_id = options.writer.project_id;
  std::unique_ptr<SchemaBigQueryInserter> inserter(new SchemaBigQueryInserter(std::move(options)));
  SchemaBigQueryInserterOptions& o = inserter->options_;
  if (inserter->from_table_ || o.manage_table) {
    auto admin = TableAdmin::Create(o.admin);
    if (!admin.ok()) return admin.status();
    inserter->admin_ = *std::move(admin);
  }
  if (inserter->from_table_) {
    auto schema = inserter->admin_->GetTableSchema(o.writer.dataset_id, o.writer.table_id);
    if (!schema.ok()) return schema.status();
    if (auto s = inserter->UseSchema(*schema); !s.ok()) return s;
    inserter->last_fetch_ = std::chrono::steady_clock::now();
    return inserter;
  }
  auto converter = RowConverter::Create(o.columns);
  if (!converter.ok()) return converter.status();
  if (o.manage_table) {
    auto ensured = inserter->admin_->EnsureTable(o.writer.dataset_id, o.writer.table_id,
                                                 (*converter)->schema(), o.table);
    if (!ensured.ok()) return ensured.status();
  }
  auto writer = BigQueryWriter::Create(o.writer, (*converter)->schema());
  if (!writer.ok()) return writer.status();
  inserter->converter_ = *std::move(converter);
  inserter->writer_ = *std::move(writer);
  return inserter;
}

absl::Status SchemaBigQueryInserter::UseSchema(const TableSchema& table_schema) {
  auto columns = ColumnsForTable(table_schema, options_.sources);
  if (!columns.ok()) return columns.status();
  auto converter = RowConverter::Create(*std::move(columns));
  if (!converter.ok()) return converter.status();
  auto writer = BigQueryWriter::Create(options_.writer, table_schema);
  if (!writer.ok()) return writer.status();
  std::shared_ptr<BigQueryWriter> old;
  {
    std::lock_guard lock(state_mu_);
    if (cancelled_) (*writer)->Cancel();
    old = std::move(writer_);
    writer_ = *std::move(writer);
    converter_ = *std::move(converter);
  }
  if (old) old->Close();
  return absl::OkStatus();
}

void SchemaBigQueryInserter::MaybeRefreshSchema(std::span<const RowInput> rows) {
  const auto now = std::chrono::steady_clock::now();
  if (now - last_fetch_ < options_.schema_refresh_interval) return;
  const std::shared_ptr<const RowConverter> current = converter();
  if (std::none_of(rows.begin(), rows.end(),
                   [&](const RowInput& r) { return current->HasUnmappedPayloadField(r); })) {
    return;
  }
  last_fetch_ = now;
  ++fetches_;
  auto schema = admin_->GetTableSchema(options_.writer.dataset_id, options_.writer.table_id);
  absl::Status status = schema.status();
  if (status.ok() && *schema != current->schema()) {
    status = UseSchema(*schema);
    if (status.ok()) {
      dataflow::Log()->info(
          "bigquery table schema changed; writing with the new one table={} "
          "columns={}",
          options_.writer.table_id, schema->size());
    }
  }
  if (!status.ok()) {
    // Fields without a column are ignored anyway; the next refresh may pick the column up.
    static dataflow::LogRateLimit limit;
    if (limit.Allow()) {
      dataflow::Log()->warn("bigquery table schema refresh failed table={} error=\"{}\"",
                            options_.writer.table_id, status.ToString());
    }
  }
}

absl::StatusOr<std::vector<RowError>> SchemaBigQueryInserter::Insert(
    std::span<const RowInput> rows) {
  std::lock_guard lock(mu_);
  {
    // Close() clears the writer under mu_ too, so a closed inserter never refreshes.
    std::lock_guard state(state_mu_);
    if (!writer_) return absl::FailedPreconditionError("bigquery inserter is closed");
  }
  if (from_table_) MaybeRefreshSchema(rows);
  std::shared_ptr<const RowConverter> converter;
  std::shared_ptr<BigQueryWriter> writer;
  {
    std::lock_guard state(state_mu_);
    converter = converter_;
    writer = writer_;
  }
  std::vector<RowError> rejected;
  std::vector<std::string> encoded;
  std::vector<std::size_t> positions;
  encoded.reserve(rows.size());
  positions.reserve(rows.size());
  ConvertedRow converted;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (auto s = converter->Convert(rows[i], converted); !s.ok()) {
      rejected.push_back({i, messagepipeline::MarkPermanent(s)});
      continue;
    }
    converter->EncodeProto(converted, encoded.emplace_back());
    positions.push_back(i);
  }
  if (!encoded.empty()) {
    auto appended = writer->Append(encoded);
    if (!appended.ok()) return appended.status();
    for (const RowError& e : *appended) rejected.push_back({positions[e.index], e.status});
  }
  std::sort(rejected.begin(), rejected.end(),
            [](const RowError& a, const RowError& b) { return a.index < b.index; });
  return rejected;
}

absl::Status SchemaBigQueryInserter::Close() {
  std::shared_ptr<BigQueryWriter> writer;
  {
    std::lock_guard lock(state_mu_);
    if (writer_) writer_->Cancel();  // an insert in flight returns now
    writer = writer_;
  }
  std::lock_guard lock(mu_);
  {
    std::lock_guard state(state_mu_);
    writer = std::move(writer_);
  }
  if (writer) writer->Close();
  return absl::OkStatus();
}

void SchemaBigQueryInserter::Cancel() {
  std::lock_guard lock(state_mu_);
  cancelled_ = true;
  if (writer_) writer_->Cancel();
}

std::shared_ptr<const RowConverter> SchemaBigQueryInserter::converter() const {
  std::lock_guard lock(state_mu_);
  return converter_;
}

std::uint64_t SchemaBigQueryInserter::schema_fetches() const { return fetches_.load(); }

}  // namespace dataflow::bqstore

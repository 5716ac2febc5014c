// JsonRowInserter: rows as JSON objects, no .proto and no C++ type needed.
//
// At creation it reads the table's schema (tables.get) and builds the row descriptor from
// it; each object is then converted to a proto row: INTEGER as a JSON number or a decimal
// string, TIMESTAMP as RFC 3339 or epoch microseconds, BYTES as base64, RECORD as an
// object, REPEATED as an array. An object that does not fit is reported as a RowError with
// its index and the field path; the other rows are written.
// With `add_unknown_fields`, top-level fields the table lacks are added as NULLABLE columns
// (tables.patch; type from the JSON value) before the batch is written, instead of being
// rejected. Thread-safe (batches are serialised).
#pragma once

#include <absl/status/statusor.h>

#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <span>

#include "dataflow/bqstore/inserter.h"
#include "dataflow/bqstore/storage_write.h"
#include "dataflow/bqstore/table_admin.h"

namespace google::protobuf {
class Message;
}

namespace dataflow::bqstore {

struct JsonRowInserterOptions {
  BigQueryWriterOptions writer;  // project, dataset, table, limits, retries, channel
  TableAdminOptions admin;       // REST endpoint and token; project taken from `writer`
  bool add_unknown_fields = false;
};

class JsonRowInserter : public DataBatchInserter<nlohmann::json> {
 public:
  // NotFound if the table does not exist.
  static absl::StatusOr<std::unique_ptr<JsonRowInserter>> Create(JsonRowInserterOptions options);
  ~JsonRowInserter() override;

  absl::StatusOr<std::vector<RowError>> Insert(std::span<const nlohmann::json> rows) override;
  absl::Status Close() override;

  TableSchema schema() const;

 private:
  JsonRowInserter(JsonRowInserterOptions options, std::unique_ptr<TableAdmin> admin);
  absl::Status UseSchema(TableSchema schema);
  absl::Status AddUnknownFields(std::span<const nlohmann::json> rows);

  JsonRowInserterOptions options_;
  std::unique_ptr<TableAdmin> admin_;
  mutable std::mutex mu_;
  TableSchema schema_;
  std::unique_ptr<RowDescriptor> descriptor_;
  std::unique_ptr<BigQueryWriter> writer_;
};

// Fills `message` (of RowDescriptor::FromSchema(schema)) from a JSON object; InvalidArgument
// naming the field path when the object does not fit. Unknown fields are errors.
absl::Status JsonToProtoRow(const nlohmann::json& json, const TableSchema& schema,
                            google::protobuf::Message& message);

}  // namespace dataflow::bqstore

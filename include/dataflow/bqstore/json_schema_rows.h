// Schema-driven rows: any JSON payload into any table, with the schema described at run
// time (config YAML/JSON, or the table's own schema) instead of a C++ type.
//
// A ColumnSpec is a BigQuery column {name, type, mode, fields} plus where its value comes
// from (ColumnSource): by default the payload's top-level field of the same name; or a
// path into the payload (`payload.a.b[0]`), an attribute (`attributes.x`), the enrichment
// data (`enrichment.location`), the message id (`message_id`), the publish time
// (`publish_time`) or the MQTT topic (`mqtt_topic`, the attribute the MQTT consumer sets).
//
// RowConverter turns a RowInput (what a message carries, its payload already parsed) into a
// ConvertedRow by the per-type rules documented in docs/bqstore.md (e.g. a JSON number into
// INT64 must be integral and in range; TIMESTAMP from RFC 3339 or epoch seconds; BYTES from
// base64), and encodes converted rows as Storage Write API proto rows (the message of
// RowDescriptorProto(schema())) or as SQLite values. A row that does not convert is an
// InvalidArgument naming the column and the reason ("column tags[1]: expected a string, got
// number"): bad data, so callers treat it as permanent. Everything here is immutable after
// creation and thread-safe.
#pragma once

#include <absl/status/statusor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dataflow/bqstore/row.h"
#include "dataflow/bqstore/schema.h"
#include "dataflow/bqstore/sqlite_inserter.h"
#include "dataflow/messagepipeline/message.h"
#include "dataflow/messagepipeline/transformer.h"

namespace dataflow::bqstore {

struct ColumnSource {
  enum class Kind { kPayload, kAttribute, kEnrichment, kMessageId, kPublishTime };
  struct Step {
    std::string key;  // an object member, or
    int index = -1;   // an array element when >= 0
    friend bool operator==(const Step&, const Step&) = default;
  };
  Kind kind = Kind::kPayload;
  std::vector<Step> path;  // kPayload, kEnrichment; empty: the whole document
  std::string attribute;   // kAttribute
  std::string text;        // as written, for messages
  friend bool operator==(const ColumnSource&, const ColumnSource&) = default;
};

// "payload", "payload.a.b[0]", "attributes.x", "enrichment", "enrichment.location",
// "message_id", "publish_time", "mqtt_topic". InvalidArgument otherwise.
absl::StatusOr<ColumnSource> ParseColumnSource(std::string_view text);

struct ColumnSpec {
  FieldSchema field;
  // Null: the payload's top-level field named like the column.
  std::optional<ColumnSource> source;
  // Used when the source yields nothing (absent or null); converted like any value.
  nlohmann::json default_value = nullptr;
  // A value that does not convert becomes NULL instead of failing the row (NULLABLE only).
  bool invalid_as_null = false;
};

// The config form: a JSON array of {name, type, mode?, fields?, source?, default?,
// on_invalid? ("error" | "null")}, nested `fields` as in BigQuery (no source on nested
// fields: they are read by name from the record's object). InvalidArgument naming the
// entry ("schema[2].type: ...") for anything malformed, an invalid schema, a source on a
// nested field, or on_invalid: null on a REQUIRED column.
absl::StatusOr<std::vector<ColumnSpec>> ColumnsFromJson(const nlohmann::json& columns);

// Columns for a table schema (from_table): each column reads the payload field of its name,
// unless `sources` names another source for it (InvalidArgument for a source naming no
// column or not parsing).
absl::StatusOr<std::vector<ColumnSpec>> ColumnsForTable(
    const TableSchema& schema, const std::map<std::string, std::string>& sources);

// What a message brings to a row.
struct RowInput {
  std::string id;
  messagepipeline::Clock::time_point publish_time{};  // {}: unset (NULL)
  nlohmann::json payload = nullptr;                   // parsed JSON
  nlohmann::json enrichment = nullptr;
  messagepipeline::Attributes attributes;
};

// One converted value. The schema says how to read it: BOOL, INT64, TIMESTAMP (epoch
// microseconds) and DATE (days since the epoch) in `i`; FLOAT64 in `d`; every other scalar
// as text in `s` (BYTES raw, NUMERIC normalised, JSON serialised; DATE's text too); a
// RECORD's fields, or a REPEATED column's elements, in `list`.
struct Cell {
  enum class Kind : std::uint8_t { kNull, kScalar, kList };
  Kind kind = Kind::kNull;
  std::int64_t i = 0;
  double d = 0;
  std::string s;
  std::vector<Cell> list;
};
using ConvertedRow = std::vector<Cell>;  // one per top-level column

// Converts one non-null JSON value to a scalar cell of `field`'s type (not REPEATED /
// RECORD handling: the element rules). InvalidArgument with the reason only (no column
// name), for callers that add their own path.
absl::Status ConvertScalar(const nlohmann::json& value, const FieldSchema& field, Cell& out);

class RowConverter {
 public:
  static absl::StatusOr<std::shared_ptr<const RowConverter>> Create(
      std::vector<ColumnSpec> columns);

  const TableSchema& schema() const { return schema_; }
  const std::vector<ColumnSpec>& columns() const { return columns_; }
  // Whether any column reads the payload (else it need not be JSON).
  bool needs_payload() const { return needs_payload_; }

  // InvalidArgument "column <path>: <reason>" when the row does not fit.
  absl::Status Convert(const RowInput& input, ConvertedRow& out) const;
  // Appends the proto encoding of a converted row (a message of RowDescriptorProto(schema())).
  void EncodeProto(const ConvertedRow& row, std::string& out) const;
  // Convert + EncodeProto.
  absl::Status ToProto(const RowInput& input, std::string& out) const;
  // One SQLite value per top-level column (see SchemaSqliteInserter for the mapping).
  std::vector<SqlValue> ToSql(const ConvertedRow& row) const;

  // True when the payload has a top-level member that no column reads (by name or as the
  // first step of a payload path): a row that may need a column the table gained since
  // (from_table schema evolution).
  bool HasUnmappedPayloadField(const RowInput& input) const;

 private:
  RowConverter() = default;
  std::vector<ColumnSpec> columns_;
  TableSchema schema_;
  bool needs_payload_ = false;
};

// How RowInputTransformer reads a message.
struct RowInputOptions {
  // How the message body is read (messagepipeline::DecodeInput): the JSON envelope
  // (MessageData: id, payload, publishTime, enrichmentData), as enrichment and ingestion
  // publish it, or the raw bytes (the message's own id, publish time and attributes);
  // kAuto tells them apart. An envelope that does not decode is a permanent error.
  messagepipeline::InputFormat input_format = messagepipeline::InputFormat::kAuto;
  // Parse the (inner) payload as JSON; a payload that is not JSON is a permanent error.
  bool parse_payload = true;
};

// Message → RowInput (attributes always kept). Thread-safe.
messagepipeline::MessageTransformer<RowInput> RowInputTransformer(RowInputOptions options = {});

}  // namespace dataflow::bqstore

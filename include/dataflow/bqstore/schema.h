// BigQuery table schemas: the field tree, its REST JSON form ({"fields": [...]}), a
// comparison that names mismatching fields, and the proto2 descriptor that the Storage
// Write API wants for rows of a schema (ProtoSchema). Values only; thread-safe.
#pragma once

#include <absl/status/statusor.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace google::protobuf {
class DescriptorProto;
class Descriptor;
class DescriptorPool;
class DynamicMessageFactory;
class Message;
}  // namespace google::protobuf

namespace dataflow::bqstore {

// kNumeric..kGeography travel as text on the wire (DATE as int32 days since the epoch), as
// the Storage Write API accepts them; see json_schema_rows.h for how values are converted.
enum class FieldType {
  kBool,
  kInt64,
  kFloat64,
  kString,
  kBytes,
  kTimestamp,
  kRecord,
  kNumeric,
  kBigNumeric,
  kDate,
  kTime,
  kDateTime,
  kJson,
  kGeography,
};
enum class FieldMode { kNullable, kRequired, kRepeated };

// BigQuery's names ("BOOLEAN", "INTEGER", "FLOAT", ...; "BOOL", "INT64", "FLOAT64",
// "STRUCT", "DECIMAL" and "BIGDECIMAL" are accepted when parsing).
std::string_view FieldTypeName(FieldType type);
absl::StatusOr<FieldType> ParseFieldType(std::string_view name);
std::string_view FieldModeName(FieldMode mode);
absl::StatusOr<FieldMode> ParseFieldMode(std::string_view name);

struct FieldSchema {
  std::string name;
  FieldType type = FieldType::kString;
  FieldMode mode = FieldMode::kNullable;
  std::vector<FieldSchema> fields;  // for kRecord
  friend bool operator==(const FieldSchema&, const FieldSchema&) = default;
};
using TableSchema = std::vector<FieldSchema>;

// {"fields": [{"name", "type", "mode", "fields"?}, ...]} as in the tables REST resource.
nlohmann::json SchemaToJson(const TableSchema& schema);
absl::StatusOr<TableSchema> SchemaFromJson(const nlohmann::json& json);

// OK when every field the writer has exists in the table with the same type and a
// compatible mode (the table may have more NULLABLE columns). Otherwise InvalidArgument
// naming each mismatching field by its dotted path.
absl::Status CheckCompatible(const TableSchema& writer, const TableSchema& table);

// A self-contained proto2 DescriptorProto for rows of `schema` (records become nested
// types; field numbers are positions from 1; TIMESTAMP is int64 microseconds since the
// epoch, as the Storage Write API expects; DATE is int32 days since the epoch; NUMERIC,
// BIGNUMERIC, TIME, DATETIME, JSON and GEOGRAPHY are strings). InvalidArgument for an empty or
// invalid schema.
absl::StatusOr<google::protobuf::DescriptorProto> RowDescriptorProto(const TableSchema& schema,
                                                                     std::string_view name);

// A DescriptorProto made usable: a private pool holding it, and DynamicMessages of it.
// Thread-safe after construction (DynamicMessageFactory is, once types are created).
class RowDescriptor {
 public:
  static absl::StatusOr<std::unique_ptr<RowDescriptor>> Create(
      const google::protobuf::DescriptorProto& proto);
  static absl::StatusOr<std::unique_ptr<RowDescriptor>> FromSchema(const TableSchema& schema,
                                                                   std::string_view name = "Row");
  ~RowDescriptor();

  const google::protobuf::Descriptor* descriptor() const { return descriptor_; }
  // A new empty row message, owned by the caller.
  std::unique_ptr<google::protobuf::Message> NewMessage() const;

 private:
  RowDescriptor();
  std::unique_ptr<google::protobuf::DescriptorPool> pool_;
  std::unique_ptr<google::protobuf::DynamicMessageFactory> factory_;
  const google::protobuf::Descriptor* descriptor_ = nullptr;
  const google::protobuf::Message* prototype_ = nullptr;
};

}  // namespace dataflow::bqstore

#include "dataflow/bqstore/json_row_inserter.h"

#include <absl/strings/escaping.h>
#include <absl/strings/match.h>
#include <absl/strings/numbers.h>
#include <absl/strings/str_cat.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include "dataflow/bqstore/json_schema_rows.h"
#include "dataflow/messagepipeline/message.h"

namespace dataflow::bqstore {
namespace {

namespace pb = google::protobuf;

absl::Status Wrong(const std::string& path, const char* expected, const nlohmann::json& j) {
  return absl::InvalidArgumentError(
      absl::StrCat(path, ": expected ", expected, ", got ", std::string(j.type_name())));
}

absl::Status SetValue(const nlohmann::json& j, const FieldSchema& f, const std::string& path,
                      pb::Message& m, const pb::FieldDescriptor* fd, bool repeated) {
  const pb::Reflection* r = m.GetReflection();
  switch (f.type) {
    case FieldType::kBool:
      if (!j.is_boolean()) return Wrong(path, "a boolean", j);
      repeated ? r->AddBool(&m, fd, j.get<bool>()) : r->SetBool(&m, fd, j.get<bool>());
      return absl::OkStatus();
    case FieldType::kInt64: {
      std::int64_t v = 0;
      if (j.is_number_integer() &&
          !(j.is_number_unsigned() &&
            j.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX))) {
        v = j.get<std::int64_t>();
      } else if (!(j.is_string() && absl::SimpleAtoi(j.get<std::string>(), &v))) {
        return Wrong(path, "an integer", j);
      }
      repeated ? r->AddInt64(&m, fd, v) : r->SetInt64(&m, fd, v);
      return absl::OkStatus();
    }
    case FieldType::kFloat64:
      if (!j.is_number()) return Wrong(path, "a number", j);
      repeated ? r->AddDouble(&m, fd, j.get<double>()) : r->SetDouble(&m, fd, j.get<double>());
      return absl::OkStatus();
    case FieldType::kString:
      if (!j.is_string()) return Wrong(path, "a string", j);
      repeated ? r->AddString(&m, fd, j.get<std::string>())
               : r->SetString(&m, fd, j.get<std::string>());
      return absl::OkStatus();
    case FieldType::kBytes: {
      std::string bytes;
      if (!j.is_string() || !absl::Base64Unescape(j.get<std::string>(), &bytes)) {
        return Wrong(path, "base64 bytes", j);
      }
      repeated ? r->AddString(&m, fd, bytes) : r->SetString(&m, fd, bytes);
      return absl::OkStatus();
    }
    case FieldType::kTimestamp: {
      std::int64_t micros = 0;
      if (j.is_number_integer()) {
        micros = j.get<std::int64_t>();
      } else if (j.is_string()) {
        auto t = messagepipeline::ParseTimestamp(j.get<std::string>());
        if (!t.ok())
          return absl::InvalidArgumentError(absl::StrCat(path, ": ", t.status().message()));
        micros =
            std::chrono::duration_cast<std::chrono::microseconds>(t->time_since_epoch()).count();
      } else {
        return Wrong(path, "an RFC 3339 timestamp or epoch microseconds", j);
      }
      repeated ? r->AddInt64(&m, fd, micros) : r->SetInt64(&m, fd, micros);
      return absl::OkStatus();
    }
    case FieldType::kRecord: {
      if (!j.is_object()) return Wrong(path, "an object", j);
      pb::Message* nested = repeated ? r->AddMessage(&m, fd) : r->MutableMessage(&m, fd);
      // The record's own fields, by the same rules; errors get this field's path in front.
      absl::Status s = JsonToProtoRow(j, f.fields, *nested);
      if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ".", s.message()));
      return absl::OkStatus();
    }
    default: {  // DATE and the types that travel as text: by the schema-row rules
      Cell cell;
      if (auto s = ConvertScalar(j, f, cell); !s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": ", s.message()));
      }
      if (f.type == FieldType::kDate) {
        repeated ? r->AddInt32(&m, fd, static_cast<std::int32_t>(cell.i))
                 : r->SetInt32(&m, fd, static_cast<std::int32_t>(cell.i));
      } else {
        repeated ? r->AddString(&m, fd, cell.s) : r->SetString(&m, fd, cell.s);
      }
      return absl::OkStatus();
    }
  }
  return absl::InternalError("unreachable");
}

FieldType TypeOfJson(const nlohmann::json& j) {
  if (j.is_boolean()) return FieldType::kBool;
  if (j.is_number_integer()) return FieldType::kInt64;
  if (j.is_number()) return FieldType::kFloat64;
  return FieldType::kString;
}

}  // namespace

absl::Status JsonToProtoRow(const nlohmann::json& json, const TableSchema& schema,
                            pb::Message& message) {
  if (!json.is_object()) return absl::InvalidArgumentError("row: expected a JSON object");
  const pb::Descriptor* d = message.GetDescriptor();
  for (auto it = json.begin(); it != json.end(); ++it) {
    bool known = false;
    for (const FieldSchema& f : schema) known |= absl::EqualsIgnoreCase(f.name, it.key());
    if (!known) return absl::InvalidArgumentError(absl::StrCat(it.key(), ": no such column"));
  }
  for (int i = 0; i < static_cast<int>(schema.size()); ++i) {
    const FieldSchema& f = schema[i];
    const pb::FieldDescriptor* fd = d->field(i);
    auto it = json.find(f.name);
    const bool missing = it == json.end() || it->is_null();
    if (missing) {
      if (f.mode == FieldMode::kRequired) {
        return absl::InvalidArgumentError(absl::StrCat(f.name, ": required field is missing"));
      }
      continue;
    }
    if (f.mode == FieldMode::kRepeated) {
      if (!it->is_array()) return Wrong(f.name, "an array", *it);
      for (std::size_t k = 0; k < it->size(); ++k) {
        if (auto s = SetValue((*it)[k], f, absl::StrCat(f.name, "[", k, "]"), message, fd, true);
            !s.ok()) {
          return s;
        }
      }
    } else if (auto s = SetValue(*it, f, f.name, message, fd, false); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

JsonRowInserter::JsonRowInserter(JsonRowInserterOptions options, std::unique_ptr<TableAdmin> admin)
    : options_(std::move(options)), admin_(std::move(admin)) {}
JsonRowInserter::~JsonRowInserter() = default;

absl::StatusOr<std::unique_ptr<JsonRowInserter>> JsonRowInserter::Create(
    JsonRowInserterOptions options) {
  if (options.admin.project_id.empty()) options.admin.project_id = options.writer.project_id;
  auto admin = TableAdmin::Create(options.admin);
  if (!admin.ok()) return admin.status();
  auto schema = (*admin)->GetTableSchema(options.writer.dataset_id, options.writer.table_id);
  if (!schema.ok()) return schema.status();
  std::unique_ptr<JsonRowInserter> inserter(
      new JsonRowInserter(std::move(options), *std::move(admin)));
  if (auto s = inserter->UseSchema(*std::move(schema)); !s.ok()) return s;
  return inserter;
}

absl::Status JsonRowInserter::UseSchema(TableSchema schema) {
  auto descriptor = RowDescriptor::FromSchema(schema, "Row");
  if (!descriptor.ok()) return descriptor.status();
  auto writer = BigQueryWriter::Create(options_.writer, schema);
  if (!writer.ok()) return writer.status();
  if (writer_) writer_->Close();
  schema_ = std::move(schema);
  descriptor_ = *std::move(descriptor);
  writer_ = *std::move(writer);
  return absl::OkStatus();
}

absl::Status JsonRowInserter::AddUnknownFields(std::span<const nlohmann::json> rows) {
  TableSchema added;
  for (const nlohmann::json& row : rows) {
    if (!row.is_object()) continue;
    for (auto it = row.begin(); it != row.end(); ++it) {
      if (it->is_null() || it->is_object() || it->is_array()) continue;  // type unknowable
      bool known = false;
      for (const FieldSchema& f : schema_) known |= absl::EqualsIgnoreCase(f.name, it.key());
      for (const FieldSchema& f : added) known |= absl::EqualsIgnoreCase(f.name, it.key());
      if (!known) {
        added.push_back({.name = it.key(), .type = TypeOfJson(*it), .mode = FieldMode::kNullable});
      }
    }
  }
  if (added.empty()) return absl::OkStatus();
  TableSchema wider = schema_;
  wider.insert(wider.end(), added.begin(), added.end());
  if (auto s = RowDescriptorProto(wider, "Row"); !s.ok()) return s.status();
  if (auto s = admin_->PatchSchema(options_.writer.dataset_id, options_.writer.table_id, wider);
      !s.ok()) {
    return s;
  }
  return UseSchema(std::move(wider));
}

absl::StatusOr<std::vector<RowError>> JsonRowInserter::Insert(
    std::span<const nlohmann::json> rows) {
  std::lock_guard lock(mu_);
  if (!writer_) return absl::FailedPreconditionError("json row inserter is closed");
  if (options_.add_unknown_fields) {
    if (auto s = AddUnknownFields(rows); !s.ok()) return s;
  }
  std::vector<RowError> rejected;
  std::vector<std::string> encoded;
  std::vector<std::size_t> positions;
  encoded.reserve(rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    auto message = descriptor_->NewMessage();
    if (auto s = JsonToProtoRow(rows[i], schema_, *message); !s.ok()) {
      rejected.push_back({i, s});
      continue;
    }
    encoded.push_back(message->SerializeAsString());
    positions.push_back(i);
  }
  auto appended = writer_->Append(encoded);
  if (!appended.ok()) return appended.status();
  for (const RowError& e : *appended) rejected.push_back({positions[e.index], e.status});
  std::sort(rejected.begin(), rejected.end(),
            [](const RowError& a, const RowError& b) { return a.index < b.index; });
  return rejected;
}

absl::Status JsonRowInserter::Close() {
  std::lock_guard lock(mu_);
  if (writer_) writer_->Close();
  return absl::OkStatus();
}

TableSchema JsonRowInserter::schema() const {
  std::lock_guard lock(mu_);
  return schema_;
}

}  // namespace dataflow::bqstore

#include "dataflow/bqstore/schema.h"

#include <absl/strings/ascii.h>
#include <absl/strings/match.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/dynamic_message.h>

#include <map>

namespace dataflow::bqstore {
namespace {

namespace pb = google::protobuf;

absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

bool IsIdentifier(std::string_view name) {
  if (name.empty() || name.size() > 300) return false;
  if (!(absl::ascii_isalpha(name[0]) || name[0] == '_')) return false;
  for (char c : name) {
    if (!(absl::ascii_isalnum(c) || c == '_')) return false;
  }
  return true;
}

absl::Status ValidateFields(const TableSchema& fields, const std::string& path) {
  if (fields.empty()) {
    return absl::InvalidArgumentError(
        path.empty() ? "schema has no fields" : absl::StrCat("record ", path, " has no fields"));
  }
  std::map<std::string, int> seen;
  for (const FieldSchema& f : fields) {
    const std::string full = path.empty() ? f.name : absl::StrCat(path, ".", f.name);
    if (!IsIdentifier(f.name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("field name \"", full, "\" is not a valid column name"));
    }
    if (++seen[absl::AsciiStrToLower(f.name)] > 1) {
      return absl::InvalidArgumentError(absl::StrCat("duplicate field ", full));
    }
    if (f.type == FieldType::kRecord) {
      if (auto s = ValidateFields(f.fields, full); !s.ok()) return s;
    } else if (!f.fields.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "field ", full, " of type ", Sv(FieldTypeName(f.type)), " cannot have sub-fields"));
    }
  }
  return absl::OkStatus();
}

void FillDescriptor(const TableSchema& fields, pb::DescriptorProto* out) {
  int number = 1;
  for (const FieldSchema& f : fields) {
    pb::FieldDescriptorProto* field = out->add_field();
    field->set_name(f.name);
    field->set_number(number++);
    field->set_label(f.mode == FieldMode::kRepeated ? pb::FieldDescriptorProto::LABEL_REPEATED
                                                    : pb::FieldDescriptorProto::LABEL_OPTIONAL);
    switch (f.type) {
      case FieldType::kBool:
        field->set_type(pb::FieldDescriptorProto::TYPE_BOOL);
        break;
      case FieldType::kInt64:
      case FieldType::kTimestamp:
        field->set_type(pb::FieldDescriptorProto::TYPE_INT64);
        break;
      case FieldType::kFloat64:
        field->set_type(pb::FieldDescriptorProto::TYPE_DOUBLE);
        break;
      case FieldType::kDate:
        field->set_type(pb::FieldDescriptorProto::TYPE_INT32);
        break;
      case FieldType::kString:
      case FieldType::kNumeric:
      case FieldType::kBigNumeric:
      case FieldType::kTime:
      case FieldType::kDateTime:
      case FieldType::kJson:
      case FieldType::kGeography:
        field->set_type(pb::FieldDescriptorProto::TYPE_STRING);
        break;
      case FieldType::kBytes:
        field->set_type(pb::FieldDescriptorProto::TYPE_BYTES);
        break;
      case FieldType::kRecord: {
        field->set_type(pb::FieldDescriptorProto::TYPE_MESSAGE);
        pb::DescriptorProto* nested = out->add_nested_type();
        nested->set_name(absl::StrCat("R_", f.name));
        FillDescriptor(f.fields, nested);
        field->set_type_name(nested->name());  // resolved relative to the enclosing message
        break;
      }
    }
  }
}

void CompareFields(const TableSchema& writer, const TableSchema& table, const std::string& path,
                   std::vector<std::string>& problems) {
  for (const FieldSchema& w : writer) {
    const std::string full = path.empty() ? w.name : absl::StrCat(path, ".", w.name);
    const FieldSchema* t = nullptr;
    for (const FieldSchema& candidate : table) {
      if (absl::EqualsIgnoreCase(candidate.name, w.name)) t = &candidate;
    }
    if (t == nullptr) {
      problems.push_back(absl::StrCat(full, ": not in the table"));
      continue;
    }
    if (t->type != w.type) {
      problems.push_back(absl::StrCat(full, ": type ", Sv(FieldTypeName(w.type)),
                                      " but the table has ", Sv(FieldTypeName(t->type))));
      continue;
    }
    if ((t->mode == FieldMode::kRepeated) != (w.mode == FieldMode::kRepeated)) {
      problems.push_back(absl::StrCat(full, ": mode ", Sv(FieldModeName(w.mode)),
                                      " but the table has ", Sv(FieldModeName(t->mode))));
      continue;
    }
    if (t->mode == FieldMode::kRequired && w.mode == FieldMode::kNullable) {
      problems.push_back(absl::StrCat(full, ": NULLABLE but the table requires a value"));
    }
    if (w.type == FieldType::kRecord) CompareFields(w.fields, t->fields, full, problems);
  }
  for (const FieldSchema& t : table) {
    if (t.mode != FieldMode::kRequired) continue;
    bool present = false;
    for (const FieldSchema& w : writer) present |= absl::EqualsIgnoreCase(w.name, t.name);
    if (!present) {
      problems.push_back(absl::StrCat(path.empty() ? t.name : absl::StrCat(path, ".", t.name),
                                      ": REQUIRED in the table but not written"));
    }
  }
}

}  // namespace

std::string_view FieldTypeName(FieldType type) {
  switch (type) {
    case FieldType::kBool:
      return "BOOLEAN";
    case FieldType::kInt64:
      return "INTEGER";
    case FieldType::kFloat64:
      return "FLOAT";
    case FieldType::kString:
      return "STRING";
    case FieldType::kBytes:
      return "BYTES";
    case FieldType::kTimestamp:
      return "TIMESTAMP";
    case FieldType::kRecord:
      return "RECORD";
    case FieldType::kNumeric:
      return "NUMERIC";
    case FieldType::kBigNumeric:
      return "BIGNUMERIC";
    case FieldType::kDate:
      return "DATE";
    case FieldType::kTime:
      return "TIME";
    case FieldType::kDateTime:
      return "DATETIME";
    case FieldType::kJson:
      return "JSON";
    case FieldType::kGeography:
      return "GEOGRAPHY";
  }
  return "UNKNOWN";
}

absl::StatusOr<FieldType> ParseFieldType(std::string_view name) {
  static const std::map<std::string, FieldType, std::less<>> kTypes = {
      {"BOOLEAN", FieldType::kBool},
      {"BOOL", FieldType::kBool},
      {"INTEGER", FieldType::kInt64},
      {"INT64", FieldType::kInt64},
      {"FLOAT", FieldType::kFloat64},
      {"FLOAT64", FieldType::kFloat64},
      {"STRING", FieldType::kString},
      {"BYTES", FieldType::kBytes},
      {"TIMESTAMP", FieldType::kTimestamp},
      {"RECORD", FieldType::kRecord},
      {"STRUCT", FieldType::kRecord},
      {"NUMERIC", FieldType::kNumeric},
      {"DECIMAL", FieldType::kNumeric},
      {"BIGNUMERIC", FieldType::kBigNumeric},
      {"BIGDECIMAL", FieldType::kBigNumeric},
      {"DATE", FieldType::kDate},
      {"TIME", FieldType::kTime},
      {"DATETIME", FieldType::kDateTime},
      {"JSON", FieldType::kJson},
      {"GEOGRAPHY", FieldType::kGeography}};
  auto it = kTypes.find(absl::AsciiStrToUpper(Sv(name)));
  if (it == kTypes.end()) {
    return absl::InvalidArgumentError(absl::StrCat("unsupported BigQuery type \"", Sv(name), "\""));
  }
  return it->second;
}

std::string_view FieldModeName(FieldMode mode) {
  switch (mode) {
    case FieldMode::kNullable:
      return "NULLABLE";
    case FieldMode::kRequired:
      return "REQUIRED";
    case FieldMode::kRepeated:
      return "REPEATED";
  }
  return "UNKNOWN";
}

absl::StatusOr<FieldMode> ParseFieldMode(std::string_view name) {
  const std::string upper = absl::AsciiStrToUpper(Sv(name));
  if (upper.empty() || upper == "NULLABLE") return FieldMode::kNullable;
  if (upper == "REQUIRED") return FieldMode::kRequired;
  if (upper == "REPEATED") return FieldMode::kRepeated;
  return absl::InvalidArgumentError(absl::StrCat("unknown field mode \"", Sv(name), "\""));
}

nlohmann::json SchemaToJson(const TableSchema& schema) {
  nlohmann::json fields = nlohmann::json::array();
  for (const FieldSchema& f : schema) {
    nlohmann::json field = {{"name", f.name},
                            {"type", std::string(FieldTypeName(f.type))},
                            {"mode", std::string(FieldModeName(f.mode))}};
    if (f.type == FieldType::kRecord) field["fields"] = SchemaToJson(f.fields)["fields"];
    fields.push_back(std::move(field));
  }
  return {{"fields", std::move(fields)}};
}

absl::StatusOr<TableSchema> SchemaFromJson(const nlohmann::json& json) {
  if (!json.is_object() || !json.contains("fields") || !json["fields"].is_array()) {
    return absl::InvalidArgumentError("schema JSON must be an object with a \"fields\" array");
  }
  TableSchema schema;
  for (const nlohmann::json& f : json["fields"]) {
    if (!f.is_object() || !f.contains("name") || !f["name"].is_string() || !f.contains("type") ||
        !f["type"].is_string()) {
      return absl::InvalidArgumentError("schema field must have string \"name\" and \"type\"");
    }
    FieldSchema field{.name = f["name"].get<std::string>()};
    auto type = ParseFieldType(f["type"].get<std::string>());
    if (!type.ok()) return type.status();
    field.type = *type;
    const nlohmann::json mode_json = f.value("mode", nlohmann::json());
    if (!mode_json.is_null() && !mode_json.is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat("schema field ", field.name, ": \"mode\" must be a string"));
    }
    auto mode = ParseFieldMode(mode_json.is_string() ? mode_json.get<std::string>() : "");
    if (!mode.ok()) return mode.status();
    field.mode = *mode;
    if (field.type == FieldType::kRecord) {
      auto nested = SchemaFromJson(f);
      if (!nested.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("record ", field.name, ": ", nested.status().message()));
      }
      field.fields = *std::move(nested);
    }
    schema.push_back(std::move(field));
  }
  return schema;
}

absl::Status CheckCompatible(const TableSchema& writer, const TableSchema& table) {
  std::vector<std::string> problems;
  CompareFields(writer, table, "", problems);
  if (problems.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("schema mismatch with the table: ", absl::StrJoin(problems, "; ")));
}

absl::StatusOr<pb::DescriptorProto> RowDescriptorProto(const TableSchema& schema,
                                                       std::string_view name) {
  if (!IsIdentifier(name)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid message name \"", Sv(name), "\""));
  }
  if (auto s = ValidateFields(schema, ""); !s.ok()) return s;
  pb::DescriptorProto proto;
  proto.set_name(std::string(name));
  FillDescriptor(schema, &proto);
  return proto;
}

RowDescriptor::RowDescriptor() = default;
RowDescriptor::~RowDescriptor() = default;

absl::StatusOr<std::unique_ptr<RowDescriptor>> RowDescriptor::Create(
    const pb::DescriptorProto& proto) {
  pb::FileDescriptorProto file;
  file.set_name("dataflow_bqstore_row.proto");
  file.set_syntax("proto2");
  *file.add_message_type() = proto;
  std::unique_ptr<RowDescriptor> row(new RowDescriptor());
  row->pool_ = std::make_unique<pb::DescriptorPool>();
  // Collects the pool's complaint instead of letting protobuf log it.
  struct Collector : pb::DescriptorPool::ErrorCollector {
    std::string errors;
    void AddError(const std::string& filename, const std::string& element_name, const pb::Message*,
                  ErrorLocation, const std::string& message) override {
      (void)filename;
      absl::StrAppend(&errors, element_name, ": ", message, "; ");
    }
  } collector;
  const pb::FileDescriptor* fd = row->pool_->BuildFileCollectingErrors(file, &collector);
  if (fd == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("invalid row descriptor: ", collector.errors));
  }
  row->descriptor_ = fd->message_type(0);
  row->factory_ = std::make_unique<pb::DynamicMessageFactory>(row->pool_.get());
  row->prototype_ = row->factory_->GetPrototype(row->descriptor_);
  return row;
}

absl::StatusOr<std::unique_ptr<RowDescriptor>> RowDescriptor::FromSchema(const TableSchema& schema,
                                                                         std::string_view name) {
  auto proto = RowDescriptorProto(schema, name);
  if (!proto.ok()) return proto.status();
  return Create(*proto);
}

std::unique_ptr<pb::Message> RowDescriptor::NewMessage() const {
  return std::unique_ptr<pb::Message>(prototype_->New());
}

}  // namespace dataflow::bqstore

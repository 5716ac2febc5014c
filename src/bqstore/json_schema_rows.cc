#include "dataflow/bqstore/json_schema_rows.h"

#include <absl/strings/escaping.h>
#include <absl/strings/str_cat.h>
#include <absl/time/time.h>
#include <google/protobuf/descriptor.pb.h>

#include <bit>
#include <chrono>
#include <limits>

#include "dataflow/bqstore/row_codec.h"
#include "dataflow/messagepipeline/errors.h"
#include "dataflow/messagepipeline/json_limits.h"
#include "json_schema_internal.h"

namespace dataflow::bqstore {
namespace {

namespace mp = messagepipeline;
using Json = nlohmann::json;

std::string FormatMicros(std::int64_t micros) {
  // FormatTimestamp writes the same text without absl's format interpreter (a share of a
  // drain's CPU: a row has two timestamps), where a nanosecond time_point holds the value
  // (1677-2262; BigQuery's range is years 1-9999) and it is not the epoch, which it reads as
  // Go's unset time.
  constexpr std::int64_t kMaxMicros = std::numeric_limits<std::int64_t>::max() / 1000;
  if (micros != 0 && micros > -kMaxMicros && micros < kMaxMicros) {
    return mp::FormatTimestamp(mp::Clock::time_point(std::chrono::microseconds(micros)));
  }
  return absl::FormatTime("%E4Y-%m-%d%ET%H:%M:%E*SZ", absl::FromUnixMicros(micros),
                          absl::UTCTimeZone());
}

absl::Status ConvertRecord(const Json& object, const TableSchema& fields, const std::string& path,
                           Cell& out);

}  // namespace

namespace internal {

absl::Status ConvertField(const Json* value, const FieldSchema& f, const std::string& path,
                          Cell& out) {
  const bool absent = value == nullptr || value->is_null();
  if (f.mode == FieldMode::kRepeated) {
    out.kind = Cell::Kind::kList;
    out.list.clear();
    if (absent) return absl::OkStatus();  // an absent array is an empty one, as in BigQuery
    if (!value->is_array()) {
      return absl::InvalidArgumentError(absl::StrCat("column ", path, ": expected an array, got ",
                                                     std::string(value->type_name())));
    }
    out.list.resize(value->size());
    for (std::size_t k = 0; k < value->size(); ++k) {
      const Json& element = (*value)[k];
      const std::string at = absl::StrCat(path, "[", k, "]");
      if (element.is_null()) {
        return absl::InvalidArgumentError(
            absl::StrCat("column ", at, ": null element (BigQuery arrays have none)"));
      }
      if (f.type == FieldType::kRecord) {
        if (auto s = ConvertRecord(element, f.fields, at, out.list[k]); !s.ok()) return s;
      } else if (auto s = ConvertScalar(element, f, out.list[k]); !s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("column ", at, ": ", s.message()));
      } else if (out.list[k].kind == Cell::Kind::kNull) {
        return absl::InvalidArgumentError(
            absl::StrCat("column ", at, ": null element (BigQuery arrays have none)"));
      }
    }
    return absl::OkStatus();
  }
  out.kind = Cell::Kind::kNull;
  if (!absent) {
    if (f.type == FieldType::kRecord) {
      if (auto s = ConvertRecord(*value, f.fields, path, out); !s.ok()) return s;
    } else if (auto s = ConvertScalar(*value, f, out); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("column ", path, ": ", s.message()));
    }
  }
  if (out.kind == Cell::Kind::kNull && f.mode == FieldMode::kRequired) {
    return absl::InvalidArgumentError(absl::StrCat("column ", path, ": REQUIRED value is missing"));
  }
  return absl::OkStatus();
}

}  // namespace internal

namespace {

absl::Status ConvertRecord(const Json& object, const TableSchema& fields, const std::string& path,
                           Cell& out) {
  if (!object.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat("column ", path, ": expected an object, got ",
                                                   std::string(object.type_name())));
  }
  out.kind = Cell::Kind::kList;
  out.list.resize(fields.size());
  for (std::size_t k = 0; k < fields.size(); ++k) {
    auto it = object.find(fields[k].name);
    const Json* v = it == object.end() ? nullptr : &*it;
    if (auto s = internal::ConvertField(v, fields[k], absl::StrCat(path, ".", fields[k].name),
                                        out.list[k]);
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

const Json* Walk(const Json* j, const std::vector<ColumnSource::Step>& path) {
  for (const ColumnSource::Step& step : path) {
    if (j == nullptr) return nullptr;
    if (step.index >= 0) {
      if (!j->is_array() || static_cast<std::size_t>(step.index) >= j->size()) return nullptr;
      j = &(*j)[static_cast<std::size_t>(step.index)];
    } else {
      if (!j->is_object()) return nullptr;
      auto it = j->find(step.key);
      if (it == j->end()) return nullptr;
      j = &*it;
    }
  }
  return j;
}

// Protobuf wire encoding, as row_codec.h writes described structs.
void EncodeScalar(const Cell& c, FieldType type, int number, std::string& out);
void EncodeRecord(const Cell& c, const TableSchema& fields, int number, std::string& out);
void EncodeFields(const std::vector<Cell>& cells, const TableSchema& fields, std::string& out) {
  for (std::size_t k = 0; k < fields.size(); ++k) {
    const Cell& c = cells[k];
    const int number = static_cast<int>(k) + 1;
    if (c.kind == Cell::Kind::kNull) continue;
    const bool record = fields[k].type == FieldType::kRecord;
    if (fields[k].mode == FieldMode::kRepeated) {
      for (const Cell& element : c.list) {
        record ? EncodeRecord(element, fields[k].fields, number, out)
               : EncodeScalar(element, fields[k].type, number, out);
      }
    } else if (record) {
      EncodeRecord(c, fields[k].fields, number, out);
    } else {
      EncodeScalar(c, fields[k].type, number, out);
    }
  }
}

void EncodeRecord(const Cell& c, const TableSchema& fields, int number, std::string& out) {
  std::string nested;
  EncodeFields(c.list, fields, nested);
  internal::PutTag(out, number, 2);
  internal::PutVarint(out, nested.size());
  out.append(nested);
}

void EncodeScalar(const Cell& c, FieldType type, int number, std::string& out) {
  switch (type) {
    case FieldType::kBool:
    case FieldType::kInt64:
    case FieldType::kTimestamp:
    case FieldType::kDate:  // int32: negative values are sign-extended varints too
      internal::PutTag(out, number, 0);
      internal::PutVarint(out, static_cast<std::uint64_t>(c.i));
      return;
    case FieldType::kFloat64: {
      internal::PutTag(out, number, 1);
      const std::uint64_t bits = std::bit_cast<std::uint64_t>(c.d);
      char buf[8];
      for (int k = 0; k < 8; ++k) buf[k] = static_cast<char>(bits >> (8 * k));
      out.append(buf, 8);
      return;
    }
    case FieldType::kRecord:
      return;  // EncodeRecord (needs the nested schema)
    default:
      internal::PutTag(out, number, 2);
      internal::PutVarint(out, c.s.size());
      out.append(c.s);
      return;
  }
}

Json CellToJson(const Cell& c, const FieldSchema& f, bool element);
Json ScalarToJson(const Cell& c, FieldType type) {
  switch (type) {
    case FieldType::kBool:
      return c.i != 0;
    case FieldType::kInt64:
      return c.i;
    case FieldType::kFloat64:
      return c.d;
    case FieldType::kTimestamp:
      return FormatMicros(c.i);
    case FieldType::kBytes:
      return absl::Base64Escape(c.s);
    case FieldType::kJson: {
      Json parsed = Json::parse(c.s, nullptr, /*allow_exceptions=*/false);
      return parsed.is_discarded() ? Json(c.s) : parsed;
    }
    default:
      return c.s;
  }
}

Json CellToJson(const Cell& c, const FieldSchema& f, bool element) {
  if (c.kind == Cell::Kind::kNull) return nullptr;
  if (f.mode == FieldMode::kRepeated && !element) {
    Json array = Json::array();
    for (const Cell& e : c.list) array.push_back(CellToJson(e, f, true));
    return array;
  }
  if (f.type == FieldType::kRecord) {
    Json object = Json::object();
    for (std::size_t k = 0; k < f.fields.size(); ++k) {
      object[f.fields[k].name] = CellToJson(c.list[k], f.fields[k], false);
    }
    return object;
  }
  return ScalarToJson(c, f.type);
}

}  // namespace

absl::StatusOr<std::shared_ptr<const RowConverter>> RowConverter::Create(
    std::vector<ColumnSpec> columns) {
  std::shared_ptr<RowConverter> converter(new RowConverter());
  for (const ColumnSpec& c : columns) {
    converter->schema_.push_back(c.field);
    if (!c.source.has_value() || c.source->kind == ColumnSource::Kind::kPayload) {
      converter->needs_payload_ = true;
    }
    if (c.invalid_as_null && c.field.mode != FieldMode::kNullable) {
      return absl::InvalidArgumentError(
          absl::StrCat("column ", c.field.name, ": on_invalid null needs a NULLABLE column"));
    }
  }
  if (auto d = RowDescriptorProto(converter->schema_, "Row"); !d.ok()) return d.status();
  converter->columns_ = std::move(columns);
  return std::shared_ptr<const RowConverter>(std::move(converter));
}

absl::Status RowConverter::Convert(const RowInput& input, ConvertedRow& out) const {
  out.resize(columns_.size());
  for (std::size_t k = 0; k < columns_.size(); ++k) {
    const ColumnSpec& c = columns_[k];
    Cell& cell = out[k];
    Json scratch;  // for sources that are not JSON already
    const Json* value = nullptr;
    if (!c.source.has_value()) {
      if (input.payload.is_object()) {
        auto it = input.payload.find(c.field.name);
        if (it != input.payload.end()) value = &*it;
      }
    } else {
      const ColumnSource& s = *c.source;
      switch (s.kind) {
        case ColumnSource::Kind::kPayload:
          value = Walk(&input.payload, s.path);
          break;
        case ColumnSource::Kind::kEnrichment:
          value = Walk(&input.enrichment, s.path);
          break;
        case ColumnSource::Kind::kAttribute:
          if (auto it = input.attributes.find(s.attribute); it != input.attributes.end()) {
            scratch = it->second;
            value = &scratch;
          }
          break;
        case ColumnSource::Kind::kMessageId:
          if (!input.id.empty()) {
            scratch = input.id;
            value = &scratch;
          }
          break;
        case ColumnSource::Kind::kPublishTime:
          if (input.publish_time != messagepipeline::Clock::time_point{}) {
            if (c.field.type == FieldType::kTimestamp && c.field.mode != FieldMode::kRepeated) {
              // The common case without a text round trip.
              cell.kind = Cell::Kind::kScalar;
              cell.i = std::chrono::duration_cast<std::chrono::microseconds>(
                           input.publish_time.time_since_epoch())
                           .count();
              continue;
            }
            scratch = messagepipeline::FormatTimestamp(input.publish_time);
            value = &scratch;
          }
          break;
      }
    }
    if ((value == nullptr || value->is_null()) && !c.default_value.is_null()) {
      value = &c.default_value;
    }
    absl::Status s = internal::ConvertField(value, c.field, c.field.name, cell);
    if (!s.ok()) {
      if (!c.invalid_as_null) {
        if (c.source.has_value() && (value == nullptr || value->is_null())) {
          return absl::InvalidArgumentError(
              absl::StrCat(s.message(), " (source ", c.source->text, ")"));
        }
        return s;
      }
      cell = Cell();
    }
  }
  return absl::OkStatus();
}

void RowConverter::EncodeProto(const ConvertedRow& row, std::string& out) const {
  EncodeFields(row, schema_, out);
}

absl::Status RowConverter::ToProto(const RowInput& input, std::string& out) const {
  ConvertedRow row;
  if (auto s = Convert(input, row); !s.ok()) return s;
  EncodeProto(row, out);
  return absl::OkStatus();
}

std::vector<SqlValue> RowConverter::ToSql(const ConvertedRow& row) const {
  std::vector<SqlValue> values(schema_.size());
  for (std::size_t k = 0; k < schema_.size(); ++k) {
    const FieldSchema& f = schema_[k];
    const Cell& c = row[k];
    SqlValue& v = values[k];
    if (f.mode == FieldMode::kRepeated || f.type == FieldType::kRecord) {
      // REPEATED and RECORD as JSON text, as SqliteInserter stores them; an absent array is [].
      if (c.kind != Cell::Kind::kNull || f.mode == FieldMode::kRepeated) {
        v = CellToJson(c, f, false).dump(-1, ' ', false, Json::error_handler_t::replace);
      }
      continue;
    }
    if (c.kind == Cell::Kind::kNull) continue;
    switch (f.type) {
      case FieldType::kBool:
      case FieldType::kInt64:
        v = c.i;
        break;
      case FieldType::kFloat64:
        v = c.d;
        break;
      case FieldType::kTimestamp:
        v = FormatMicros(c.i);
        break;
      case FieldType::kBytes:
        v = Bytes{c.s};
        break;
      default:  // text, JSON text
        v = c.s;
        break;
    }
  }
  return values;
}

bool RowConverter::HasUnmappedPayloadField(const RowInput& input) const {
  if (!input.payload.is_object()) return false;
  for (auto it = input.payload.begin(); it != input.payload.end(); ++it) {
    bool mapped = false;
    for (const ColumnSpec& c : columns_) {
      // Read by name, or the first step of a payload path (`payload.dev.id` reads "dev").
      const bool reads = !c.source.has_value()
                             ? c.field.name == it.key()
                             : c.source->kind == ColumnSource::Kind::kPayload &&
                                   !c.source->path.empty() && c.source->path[0].key == it.key();
      if (reads) {
        mapped = true;
        break;
      }
    }
    if (!mapped) return true;
  }
  return false;
}

mp::MessageTransformer<RowInput> RowInputTransformer(RowInputOptions options) {
  return [options](const mp::Message& m) -> mp::TransformResult<RowInput> {
    RowInput input;
    input.attributes = m.attributes;
    std::optional<mp::MessageData> parsed;
    auto view = mp::ViewInput(m, options.input_format, parsed);
    if (!view.ok()) return view.status();  // permanent
    const std::string* payload = &m.data.payload;
    if (const mp::MessageData* envelope = *view) {
      input.id = envelope->id.empty() ? m.data.id : envelope->id;
      input.publish_time = envelope->publish_time == mp::Clock::time_point{}
                               ? m.data.publish_time
                               : envelope->publish_time;
      input.enrichment = envelope->enrichment_data;
      payload = &envelope->payload;
    } else {
      input.id = m.data.id;
      input.publish_time = m.data.publish_time;
      input.enrichment = m.data.enrichment_data;
    }
    if (options.parse_payload) {
      // Device data: within the JSON limits (depth, size), or a permanent error.
      absl::StatusOr<Json> parsed = mp::ParseJsonBounded(*payload);
      if (!parsed.ok()) {
        return mp::PermanentError(absl::StrCat("payload: ", parsed.status().message()));
      }
      input.payload = *std::move(parsed);
    }
    return std::optional<RowInput>(std::move(input));
  };
}

}  // namespace dataflow::bqstore

// The columns of a schema-driven row (json_schema_rows.h): `schema:` as config writes it,
// a table's own schema with `sources:`, and the `source` expressions that say where a
// column's value comes from.
#include <absl/strings/match.h>
#include <absl/strings/numbers.h>
#include <absl/strings/str_cat.h>
#include <google/protobuf/descriptor.pb.h>

#include <set>

#include "dataflow/bqstore/json_schema_rows.h"
#include "json_schema_internal.h"

namespace dataflow::bqstore {
namespace {

using Json = nlohmann::json;

absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace

absl::StatusOr<ColumnSource> ParseColumnSource(std::string_view text) {
  ColumnSource source;
  source.text = std::string(text);
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("source \"", Sv(text), "\": ", Sv(why),
                                                   " (expected payload[.path], attributes.NAME, "
                                                   "enrichment[.path], message_id, publish_time "
                                                   "or mqtt_topic)"));
  };
  if (text == "message_id") {
    source.kind = ColumnSource::Kind::kMessageId;
    return source;
  }
  if (text == "publish_time") {
    source.kind = ColumnSource::Kind::kPublishTime;
    return source;
  }
  if (text == "mqtt_topic") {
    source.kind = ColumnSource::Kind::kAttribute;
    source.attribute = "mqtt_topic";
    return source;
  }
  if (absl::StartsWith(Sv(text), "attributes.")) {
    source.kind = ColumnSource::Kind::kAttribute;
    source.attribute = std::string(text.substr(11));
    if (source.attribute.empty()) return bad("no attribute name");
    return source;
  }
  std::string_view rest;
  if (absl::StartsWith(Sv(text), "payload")) {
    source.kind = ColumnSource::Kind::kPayload;
    rest = text.substr(7);
  } else if (absl::StartsWith(Sv(text), "enrichment")) {
    source.kind = ColumnSource::Kind::kEnrichment;
    rest = text.substr(10);
  } else {
    return bad("unknown source");
  }
  // Steps: ".key" or "[index]".
  std::size_t p = 0;
  while (p < rest.size()) {
    if (rest[p] == '.') {
      std::size_t end = p + 1;
      while (end < rest.size() && rest[end] != '.' && rest[end] != '[') ++end;
      if (end == p + 1) return bad("empty key in path");
      source.path.push_back({.key = std::string(rest.substr(p + 1, end - p - 1))});
      p = end;
    } else if (rest[p] == '[') {
      const std::size_t close = rest.find(']', p);
      int index = 0;
      if (close == std::string_view::npos ||
          !absl::SimpleAtoi(Sv(rest.substr(p + 1, close - p - 1)), &index) || index < 0 ||
          rest.substr(p + 1, close - p - 1).find_first_not_of("0123456789") !=
              std::string_view::npos) {
        return bad("array index must be [N] with N >= 0");
      }
      source.path.push_back({.index = index});
      p = close + 1;
    } else {
      return bad("unknown source");
    }
  }
  return source;
}

absl::StatusOr<std::vector<ColumnSpec>> ColumnsFromJson(const Json& columns) {
  if (!columns.is_array()) {
    return absl::InvalidArgumentError("schema: expected a list of columns");
  }
  std::vector<ColumnSpec> out;
  for (std::size_t k = 0; k < columns.size(); ++k) {
    const Json& c = columns[k];
    const std::string at = absl::StrCat("schema[", k, "]");
    if (!c.is_object()) return absl::InvalidArgumentError(at + ": expected a mapping");
    for (auto it = c.begin(); it != c.end(); ++it) {
      static const std::set<std::string> kKeys = {"name",   "type",    "mode",      "fields",
                                                  "source", "default", "on_invalid"};
      if (!kKeys.contains(it.key())) {
        return absl::InvalidArgumentError(absl::StrCat(at, ".", it.key(),
                                                       ": unknown key (expected one of: name, "
                                                       "type, mode, fields, source, default, "
                                                       "on_invalid)"));
      }
    }
    if (c.contains("type") && c["type"].is_string() &&
        (absl::EqualsIgnoreCase(c["type"].get<std::string>(), "RECORD") ||
         absl::EqualsIgnoreCase(c["type"].get<std::string>(), "STRUCT")) &&
        !(c.contains("fields") && c["fields"].is_array() && !c["fields"].empty())) {
      return absl::InvalidArgumentError(at + ": a RECORD needs a list of `fields`");
    }
    // The BigQuery part ({name, type, mode, fields}) reads like a REST schema field.
    Json field = c;
    field.erase("source");
    field.erase("default");
    field.erase("on_invalid");
    auto parsed = SchemaFromJson(Json{{"fields", Json::array({field})}});
    if (!parsed.ok())
      return absl::InvalidArgumentError(at + ": " + std::string(parsed.status().message()));
    ColumnSpec spec{.field = std::move(parsed->front())};
    if (auto it = c.find("source"); it != c.end() && !it->is_null()) {
      if (!it->is_string()) return absl::InvalidArgumentError(at + ".source: expected a string");
      auto source = ParseColumnSource(it->get<std::string>());
      if (!source.ok()) {
        return absl::InvalidArgumentError(at +
                                          ".source: " + std::string(source.status().message()));
      }
      spec.source = *std::move(source);
    }
    if (auto it = c.find("default"); it != c.end()) spec.default_value = *it;
    if (auto it = c.find("on_invalid"); it != c.end()) {
      if (*it == "null") {
        spec.invalid_as_null = true;
      } else if (*it != "error") {
        return absl::InvalidArgumentError(at + ".on_invalid: expected \"error\" or \"null\"");
      }
      if (spec.invalid_as_null && spec.field.mode != FieldMode::kNullable) {
        return absl::InvalidArgumentError(at + ".on_invalid: null needs a NULLABLE column");
      }
    }
    out.push_back(std::move(spec));
  }
  // Nested checks, duplicates and names: by the schema's own validation.
  TableSchema schema;
  for (const ColumnSpec& c : out) schema.push_back(c.field);
  if (auto d = RowDescriptorProto(schema, "Row"); !d.ok()) {
    return absl::InvalidArgumentError("schema: " + std::string(d.status().message()));
  }
  // A default must itself convert (else every row missing the value would fail later).
  for (std::size_t k = 0; k < out.size(); ++k) {
    if (out[k].default_value.is_null()) continue;
    Cell cell;
    if (auto s =
            internal::ConvertField(&out[k].default_value, out[k].field, out[k].field.name, cell);
        !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("schema[", k, "].default: ", s.message()));
    }
  }
  return out;
}

absl::StatusOr<std::vector<ColumnSpec>> ColumnsForTable(
    const TableSchema& schema, const std::map<std::string, std::string>& sources) {
  std::vector<ColumnSpec> out;
  std::set<std::string> used;
  for (const FieldSchema& f : schema) {
    ColumnSpec spec{.field = f};
    if (auto it = sources.find(f.name); it != sources.end()) {
      auto source = ParseColumnSource(it->second);
      if (!source.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("sources.", f.name, ": ", source.status().message()));
      }
      spec.source = *std::move(source);
      used.insert(f.name);
    }
    out.push_back(std::move(spec));
  }
  for (const auto& [name, text] : sources) {
    if (!used.contains(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("sources.", name, ": the table has no column ", name));
    }
  }
  return out;
}

}  // namespace dataflow::bqstore

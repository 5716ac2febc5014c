// The keys of a column of a bigquery `schema:` list. bqstore::ColumnsFromJson reads them (its
// errors are validate's), so the rows here only describe: the JSON Schema and the reference.
#include <string>
#include <vector>

#include "config_keys.h"

namespace dataflow::app {
namespace {

using schema_types::AnyCase;
using schema_types::Enum;
using schema_types::Json;
using schema_types::Ref;
using schema_types::With;

ConfigKey<bqstore::ColumnSpec> Described(const char* key, std::string type, Json schema,
                                         std::string default_text = "", bool required = false) {
  std::string doc = schema.value("description", "");
  return {.key = key,
          .type = std::move(type),
          .doc = std::move(doc),
          .required = required,
          .read = [](yaml_config::Reader&, const YAML::Node&, const std::string&,
                     bqstore::ColumnSpec&) {},
          .schema = [schema](const bqstore::ColumnSpec&) { return schema; },
          .default_text = [default_text](const bqstore::ColumnSpec&) { return default_text; }};
}

}  // namespace

const Block<bqstore::ColumnSpec>& ColumnBlock() {
  static const auto* const block = [] {
    static const std::vector<std::string> kTypes = {
        "STRING",  "BYTES",      "INTEGER",    "INT64",   "FLOAT",  "FLOAT64",   "NUMERIC",
        "DECIMAL", "BIGNUMERIC", "BIGDECIMAL", "BOOLEAN", "BOOL",   "TIMESTAMP", "DATE",
        "TIME",    "DATETIME",   "GEOGRAPHY",  "JSON",    "RECORD", "STRUCT"};
    const Json record_needs_fields = {
        {"if",
         {{"properties",
           {{"type",
             {{"type", "string"},
              {"pattern", "^(?:" + AnyCase("RECORD") + "|" + AnyCase("STRUCT") + ")$"}}}}},
          {"required", Json::array({"type"})}}},
        {"then",
         {{"required", Json::array({"fields"})},
          {"properties", {{"fields", {{"type", "array"}, {"minItems", 1}}}}}}}};
    return new Block<bqstore::ColumnSpec>{
        .description = "a column: its BigQuery field and where its value comes from",
        .keys =
            {
                Described("name", "text", With({{"type", "string"}}, "column name"), "", true),
                Described("type", "a BigQuery type, any case (STRING, INT64, RECORD…)",
                          Enum("BigQuery type (any case)", kTypes, nullptr, true, false), "", true),
                Described("mode", "NULLABLE \\| REQUIRED \\| REPEATED, any case",
                          Enum("BigQuery mode (any case)", {"NULLABLE", "REQUIRED", "REPEATED", ""},
                               "NULLABLE", true, false),
                          "NULLABLE"),
                Described("fields", "list of columns (name, type, mode, fields)",
                          With({{"type", "array"}, {"items", Ref("#/definitions/record_field")}},
                               "a RECORD's fields")),
                Described("source", "text",
                          With({{"type", Json::array({"string", "null"})}},
                               "payload[.path], attributes.NAME, enrichment[.path], message_id, "
                               "publish_time or mqtt_topic (checked by validate); unset: the "
                               "payload field named like the column")),
                Described("default", "any value",
                          With(Json::object(), "value used when the source yields nothing")),
                Described("on_invalid", "error \\| null",
                          Enum("a value that does not convert fails the row (error) or becomes "
                               "NULL (\"null\", NULLABLE columns only)",
                               {"error", "null"}, "error", false, false),
                          "error"),
            },
        .extra_schema = record_needs_fields,
    };
  }();
  return *block;
}

}  // namespace dataflow::app

#include "config_schema.h"

#include <absl/time/time.h>

#include <cctype>
#include <chrono>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "config.h"
#include "config_keys.h"
#include "config_schema_types.h"
#include "dataflow/version.h"

namespace dataflow::app {
namespace {

using Json = nlohmann::json;

using schema_types::AnyCase;

// A nested field of a RECORD: the column's BigQuery keys only, read by name from the
// record's object (the reader ignores other keys there).
Json RecordField() {
  Json s = BlockSchema(ColumnBlock(), "a field of a RECORD column");
  s.erase("additionalProperties");
  Json properties = Json::object();
  for (const char* key : kRecordFieldKeys) properties[key] = s["properties"][key];
  s["properties"] = std::move(properties);
  return s;
}

}  // namespace

nlohmann::json ConfigJsonSchema() {
  Json definitions = {
      {"env_reference",
       {{"type", "string"},
        {"pattern", "\\$\\{[^}]*\\}"},
        {"description",
         "a value holding ${NAME} or ${NAME:-default}: checked by validate "
         "after substitution"}}},
      {"integer_text", {{"type", "string"}, {"pattern", "^[-+]?[0-9]+$"}}},
      {"boolean_text",
       {{"type", "string"},
        {"pattern", "^(?:" + AnyCase("true") + "|" + AnyCase("false") + "|" + AnyCase("yes") + "|" +
                        AnyCase("no") + "|" + AnyCase("on") + "|" + AnyCase("off") + "|1|0)$"}}},
      {"duration",
       {{"type", "string"},
        {"pattern",
         "^(?:[0-9]+|\\+?(?:inf|(?:(?:[0-9]+(?:\\.[0-9]*)?|\\.[0-9]+)"
         "(?:ns|us|ms|s|m|h))+))$"},
        {"description", "500ms, 30s, 1m30s, 1h (a bare number is seconds)"}}},
      {"source", BlockSchema(SourceBlock(), SourceBlock().description)},
      {"topic_sink", TopicSinkSchema()},
      {"column", BlockSchema(ColumnBlock(), ColumnBlock().description)},
      {"record_field", RecordField()},
      {"enrichment_key", BlockSchema(EnrichmentKeyBlock(), EnrichmentKeyBlock().description)},
  };

  Json root = BlockSchema(ProgramBlock(), ProgramBlock().description);
  // create_pubsub_resources (true in any spelling the reader takes) needs each Pub/Sub
  // source's topic.
  auto object = [](Json properties) {
    return Json{{"type", "object"}, {"properties", std::move(properties)}};
  };
  Json needs_topic =
      object({{"source",
               object({{"pubsub", {{"type", "object"}, {"required", Json::array({"topic"})}}}})}});
  Json kinds_need_topic = Json::object();
  for (const char* kind : {EnrichmentConfig::kKind, BigQueryConfig::kKind, IceStoreConfig::kKind})
    kinds_need_topic[kind] = needs_topic;
  root["if"] = {
      {"properties",
       {{"create_pubsub_resources",
         {{"anyOf", Json::array({{{"const", true}},
                                 {{"const", 1}},
                                 {{"type", "string"},
                                  {"pattern", "^(?:" + AnyCase("true") + "|" + AnyCase("yes") +
                                                  "|" + AnyCase("on") + "|1)$"}}})}}}}},
      {"required", Json::array({"create_pubsub_resources"})}};
  root["then"] =
      object({{"services", {{"type", "array"}, {"items", object(std::move(kinds_need_topic))}}}});
  Json out = {{"$schema", "http://json-schema.org/draft-07/schema#"},
              {"title", "dataflow " DATAFLOW_VERSION " config"}};
  out.update(root);
  out["definitions"] = std::move(definitions);
  return out;
}

}  // namespace dataflow::app

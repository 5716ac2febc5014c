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
using schema_types::Bool;
using schema_types::Duration;
using schema_types::Enum;
using schema_types::Integer;
using schema_types::kEnvRef;
using schema_types::Ref;
using schema_types::Text;
using schema_types::With;

struct Key {
  std::string name;
  Json schema;
  bool required = false;
};

// A mapping whose keys the reader checks (it reports unknown ones).
Json Object(const std::string& description, std::initializer_list<Key> keys,
            Json extra = Json::object()) {
  Json properties = Json::object();
  Json required = Json::array();
  for (const Key& k : keys) {
    properties[k.name] = k.schema;
    if (k.required) required.push_back(k.name);
  }
  Json s = {{"type", "object"}, {"properties", std::move(properties)}};
  if (!required.empty()) s["required"] = std::move(required);
  s["additionalProperties"] = false;
  for (auto& [k, v] : extra.items()) s[k] = v;
  return With(std::move(s), description);
}

// Exactly one of `names` present (the reader's "give exactly one of …").
Json ExactlyOne(std::initializer_list<const char*> names) {
  Json options = Json::array();
  for (const char* n : names) options.push_back({{"required", Json::array({n})}});
  return options;
}

// A block whose scalar keys are a table (config_keys.h), plus `more` read by hand.
template <typename Out>
Json TableObject(const std::string& description, const KeyTable<Out>& table,
                 std::initializer_list<Key> more = {}, Json extra = Json::object()) {
  Json s = Object(description, more, std::move(extra));
  AddKeySchemas(table, s);
  return s;
}

// With the kind's one-value keys (config_keys.h).
template <typename Spec>
Json WithKeys(Json object, const KeyTable<Spec>& table) {
  AddKeySchemas(table, object);
  return object;
}

Json Source() {
  return Object("where the service reads from: a Pub/Sub subscription or an in-process one",
                {
                    {"pubsub", TableObject("a Pub/Sub subscription", PubsubSourceKeys())},
                    {"in_process",
                     Object("an in-process subscription (in_process.subscriptions)",
                            {{"subscription", Text("subscription name", nullptr, true), true}})},
                },
                {{"oneOf", ExactlyOne({"pubsub", "in_process"})}});
}

Json TopicSink() {
  Json map_form = Object(
      "the transport, with options",
      {
          {"pubsub",
           With({{"anyOf", Json::array({Object("Pub/Sub options",
                                               {{"project", Text("Google Cloud project; empty: the "
                                                                 "program's project")}}),
                                        {{"not", {{"type", "object"}}}}})}},
                "Pub/Sub topics")},
          {"in_process", With(Json::object(), "in-process topics (in_process.topics)")},
      },
      {{"oneOf", ExactlyOne({"pubsub", "in_process"})}});
  return With({{"anyOf", Json::array({{{"enum", Json::array({"pubsub", "in_process"})}},
                                      std::move(map_form)})}},
              "where the service publishes: pubsub or in_process");
}

Json Ingestion() {
  const mqttconverter::MqttClientOptions m;
  Json topic_mapping =
      TableObject("an MQTT topic filter and the route its messages take", TopicMappingKeys());
  Json mqtt = TableObject(
      "the MQTT broker and subscriptions (docs/mqtt.md)", MqttKeys(),
      {
          {"ack_mode",
           Enum("pipeline: PUBACK once the pipeline acked the message; "
                "receipt: on arrival",
                {"pipeline", "receipt"}, std::string(mqttconverter::AckModeName(m.ack_mode)),
                /*any_case=*/true, /*env=*/true)},
          {"topic_mappings",
           With({{"type", "array"}, {"minItems", 1}, {"items", std::move(topic_mapping)}},
                "topic filters; the first matching filter names the route"),
           true},
      });
  return WithKeys(
      Object(
          "MQTT → topics",
          {
              {"mqtt", std::move(mqtt), true},
              {"sink", Ref("#/definitions/topic_sink"), true},
              {"routes",
               With({{"type", "object"},
                     {"additionalProperties", Text("topic", nullptr, true)},
                     {"propertyNames", {{"type", "string"}, {"minLength", 1}}}},
                    "route name → topic; every topic mapping needs a route unless default_topic is "
                    "set (checked by validate)"),
               true},
          }),
      IngestionKeys());
}

Json FieldMappings(const std::string& description) {
  Json scalar = {{"type", Json::array({"string", "number", "boolean"})}, {"minLength", 1}};
  Json rename = {{"type", "object"},
                 {"minProperties", 1},
                 {"maxProperties", 1},
                 {"propertyNames", {{"type", "string"}, {"minLength", 1}}},
                 {"additionalProperties", scalar}};
  return With({{"type", "array"}, {"items", {{"anyOf", Json::array({scalar, rename})}}}},
              description);
}

Json EnrichmentKey() {
  return Object(
      "where the lookup key is: exactly one of json_field, payload, attribute, topic_segment",
      {
          {"json_field", Text("a top-level field of a JSON payload", nullptr, true)},
          {"payload", Text("a path into a JSON payload: device.id, ids[0]", nullptr, true)},
          {"attribute", Text("a message attribute", nullptr, true)},
          {"topic_segment", Integer("0-based segment of the MQTT topic", 0, 1000)},
          {"topic_attribute",
           Text("the attribute holding the topic (only with topic_segment)", "mqtt_topic", true)},
      },
      {{"oneOf", ExactlyOne({"json_field", "payload", "attribute", "topic_segment"})},
       {"dependencies", {{"topic_attribute", Json::array({"topic_segment"})}}}});
}

Json Enrichment() {
  Json cache = Object(
      "the cache chain: LRU → Redis → the source of truth (firestore or json_file)",
      {
          {"lru", With({{"anyOf", Json::array({{{"type", "null"}},
                                               TableObject("in-memory L1", LruKeys())})}},
                       "in-memory L1 (empty: the defaults)")},
          {"redis", TableObject("Redis L2, written back with cache_ttl", RedisKeys())},
          {"firestore", TableObject("Firestore: the source of truth", FirestoreKeys())},
          {"json_file",
           Text("a JSON object of documents by key: the embedded source of truth", nullptr, true)},
      },
      {{"oneOf", ExactlyOne({"firestore", "json_file"})}});
  return WithKeys(
      Object(
          "topic → cache chain → topic",
          {
              {"source", Ref("#/definitions/source"), true},
              {"sink", Ref("#/definitions/topic_sink"), true},
              {"key",
               With({{"anyOf", Json::array({Ref("#/definitions/enrichment_key"),
                                            {{"type", "array"},
                                             {"minItems", 1},
                                             {"items", Ref("#/definitions/enrichment_key")}}})}},
                    "the lookup key's place, or a list of places tried in order"),
               true},
              {"fields", FieldMappings("document fields merged into enrichmentData (NAME or "
                                       "{FROM: TO}); unset: all")},
              {"attributes", FieldMappings("document fields copied into attributes (NAME or "
                                           "{FROM: TO}); unset: location into location_attribute")},
              {"cache", std::move(cache), true},
          }),
      EnrichmentKeys());
}

Json Column(bool top_level) {
  static const std::vector<std::string> kTypes = {
      "STRING",  "BYTES",      "INTEGER",    "INT64",   "FLOAT",  "FLOAT64",   "NUMERIC",
      "DECIMAL", "BIGNUMERIC", "BIGDECIMAL", "BOOLEAN", "BOOL",   "TIMESTAMP", "DATE",
      "TIME",    "DATETIME",   "GEOGRAPHY",  "JSON",    "RECORD", "STRUCT"};
  Json type = Enum("BigQuery type (any case)", kTypes, nullptr, true, false);
  Json mode = Enum("BigQuery mode (any case)", {"NULLABLE", "REQUIRED", "REPEATED", ""}, "NULLABLE",
                   true, false);
  Json record_needs_fields = {
      {"if",
       {{"properties",
         {{"type",
           {{"type", "string"},
            {"pattern", "^(?:" + AnyCase("RECORD") + "|" + AnyCase("STRUCT") + ")$"}}}}},
        {"required", Json::array({"type"})}}},
      {"then",
       {{"required", Json::array({"fields"})},
        {"properties", {{"fields", {{"type", "array"}, {"minItems", 1}}}}}}}};
  Json s = {{"type", "object"},
            {"properties",
             {{"name", With({{"type", "string"}}, "column name")},
              {"type", std::move(type)},
              {"mode", std::move(mode)},
              {"fields", With({{"type", "array"}, {"items", Ref("#/definitions/record_field")}},
                              "a RECORD's fields")}}},
            {"required", Json::array({"name", "type"})}};
  s.update(record_needs_fields);
  if (!top_level) {
    // Nested fields are read by name from the record's object; the reader ignores other keys.
    return With(std::move(s), "a field of a RECORD column");
  }
  s["properties"]["source"] =
      With({{"type", Json::array({"string", "null"})}},
           "payload[.path], attributes.NAME, enrichment[.path], message_id, publish_time or "
           "mqtt_topic (checked by validate); unset: the payload field named like the column");
  s["properties"]["default"] = With(Json::object(), "value used when the source yields nothing");
  s["properties"]["on_invalid"] = Enum(
      "a value that does not convert fails the row (error) or becomes NULL (\"null\", "
      "NULLABLE columns only)",
      {"error", "null"}, "error", false, false);
  s["additionalProperties"] = false;
  return With(std::move(s), "a column: its BigQuery field and where its value comes from");
}

Json BigQuery() {
  Json from_table = {{"properties", {{"schema", {{"const", "from_table"}}}}},
                     {"required", Json::array({"schema"})}};
  return WithKeys(
      Object("topic → warehouse (BigQuery or SQLite)",
             {
                 {"source", Ref("#/definitions/source"), true},
                 {"table", TableObject("a BigQuery table, written over the Storage Write API",
                                       BigQueryTableKeys())},
                 {"sqlite", TableObject("the embedded warehouse", SqliteKeys())},
                 {"schema",
                  With({{"anyOf", Json::array({{{"const", "from_table"}},
                                               {{"type", "array"},
                                                {"minItems", 1},
                                                {"items", Ref("#/definitions/column")}}})}},
                       "the row schema: a list of columns, or from_table (BigQuery only); see "
                       "docs/bqstore.md"),
                  true},
                 {"sources",
                  With({{"type", "object"}, {"additionalProperties", {{"type", "string"}}}},
                       "with schema: from_table, column → source for columns not read from the "
                       "payload field of their name")},
             },
             {{"oneOf", ExactlyOne({"table", "sqlite"})},
              {"dependencies", {{"sources", from_table}}},
              {"if", from_table},
              {"then", {{"required", Json::array({"table"})}}}}),
      BigQueryKeys());
}

Json IceStore() {
  return WithKeys(
      Object("topic → archive of gzip JSONL objects (GCS or a local directory)",
             {
                 {"source", Ref("#/definitions/source"), true},
                 {"gcs", TableObject("Google Cloud Storage", GcsKeys())},
                 {"local", TableObject("a local directory", LocalKeys())},
                 {"group_by", Enum("object keys YYYY/MM/DD/<location>, or YYYY/MM/DD (day)",
                                   {"day_location", "day"}, "day_location", false, false)},
             },
             {{"oneOf", ExactlyOne({"gcs", "local"})}}),
      IceStoreKeys());
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
      {"source", Source()},
      {"topic_sink", TopicSink()},
      {"column", Column(true)},
      {"record_field", Column(false)},
  };
  definitions["enrichment_key"] = EnrichmentKey();

  Json service = Object("a service: its name and exactly one kind",
                        {
                            {"name", Text("unique service name", nullptr, true), true},
                            {IngestionConfig::kKind, Ingestion()},
                            {EnrichmentConfig::kKind, Enrichment()},
                            {BigQueryConfig::kKind, BigQuery()},
                            {IceStoreConfig::kKind, IceStore()},
                        },
                        {{"oneOf", ExactlyOne({IngestionConfig::kKind, EnrichmentConfig::kKind,
                                               BigQueryConfig::kKind, IceStoreConfig::kKind})}});
  Json in_process_subscription =
      Object("an in-process subscription: gets every message of its topic",
             {
                 {"name", Text("subscription name", nullptr, true), true},
                 {"topic", Text("an in_process.topics name", nullptr, true), true},
             });
  Json root = TableObject(
      "dataflow service config (docs/configuration.md)", TopLevelKeys(),
      {
          {"ops", TableObject("the /healthz, /readyz, /metrics endpoint", OpsKeys())},
          {"in_process",
           Object("topics and subscriptions inside this process",
                  {
                      {"topics", With({{"type", "array"},
                                       {"items",
                                        {{"type", Json::array({"string", "number", "boolean"})},
                                         {"minLength", 1}}}},
                                      "in-process topic names; each needs a subscription")},
                      {"subscriptions",
                       With({{"type", "array"}, {"items", std::move(in_process_subscription)}},
                            "{name, topic}")},
                  })},
          {"services",
           With({{"type", "array"}, {"minItems", 1}, {"items", std::move(service)}},
                "the services, upstream first"),
           true},
      });
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

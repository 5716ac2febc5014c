#include "config_schema.h"

#include <absl/time/time.h>

#include <cctype>
#include <chrono>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "config.h"
#include "dataflow/version.h"

namespace dataflow::app {
namespace {

using Json = nlohmann::json;

// How the reader reads each scalar decides its schema:
//   - text (Reader::String): any YAML scalar, so 123 or true is text too;
//   - integers, booleans, durations, enums read through Reader::Scalar: the typed value, or a
//     string holding a ${VAR} reference (validate checks the value after substitution);
//   - values the reader takes verbatim (sink kinds, group_by, in-process names, columns): no
//     ${VAR}, which the reader would not expand there.
constexpr char kEnvRef[] = "#/definitions/env_reference";

Json Ref(const char* target) { return {{"$ref", target}}; }

Json With(Json schema, const std::string& description, Json default_value = nullptr) {
  if (!description.empty()) schema["description"] = description;
  if (!default_value.is_null()) schema["default"] = std::move(default_value);
  return schema;
}

// "[Pp][Ii][Pp][Ee]…": ECMA-262 patterns in JSON Schema have no case-insensitive flag.
std::string AnyCase(const std::string& word) {
  std::string out;
  for (char c : word) {
    if (std::isalpha(static_cast<unsigned char>(c))) {
      out += '[';
      out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      out += ']';
    } else {
      out += c;
    }
  }
  return out;
}

// Durations as strings, in the reader's syntax (what absl::ParseDuration reads back).
std::string DurationText(std::chrono::nanoseconds d) {
  return absl::FormatDuration(absl::FromChrono(d));
}

Json Text(const std::string& description, Json default_value = nullptr, bool required = false) {
  Json s = {{"type", Json::array({"string", "number", "boolean"})}};
  if (required) s["minLength"] = 1;  // the reader's "must not be empty"
  return With(std::move(s), description, std::move(default_value));
}

Json Integer(const std::string& description, long long min, long long max,
             Json default_value = nullptr) {
  Json typed = {{"type", "integer"}, {"minimum", min}, {"maximum", max}};
  return With(
      {{"anyOf", Json::array({std::move(typed), Ref("#/definitions/integer_text"), Ref(kEnvRef)})}},
      description, std::move(default_value));
}

Json Bool(const std::string& description, bool default_value) {
  return With({{"anyOf", Json::array({{{"type", "boolean"}},
                                      {{"enum", Json::array({0, 1})}},
                                      Ref("#/definitions/boolean_text"),
                                      Ref(kEnvRef)})}},
              description, default_value);
}

template <typename Rep, typename Period>
Json Duration(const std::string& description, std::chrono::duration<Rep, Period> default_value) {
  return With({{"anyOf", Json::array({{{"type", "integer"}, {"minimum", 0}},
                                      Ref("#/definitions/duration"),
                                      Ref(kEnvRef)})}},
              description, DurationText(default_value));
}

// One of `values`; `any_case` when the reader compares case-insensitively, `env` when it
// expands ${VAR} first.
Json Enum(const std::string& description, const std::vector<std::string>& values,
          Json default_value, bool any_case, bool env) {
  Json options = Json::array({{{"enum", values}}});
  if (any_case) {
    std::string pattern;
    for (const auto& v : values) pattern += (pattern.empty() ? "" : "|") + AnyCase(v);
    options.push_back({{"type", "string"}, {"pattern", "^(?:" + pattern + ")$"}});
  }
  if (env) options.push_back(Ref(kEnvRef));
  Json s = options.size() == 1 ? options[0] : Json{{"anyOf", std::move(options)}};
  return With(std::move(s), description, std::move(default_value));
}

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

// Keys every service kind has, with that kind's defaults.
std::vector<Key> CommonServiceKeys(int workers, int max_delivery_attempts) {
  return {
      {"dead_letter_topic",
       Text("topic (of the service's own transport) where messages that can never succeed are "
            "parked; unset: they are logged, counted as dropped and acked")},
      {"workers", Integer("concurrent workers", 1, 1024, workers)},
      {"max_delivery_attempts",
       Integer("deliveries before a message is given up on (dead-lettered, or dropped without "
               "a dead_letter_topic)",
               1, 1000, max_delivery_attempts)},
  };
}

template <typename Spec>
Json WithCommon(Json object, const Spec& defaults) {
  for (Key& k : CommonServiceKeys(defaults.workers, defaults.max_delivery_attempts)) {
    object["properties"][k.name] = std::move(k.schema);
  }
  return object;
}

Json Source() {
  const SourceConfig d;
  return Object(
      "where the service reads from: a Pub/Sub subscription or an in-process one",
      {
          {"pubsub",
           Object(
               "a Pub/Sub subscription",
               {
                   {"subscription", Text("subscription name", nullptr, true), true},
                   {"topic", Text("the subscription's topic; needed with create_pubsub_resources")},
                   {"project", Text("Google Cloud project; empty: the program's project")},
                   {"streams", Integer("StreamingPull streams", 1, 64, d.streams)},
                   {"max_outstanding_messages",
                    Integer("messages leased and not yet acked, at most", 1, 1000000,
                            d.max_outstanding_messages)},
                   {"ack_deadline",
                    Duration("lease asked for each delivery and extension, 10s to 600s "
                             "(the range is checked by validate)",
                             d.ack_deadline)},
                   {"max_stream_duration",
                    Duration("each StreamingPull stream is renewed this often; at least 1s "
                             "(checked by validate)",
                             d.max_stream_duration)},
               })},
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
  const IngestionConfig d;
  const mqttconverter::MQTTClientConfig m;
  Json topic_mapping = Object(
      "an MQTT topic filter and the route its messages take",
      {
          {"name", Text("route name (a key of routes)", nullptr, true), true},
          {"topic",
           Text("MQTT topic filter ($share/group/... for shared subscriptions)", nullptr, true),
           true},
          {"qos", Integer("subscription QoS", 0, 2)},
      });
  Json mqtt = Object(
      "the MQTT broker and subscriptions (docs/mqtt.md)",
      {
          {"broker_url",
           Text("tcp://, ssl:// (or tls://), ws://, wss://, mqtt:// or mqtts:// URL, without "
                "credentials "
                "(scheme and credentials are checked by validate)",
                nullptr, true),
           true},
          {"client_id",
           Text("set it with clean_session: false to resume a persistent session; empty: "
                "client_id_prefix and a random suffix")},
          {"client_id_prefix", Text("prefix of generated client ids", m.client_id_prefix)},
          {"username", Text("broker user name")},
          {"password", Text("broker password; use ${VAR} to keep it out of the file")},
          {"keep_alive", Duration("MQTT keep-alive (0 to 65535 s)", m.keep_alive)},
          {"connect_timeout", Duration("connection timeout", m.connect_timeout)},
          {"ca_cert_file", Text("CA certificates (PEM) for ssl:// and wss://")},
          {"client_cert_file", Text("client certificate (PEM), with client_key_file")},
          {"client_key_file", Text("client key (PEM), with client_cert_file")},
          {"insecure_skip_verify",
           Bool("tests only: do not check the broker's certificate", m.insecure_skip_verify)},
          {"clean_session", Bool("false: a persistent session (needs client_id)", m.clean_session)},
          {"ack_mode",
           Enum("pipeline: PUBACK once the pipeline acked the message; receipt: on arrival",
                {"pipeline", "receipt"}, std::string(mqttconverter::AckModeName(m.ack_mode)),
                /*any_case=*/true, /*env=*/true)},
          {"topic_mappings",
           With({{"type", "array"}, {"minItems", 1}, {"items", std::move(topic_mapping)}},
                "topic filters; the first matching filter names the route"),
           true},
          {"write_timeout", Duration("longest a socket write may wait", m.write_timeout)},
          {"max_subscribe_refusals",
           Integer("SUBACK refusals in a row before the consumer gives up", 1, 1000000,
                   m.max_subscribe_refusals)},
          {"redelivery_min_backoff", Duration("first delay before a nacked message is redelivered",
                                              m.redelivery_min_backoff)},
          {"redelivery_max_backoff",
           Duration("longest delay before a nacked message is redelivered",
                    m.redelivery_max_backoff)},
          {"max_packet_bytes",
           Integer("largest MQTT packet accepted, in bytes", 64, 268435460, m.max_packet_bytes)},
          {"max_outstanding_bytes",
           Integer("payload bytes received and not yet acked after which reading pauses", 1,
                   1LL << 40, m.max_outstanding_bytes)},
      });
  return WithCommon(
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
              {"default_topic", Text("topic for unmapped routes; unset: they are rejected")},
              {"payload_format",
               Enum(
                   "what ingestion publishes: envelope (the Go library's JSON {id, payload, "
                   "publishTime}) or raw (the MQTT bytes, attributes beside them)",
                   {"envelope", "raw"},
                   d.payload_format == mqttconverter::PayloadFormat::kEnvelope ? "envelope" : "raw",
                   /*any_case=*/false, /*env=*/true)},
          }),
      d);
}

Json InputFormat() {
  return Enum(
      "how the input is read: auto (an envelope when the body is one, else raw), "
      "envelope or raw (docs/messagepipeline.md)",
      {"auto", "envelope", "raw"}, "auto", /*any_case=*/false, /*env=*/true);
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
  const EnrichmentConfig d;
  const CacheChainConfig::Lru lru;
  const cache::RedisConfig redis;
  const CacheChainConfig::Firestore firestore;
  Json cache = Object(
      "the cache chain: LRU → Redis → the source of truth (firestore or json_file)",
      {
          {"lru",
           With({{"anyOf", Json::array({{{"type", "null"}},
                                        Object("in-memory L1",
                                               {
                                                   {"max_size",
                                                    Integer("entries", 1, 1LL << 40, lru.max_size)},
                                                   {"ttl", Duration("entry lifetime; 0: "
                                                                    "no expiry",
                                                                    lru.ttl)},
                                               })})}},
                "in-memory L1 (empty: the defaults)")},
          {"redis",
           Object(
               "Redis L2, written back with cache_ttl",
               {
                   {"addr",
                    Text("host:port, without credentials (checked by validate)", redis.addr, true),
                    true},
                   {"password", Text("AUTH password; use ${VAR} to keep it out of the file")},
                   {"db", Integer("SELECT db", 0, 1 << 20, redis.db)},
                   {"cache_ttl",
                    Duration("TTL of written-back values; 0: no expiry", redis.cache_ttl)},
                   {"key_prefix", Text("prepended to every key")},
                   {"pool_size",
                    Integer("most connections open at once", 1, 1024, redis.pool_size)},
                   {"command_timeout", Duration("per-command timeout", redis.command_timeout)},
               })},
          {"firestore",
           Object("Firestore: the source of truth",
                  {
                      {"project", Text("Google Cloud project; empty: the program's project")},
                      {"collection", Text("collection of documents by key", nullptr, true), true},
                      {"database", Text("database id", firestore.database)},
                  })},
          {"json_file",
           Text("a JSON object of documents by key: the embedded source of truth", nullptr, true)},
      },
      {{"oneOf", ExactlyOne({"firestore", "json_file"})}});
  return WithCommon(
      Object(
          "topic → cache chain → topic",
          {
              {"source", Ref("#/definitions/source"), true},
              {"input_format", InputFormat()},
              {"sink", Ref("#/definitions/topic_sink"), true},
              {"topic", Text("where enriched envelopes are published", nullptr, true), true},
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
              {"on_not_found",
               Enum("what to do with a message whose key has no document",
                    {"skip", "pass_unenriched", "nack"},
                    std::string(enrichment::FailurePolicyName(d.on_not_found)), false, true)},
              {"on_error",
               Enum("what to do when a cache backend fails", {"skip", "pass_unenriched", "nack"},
                    std::string(enrichment::FailurePolicyName(d.on_error)), false, true)},
              {"location_attribute",
               Text("attribute set from the document's location field (when attributes is not "
                    "given); empty: none",
                    d.location_attribute)},
          }),
      d);
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
  const BigQueryConfig d;
  const BigQueryConfig::Table t;
  const BigQueryConfig::Sqlite sq;
  Json from_table = {{"properties", {{"schema", {{"const", "from_table"}}}}},
                     {"required", Json::array({"schema"})}};
  return WithCommon(
      Object(
          "topic → warehouse (BigQuery or SQLite)",
          {
              {"source", Ref("#/definitions/source"), true},
              {"input_format", InputFormat()},
              {"batch_size", Integer("rows per batch", 1, 100000, d.batch_size)},
              {"flush_interval", Duration("longest a partial batch waits", d.flush_interval)},
              {"flush_when_idle",
               Bool("also flush a partial batch when no input is waiting", d.flush_when_idle)},
              {"table",
               Object("a BigQuery table, written over the Storage Write API",
                      {
                          {"project", Text("Google Cloud project; empty: the program's project")},
                          {"dataset", Text("dataset", nullptr, true), true},
                          {"table", Text("table", nullptr, true), true},
                          {"create_table", Bool("create the table when missing", t.create_table)},
                          {"create_dataset",
                           Bool("create the dataset when missing", t.create_dataset)},
                          {"rest_endpoint",
                           Text("REST base URL of a local server (http://host:port), without "
                                "credentials; empty: Google's")},
                          {"grpc_endpoint",
                           Text("Storage Write gRPC host:port of a local server; empty: Google's")},
                      })},
              {"sqlite", Object("the embedded warehouse",
                                {
                                    {"path", Text("database file", nullptr, true), true},
                                    {"table", Text("table", sq.table)},
                                })},
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
      d);
}

Json IceStore() {
  const IceStoreConfig d;
  return WithCommon(
      Object("topic → archive of gzip JSONL objects (GCS or a local directory)",
             {
                 {"source", Ref("#/definitions/source"), true},
                 {"input_format", InputFormat()},
                 {"batch_size", Integer("messages per object, at most", 1, 1000000, d.batch_size)},
                 {"flush_interval", Duration("longest an open batch waits", d.flush_interval)},
                 {"flush_when_idle",
                  Bool("also cut open batches when no input is waiting", d.flush_when_idle)},
                 {"gcs", Object("Google Cloud Storage",
                                {
                                    {"bucket", Text("bucket", nullptr, true), true},
                                    {"prefix", Text("object name prefix")},
                                })},
                 {"local", Object("a local directory",
                                  {
                                      {"root", Text("directory", nullptr, true), true},
                                      {"prefix", Text("file name prefix")},
                                  })},
                 {"group_by", Enum("object keys YYYY/MM/DD/<location>, or YYYY/MM/DD (day)",
                                   {"day_location", "day"}, "day_location", false, false)},
             },
             {{"oneOf", ExactlyOne({"gcs", "local"})}}),
      d);
}

}  // namespace

nlohmann::json ConfigJsonSchema() {
  const ProgramConfig d;
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

  Json service =
      Object("a service: its name and exactly one kind",
             {
                 {"name", Text("unique service name", nullptr, true), true},
                 {"ingestion", Ingestion()},
                 {"enrichment", Enrichment()},
                 {"bigquery", BigQuery()},
                 {"icestore", IceStore()},
             },
             {{"oneOf", ExactlyOne({"ingestion", "enrichment", "bigquery", "icestore"})}});
  Json in_process_subscription =
      Object("an in-process subscription: gets every message of its topic",
             {
                 {"name", Text("subscription name", nullptr, true), true},
                 {"topic", Text("an in_process.topics name", nullptr, true), true},
             });
  const std::vector<std::string> levels = {"trace", "debug", "info", "warn", "error", "off"};
  Json root = Object(
      "dataflow service config (docs/configuration.md)",
      {
          {"project", Text("Google Cloud project of Pub/Sub, Firestore, BigQuery; empty: "
                           "$GOOGLE_CLOUD_PROJECT")},
          {"log_level", Enum("log level (--log-level wins)", levels, d.log_level, false, true)},
          {"create_pubsub_resources",
           Bool("create missing topics and subscriptions (emulators, development)",
                d.create_pubsub_resources)},
          {"shutdown_timeout",
           Duration("time to drain and stop every service", d.shutdown_timeout)},
          {"ops", Object("the /healthz, /readyz, /metrics endpoint",
                         {
                             {"enabled", Bool("serve it", d.ops.enabled)},
                             {"host", Text("listen address", d.ops.host)},
                             {"port", Integer("listen port", 0, 65535, d.ops.port)},
                         })},
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
  for (const char* kind : {"enrichment", "bigquery", "icestore"})
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

#include "config.h"

#include <absl/strings/ascii.h>
#include <absl/strings/str_join.h>
#include <absl/strings/str_split.h>
#include <absl/time/time.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "config_keys.h"
#include "config_reader.h"
#include "dataflow/messagepipeline/loopback.h"
#include "yaml_json.h"

extern char** environ;  // NOLINT: POSIX

namespace dataflow::app {
namespace {

using yaml_config::Errors;
using yaml_config::Index;
using yaml_config::IsSecretKey;
using yaml_config::Join;
using yaml_config::kFromEnvironmentTag;
using yaml_config::kWithheld;
using yaml_config::Reader;
using yaml_config::RejectCredentials;

void ReadSource(Reader& r, const YAML::Node& parent, const std::string& path, SourceConfig& out) {
  const YAML::Node node = parent["source"];
  const std::string at = Join(path, "source");
  if (!node) {
    r.Error(at, "missing (pubsub: {subscription: …} or in_process: {subscription: …})");
    return;
  }
  if (!r.Map(node, at, {"pubsub", "in_process"})) return;
  if (node["pubsub"] && node["in_process"]) {
    r.Error(at, "give either pubsub or in_process, not both");
    return;
  }
  if (const YAML::Node ps = node["pubsub"]) {
    const std::string p = Join(at, "pubsub");
    out.kind = SourceConfig::Kind::kPubsub;
    if (!r.Map(ps, p, KeyNames(PubsubSourceKeys()))) return;
    ReadKeys(PubsubSourceKeys(), r, ps, p, out);
    if (out.ack_deadline < std::chrono::seconds(10) ||
        out.ack_deadline > std::chrono::seconds(600)) {
      r.Error(Join(p, "ack_deadline"), "must be between 10s and 600s (Pub/Sub's limits)");
    }
    if (out.max_stream_duration < std::chrono::seconds(1)) {
      r.Error(Join(p, "max_stream_duration"), "must be at least 1s");
    }
  } else if (const YAML::Node ip = node["in_process"]) {
    const std::string p = Join(at, "in_process");
    out.kind = SourceConfig::Kind::kInProcess;
    if (!r.Map(ip, p, {"subscription"})) return;
    r.String(ip, "subscription", p, out.subscription, true);
  } else {
    r.Error(at, "missing pubsub or in_process");
  }
}

// `sink: pubsub` / `sink: in_process`, or a map with a project: `sink: {pubsub: {project: p}}`.
void ReadTopicSink(Reader& r, const YAML::Node& parent, const std::string& path,
                   TopicSinkConfig& out) {
  const YAML::Node node = parent["sink"];
  const std::string at = Join(path, "sink");
  if (!node) {
    r.Error(at, "missing (pubsub or in_process)");
    return;
  }
  if (node.IsScalar()) {
    const std::string kind = node.Scalar();
    if (kind == "pubsub") {
      out.kind = TopicSinkConfig::Kind::kPubsub;
    } else if (kind == "in_process") {
      out.kind = TopicSinkConfig::Kind::kInProcess;
    } else {
      r.Error(at, "expected pubsub or in_process, got " + r.Quote(kind));
    }
    return;
  }
  if (!r.Map(node, at, {"pubsub", "in_process"})) return;
  if (const YAML::Node ps = node["pubsub"]) {
    out.kind = TopicSinkConfig::Kind::kPubsub;
    if (ps.IsMap() && r.Map(ps, Join(at, "pubsub"), {"project"})) {
      r.String(ps, "project", Join(at, "pubsub"), out.project);
    }
  } else {
    out.kind = TopicSinkConfig::Kind::kInProcess;
  }
}

void ReadSpec(Reader& r, const YAML::Node& node, const std::string& path, IngestionConfig& out) {
  if (!r.Map(node, path,
             KeyNames(CommonServiceKeys<IngestionConfig>(),
                      {"mqtt", "sink", "routes", "default_topic", "payload_format"}))) {
    return;
  }
  const YAML::Node mqtt = node["mqtt"];
  const std::string m = Join(path, "mqtt");
  if (!mqtt) {
    r.Error(m, "missing");
  } else if (r.Map(mqtt, m, KeyNames(MqttKeys(), {"ack_mode", "topic_mappings"}))) {
    auto& c = out.mqtt;
    ReadKeys(MqttKeys(), r, mqtt, m, c);
    std::string ack_mode;
    r.String(mqtt, "ack_mode", m, ack_mode);
    if (!ack_mode.empty() && !mqttconverter::ParseAckMode(ack_mode, &c.ack_mode)) {
      r.Error(Join(m, "ack_mode"), "expected pipeline or receipt, got " + r.Quote(ack_mode));
    }
    const YAML::Node maps = mqtt["topic_mappings"];
    const std::string mp = Join(m, "topic_mappings");
    if (!maps || !maps.IsSequence() || maps.size() == 0) {
      r.Error(mp, "missing (a list of {name, topic, qos})");
    } else {
      for (std::size_t i = 0; i < maps.size(); ++i) {
        const std::string ip = Index(mp, i);
        if (!r.Map(maps[i], ip, KeyNames(TopicMappingKeys()))) continue;
        mqttconverter::TopicMapping t;
        ReadKeys(TopicMappingKeys(), r, maps[i], ip, t);
        c.topic_mappings.push_back(std::move(t));
      }
    }
    // What the library checks beyond presence (URL scheme, filters...), under this path.
    if (auto s = mqttconverter::ValidateMQTTClientConfig(c);
        !s.ok() && !c.broker_url.empty() && !c.topic_mappings.empty()) {
      r.Error(m, std::string(s.message()));
    }
  }
  ReadTopicSink(r, node, path, out.sink);
  const YAML::Node routes = node["routes"];
  const std::string rp = Join(path, "routes");
  if (!routes) {
    r.Error(rp, "missing (route name: topic)");
  } else if (!routes.IsMap()) {
    r.Error(rp, "expected a mapping of route name to topic");
  } else {
    for (const auto& kv : routes) {
      const auto route = kv.first.as<std::string>();
      std::string topic;
      r.String(routes, route.c_str(), rp, topic, true);
      out.routes.emplace_back(route, topic);
    }
    for (const auto& t : out.mqtt.topic_mappings) {
      bool mapped = false;
      for (const auto& [route, topic] : out.routes) mapped |= route == t.name;
      if (!mapped && !node["default_topic"]) {
        r.Error(Join(rp, t.name), "missing: topic mapping " + r.Quote(t.name) +
                                      " has no route and there is no default_topic");
      }
    }
  }
  r.String(node, "default_topic", path, out.default_topic);
  if (auto v = r.Scalar(node, "payload_format", path, false)) {
    if (*v == "envelope") {
      out.payload_format = mqttconverter::PayloadFormat::kEnvelope;
    } else if (*v == "raw") {
      out.payload_format = mqttconverter::PayloadFormat::kRaw;
    } else {
      r.Error(Join(path, "payload_format"), "expected envelope or raw, got " + r.Quote(*v));
    }
  }
  ReadKeys(CommonServiceKeys<IngestionConfig>(), r, node, path, out);
}

void ReadCache(Reader& r, const YAML::Node& parent, const std::string& path,
               CacheChainConfig& out) {
  const YAML::Node node = parent["cache"];
  const std::string at = Join(path, "cache");
  if (!node) {
    r.Error(at, "missing (lru, redis, firestore and/or json_file)");
    return;
  }
  if (!r.Map(node, at, {"lru", "redis", "firestore", "json_file"})) return;
  if (const YAML::Node n = node["lru"]) {
    const std::string p = Join(at, "lru");
    // Assigned, not emplace()d: clang 14 (the fuzz build) cannot default-construct a nested
    // struct with member initializers through std::optional (same below).
    out.lru = CacheChainConfig::Lru{};
    if (!n.IsNull() && r.Map(n, p, KeyNames(LruKeys()))) ReadKeys(LruKeys(), r, n, p, *out.lru);
  }
  if (const YAML::Node n = node["redis"]) {
    const std::string p = Join(at, "redis");
    out.redis.emplace();
    if (r.Map(n, p, KeyNames(RedisKeys()))) {
      ReadKeys(RedisKeys(), r, n, p, *out.redis);
      RejectCredentials(r, out.redis->addr, Join(p, "addr"),
                        "give the password in the password key (with ${VAR} to keep it out of "
                        "the file)");
    }
  }
  if (const YAML::Node n = node["firestore"]) {
    const std::string p = Join(at, "firestore");
    out.firestore = CacheChainConfig::Firestore{};
    if (r.Map(n, p, KeyNames(FirestoreKeys()))) ReadKeys(FirestoreKeys(), r, n, p, *out.firestore);
  }
  if (node["json_file"]) {
    out.json_file.emplace();
    r.String(node, "json_file", at, *out.json_file, true);
  }
  if (out.firestore && out.json_file) {
    r.Error(at, "give either firestore or json_file as the source of truth, not both");
  }
  if (!out.lru && !out.redis && !out.firestore && !out.json_file) {
    r.Error(at, "empty: give at least one of lru, redis, firestore, json_file");
  } else if (!out.firestore && !out.json_file) {
    r.Error(at, "needs a source of truth at the end of the chain: firestore or json_file");
  }
}

void ReadEnrichmentKey(Reader& r, const YAML::Node& node, const std::string& path,
                       EnrichmentKeyConfig& out) {
  using Kind = EnrichmentKeyConfig::Kind;
  if (!r.Map(node, path,
             {"json_field", "payload", "attribute", "topic_segment", "topic_attribute"})) {
    return;
  }
  int given = 0;
  for (auto [name, kind] :
       {std::pair{"json_field", Kind::kJsonField}, std::pair{"payload", Kind::kPayloadPath},
        std::pair{"attribute", Kind::kAttribute}}) {
    if (!node[name]) continue;
    ++given;
    out.kind = kind;
    r.String(node, name, path, out.name, /*required=*/true);
  }
  if (node["topic_segment"]) {
    ++given;
    out.kind = Kind::kTopicSegment;
    out.name = "mqtt_topic";
    r.Integer(node, "topic_segment", path, out.segment, 0, 1000);
    r.String(node, "topic_attribute", path, out.name);
    if (out.name.empty()) r.Error(Join(path, "topic_attribute"), "must not be empty");
  } else if (node["topic_attribute"]) {
    r.Error(Join(path, "topic_attribute"), "only with topic_segment");
  }
  if (given != 1) {
    r.Error(path, "give exactly one of json_field, payload, attribute or topic_segment");
  } else if (out.kind == Kind::kPayloadPath && !out.name.empty()) {
    if (auto p = enrichment::JsonPath::Parse(out.name); !p.ok()) {
      r.Error(Join(path, "payload"), std::string(p.status().message()));
    }
  }
}

// A list of field names, each a NAME or a {FROM: TO} rename.
void ReadFieldMappings(Reader& r, const YAML::Node& parent, const char* key,
                       const std::string& path, std::vector<enrichment::FieldMapping>& out) {
  const YAML::Node list = parent[key];
  if (!list) return;
  const std::string lp = Join(path, key);
  if (!list.IsSequence()) {
    r.Error(lp, "expected a list of field names (NAME, or {FROM: TO} to rename)");
    return;
  }
  for (std::size_t i = 0; i < list.size(); ++i) {
    const YAML::Node item = list[i];
    const std::string ip = lp + "[" + std::to_string(i) + "]";
    if (item.IsScalar() && !item.Scalar().empty()) {
      out.push_back({.from = item.Scalar()});
    } else if (item.IsMap() && item.size() == 1 && item.begin()->second.IsScalar() &&
               !item.begin()->first.as<std::string>().empty() &&
               !item.begin()->second.Scalar().empty()) {
      out.push_back(
          {.from = item.begin()->first.as<std::string>(), .to = item.begin()->second.Scalar()});
    } else {
      r.Error(ip, "expected a field name, or {FROM: TO} to rename it");
    }
  }
}

void ReadSpec(Reader& r, const YAML::Node& node, const std::string& path, EnrichmentConfig& out) {
  if (!r.Map(node, path,
             KeyNames(CommonServiceKeys<EnrichmentConfig>(),
                      {"source", "input_format", "sink", "topic", "key", "fields", "attributes",
                       "cache", "on_not_found", "on_error", "location_attribute"}))) {
    return;
  }
  ReadSource(r, node, path, out.source);
  r.Format(node, "input_format", path, out.input_format);
  ReadTopicSink(r, node, path, out.sink);
  r.String(node, "topic", path, out.topic, true);
  const YAML::Node key = node["key"];
  const std::string kp = Join(path, "key");
  if (!key) {
    r.Error(kp,
            "missing (e.g. {json_field: deviceId}, {payload: device.id}, {attribute: NAME}, "
            "{topic_segment: 1}, or a list of these tried in order)");
  } else if (key.IsSequence()) {
    if (key.size() == 0) r.Error(kp, "an empty list: give at least one key source");
    for (std::size_t i = 0; i < key.size(); ++i) {
      ReadEnrichmentKey(r, key[i], kp + "[" + std::to_string(i) + "]", out.keys.emplace_back());
    }
  } else {
    ReadEnrichmentKey(r, key, kp, out.keys.emplace_back());
  }
  ReadFieldMappings(r, node, "fields", path, out.fields);
  if (node["attributes"]) ReadFieldMappings(r, node, "attributes", path, out.attributes.emplace());
  ReadCache(r, node, path, out.cache);
  r.Policy(node, "on_not_found", path, out.on_not_found);
  r.Policy(node, "on_error", path, out.on_error);
  r.String(node, "location_attribute", path, out.location_attribute);
  ReadKeys(CommonServiceKeys<EnrichmentConfig>(), r, node, path, out);
}

void ReadRowSchema(Reader& r, const YAML::Node& node, const std::string& path,
                   BigQueryConfig& out) {
  const YAML::Node schema = node["schema"];
  const std::string at = Join(path, "schema");
  if (schema && schema.IsScalar()) {
    if (schema.Scalar() == "from_table") {
      out.schema_from_table = true;
    } else {
      r.Error(at, "expected a list of columns or from_table");
    }
  } else if (schema && schema.IsSequence()) {
    auto columns = bqstore::ColumnsFromJson(YamlToJson(schema));
    if (columns.ok()) {
      out.columns = *std::move(columns);
    } else {
      r.Error(at, std::string(columns.status().message()));
    }
  } else if (schema && !schema.IsNull()) {
    r.Error(at, "expected a list of columns or from_table");
  } else {
    r.Error(at,
            "required: a list of columns ({name, type, mode, source}) or from_table "
            "(docs/bqstore.md)");
  }
  if (const YAML::Node sources = node["sources"]) {
    if (!sources.IsMap()) {
      r.Error(Join(path, "sources"), "expected a mapping of column name to source");
    } else {
      for (const auto& kv : sources) {
        const std::string name = kv.first.as<std::string>();
        if (!kv.second.IsScalar()) {
          r.Error(Join(Join(path, "sources"), name), "expected a source");
          continue;
        }
        if (auto s = bqstore::ParseColumnSource(kv.second.Scalar()); !s.ok()) {
          r.Error(Join(Join(path, "sources"), name), std::string(s.status().message()));
        }
        out.sources[name] = kv.second.Scalar();
      }
    }
    if (!out.schema_from_table) {
      r.Error(Join(path, "sources"), "only with schema: from_table (give columns a source:)");
    }
  }
}

void ReadSpec(Reader& r, const YAML::Node& node, const std::string& path, BigQueryConfig& out) {
  if (!r.Map(node, path,
             KeyNames(CommonServiceKeys<BigQueryConfig>(),
                      {"source", "input_format", "batch_size", "flush_interval", "flush_when_idle",
                       "table", "sqlite", "schema", "sources"}))) {
    return;
  }
  ReadRowSchema(r, node, path, out);
  ReadSource(r, node, path, out.source);
  r.Format(node, "input_format", path, out.input_format);
  r.Integer(node, "batch_size", path, out.batch_size, 1, 100000);
  r.Dur(node, "flush_interval", path, out.flush_interval);
  r.Bool(node, "flush_when_idle", path, out.flush_when_idle);
  ReadKeys(CommonServiceKeys<BigQueryConfig>(), r, node, path, out);
  if (const YAML::Node t = node["table"]) {
    const std::string p = Join(path, "table");
    out.bigquery = BigQueryConfig::Table{};
    if (r.Map(t, p, KeyNames(BigQueryTableKeys()))) {
      ReadKeys(BigQueryTableKeys(), r, t, p, *out.bigquery);
      for (const char* key : {"rest_endpoint", "grpc_endpoint"}) {
        RejectCredentials(r,
                          key == std::string("rest_endpoint") ? out.bigquery->rest_endpoint
                                                              : out.bigquery->grpc_endpoint,
                          Join(p, key),
                          "Google credentials come from GOOGLE_APPLICATION_CREDENTIALS or the "
                          "metadata server");
      }
    }
  }
  if (const YAML::Node s = node["sqlite"]) {
    const std::string p = Join(path, "sqlite");
    out.sqlite = BigQueryConfig::Sqlite{};
    if (r.Map(s, p, KeyNames(SqliteKeys()))) ReadKeys(SqliteKeys(), r, s, p, *out.sqlite);
  }
  if (out.bigquery.has_value() == out.sqlite.has_value()) {
    r.Error(path, "give exactly one sink: table (BigQuery) or sqlite");
  }
  if (out.schema_from_table && out.sqlite) {
    r.Error(Join(path, "schema"), "from_table needs a BigQuery table; give SQLite a column list");
  }
}

void ReadSpec(Reader& r, const YAML::Node& node, const std::string& path, IceStoreConfig& out) {
  if (!r.Map(node, path,
             KeyNames(CommonServiceKeys<IceStoreConfig>(),
                      {"source", "input_format", "batch_size", "flush_interval", "flush_when_idle",
                       "gcs", "local", "group_by"}))) {
    return;
  }
  ReadSource(r, node, path, out.source);
  r.Format(node, "input_format", path, out.input_format);
  r.Integer(node, "batch_size", path, out.batch_size, 1, 1000000);
  r.Dur(node, "flush_interval", path, out.flush_interval);
  r.Bool(node, "flush_when_idle", path, out.flush_when_idle);
  ReadKeys(CommonServiceKeys<IceStoreConfig>(), r, node, path, out);
  if (const YAML::Node g = node["group_by"]) {
    const std::string value = g.IsScalar() ? g.Scalar() : "";
    if (value == "day_location") {
      out.group_by = IceStoreConfig::GroupBy::kDayLocation;
    } else if (value == "day") {
      out.group_by = IceStoreConfig::GroupBy::kDay;
    } else {
      r.Error(Join(path, "group_by"), "expected day_location or day, got " + r.Quote(value));
    }
  }
  if (const YAML::Node g = node["gcs"]) {
    const std::string p = Join(path, "gcs");
    out.gcs.emplace();
    if (r.Map(g, p, KeyNames(GcsKeys()))) ReadKeys(GcsKeys(), r, g, p, *out.gcs);
  }
  if (const YAML::Node l = node["local"]) {
    const std::string p = Join(path, "local");
    out.local.emplace();
    if (r.Map(l, p, KeyNames(LocalKeys()))) ReadKeys(LocalKeys(), r, l, p, *out.local);
  }
  if (out.gcs.has_value() == out.local.has_value()) {
    r.Error(path, "give exactly one sink: gcs or local");
  }
}

// Calls fn(std::in_place_type<Spec>) for every service kind, in the variant's order.
template <typename Fn>
void ForEachKind(Fn&& fn) {
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    (fn(std::in_place_type<std::variant_alternative_t<I, ServiceConfig::Spec>>), ...);
  }
  (std::make_index_sequence<std::variant_size_v<ServiceConfig::Spec>>());
}

std::vector<std::string> KindNames() {
  std::vector<std::string> names;
  ForEachKind([&]<typename Spec>(std::in_place_type_t<Spec>) { names.emplace_back(Spec::kKind); });
  return names;
}

void ReadService(Reader& r, const YAML::Node& node, const std::string& path, ServiceConfig& out) {
  const std::vector<std::string> names = KindNames();
  std::vector<std::string> keys = names;
  keys.insert(keys.begin(), "name");
  if (!r.Map(node, path, keys)) return;
  r.String(node, "name", path, out.name, true);
  std::vector<std::string> kinds;
  for (const std::string& k : names) {
    if (node[k]) kinds.push_back(k);
  }
  if (kinds.size() != 1) {
    r.Error(path, kinds.empty() ? "missing the service kind: one of " + absl::StrJoin(names, ", ")
                                : "more than one service kind: " + absl::StrJoin(kinds, ", "));
    return;
  }
  ForEachKind([&]<typename Spec>(std::in_place_type_t<Spec>) {
    if (kinds.front() == Spec::kKind) {
      ReadSpec(r, node[Spec::kKind], Join(path, Spec::kKind), out.spec.emplace<Spec>());
    }
  });
}

// Checks that wiring refers to things that exist: in-process names, unique service names.
void CheckWiring(const ProgramConfig& c, Errors& errors) {
  std::set<std::string> topics(c.in_process_topics.begin(), c.in_process_topics.end());
  std::set<std::string> subscriptions;
  std::set<std::string> subscribed_topics;
  for (std::size_t i = 0; i < c.in_process_subscriptions.size(); ++i) {
    const auto& [name, topic] = c.in_process_subscriptions[i];
    subscriptions.insert(name);
    subscribed_topics.insert(topic);
    if (!topics.contains(topic)) {
      errors.push_back({Index("in_process.subscriptions", i) + ".topic",
                        "unknown in-process topic \"" + topic + "\""});
    }
  }
  // An in-process publish completes when every subscription acked it; with none, a message
  // published there would be lost (the broker refuses the publish).
  for (std::size_t i = 0; i < c.in_process_topics.size(); ++i) {
    if (!subscribed_topics.contains(c.in_process_topics[i])) {
      errors.push_back({Index("in_process.topics", i),
                        "topic \"" + c.in_process_topics[i] +
                            "\" has no subscription: messages published to it would be lost"});
    }
  }
  std::set<std::string> names;
  for (std::size_t i = 0; i < c.services.size(); ++i) {
    const auto& s = c.services[i];
    const std::string path = Index("services", i);
    if (!s.name.empty() && !names.insert(s.name).second) {
      errors.push_back({path + ".name", "duplicate service name \"" + s.name + "\""});
    }
    const std::string at = path + "." + s.kind();
    auto check_source = [&](const SourceConfig& src) {
      if (c.create_pubsub_resources && src.kind == SourceConfig::Kind::kPubsub &&
          src.topic.empty()) {
        errors.push_back({at + ".source.pubsub.topic",
                          "missing: create_pubsub_resources needs the subscription's topic"});
      }
      if (src.kind == SourceConfig::Kind::kInProcess && !src.subscription.empty() &&
          !subscriptions.contains(src.subscription)) {
        errors.push_back({at + ".source.in_process.subscription",
                          "unknown in-process subscription \"" + src.subscription + "\""});
      }
    };
    auto check_topic = [&](const TopicSinkConfig& sink, const std::string& topic,
                           const std::string& topic_path) {
      if (sink.kind == TopicSinkConfig::Kind::kInProcess && !topic.empty() &&
          !topics.contains(topic)) {
        errors.push_back({topic_path, "unknown in-process topic \"" + topic + "\""});
      }
    };
    auto check_dead_letter = [&](bool in_process, const std::string& topic) {
      if (in_process && !topic.empty() && !topics.contains(topic)) {
        errors.push_back({at + ".dead_letter_topic", "unknown in-process topic \"" + topic + "\""});
      }
    };
    std::visit(
        [&](const auto& spec) {
          using Spec = std::decay_t<decltype(spec)>;
          if constexpr (std::is_same_v<Spec, IngestionConfig>) {
            check_dead_letter(spec.sink.kind == TopicSinkConfig::Kind::kInProcess,
                              spec.dead_letter_topic);
          } else {
            check_dead_letter(spec.source.kind == SourceConfig::Kind::kInProcess,
                              spec.dead_letter_topic);
          }
        },
        s.spec);
    if (const auto* ing = std::get_if<IngestionConfig>(&s.spec)) {
      for (const auto& [route, topic] : ing->routes)
        check_topic(ing->sink, topic, at + ".routes." + route);
      check_topic(ing->sink, ing->default_topic, at + ".default_topic");
    } else if (const auto* en = std::get_if<EnrichmentConfig>(&s.spec)) {
      check_source(en->source);
      check_topic(en->sink, en->topic, at + ".topic");
    } else if (const auto* bq = std::get_if<BigQueryConfig>(&s.spec)) {
      check_source(bq->source);
    } else if (const auto* ice = std::get_if<IceStoreConfig>(&s.spec)) {
      check_source(ice->source);
    }
  }
}

// Passwords that would cross the network in plaintext, and TLS without a certificate check.
void SecurityWarnings(const ProgramConfig& c, std::vector<ConfigError>& warnings) {
  for (std::size_t i = 0; i < c.services.size(); ++i) {
    const std::string at = Index("services", i) + "." + c.services[i].kind();
    if (const auto* ing = std::get_if<IngestionConfig>(&c.services[i].spec)) {
      const std::string& url = ing->mqtt.broker_url;
      const std::size_t sep = url.find("://");
      const std::string scheme = absl::AsciiStrToLower(url.substr(0, sep));
      std::string_view hostport(url);
      if (sep != std::string::npos) hostport.remove_prefix(sep + 3);
      hostport = hostport.substr(0, hostport.find('/'));
      const bool plaintext = scheme == "tcp" || scheme == "mqtt" || scheme == "ws";
      if (!ing->mqtt.password.empty() && plaintext && !IsLoopbackHost(HostOfHostPort(hostport))) {
        warnings.push_back({at + ".mqtt.password",
                            "sent in plaintext (" + scheme +
                                "://) to a host that is not this machine: use ssl://, mqtts:// "
                                "or wss://"});
      }
      if (ing->mqtt.insecure_skip_verify) {
        warnings.push_back({at + ".mqtt.insecure_skip_verify",
                            "on: the broker's certificate is not checked, so anyone on the path "
                            "can pose as the broker (and read the password)"});
      }
    } else if (const auto* en = std::get_if<EnrichmentConfig>(&c.services[i].spec)) {
      if (en->cache.redis && !en->cache.redis->password.empty() &&
          !IsLoopbackHost(HostOfHostPort(en->cache.redis->addr))) {
        warnings.push_back({at + ".cache.redis.password",
                            "sent in plaintext (this Redis client has no TLS) to a host that is "
                            "not this machine: keep Redis on a private network or a TLS tunnel"});
      }
    }
  }
}

// The safety net behind Reader::Quote: messages from the libraries (and any echo missed)
// never show a withheld value. Values of one to three characters are not searched for: they
// would garble every message (a "1" in each number) and are no secret worth the name.
void Scrub(std::vector<ConfigError>& list, const std::vector<std::string>& withheld) {
  for (ConfigError& e : list) {
    for (const std::string& w : withheld) {
      if (w.size() < 4) continue;
      for (std::string* text : {&e.path, &e.message}) {
        for (std::size_t at = text->find(w); at != std::string::npos; at = text->find(w, at)) {
          text->replace(at, w.size(), kWithheld);
          at += std::string_view(kWithheld).size();
        }
      }
    }
  }
}

std::string Lower(std::string s) { return absl::AsciiStrToLower(s); }
std::string NameKey(std::string s) {
  s = Lower(std::move(s));
  for (char& ch : s) {
    if (ch == '-') ch = '_';
  }
  return s;
}

// DATAFLOW__A__B__C=value sets A.B.C; in a sequence a segment picks the element whose `name`
// matches (or, when it is a number, the element at that index).
void ApplyOverride(YAML::Node root, const std::string& variable, const std::string& value,
                   Errors& errors) {
  const std::vector<std::string> segments =
      absl::StrSplit(variable.substr(std::string("DATAFLOW__").size()), "__");
  YAML::Node node = root;
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const std::string seg = Lower(segments[i]);
    if (seg.empty()) {
      errors.push_back({variable, "empty path segment"});
      return;
    }
    const bool last = i + 1 == segments.size();
    if (node.IsSequence()) {
      YAML::Node found;
      for (std::size_t k = 0; k < node.size(); ++k) {
        if ((node[k].IsMap() && node[k]["name"] && NameKey(node[k]["name"].Scalar()) == seg) ||
            std::to_string(k) == seg) {
          found.reset(node[k]);
          break;
        }
      }
      if (!found.IsDefined() || found.IsNull()) {
        errors.push_back({variable, "no element named \"" + seg + "\" to override"});
        return;
      }
      if (last) {
        errors.push_back({variable, "cannot replace a whole list element"});
        return;
      }
      node.reset(found);
      continue;
    }
    if (!node.IsMap() && !node.IsNull()) {
      errors.push_back({variable, "\"" + seg + "\" is inside a single value"});
      return;
    }
    if (last) {
      node[seg] = value;
      node[seg].SetTag(kFromEnvironmentTag);  // never echoed in errors
      return;
    }
    YAML::Node child = node[seg];
    if (!child.IsDefined() || child.IsNull()) {
      // A path the file does not have yet: create it; unknown keys are reported later.
      node[seg] = YAML::Node(YAML::NodeType::Map);
      child = node[seg];
    }
    node.reset(child);
  }
}

}  // namespace

const char* ServiceConfig::kind() const {
  return std::visit([](const auto& s) { return std::decay_t<decltype(s)>::kKind; }, spec);
}

std::vector<std::pair<std::string, std::string>> EnvironmentVariables() {
  std::vector<std::pair<std::string, std::string>> vars;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string entry = *e;
    const auto eq = entry.find('=');
    if (eq != std::string::npos) vars.emplace_back(entry.substr(0, eq), entry.substr(eq + 1));
  }
  return vars;
}

ConfigLoadResult ParseConfig(const std::string& yaml_text,
                             const std::vector<std::pair<std::string, std::string>>& environment,
                             const EnvLookup& lookup) {
  ConfigLoadResult result;
  Errors& errors = result.errors;
  // Secrets and values from the environment, which no error or warning may show.
  std::vector<std::string> withheld;
  for (const auto& [name, value] : environment) {
    if (name.rfind("DATAFLOW__", 0) == 0) withheld.push_back(value);
  }
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    errors.push_back({"line " + std::to_string(e.mark.line + 1) + ", column " +
                          std::to_string(e.mark.column + 1),
                      "not valid YAML: " + e.msg});
    return result;
  }
  if (root.IsNull()) {
    errors.push_back({"(top)", "empty config"});
    return result;
  }
  try {
    for (const auto& [name, value] : environment) {
      if (name.rfind("DATAFLOW__", 0) == 0) ApplyOverride(root, name, value, errors);
    }
    Reader r(errors, lookup, withheld);
    ProgramConfig& c = result.config;
    if (!r.Map(root, "",
               {"project", "log_level", "create_pubsub_resources", "shutdown_timeout", "ops",
                "in_process", "services"})) {
      return result;
    }
    r.String(root, "project", "", c.project);
    r.Bool(root, "create_pubsub_resources", "", c.create_pubsub_resources);
    r.String(root, "log_level", "", c.log_level);
    static const std::set<std::string> kLevels = {"trace", "debug", "info", "warn", "error", "off"};
    if (!kLevels.contains(c.log_level)) {
      r.Error("log_level",
              "expected one of trace, debug, info, warn, error, off, got " + r.Quote(c.log_level));
    }
    r.Dur(root, "shutdown_timeout", "", c.shutdown_timeout);
    if (const YAML::Node ops = root["ops"]; ops && r.Map(ops, "ops", KeyNames(OpsKeys()))) {
      ReadKeys(OpsKeys(), r, ops, "ops", c.ops);
    }
    if (const YAML::Node ip = root["in_process"];
        ip && r.Map(ip, "in_process", {"topics", "subscriptions"})) {
      const YAML::Node topics = ip["topics"];
      if (topics && !topics.IsSequence()) r.Error("in_process.topics", "expected a list");
      for (std::size_t i = 0; topics && topics.IsSequence() && i < topics.size(); ++i) {
        if (!topics[i].IsScalar() || topics[i].Scalar().empty()) {
          r.Error(Index("in_process.topics", i), "expected a topic name");
        } else {
          c.in_process_topics.push_back(topics[i].Scalar());
        }
      }
      const YAML::Node subs = ip["subscriptions"];
      if (subs && !subs.IsSequence()) r.Error("in_process.subscriptions", "expected a list");
      for (std::size_t i = 0; subs && subs.IsSequence() && i < subs.size(); ++i) {
        const std::string p = Index("in_process.subscriptions", i);
        if (!r.Map(subs[i], p, {"name", "topic"})) continue;
        std::string name, topic;
        r.String(subs[i], "name", p, name, true);
        r.String(subs[i], "topic", p, topic, true);
        c.in_process_subscriptions.emplace_back(name, topic);
      }
    }
    const YAML::Node services = root["services"];
    if (!services || !services.IsSequence() || services.size() == 0) {
      r.Error("services", "missing (a list of services)");
    } else {
      for (std::size_t i = 0; i < services.size(); ++i) {
        ServiceConfig s;
        ReadService(r, services[i], Index("services", i), s);
        c.services.push_back(std::move(s));
      }
    }
    if (errors.empty()) CheckWiring(c, errors);
    if (errors.empty()) SecurityWarnings(c, result.warnings);
    if (errors.empty()) {
      for (std::size_t i = 0; i < c.services.size(); ++i) {
        std::visit(
            [&](const auto& spec) {
              if (spec.dead_letter_topic.empty()) {
                result.warnings.push_back(
                    {Index("services", i) + "." + c.services[i].kind() + ".dead_letter_topic",
                     "not set: a message that fails permanently or " +
                         std::to_string(spec.max_delivery_attempts) +
                         " times is logged, counted as dropped and acked (lost)"});
              }
            },
            c.services[i].spec);
      }
    }
  } catch (const YAML::Exception& e) {
    // yaml-cpp reports type mismatches (e.g. a key that is not a string) by throwing.
    errors.push_back({"line " + std::to_string(e.mark.line + 1), e.msg});
  }
  Scrub(result.errors, withheld);
  Scrub(result.warnings, withheld);
  return result;
}

ConfigLoadResult LoadConfigFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    ConfigLoadResult result;
    result.errors.push_back({path, "cannot read the config file"});
    return result;
  }
  std::stringstream text;
  text << in.rdbuf();
  return ParseConfig(text.str(), EnvironmentVariables(), ProcessEnvironment());
}

std::vector<std::string> Describe(const ProgramConfig& config) {
  auto source = [](const SourceConfig& s) {
    return (s.kind == SourceConfig::Kind::kPubsub ? "pubsub subscription " : "in-process ") +
           s.subscription;
  };
  auto sink = [](const TopicSinkConfig& s) {
    return s.kind == TopicSinkConfig::Kind::kPubsub ? std::string("pubsub topic ")
                                                    : std::string("in-process topic ");
  };
  std::vector<std::string> lines;
  for (const auto& s : config.services) {
    std::string line = s.name + " (" + s.kind() + "): ";
    if (const auto* ing = std::get_if<IngestionConfig>(&s.spec)) {
      std::vector<std::string> routes;
      for (const auto& [route, topic] : ing->routes) routes.push_back(route + "→" + topic);
      line +=
          "MQTT " + ing->mqtt.broker_url + " → " + sink(ing->sink) + "{" +
          absl::StrJoin(routes, ", ") + "}" +
          (ing->payload_format == mqttconverter::PayloadFormat::kRaw ? " (raw MQTT bytes)" : "");
    } else if (const auto* en = std::get_if<EnrichmentConfig>(&s.spec)) {
      std::vector<std::string> layers;
      if (en->cache.lru) layers.push_back("LRU(" + std::to_string(en->cache.lru->max_size) + ")");
      if (en->cache.redis) layers.push_back("Redis " + en->cache.redis->addr);
      if (en->cache.firestore) layers.push_back("Firestore " + en->cache.firestore->collection);
      if (en->cache.json_file) layers.push_back("file " + *en->cache.json_file);
      line += source(en->source) + " → cache " + absl::StrJoin(layers, " → ") + " → " +
              sink(en->sink) + en->topic;
    } else if (const auto* bq = std::get_if<BigQueryConfig>(&s.spec)) {
      line +=
          source(bq->source) + " → " +
          (bq->bigquery ? "BigQuery " + bq->bigquery->dataset + "." + bq->bigquery->table
                        : "SQLite " + bq->sqlite->path + " table " + bq->sqlite->table) +
          (bq->schema_from_table ? " (schema from the table)"
           : bq->columns.empty() ? ""
                                 : " (schema: " + std::to_string(bq->columns.size()) + " columns)");
    } else if (const auto* ice = std::get_if<IceStoreConfig>(&s.spec)) {
      line += source(ice->source) + " → " +
              (ice->gcs ? "gs://" + ice->gcs->bucket + "/" + ice->gcs->prefix
                        : "directory " + ice->local->root);
    }
    lines.push_back(std::move(line));
  }
  return lines;
}

}  // namespace dataflow::app

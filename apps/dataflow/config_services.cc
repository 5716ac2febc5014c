#include <absl/strings/ascii.h>
#include <absl/strings/str_join.h>
#include <absl/strings/str_split.h>
#include <yaml-cpp/yaml.h>

#include <set>
#include <string>
#include <vector>

#include "config_keys.h"
#include "config_parts.h"
#include "config_reader.h"
#include "dataflow/messagepipeline/loopback.h"
#include "yaml_json.h"

namespace dataflow::app::yaml_config {

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
  if (!r.Map(node, path, KeyNames(IngestionKeys(), {"mqtt", "sink", "routes"}))) {
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
    if (auto s = mqttconverter::ValidateMqttClientOptions(c);
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
  ReadKeys(IngestionKeys(), r, node, path, out);
}

namespace {

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

}  // namespace

void ReadSpec(Reader& r, const YAML::Node& node, const std::string& path, BigQueryConfig& out) {
  if (!r.Map(node, path,
             KeyNames(BigQueryKeys(), {"source", "table", "sqlite", "schema", "sources"}))) {
    return;
  }
  ReadRowSchema(r, node, path, out);
  ReadSource(r, node, path, out.source);
  ReadKeys(BigQueryKeys(), r, node, path, out);
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
  if (!r.Map(node, path, KeyNames(IceStoreKeys(), {"source", "gcs", "local", "group_by"}))) {
    return;
  }
  ReadSource(r, node, path, out.source);
  ReadKeys(IceStoreKeys(), r, node, path, out);
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

}  // namespace dataflow::app::yaml_config

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

namespace dataflow::app::yaml_config {
namespace {

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

}  // namespace

void ReadSpec(Reader& r, const YAML::Node& node, const std::string& path, EnrichmentConfig& out) {
  if (!r.Map(
          node, path,
          KeyNames(EnrichmentKeys(), {"source", "sink", "key", "fields", "attributes", "cache"}))) {
    return;
  }
  ReadSource(r, node, path, out.source);
  ReadTopicSink(r, node, path, out.sink);
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
  ReadKeys(EnrichmentKeys(), r, node, path, out);
}

}  // namespace dataflow::app::yaml_config

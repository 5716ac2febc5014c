// The enrichment service kind's blocks: the cache chain and the key's place (config_keys.h).
#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

#include "config_keys.h"
#include "config_reader.h"

namespace dataflow::app {
namespace {

using schema_types::Json;
using schema_types::Ref;
using schema_types::Text;
using schema_types::With;
using yaml_config::Join;
using yaml_config::Reader;
using yaml_config::RejectCredentials;

const Block<CacheChainConfig::Lru>& LruBlock() {
  static const auto* const block =
      new Block<CacheChainConfig::Lru>{.description = "in-memory L1", .keys = LruKeys()};
  return *block;
}
const Block<CacheChainConfig::Firestore>& FirestoreBlock() {
  return PlainBlock<CacheChainConfig::Firestore, &FirestoreKeys>();
}

const Block<cache::RedisOptions>& RedisBlock() {
  static const auto* const block = new Block<cache::RedisOptions>{
      .keys = RedisKeys(),
      .check =
          [](Reader& r, const YAML::Node&, const std::string& path, cache::RedisOptions& out) {
            RejectCredentials(r, out.addr, Join(path, "addr"),
                              "give the password in the password key (with ${VAR} to keep it "
                              "out of the file)");
          },
  };
  return *block;
}

ConfigKey<CacheChainConfig> JsonFileKey() {
  const std::string doc = "a JSON object of documents by key: the embedded source of truth";
  return {
      .key = "json_file",
      .type = "text",
      .doc = doc,
      .read =
          [](Reader& r, const YAML::Node& node, const std::string& path, CacheChainConfig& out) {
            if (!node["json_file"]) return;
            out.json_file.emplace();
            r.String(node, "json_file", path, *out.json_file, true);
          },
      .schema = [doc](const CacheChainConfig&) { return Text(doc, nullptr, true); },
      .default_text = [](const CacheChainConfig&) { return std::string(); }};
}

const Block<CacheChainConfig>& CacheBlock() {
  static const auto* const block = new Block<CacheChainConfig>{
      .keys =
          {
              OptionalBlockKey("lru", &CacheChainConfig::lru, &LruBlock,
                               "in-memory L1 (empty: the defaults)", {.null_ok = true}),
              OptionalBlockKey("redis", &CacheChainConfig::redis, &RedisBlock,
                               "Redis L2, written back with cache_ttl"),
              OptionalBlockKey("firestore", &CacheChainConfig::firestore, &FirestoreBlock,
                               "Firestore: the source of truth"),
              JsonFileKey(),
          },
      .exactly_one = {"firestore", "json_file"},
      .check =
          [](Reader& r, const YAML::Node&, const std::string& at, CacheChainConfig& out) {
            if (out.firestore && out.json_file) {
              r.Error(at, "give either firestore or json_file as the source of truth, not both");
            }
            if (!out.lru && !out.redis && !out.firestore && !out.json_file) {
              r.Error(at, "empty: give at least one of lru, redis, firestore, json_file");
            } else if (!out.firestore && !out.json_file) {
              r.Error(at,
                      "needs a source of truth at the end of the chain: firestore or json_file");
            }
          },
  };
  return *block;
}

using KeyKind = EnrichmentKeyConfig::Kind;

// json_field, payload, attribute: the key is the text at that place.
ConfigKey<EnrichmentKeyConfig> PlaceKey(const char* key, KeyKind kind, const std::string& doc) {
  return {.key = key,
          .type = "text",
          .doc = doc,
          .read =
              [key, kind](Reader& r, const YAML::Node& node, const std::string& path,
                          EnrichmentKeyConfig& out) {
                if (!node[key]) return;
                out.kind = kind;
                r.String(node, key, path, out.name, /*required=*/true);
              },
          .schema = [doc](const EnrichmentKeyConfig&) { return Text(doc, nullptr, true); },
          .default_text = [](const EnrichmentKeyConfig&) { return std::string(); }};
}

constexpr const char* kPlaces[] = {"json_field", "payload", "attribute", "topic_segment"};

}  // namespace

const Block<EnrichmentKeyConfig>& EnrichmentKeyBlock() {
  static const auto* const block = new Block<EnrichmentKeyConfig>{
      .description =
          "where the lookup key is: exactly one of json_field, payload, attribute, topic_segment",
      .keys =
          {
              PlaceKey("json_field", KeyKind::kJsonField, "a top-level field of a JSON payload"),
              PlaceKey("payload", KeyKind::kPayloadPath,
                       "a path into a JSON payload: device.id, ids[0]"),
              PlaceKey("attribute", KeyKind::kAttribute, "a message attribute"),
              {.key = "topic_segment",
               .type = "integer 0–1000",
               .doc = "0-based segment of the MQTT topic",
               .read =
                   [](Reader& r, const YAML::Node& node, const std::string& path,
                      EnrichmentKeyConfig& out) {
                     if (!node["topic_segment"]) return;
                     out.kind = KeyKind::kTopicSegment;
                     out.name = "mqtt_topic";
                     r.Integer(node, "topic_segment", path, out.segment, 0, 1000);
                   },
               .schema =
                   [](const EnrichmentKeyConfig&) {
                     return schema_types::Integer("0-based segment of the MQTT topic", 0, 1000);
                   },
               .default_text = [](const EnrichmentKeyConfig&) { return std::string(); }},
              {.key = "topic_attribute",
               .type = "text",
               .doc = "the attribute holding the topic (only with topic_segment)",
               .read =
                   [](Reader& r, const YAML::Node& node, const std::string& path,
                      EnrichmentKeyConfig& out) {
                     if (node["topic_segment"]) {
                       r.String(node, "topic_attribute", path, out.name);
                       if (out.name.empty())
                         r.Error(Join(path, "topic_attribute"), "must not be empty");
                     } else if (node["topic_attribute"]) {
                       r.Error(Join(path, "topic_attribute"), "only with topic_segment");
                     }
                   },
               .schema =
                   [](const EnrichmentKeyConfig&) {
                     return Text("the attribute holding the topic (only with topic_segment)",
                                 "mqtt_topic", true);
                   },
               .default_text =
                   [](const EnrichmentKeyConfig&) { return std::string("mqtt_topic"); }},
          },
      .exactly_one = {kPlaces, kPlaces + 4},
      .extra_schema = {{"dependencies", {{"topic_attribute", Json::array({"topic_segment"})}}}},
      .check =
          [](Reader& r, const YAML::Node& node, const std::string& path, EnrichmentKeyConfig& out) {
            int given = 0;
            for (const char* place : kPlaces) given += node[place] ? 1 : 0;
            if (given != 1) {
              r.Error(path, "give exactly one of json_field, payload, attribute or topic_segment");
            } else if (out.kind == KeyKind::kPayloadPath && !out.name.empty()) {
              if (auto p = enrichment::JsonPath::Parse(out.name); !p.ok()) {
                r.Error(Join(path, "payload"), std::string(p.status().message()));
              }
            }
          },
  };
  return *block;
}

namespace {

// `key:` one place or a list of places tried in order.
ConfigKey<EnrichmentConfig> LookupKey() {
  const std::string doc = "the lookup key's place, or a list of places tried in order";
  return {
      .key = "key",
      .type = "mapping, or a list of them",
      .doc = doc,
      .required = true,
      .read =
          [](Reader& r, const YAML::Node& node, const std::string& path, EnrichmentConfig& out) {
            const YAML::Node key = node["key"];
            const std::string kp = Join(path, "key");
            if (!key) {
              r.Error(kp,
                      "missing (e.g. {json_field: deviceId}, {payload: device.id}, {attribute: "
                      "NAME}, {topic_segment: 1}, or a list of these tried in order)");
            } else if (key.IsSequence()) {
              if (key.size() == 0) r.Error(kp, "an empty list: give at least one key source");
              for (std::size_t i = 0; i < key.size(); ++i) {
                ReadBlock(EnrichmentKeyBlock(), r, key[i], yaml_config::Index(kp, i),
                          out.keys.emplace_back());
              }
            } else {
              ReadBlock(EnrichmentKeyBlock(), r, key, kp, out.keys.emplace_back());
            }
          },
      .schema =
          [doc](const EnrichmentConfig&) {
            return With(
                {{"anyOf", Json::array({Ref("#/definitions/enrichment_key"),
                                        {{"type", "array"},
                                         {"minItems", 1},
                                         {"items", Ref("#/definitions/enrichment_key")}}})}},
                doc);
          },
      .default_text = [](const EnrichmentConfig&) { return std::string(); },
      .sections =
          [](const std::string& path) { return BlockReference(EnrichmentKeyBlock(), path); },
  };
}

// A list of field names, each a NAME or a {FROM: TO} rename; `attributes` an optional one.
template <typename List>
ConfigKey<EnrichmentConfig> FieldMappingsKey(const char* key, List EnrichmentConfig::*member,
                                             const std::string& doc) {
  return {
      .key = key,
      .type = "list of NAME or {FROM: TO}",
      .doc = doc,
      .read =
          [key, member](Reader& r, const YAML::Node& parent, const std::string& path,
                        EnrichmentConfig& config) {
            const YAML::Node list = parent[key];
            if (!list) return;
            std::vector<enrichment::FieldMapping>& out = [&]() -> auto& {
              if constexpr (std::is_same_v<List, std::vector<enrichment::FieldMapping>>) {
                return config.*member;
              } else {
                return (config.*member).emplace();
              }
            }
            ();
            const std::string lp = Join(path, key);
            if (!list.IsSequence()) {
              r.Error(lp, "expected a list of field names (NAME, or {FROM: TO} to rename)");
              return;
            }
            for (std::size_t i = 0; i < list.size(); ++i) {
              const YAML::Node item = list[i];
              if (item.IsScalar() && !item.Scalar().empty()) {
                out.push_back({.from = item.Scalar()});
              } else if (item.IsMap() && item.size() == 1 && item.begin()->second.IsScalar() &&
                         !item.begin()->first.as<std::string>().empty() &&
                         !item.begin()->second.Scalar().empty()) {
                out.push_back({.from = item.begin()->first.as<std::string>(),
                               .to = item.begin()->second.Scalar()});
              } else {
                r.Error(yaml_config::Index(lp, i),
                        "expected a field name, or {FROM: TO} to rename it");
              }
            }
          },
      .schema =
          [doc](const EnrichmentConfig&) {
            Json scalar = {{"type", Json::array({"string", "number", "boolean"})},
                           {"minLength", 1}};
            Json rename = {{"type", "object"},
                           {"minProperties", 1},
                           {"maxProperties", 1},
                           {"propertyNames", {{"type", "string"}, {"minLength", 1}}},
                           {"additionalProperties", scalar}};
            return With({{"type", "array"}, {"items", {{"anyOf", Json::array({scalar, rename})}}}},
                        doc);
          },
      .default_text = [](const EnrichmentConfig&) { return std::string(); },
  };
}

}  // namespace

const Block<EnrichmentConfig>& EnrichmentBlock() {
  static const auto* const block = new Block<EnrichmentConfig>{
      .description = "topic → cache chain → topic",
      .keys = Rows(
          EnrichmentKeys(),
          {
              SourceKey<EnrichmentConfig>(),
              SinkKey<EnrichmentConfig>(),
              LookupKey(),
              FieldMappingsKey("fields", &EnrichmentConfig::fields,
                               "document fields merged into enrichmentData (NAME or {FROM: TO}); "
                               "unset: all"),
              FieldMappingsKey("attributes", &EnrichmentConfig::attributes,
                               "document fields copied into attributes (NAME or {FROM: TO}); "
                               "unset: location into location_attribute"),
              BlockKey<EnrichmentConfig, CacheChainConfig>(
                  "cache", [](EnrichmentConfig & c) -> auto& { return c.cache; }, &CacheBlock,
                  "the cache chain: LRU → Redis → the source of truth (firestore or json_file)",
                  {.required = true,
                   .missing = "missing (lru, redis, firestore and/or json_file)"}),
          }),
      .read_first = {"source", "sink", "key", "fields", "attributes", "cache"},
  };
  return *block;
}

}  // namespace dataflow::app

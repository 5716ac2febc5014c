// One row per key of a config block — {key, member, range/enum, default, doc} — from which the
// reader (config.cc), the allowed-keys check, the JSON Schema (config_schema.cc) and the key
// tables of docs/configuration.md (ConfigReference, config_keys.h) all derive, so a key is
// written once. Rows bind members of the block's struct, which for library backends is the
// library's own options struct (cache::RedisOptions, mqttconverter::MqttClientOptions).
//
//   const KeyTable<Sqlite> kSqlite = {
//       TextKey("path", &Sqlite::path, "database file", /*required=*/true),
//       TextKey("table", &Sqlite::table, "table name"),
//   };
//   ReadKeys(kSqlite, reader, node, path, out);  // errors name path.key
#pragma once

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "config_reader.h"
#include "config_schema_types.h"

namespace dataflow::app {

template <typename Out>
struct ConfigKey {
  std::string key;
  std::string type;  // in the reference: text, integer 1–64, duration, boolean, a \| b
  std::string doc;
  bool required = false;
  std::function<void(yaml_config::Reader&, const YAML::Node&, const std::string&, Out&)> read;
  std::function<nlohmann::json(const Out& defaults)> schema;
  std::function<std::string(const Out& defaults)> default_text;  // empty: none
};

template <typename Out>
using KeyTable = std::vector<ConfigKey<Out>>;

// Any YAML scalar, as text; `required`: present and not empty.
template <typename Out>
ConfigKey<Out> TextKey(std::string key, std::string Out::*member, std::string doc,
                       bool required = false) {
  return {.key = key,
          .type = "text",
          .doc = doc,
          .required = required,
          .read = [key, member, required](
                      yaml_config::Reader& r, const YAML::Node& n, const std::string& path,
                      Out& out) { r.String(n, key.c_str(), path, out.*member, required); },
          .schema =
              [doc, member, required](const Out& d) {
                const std::string& v = d.*member;
                return schema_types::Text(
                    doc, v.empty() || required ? nlohmann::json() : nlohmann::json(v), required);
              },
          .default_text = [member](const Out& d) { return d.*member; }};
}

template <typename Out, typename Int>
ConfigKey<Out> IntKey(std::string key, Int Out::*member, long long min, long long max,
                      std::string doc) {
  return {.key = key,
          .type = "integer " + std::to_string(min) + "–" + std::to_string(max),
          .doc = doc,
          .read = [key, member, min, max](
                      yaml_config::Reader& r, const YAML::Node& n, const std::string& path,
                      Out& out) { r.Integer(n, key.c_str(), path, out.*member, min, max); },
          .schema = [doc, member, min,
                     max](const Out& d) { return schema_types::Integer(doc, min, max, d.*member); },
          .default_text = [member](const Out& d) { return std::to_string(d.*member); }};
}

template <typename Out>
ConfigKey<Out> BoolKey(std::string key, bool Out::*member, std::string doc) {
  return {
      .key = key,
      .type = "boolean",
      .doc = doc,
      .read = [key, member](yaml_config::Reader& r, const YAML::Node& n, const std::string& path,
                            Out& out) { r.Bool(n, key.c_str(), path, out.*member); },
      .schema = [doc, member](const Out& d) { return schema_types::Bool(doc, d.*member); },
      .default_text = [member](const Out& d) { return std::string(d.*member ? "true" : "false"); }};
}

template <typename Out, typename Rep, typename Period>
ConfigKey<Out> DurationKey(std::string key, std::chrono::duration<Rep, Period> Out::*member,
                           std::string doc) {
  return {
      .key = key,
      .type = "duration",
      .doc = doc,
      .read = [key, member](yaml_config::Reader& r, const YAML::Node& n, const std::string& path,
                            Out& out) { r.Dur(n, key.c_str(), path, out.*member); },
      .schema = [doc, member](const Out& d) { return schema_types::Duration(doc, d.*member); },
      .default_text = [member](const Out& d) { return schema_types::DurationText(d.*member); }};
}

// One of `values` (how the reference and schema list it; `name` shows the default), read by
// `read` (a Reader method that reports a value outside them); `env`: a ${VAR} may give it.
template <typename Out, typename E>
ConfigKey<Out> EnumKey(std::string key, E Out::*member, std::vector<std::string> values,
                       std::function<std::string(E)> name,
                       std::function<void(yaml_config::Reader&, const YAML::Node&, const char*,
                                          const std::string&, E&)>
                           read,
                       std::string doc, bool env = true) {
  std::string type;
  for (std::size_t i = 0; i < values.size(); ++i) type += (i == 0 ? "" : " \\| ") + values[i];
  return {.key = key,
          .type = type,
          .doc = doc,
          .read = [key, member, read](yaml_config::Reader& r, const YAML::Node& n,
                                      const std::string& path,
                                      Out& out) { read(r, n, key.c_str(), path, out.*member); },
          .schema =
              [doc, member, values, name, env](const Out& d) {
                return schema_types::Enum(doc, values, name(d.*member), /*any_case=*/false, env);
              },
          .default_text = [member, name](const Out& d) { return name(d.*member); }};
}

// Reads every key of `table` present under `node` into `out`.
template <typename Out>
void ReadKeys(const KeyTable<Out>& table, yaml_config::Reader& r, const YAML::Node& node,
              const std::string& path, Out& out) {
  for (const auto& k : table) k.read(r, node, path, out);
}

// The keys of `table`, then `more` (keys read by hand): what the block accepts.
template <typename Out>
std::vector<std::string> KeyNames(const KeyTable<Out>& table,
                                  std::initializer_list<const char*> more = {}) {
  std::vector<std::string> names;
  for (const auto& k : table) names.push_back(k.key);
  names.insert(names.end(), more.begin(), more.end());
  return names;
}

// Adds the keys' schemas to the JSON Schema `object` (its properties and required list).
template <typename Out>
void AddKeySchemas(const KeyTable<Out>& table, nlohmann::json& object, const Out& defaults = {}) {
  for (const auto& k : table) {
    object["properties"][k.key] = k.schema(defaults);
    if (k.required) object["required"].push_back(k.key);
  }
}

// The block's rows of the reference in docs/configuration.md: | key | type | default | doc |.
template <typename Out>
std::string ReferenceRows(const KeyTable<Out>& table, const std::string& prefix,
                          const Out& defaults = {}) {
  std::string out;
  for (const auto& k : table) {
    std::string shown = k.required ? "required" : k.default_text(defaults);
    if (!shown.empty() && !k.required) shown = "`" + shown + "`";
    out += "| `" + prefix + k.key + "` | " + k.type + " | " + shown + " | " + k.doc + " |\n";
  }
  return out;
}

}  // namespace dataflow::app

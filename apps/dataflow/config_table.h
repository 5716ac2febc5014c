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
//
// A block (Block<Out>) is a table with what holds its keys together: the rules a row cannot
// say alone (exactly one of, checks across keys). Rows may be blocks themselves (BlockKey: a
// mapping; ListKey: a list of mappings), so the whole config is one tree of tables and a key
// of any block is one row; ReadBlock, BlockSchema and BlockReference walk it. Rows whose
// form is their own (a map of routes, a list of renames, the sink's scalar-or-mapping) are
// ConfigKeys written out: one row, with its reading, schema and reference line together.
#pragma once

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
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
  // A nested block's own sections of the reference, under `title` (its path); empty: none.
  std::function<std::string(const std::string& title)> sections;
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

// A row of a struct embedded in `Out` as its member `part`, as a row of Out: the key is Out's
// own (no nesting in the file), its value lives in the embedded struct.
template <typename Out, typename Part>
ConfigKey<Out> Embedded(Part Out::*part, const ConfigKey<Part>& row) {
  ConfigKey<Out> out{.key = row.key, .type = row.type, .doc = row.doc, .required = row.required};
  out.sections = row.sections;
  if (row.read) {
    out.read = [read = row.read, part](yaml_config::Reader& r, const YAML::Node& n,
                                       const std::string& path,
                                       Out& o) { read(r, n, path, o.*part); };
  }
  if (row.schema)
    out.schema = [schema = row.schema, part](const Out& d) { return schema(d.*part); };
  if (row.default_text) {
    out.default_text = [text = row.default_text, part](const Out& d) { return text(d.*part); };
  }
  return out;
}

// `a` then `b`: a block's rows from tables shared between blocks.
template <typename Out>
KeyTable<Out> Rows(KeyTable<Out> a, const KeyTable<Out>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
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
                       std::string doc, bool env = true, bool any_case = false) {
  std::string type;
  for (std::size_t i = 0; i < values.size(); ++i) type += (i == 0 ? "" : " \\| ") + values[i];
  return {.key = key,
          .type = type,
          .doc = doc,
          .read = [key, member, read](yaml_config::Reader& r, const YAML::Node& n,
                                      const std::string& path,
                                      Out& out) { read(r, n, key.c_str(), path, out.*member); },
          .schema =
              [doc, member, values, name, env, any_case](const Out& d) {
                return schema_types::Enum(doc, values, name(d.*member), any_case, env);
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
std::vector<std::string> KeyNames(const KeyTable<Out>& table) {
  std::vector<std::string> names;
  for (const auto& k : table) names.push_back(k.key);
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

template <typename Out>
using BlockHook =
    std::function<void(yaml_config::Reader&, const YAML::Node&, const std::string&, Out&)>;

template <typename Out>
struct Block {
  std::string description;  // the schema's, where the block is a definition or a list's item
  KeyTable<Out> keys;       // in the order the reference, and an unknown key's error, list them
  // Keys read before the others (in this order): what later rows' reading depends on, or
  // what should be reported first.
  std::vector<std::string> read_first;
  std::vector<std::string> exactly_one;  // the schema's oneOf; `check` says it to the reader
  nlohmann::json extra_schema = nlohmann::json::object();  // merged into the schema object
  // Before the rows: false stops reading the block (a form that makes its keys meaningless).
  std::function<bool(yaml_config::Reader&, const YAML::Node&, const std::string&, Out&)> gate;
  BlockHook<Out> check;  // after the rows: rules across keys
};

// A block of `Keys` and nothing else.
template <typename Out, const KeyTable<Out>& (*Keys)()>
const Block<Out>& PlainBlock() {
  static const auto* const block = new Block<Out>{.keys = Keys()};
  return *block;
}

// Reads `node` as the block: reports keys outside its rows, reads every row, then checks.
// False when `node` is not a mapping.
template <typename Out>
bool ReadBlock(const Block<Out>& b, yaml_config::Reader& r, const YAML::Node& node,
               const std::string& path, Out& out) {
  if (!r.Map(node, path, KeyNames(b.keys))) return false;
  if (b.gate && !b.gate(r, node, path, out)) return true;
  for (const std::string& first : b.read_first) {
    for (const auto& k : b.keys) {
      if (k.key == first) k.read(r, node, path, out);
    }
  }
  for (const auto& k : b.keys) {
    if (std::find(b.read_first.begin(), b.read_first.end(), k.key) == b.read_first.end()) {
      k.read(r, node, path, out);
    }
  }
  if (b.check) b.check(r, node, path, out);
  return true;
}

// Exactly one of `names` present (the reader's "give exactly one of …").
inline nlohmann::json ExactlyOne(const std::vector<std::string>& names) {
  nlohmann::json options = nlohmann::json::array();
  for (const auto& n : names) options.push_back({{"required", nlohmann::json::array({n})}});
  return options;
}

// The block as a JSON Schema object: its rows' properties, no other key.
template <typename Out>
nlohmann::json BlockSchema(const Block<Out>& b, const std::string& description,
                           const Out& defaults = {}) {
  nlohmann::json s = {{"type", "object"}, {"properties", nlohmann::json::object()}};
  AddKeySchemas(b.keys, s, defaults);
  s["additionalProperties"] = false;
  if (!b.exactly_one.empty()) s["oneOf"] = ExactlyOne(b.exactly_one);
  for (const auto& [k, v] : b.extra_schema.items()) s[k] = v;
  return schema_types::With(std::move(s), description);
}

// The block's section of the reference (`heading` its path), then its nested blocks'.
template <typename Out>
std::string BlockReference(const Block<Out>& b, const std::string& heading, const std::string& path,
                           const Out& defaults = {}) {
  std::string out = "#### " + heading +
                    "\n\n| key | type | default | meaning |\n|---|---|---|---|\n" +
                    ReferenceRows(b.keys, "", defaults) + "\n";
  for (const auto& k : b.keys) {
    if (k.sections) out += k.sections(path.empty() ? k.key : path + "." + k.key);
  }
  return out;
}
template <typename Out>
std::string BlockReference(const Block<Out>& b, const std::string& path) {
  return BlockReference(b, "`" + path + "`", path);
}

struct NestedOptions {
  bool required = false;
  std::string missing = "missing";  // the reader's error when a required block is absent
  bool null_ok = false;             // `key:` with no value: the block's defaults
  // The schema refers to this definition (a block several kinds share, described once).
  const char* definition = nullptr;
};

// A mapping under `key`, read by `block` into what `select` returns (which may set a kind or
// engage an optional; it is called only when the key is present).
template <typename Out, typename Sub>
ConfigKey<Out> BlockKey(std::string key, std::function<Sub&(Out&)> select,
                        const Block<Sub>& (*block)(), std::string doc, NestedOptions o = {}) {
  return {
      .key = key,
      .type = o.definition ? std::string("mapping (see below)") : std::string("mapping"),
      .doc = doc,
      .required = o.required,
      .read =
          [key, select, block, o](yaml_config::Reader& r, const YAML::Node& node,
                                  const std::string& path, Out& out) {
            const YAML::Node n = node[key];
            const std::string p = yaml_config::Join(path, key);
            if (!n) {
              if (o.required) r.Error(p, o.missing);
              return;
            }
            Sub& sub = select(out);
            if (o.null_ok && n.IsNull()) return;
            ReadBlock(block(), r, n, p, sub);
          },
      .schema =
          [block, doc, o](const Out&) {
            if (o.definition) return schema_types::Ref(o.definition);
            if (!o.null_ok) return BlockSchema(block(), doc);
            return schema_types::With(
                {{"anyOf", nlohmann::json::array(
                               {{{"type", "null"}}, BlockSchema(block(), block().description)})}},
                doc);
          },
      .default_text = [](const Out&) { return std::string(); },
      .sections =
          [block, o](const std::string& path) {
            return o.definition ? std::string() : BlockReference(block(), path);
          },
  };
}

// A mapping read into `member`, an optional engaged when the key is present.
template <typename Out, typename Sub>
ConfigKey<Out> OptionalBlockKey(std::string key, std::optional<Sub> Out::*member,
                                const Block<Sub>& (*block)(), std::string doc,
                                NestedOptions o = {}) {
  return BlockKey<Out, Sub>(
      std::move(key),
      [member](Out& out) -> Sub& {
        // Assigned, not emplace()d: clang 14 (the fuzz build) cannot default-construct a
        // nested struct with member initializers through std::optional.
        out.*member = Sub{};
        return *(out.*member);
      },
      block, std::move(doc), std::move(o));
}

// A list of mappings under `key`, each read by `block` into an element of `member`;
// `required`: present with at least one element, else `missing`.
template <typename Out, typename Sub>
ConfigKey<Out> ListKey(std::string key, std::vector<Sub> Out::*member, const Block<Sub>& (*block)(),
                       std::string doc, bool required = false, std::string missing = "missing") {
  return {
      .key = key,
      .type = "list of mappings",
      .doc = doc,
      .required = required,
      .read =
          [key, member, block, required, missing](yaml_config::Reader& r, const YAML::Node& node,
                                                  const std::string& path, Out& out) {
            const YAML::Node list = node[key];
            const std::string p = yaml_config::Join(path, key);
            if (required && (!list || !list.IsSequence() || list.size() == 0)) {
              r.Error(p, missing);
              return;
            }
            if (!list) return;
            if (!list.IsSequence()) {
              r.Error(p, "expected a list");
              return;
            }
            for (std::size_t i = 0; i < list.size(); ++i) {
              Sub item{};
              if (ReadBlock(block(), r, list[i], yaml_config::Index(p, i), item)) {
                (out.*member).push_back(std::move(item));
              }
            }
          },
      .schema =
          [block, doc, required](const Out&) {
            nlohmann::json s = {{"type", "array"},
                                {"items", BlockSchema(block(), block().description)}};
            if (required) s["minItems"] = 1;
            return schema_types::With(std::move(s), doc);
          },
      .default_text = [](const Out&) { return std::string(); },
      .sections = [block](const std::string& path) { return BlockReference(block(), path + "[]"); },
  };
}

}  // namespace dataflow::app

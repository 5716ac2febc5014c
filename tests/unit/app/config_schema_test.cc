// `dataflow schema` against the config reader.
//
// KeysMatchTheReader: the schema and the reader come from the same blocks (config_keys.h),
// but a row written out (its own read and schema) or a block's gate and check can still make
// them disagree, so this walks every mapping of the shipped and test configs alongside the
// schema and asks the reader, at each one:
//   - which keys it accepts: a probe key makes it list them ("unknown key (expected one of:
//     …)"), and the list must be the schema object's properties (or, where the schema allows
//     any key, the reader must not complain);
//   - which it requires: each key is removed in turn; a key the schema requires must make
//     the reader fail, and one it does not must not be reported missing.
// Every object of the schema must be reached by some config, so a new mapping in either needs
// a config that exercises it (tests/unit/app/config_schema/valid/).
//
// AjvAgreesWithValidate: config_schema/check.js validates the shipped configs and the
// broken corpus with ajv (an independent validator) and `dataflow validate`; any disagreement
// fails (the script says which file and how).
#include "config_schema.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

#include "config.h"
#include "config_keys.h"
#include "dataflow_testing/server_process.h"

namespace dataflow::app {
namespace {

using Json = nlohmann::json;
namespace fs = std::filesystem;

constexpr char kProbe[] = "zz_schema_probe";

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct Fixture {
  std::string name;
  std::string text;
};

// config/*.yaml (not *.test.yaml), the Kubernetes ConfigMap's configs,
// config_schema/valid/*.yaml.
std::vector<Fixture> ValidConfigs() {
  std::vector<Fixture> out;
  const fs::path root = DATAFLOW_SOURCE_DIR;
  for (const fs::path& dir : {root / "config", root / "tests/unit/app/config_schema/valid"}) {
    for (const auto& entry : fs::directory_iterator(dir)) {
      // *.test.yaml are `dataflow test` files, not configs.
      if (entry.path().extension() == ".yaml" &&
          !entry.path().filename().string().ends_with(".test.yaml")) {
        out.push_back({entry.path().string(), ReadFile(entry.path())});
      }
    }
  }
  for (const YAML::Node& doc : YAML::LoadAllFromFile(root / "deploy/kubernetes/configmap.yaml")) {
    if (!doc["data"]) continue;
    for (const auto& kv : doc["data"]) {
      out.push_back({"configmap.yaml:" + kv.first.as<std::string>(), kv.second.as<std::string>()});
    }
  }
  return out;
}

ConfigLoadResult Parse(const std::string& text) {
  // ${…PASSWORD} must be set (the ConfigMap's have no default); anything else takes its
  // default, as in a bare environment.
  return ParseConfig(text, {}, [](const std::string& name) -> std::optional<std::string> {
    if (name.ends_with("PASSWORD")) return "schema-test-password";
    return std::nullopt;
  });
}

std::string ErrorsText(const ConfigLoadResult& r) {
  std::string out;
  for (const auto& e : r.errors) out += "\n  " + e.ToString();
  return out;
}

using Step = std::variant<std::string, std::size_t>;

class Walker {
 public:
  Walker(const Json& schema, std::string fixture, YAML::Node root)
      : schema_(schema), fixture_(std::move(fixture)), root_(std::move(root)) {}

  std::set<std::string> visited;

  void Walk() { Visit(root_, "", {}, ""); }

 private:
  // The schema (by JSON pointer) that describes `node`'s shape: through $ref, and through the
  // anyOf/oneOf branch of that shape (an object for a mapping, an array for a sequence).
  std::optional<std::string> Resolve(const std::string& ptr, const YAML::Node& node) const {
    const Json& s = schema_.at(Json::json_pointer(ptr));
    if (!s.is_object()) return std::nullopt;
    if (s.contains("$ref")) return Resolve(s["$ref"].get<std::string>().substr(1), node);
    const char* want = node.IsMap() ? "object" : node.IsSequence() ? "array" : nullptr;
    if (want == nullptr) return std::nullopt;
    if (s.contains("type") && s["type"] == want) return ptr;
    for (const char* combinator : {"anyOf", "oneOf"}) {
      if (!s.contains(combinator)) continue;
      for (std::size_t i = 0; i < s[combinator].size(); ++i) {
        if (auto r = Resolve(ptr + "/" + combinator + "/" + std::to_string(i), node)) return r;
      }
    }
    return std::nullopt;
  }

  // The document with `edit` applied to the node at `steps` (on a copy), as the reader sees it.
  ConfigLoadResult ParseEdited(const std::vector<Step>& steps,
                               const std::function<void(YAML::Node&)>& edit) const {
    YAML::Node copy = YAML::Clone(root_);
    YAML::Node node = copy;
    for (const Step& step : steps) {
      if (const auto* key = std::get_if<std::string>(&step)) {
        node.reset(node[*key]);
      } else {
        node.reset(node[std::get<std::size_t>(step)]);
      }
    }
    edit(node);
    YAML::Emitter out;
    out << copy;
    return Parse(out.c_str());
  }

  static std::string Join(const std::string& path, const std::string& key) {
    return path.empty() ? key : path + "." + key;
  }

  void Visit(const YAML::Node& node, const std::string& ptr, const std::vector<Step>& steps,
             const std::string& path) {
    const Json& s = schema_.at(Json::json_pointer(ptr));
    const std::string where = fixture_ + " at " + (path.empty() ? "(top)" : path) + " (schema " +
                              (ptr.empty() ? "/" : ptr) + ")";
    if (node.IsSequence()) {
      for (std::size_t i = 0; i < node.size(); ++i) {
        auto item = Resolve(ptr + "/items", node[i]);
        if (!item) continue;
        std::vector<Step> next = steps;
        next.emplace_back(i);
        Visit(node[i], *item, next, path + "[" + std::to_string(i) + "]");
      }
      return;
    }
    if (!node.IsMap()) return;
    visited.insert(ptr);
    const bool closed = s.contains("additionalProperties") && s["additionalProperties"] == false;
    std::set<std::string> properties;
    if (s.contains("properties")) {
      for (const auto& [k, v] : s["properties"].items()) properties.insert(k);
    }

    // Which keys the reader accepts here.
    const ConfigLoadResult probed = ParseEdited(steps, [](YAML::Node& n) { n[kProbe] = "probe"; });
    std::optional<std::set<std::string>> accepted;
    const std::string marker = std::string(kProbe) + ": unknown key (expected one of: ";
    for (const auto& e : probed.errors) {
      const std::string text = e.ToString();
      const auto at = text.find(marker);
      if (at == std::string::npos) continue;
      const auto start = at + marker.size();
      std::set<std::string> keys;
      std::stringstream list(text.substr(start, text.find(')', start) - start));
      for (std::string key; std::getline(list, key, ',');) {
        keys.insert(key.substr(key.find_first_not_of(' ')));
      }
      accepted = keys;
    }
    if (closed) {
      if (!accepted) {
        ADD_FAILURE() << where << ": the schema allows no other key, but the reader accepted "
                      << kProbe << ":" << ErrorsText(probed);
      } else {
        EXPECT_EQ(*accepted, properties) << where << ": the reader's keys (left) differ from "
                                         << "the schema's properties (right)";
      }
    } else {
      EXPECT_FALSE(accepted.has_value())
          << where << ": the reader rejects unknown keys here; the schema should say "
          << "additionalProperties: false";
    }

    // Which keys the reader requires here.
    std::set<std::string> required;
    if (s.contains("required")) {
      for (const auto& k : s["required"]) required.insert(k.get<std::string>());
    }
    for (const std::string& key : required) {
      if (!node[key]) {
        ADD_FAILURE() << where << ": the schema requires " << key
                      << ", but the reader accepted a config without it";
      }
    }
    std::vector<std::string> keys;
    for (const auto& kv : node) keys.push_back(kv.first.as<std::string>());
    for (const std::string& key : keys) {
      if (!properties.contains(key)) continue;
      const ConfigLoadResult without = ParseEdited(steps, [&](YAML::Node& n) { n.remove(key); });
      if (required.contains(key)) {
        EXPECT_FALSE(without.ok()) << where << ": the schema requires " << key
                                   << ", but the reader accepts the config without it";
      } else {
        for (const auto& e : without.errors) {
          // Required only with create_pubsub_resources: the schema's top-level if/then, which
          // the broken corpus covers (create_pubsub_resources_without_topic.yaml).
          if (e.message.find("create_pubsub_resources") != std::string::npos) continue;
          EXPECT_NE(e.path, Join(path, key)) << where << ": the reader requires " << key << " ("
                                             << e.message << "), the schema does not";
        }
      }
    }

    for (const std::string& key : keys) {
      std::string child;
      if (properties.contains(key)) {
        child = ptr + "/properties/" + key;  // no config key holds '/' or '~'
      } else if (s.contains("additionalProperties") && s["additionalProperties"].is_object()) {
        child = ptr + "/additionalProperties";
      } else {
        continue;
      }
      auto resolved = Resolve(child, node[key]);
      if (!resolved) continue;
      std::vector<Step> next = steps;
      next.emplace_back(key);
      Visit(node[key], *resolved, next, Join(path, key));
    }
  }

  const Json& schema_;
  std::string fixture_;
  YAML::Node root_;
};

// JSON pointers of every object schema with properties that describes a shape: not the
// extra conditions (if/then/else, not, dependencies), which the broken corpus covers.
void ObjectSchemas(const Json& s, const std::string& ptr, std::set<std::string>& out) {
  if (!s.is_object()) return;
  if (s.contains("properties") && s.contains("type") && s["type"] == "object") out.insert(ptr);
  for (const auto& [keyword, value] : s.items()) {
    const std::string at = ptr + "/" + keyword;
    if (keyword == "properties" || keyword == "definitions") {
      for (const auto& [name, child] : value.items()) ObjectSchemas(child, at + "/" + name, out);
    } else if (keyword == "items" || keyword == "additionalProperties") {
      ObjectSchemas(value, at, out);
    } else if (keyword == "anyOf" || keyword == "oneOf" || keyword == "allOf") {
      for (std::size_t i = 0; i < value.size(); ++i) {
        ObjectSchemas(value[i], at + "/" + std::to_string(i), out);
      }
    }
  }
}

TEST(ConfigSchemaTest, KeysMatchTheReader) {
  const Json schema = ConfigJsonSchema();
  std::set<std::string> visited;
  const auto fixtures = ValidConfigs();
  ASSERT_GE(fixtures.size(), 8u);
  for (const Fixture& f : fixtures) {
    SCOPED_TRACE(f.name);
    const ConfigLoadResult baseline = Parse(f.text);
    ASSERT_TRUE(baseline.ok()) << f.name << " is not valid:" << ErrorsText(baseline);
    Walker walker(schema, f.name, YAML::Load(f.text));
    walker.Walk();
    visited.insert(walker.visited.begin(), walker.visited.end());
  }
  std::set<std::string> all;
  ObjectSchemas(schema, "", all);
  EXPECT_GE(all.size(), 20u);
  for (const std::string& ptr : all) {
    EXPECT_TRUE(visited.contains(ptr))
        << "schema object " << ptr << " is in no valid config: add it to one in "
        << "tests/unit/app/config_schema/valid/ so its keys are checked against the reader";
  }
}

TEST(ConfigSchemaTest, DefaultsAreTheReaders) {
  // A few spot checks that the defaults come from the reader's structs, in its syntax.
  const Json schema = ConfigJsonSchema();
  EXPECT_EQ(schema["properties"]["shutdown_timeout"]["default"], "30s");
  EXPECT_EQ(schema["properties"]["ops"]["properties"]["port"]["default"], 9464);
  EXPECT_EQ(schema["properties"]["log_level"]["default"], "info");
  EXPECT_EQ(schema["$schema"], "http://json-schema.org/draft-07/schema#");
}

TEST(ConfigSchemaTest, ColumnKeysAreTheOnesBqstoreReads) {
  // The column table (config_columns.cc) only describes: bqstore::ColumnsFromJson reads the
  // keys and names the ones it takes when it meets another.
  auto parsed = bqstore::ColumnsFromJson(Json::array({{{kProbe, 1}}}));
  ASSERT_FALSE(parsed.ok());
  const std::string message(parsed.status().message());
  std::string keys;
  for (const auto& k : ColumnBlock().keys) keys += (keys.empty() ? "" : ", ") + k.key;
  EXPECT_NE(message.find("(expected one of: " + keys + ")"), std::string::npos)
      << message << "\nthe column table lists: " << keys;
}

TEST(ConfigSchemaTest, AjvAgreesWithValidate) {
  const std::string node = ::dataflow::testing::FindExecutable("node");
  if (node.empty()) GTEST_SKIP() << "node not found: the ajv cross-check needs Node.js";
  const std::string command = node + " " DATAFLOW_SOURCE_DIR
                                     "/tests/unit/app/config_schema/check.js " DATAFLOW_BINARY
                                     " " DATAFLOW_SOURCE_DIR " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[4096];
  while (std::size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, n);
  const int status = ::pclose(pipe);
  std::printf("%s", output.c_str());
  EXPECT_EQ(status, 0) << output;
  EXPECT_NE(output.find("rejected by both"), std::string::npos) << output;
}

}  // namespace
}  // namespace dataflow::app

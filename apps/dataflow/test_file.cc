#include "test_file.h"

#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "dataflow/messagepipeline/json_limits.h"
#include "test_runner.h"
#include "yaml_json.h"

namespace dataflow::app {

absl::Status TestFileError(const std::string& path, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

namespace {

namespace fs = std::filesystem;
namespace mp = messagepipeline;
using Json = nlohmann::json;

constexpr char kRegexKey[] = "$regex";

void CheckKeys(const YAML::Node& node, const std::string& path, const std::set<std::string>& known,
               std::vector<std::string>& errors) {
  for (const auto& kv : node) {
    const std::string key = kv.first.Scalar();
    if (!known.contains(key)) errors.push_back(absl::StrCat(path, ".", key, ": unknown key"));
  }
}

// A payload as bytes: a scalar as written, a map or list as its JSON text.
std::string PayloadBytes(const YAML::Node& node) {
  if (node.IsScalar()) return node.Scalar();
  return YamlToJson(node).dump();
}

// An expected value: YamlToJson, but a `!regex "…"` scalar becomes {"$regex": "…"}, which
// matches a string that the (ECMAScript) expression matches anywhere (dates in batch keys).
Json ExpectationJson(const YAML::Node& node, const std::string& path,
                     std::vector<std::string>& errors) {
  if (node.IsMap()) {
    Json out = Json::object();
    for (const auto& kv : node) {
      out[kv.first.Scalar()] = ExpectationJson(kv.second, path + "." + kv.first.Scalar(), errors);
    }
    return out;
  }
  if (node.IsSequence()) {
    Json out = Json::array();
    for (std::size_t i = 0; i < node.size(); ++i) {
      out.push_back(ExpectationJson(node[i], absl::StrCat(path, "[", i, "]"), errors));
    }
    return out;
  }
  if (node.IsScalar() && node.Tag() == "!regex") {
    try {
      (void)std::regex(node.Scalar());
    } catch (const std::regex_error& e) {
      errors.push_back(absl::StrCat(path, ": not a regular expression: ", e.what()));
    }
    return Json{{kRegexKey, node.Scalar()}};
  }
  return YamlToJson(node);
}

void ReadExpectations(const YAML::Node& node, const std::string& path,
                      std::map<std::string, std::vector<Json>>& out,
                      std::vector<std::string>& errors) {
  if (!node) return;
  if (!node.IsMap()) {
    errors.push_back(path + ": expected a map of names to lists of expected items");
    return;
  }
  for (const auto& kv : node) {
    const std::string name = kv.first.Scalar();
    if (!kv.second.IsSequence()) {
      errors.push_back(absl::StrCat(path, ".", name, ": expected a list (empty: nothing)"));
      continue;
    }
    auto& items = out[name];
    for (std::size_t i = 0; i < kv.second.size(); ++i) {
      items.push_back(
          ExpectationJson(kv.second[i], absl::StrCat(path, ".", name, "[", i, "]"), errors));
    }
  }
}

TestCase ReadCase(const YAML::Node& node, const std::string& path,
                  std::vector<std::string>& errors) {
  TestCase c;
  if (!node.IsMap()) {
    errors.push_back(path + ": expected a map");
    return c;
  }
  CheckKeys(node, path, {"name", "fixtures", "input", "expect"}, errors);
  if (node["name"] && node["name"].IsScalar()) {
    c.name = node["name"].Scalar();
  } else {
    errors.push_back(path + ".name: missing");
  }
  if (const YAML::Node fixtures = node["fixtures"]) {
    if (!fixtures.IsMap()) errors.push_back(path + ".fixtures: expected service: {key: document}");
    for (const auto& kv : fixtures) {
      Json table = YamlToJson(kv.second);
      if (!table.is_object()) {
        errors.push_back(absl::StrCat(path, ".fixtures.", kv.first.Scalar(),
                                      ": expected a map of keys to documents"));
        continue;
      }
      c.fixtures[kv.first.Scalar()] = std::move(table);
    }
  }
  const YAML::Node input = node["input"];
  if (!input || !input.IsSequence()) errors.push_back(path + ".input: expected a list");
  for (std::size_t i = 0; input && input.IsSequence() && i < input.size(); ++i) {
    const std::string at = absl::StrCat(path, ".input[", i, "]");
    const YAML::Node m = input[i];
    if (!m.IsMap()) {
      errors.push_back(at + ": expected a map");
      continue;
    }
    CheckKeys(m, at, {"service", "mqtt_topic", "topic", "payload", "attributes"}, errors);
    TestInput in;
    if (m["service"]) in.service = m["service"].Scalar();
    if (m["mqtt_topic"]) in.mqtt_topic = m["mqtt_topic"].Scalar();
    if (m["topic"]) in.topic = m["topic"].Scalar();
    if (in.mqtt_topic.empty() == in.topic.empty()) {
      errors.push_back(at + ": give one of mqtt_topic (into ingestion) or topic");
    }
    if (m["payload"]) {
      in.payload = PayloadBytes(m["payload"]);
    } else {
      errors.push_back(at + ".payload: missing");
    }
    if (const YAML::Node attributes = m["attributes"]) {
      if (!attributes.IsMap()) errors.push_back(at + ".attributes: expected a map of strings");
      for (const auto& kv : attributes) {
        in.attributes[kv.first.Scalar()] = kv.second.IsScalar() ? kv.second.Scalar() : "";
      }
    }
    c.input.push_back(std::move(in));
  }
  const YAML::Node expect = node["expect"];
  if (!expect || !expect.IsMap()) {
    errors.push_back(path + ".expect: expected a map with topics, rows and/or archived");
    return c;
  }
  CheckKeys(expect, path + ".expect", {"topics", "rows", "archived"}, errors);
  ReadExpectations(expect["topics"], path + ".expect.topics", c.expect_topics, errors);
  ReadExpectations(expect["rows"], path + ".expect.rows", c.expect_rows, errors);
  ReadExpectations(expect["archived"], path + ".expect.archived", c.expect_archived, errors);
  return c;
}

// ---- comparing ----

// Kuhn's augmenting paths: expected lists are short, so O(n^3) is fine.
bool Augment(std::size_t e, const std::vector<std::vector<bool>>& fits, std::vector<bool>& seen,
             std::vector<int>& actual_owner) {
  for (std::size_t a = 0; a < actual_owner.size(); ++a) {
    if (!fits[e][a] || seen[a]) continue;
    seen[a] = true;
    if (actual_owner[a] < 0 ||
        Augment(static_cast<std::size_t>(actual_owner[a]), fits, seen, actual_owner)) {
      actual_owner[a] = static_cast<int>(e);
      return true;
    }
  }
  return false;
}

}  // namespace

absl::StatusOr<TestFile> ParseTestFile(const std::string& yaml_text, const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not YAML: ", e.what()));
  }
  if (!root.IsMap()) return TestFileError(path, "expected a map with config and cases");
  std::vector<std::string> errors;
  CheckKeys(root, path, {"config", "env", "cases"}, errors);
  TestFile file;
  if (root["config"] && root["config"].IsScalar()) {
    file.config_path = (fs::path(path).parent_path() / root["config"].Scalar()).string();
  } else {
    errors.push_back(path + ".config: missing (the config file, relative to this one)");
  }
  if (const YAML::Node env = root["env"]) {
    if (!env.IsMap()) errors.push_back(path + ".env: expected a map of variables");
    for (const auto& kv : env) file.env[kv.first.Scalar()] = kv.second.Scalar();
  }
  const YAML::Node cases = root["cases"];
  if (!cases || !cases.IsSequence() || cases.size() == 0) {
    errors.push_back(path + ".cases: expected a non-empty list");
  }
  for (std::size_t i = 0; cases && cases.IsSequence() && i < cases.size(); ++i) {
    file.cases.push_back(ReadCase(cases[i], absl::StrCat(path, ".cases[", i, "]"), errors));
  }
  if (!errors.empty()) return absl::InvalidArgumentError(absl::StrJoin(errors, "\n"));
  return file;
}

bool JsonMatches(const Json& expected, const Json& actual) {
  if (expected.is_object() && expected.size() == 1 && expected.contains(kRegexKey)) {
    return actual.is_string() &&
           std::regex_search(actual.get_ref<const std::string&>(),
                             std::regex(expected[kRegexKey].get_ref<const std::string&>()));
  }
  if (actual.is_string() && expected.is_structured()) {
    auto parsed = mp::ParseJsonBounded(actual.get_ref<const std::string&>());
    return parsed.ok() && JsonMatches(expected, *parsed);
  }
  if (expected.is_object()) {
    if (!actual.is_object()) return false;
    for (const auto& [key, value] : expected.items()) {
      auto it = actual.find(key);
      if (it == actual.end() || !JsonMatches(value, *it)) return false;
    }
    return true;
  }
  if (expected.is_array()) {
    if (!actual.is_array() || actual.size() != expected.size()) return false;
    for (std::size_t i = 0; i < expected.size(); ++i) {
      if (!JsonMatches(expected[i], actual[i])) return false;
    }
    return true;
  }
  // 20 matches 20.0: YAML and SQLite do not keep JSON's integer/float distinction.
  if (expected.is_number() && actual.is_number()) {
    return expected.get<double>() == actual.get<double>();
  }
  return expected == actual;
}

Unmatched MatchAll(const std::vector<Json>& expected, const std::vector<Json>& actual) {
  std::vector<std::vector<bool>> fits(expected.size(), std::vector<bool>(actual.size()));
  for (std::size_t e = 0; e < expected.size(); ++e) {
    for (std::size_t a = 0; a < actual.size(); ++a)
      fits[e][a] = JsonMatches(expected[e], actual[a]);
  }
  std::vector<int> owner(actual.size(), -1);
  Unmatched out;
  for (std::size_t e = 0; e < expected.size(); ++e) {
    std::vector<bool> seen(actual.size());
    if (!Augment(e, fits, seen, owner)) out.expected.push_back(e);
  }
  for (std::size_t a = 0; a < actual.size(); ++a) {
    if (owner[a] < 0) out.actual.push_back(a);
  }
  return out;
}

}  // namespace dataflow::app

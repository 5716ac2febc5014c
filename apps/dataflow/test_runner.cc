#include "test_runner.h"

#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>
#include <absl/strings/str_replace.h>
#include <absl/strings/str_split.h>
#include <sqlite3.h>
#include <yaml-cpp/yaml.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "dataflow/icestore/archival.h"
#include "dataflow/icestore/gzip.h"
#include "dataflow/messagepipeline/in_process_broker.h"
#include "dataflow/messagepipeline/json_limits.h"
#include "dataflow/mqttconverter/mqtt_config.h"
#include "pipeline_outputs.h"
#include "runner.h"
#include "yaml_json.h"

namespace dataflow::app {
namespace {

namespace fs = std::filesystem;
namespace mp = messagepipeline;
using Json = nlohmann::json;

constexpr char kRegexKey[] = "$regex";
constexpr char kInputPrefix[] = "dataflow-test-input.";
constexpr char kCapturePrefix[] = "dataflow-test-capture.";
// Long enough for slow machines and sanitizers; a pipeline that does not drain in this time
// is reported as a failure, not waited on.
constexpr std::chrono::seconds kStopTimeout(60);

absl::Status Invalid(const std::string& path, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

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

// ---- the rewritten config ----

struct Harness {
  std::shared_ptr<mp::InProcessBroker> broker;
  PipelineHooks hooks;
  std::map<std::string, std::string> ingestion_topics;  // service → its input topic
  std::map<std::string, const IngestionConfig*> ingestions;
  std::set<std::string> topics;                                 // every in-process topic
  std::map<std::string, BigQueryConfig::Sqlite> sqlite_tables;  // bigquery service → its table
  std::map<std::string, std::string> archive_roots;             // icestore service → directory
};

std::string ServicePath(const std::string& name) { return absl::StrCat("services.", name); }

// Makes `config` self-contained in `scratch`; fills `h` with where everything went.
absl::Status Isolate(ProgramConfig& config, const TestCase& c, const fs::path& scratch,
                     Harness& h) {
  config.ops.enabled = false;
  config.create_pubsub_resources = false;
  for (const auto& t : config.in_process_topics) h.topics.insert(t);
  auto source = [&](SourceConfig& s, const std::string& service) -> absl::Status {
    if (s.kind == SourceConfig::Kind::kPubsub) {
      if (s.topic.empty()) {
        return Invalid(ServicePath(service),
                       "source.pubsub.topic is not set: dataflow test needs it to connect the "
                       "subscription to the topic that feeds it");
      }
      h.topics.insert(s.topic);
      config.in_process_subscriptions.emplace_back(s.subscription, s.topic);
      s.kind = SourceConfig::Kind::kInProcess;
    }
    return absl::OkStatus();
  };
  auto publishes = [&](TopicSinkConfig& sink, const std::vector<std::string>& topics) {
    sink.kind = TopicSinkConfig::Kind::kInProcess;
    for (const auto& t : topics) {
      if (!t.empty()) h.topics.insert(t);
    }
  };
  std::set<std::string> fixtures_used;
  for (auto& service : config.services) {
    const std::string& name = service.name;
    absl::Status status = std::visit(
        [&](auto& spec) -> absl::Status {
          using Spec = std::decay_t<decltype(spec)>;
          if constexpr (std::is_same_v<Spec, IngestionConfig>) {
            std::vector<std::string> topics{spec.default_topic, spec.dead_letter_topic};
            for (const auto& [route, topic] : spec.routes) topics.push_back(topic);
            publishes(spec.sink, topics);
            const std::string input = kInputPrefix + name;
            h.ingestion_topics[name] = input;
            h.ingestions[name] = &spec;
            h.hooks.ingestion_inputs[name] = input;
          } else {
            if (auto s = source(spec.source, name); !s.ok()) return s;
            if (!spec.dead_letter_topic.empty()) h.topics.insert(spec.dead_letter_topic);
          }
          if constexpr (std::is_same_v<Spec, EnrichmentConfig>) {
            publishes(spec.sink, {spec.topic, spec.dead_letter_topic});
            auto f = c.fixtures.find(name);
            if (f != c.fixtures.end()) {
              const fs::path file = scratch / (name + ".fixtures.json");
              std::ofstream(file) << f->second.dump();
              spec.cache = CacheChainConfig{.json_file = file.string()};
              fixtures_used.insert(name);
            } else if (spec.cache.redis || spec.cache.firestore) {
              return Invalid(ServicePath(name),
                             "its cache reads Redis or Firestore: give the case fixtures." + name +
                                 " (key: document) to look keys up in instead");
            }
          }
          if constexpr (std::is_same_v<Spec, BigQueryConfig>) {
            if (spec.schema_from_table) {
              return Invalid(ServicePath(name),
                             "schema: from_table needs the real table; dataflow test needs the "
                             "schema in the config");
            }
            std::string table = spec.sqlite ? spec.sqlite->table : spec.bigquery->table;
            const fs::path db = scratch / (name + ".db");
            spec.bigquery.reset();
            spec.sqlite = BigQueryConfig::Sqlite{.path = db.string(), .table = table};
            h.sqlite_tables[name] = *spec.sqlite;
          }
          if constexpr (std::is_same_v<Spec, IceStoreConfig>) {
            const std::string prefix = spec.gcs ? spec.gcs->prefix : spec.local->prefix;
            const fs::path root = scratch / name;
            spec.gcs.reset();
            spec.local = IceStoreConfig::Local{.root = root.string(), .prefix = prefix};
            h.archive_roots[name] = root.string();
          }
          return absl::OkStatus();
        },
        service.spec);
    if (!status.ok()) return status;
  }
  for (const auto& [name, table] : c.fixtures) {
    if (!fixtures_used.contains(name)) {
      return Invalid("fixtures." + name, "no enrichment service has this name");
    }
  }
  config.in_process_topics.assign(h.topics.begin(), h.topics.end());
  for (const auto& t : h.topics)
    config.in_process_subscriptions.emplace_back(kCapturePrefix + t, t);
  return absl::OkStatus();
}

// ---- what came out ----

Json MessageJson(const mp::Message& m) {
  Json out = DataJson(m.data.payload, m.data.enrichment_data);
  Json attributes = Json::object();
  for (const auto& [k, v] : m.attributes) attributes[k] = v;
  out["attributes"] = std::move(attributes);
  return out;
}

// Reads every published message of the topics into `out` (by topic) until stopped.
class Capture {
 public:
  absl::Status Start(mp::InProcessBroker& broker, const std::set<std::string>& topics) {
    for (const auto& topic : topics) {
      auto consumer = broker.NewConsumer(kCapturePrefix + topic);
      if (!consumer.ok()) return consumer.status();
      if (auto s = (*consumer)->Start(); !s.ok()) return s;
      consumers_.push_back(*consumer);
      threads_.emplace_back([this, topic, consumer = *consumer] {
        while (auto m = consumer->Messages().Pop()) {
          {
            std::lock_guard lock(mu_);
            out_[topic].push_back(MessageJson(*m));
          }
          m->Ack();
        }
      });
    }
    return absl::OkStatus();
  }
  std::map<std::string, std::vector<Json>> Stop() {
    for (auto& c : consumers_) (void)c->Stop(std::chrono::steady_clock::now() + kStopTimeout);
    consumers_.clear();
    for (auto& t : threads_) t.join();
    threads_.clear();
    std::lock_guard lock(mu_);
    return out_;
  }
  ~Capture() { (void)Stop(); }

 private:
  std::vector<std::shared_ptr<mp::MessageConsumer>> consumers_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::map<std::string, std::vector<Json>> out_;
};

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

void Report(const std::string& what, const std::vector<Json>& expected,
            const std::vector<Json>& actual, std::vector<std::string>& failures) {
  const Unmatched u = MatchAll(expected, actual);
  if (u.expected.empty() && u.actual.empty()) return;
  std::string text =
      absl::StrCat(what, ": ", expected.size(), " expected, ", actual.size(), " found");
  for (auto i : u.expected) absl::StrAppend(&text, "\n      not found:  ", expected[i].dump());
  for (auto i : u.actual) absl::StrAppend(&text, "\n      unexpected: ", actual[i].dump());
  failures.push_back(std::move(text));
}

// Runs one case; the failures, or an error when it could not run.
absl::StatusOr<std::vector<std::string>> RunCase(const ProgramConfig& base, const TestCase& c) {
  std::string scratch_template = (fs::temp_directory_path() / "dataflow-test-XXXXXX").string();
  if (mkdtemp(scratch_template.data()) == nullptr) {
    return absl::InternalError("cannot create a scratch directory");
  }
  const fs::path scratch = scratch_template;
  struct Cleanup {
    fs::path dir;
    ~Cleanup() {
      std::error_code ignored;
      fs::remove_all(dir, ignored);
    }
  } cleanup{scratch};

  ProgramConfig config = base;
  Harness h;
  if (auto s = Isolate(config, c, scratch, h); !s.ok()) return s;
  // Redeliveries and dead-lettering within milliseconds, not the production backoff.
  h.broker = mp::InProcessBroker::Create({.min_redelivery_backoff = std::chrono::milliseconds(1),
                                          .max_redelivery_backoff = std::chrono::milliseconds(20)});
  h.hooks.broker = h.broker;
  for (const auto& [service, topic] : h.ingestion_topics) {
    if (auto s = h.broker->CreateTopic(topic); !s.ok()) return s;
    if (auto s = h.broker->CreateSubscription(topic, topic); !s.ok()) return s;
  }
  auto pipeline = Pipeline::Build(config, h.hooks);
  if (!pipeline.ok()) return pipeline.status();
  Capture capture;
  if (auto s = capture.Start(*h.broker, h.topics); !s.ok()) return s;
  if (auto s = (*pipeline)->Start(); !s.ok()) return s;

  std::vector<std::string> failures;
  for (std::size_t i = 0; i < c.input.size(); ++i) {
    const TestInput& in = c.input[i];
    mp::MessageData data{.payload = in.payload, .publish_time = mp::Clock::now()};
    mp::Attributes attributes(in.attributes.begin(), in.attributes.end());
    std::string topic = in.topic;
    if (!in.mqtt_topic.empty()) {
      std::string service = in.service;
      if (service.empty() && h.ingestions.size() == 1) service = h.ingestions.begin()->first;
      auto it = h.ingestions.find(service);
      if (it == h.ingestions.end()) {
        return Invalid(absl::StrCat("input[", i, "]"),
                       h.ingestions.empty()
                           ? "mqtt_topic given, but the config has no ingestion service"
                           : "name the ingestion service (service:) it goes into");
      }
      if (const auto* route =
              mqttconverter::FindRoute(it->second->mqtt.topic_mappings, in.mqtt_topic)) {
        attributes["route_name"] = route->name;
      }
      attributes["mqtt_topic"] = in.mqtt_topic;
      attributes.emplace("mqtt_qos", "1");
      topic = h.ingestion_topics[service];
    } else if (!h.topics.contains(topic)) {
      return Invalid(absl::StrCat("input[", i, "].topic"),
                     "no service of the config reads or writes topic \"" + topic + "\"");
    }
    auto published = h.broker->Publish(topic, std::move(data), std::move(attributes));
    if (!published.ok()) return published.status();
  }
  if (auto s = (*pipeline)->Stop(kStopTimeout); !s.ok()) {
    failures.push_back("the pipeline did not stop cleanly: " + s.ToString());
  }
  const auto captured = capture.Stop();
  for (const auto& [topic, expected] : c.expect_topics) {
    if (!h.topics.contains(topic)) {
      return Invalid("expect.topics." + topic, "no service of the config writes this topic");
    }
    auto it = captured.find(topic);
    Report("topic " + topic, expected, it == captured.end() ? std::vector<Json>{} : it->second,
           failures);
  }
  for (const auto& [service, expected] : c.expect_rows) {
    auto it = h.sqlite_tables.find(service);
    if (it == h.sqlite_tables.end()) {
      return Invalid("expect.rows." + service, "no bigquery service has this name");
    }
    auto rows = ReadRows(it->second.path, it->second.table);
    if (!rows.ok()) return rows.status();
    Report("rows of " + service, expected, *rows, failures);
  }
  for (const auto& [service, expected] : c.expect_archived) {
    auto it = h.archive_roots.find(service);
    if (it == h.archive_roots.end()) {
      return Invalid("expect.archived." + service, "no icestore service has this name");
    }
    auto lines = ReadArchive(it->second);
    if (!lines.ok()) return lines.status();
    Report("archive of " + service, expected, *lines, failures);
  }
  return failures;
}

}  // namespace

absl::StatusOr<TestFile> ParseTestFile(const std::string& yaml_text, const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not YAML: ", e.what()));
  }
  if (!root.IsMap()) return Invalid(path, "expected a map with config and cases");
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

int RunTestFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    std::fprintf(stderr, "%s: cannot read\n", path.c_str());
    return 2;
  }
  std::stringstream text;
  text << in.rdbuf();
  auto file = ParseTestFile(text.str(), path);
  if (!file.ok()) {
    std::fprintf(stderr, "%s\n", std::string(file.status().message()).c_str());
    return 2;
  }
  // The file's env first, then the process's: a test pins what it depends on.
  const EnvLookup process = ProcessEnvironment();
  const auto env = file->env;
  EnvLookup lookup = [&](const std::string& name) -> std::optional<std::string> {
    if (auto it = env.find(name); it != env.end()) return it->second;
    return process(name);
  };
  std::ifstream config_in(file->config_path);
  if (!config_in) {
    std::fprintf(stderr, "%s: config: cannot read %s\n", path.c_str(), file->config_path.c_str());
    return 2;
  }
  std::stringstream config_text;
  config_text << config_in.rdbuf();
  // DATAFLOW__ overrides only from the file's env: the process's would make the test depend
  // on the shell it runs in.
  std::vector<std::pair<std::string, std::string>> overrides(env.begin(), env.end());
  auto loaded = ParseConfig(config_text.str(), overrides, lookup);
  if (!loaded.ok()) {
    for (const auto& e : loaded.errors) {
      std::fprintf(stderr, "%s: %s\n", file->config_path.c_str(), e.ToString().c_str());
    }
    return 2;
  }
  int failed = 0;
  for (const auto& c : file->cases) {
    auto failures = RunCase(loaded.config, c);
    if (!failures.ok()) {
      std::printf("ERROR %s\n      %s\n", c.name.c_str(),
                  std::string(failures.status().message()).c_str());
      std::fflush(stdout);
      return 2;
    }
    if (failures->empty()) {
      std::printf("ok    %s\n", c.name.c_str());
    } else {
      ++failed;
      std::printf("FAIL  %s\n", c.name.c_str());
      for (const auto& f : *failures) std::printf("    %s\n", f.c_str());
    }
    std::fflush(stdout);
  }
  std::printf("%s: %zu case(s), %zu passed, %d failed\n", path.c_str(), file->cases.size(),
              file->cases.size() - static_cast<std::size_t>(failed), failed);
  return failed == 0 ? 0 : 1;
}

}  // namespace dataflow::app

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
#include "test_file.h"
#include "yaml_json.h"

namespace dataflow::app {
namespace {

namespace fs = std::filesystem;
namespace mp = messagepipeline;
using Json = nlohmann::json;

constexpr char kInputPrefix[] = "dataflow-test-input.";
constexpr char kCapturePrefix[] = "dataflow-test-capture.";
// Long enough for slow machines and sanitizers; a pipeline that does not drain in this time
// is reported as a failure, not waited on.
constexpr std::chrono::seconds kStopTimeout(60);

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
        return TestFileError(
            ServicePath(service),
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
            std::vector<std::string> topics{spec.default_topic, spec.common.dead_letter_topic};
            for (const auto& [route, topic] : spec.routes) topics.push_back(topic);
            publishes(spec.sink, topics);
            const std::string input = kInputPrefix + name;
            h.ingestion_topics[name] = input;
            h.ingestions[name] = &spec;
            h.hooks.ingestion_inputs[name] = input;
          } else {
            if (auto s = source(spec.source, name); !s.ok()) return s;
            if (!spec.common.dead_letter_topic.empty())
              h.topics.insert(spec.common.dead_letter_topic);
          }
          if constexpr (std::is_same_v<Spec, EnrichmentConfig>) {
            publishes(spec.sink, {spec.topic, spec.common.dead_letter_topic});
            auto f = c.fixtures.find(name);
            if (f != c.fixtures.end()) {
              const fs::path file = scratch / (name + ".fixtures.json");
              std::ofstream(file) << f->second.dump();
              spec.cache = CacheChainConfig{.json_file = file.string()};
              fixtures_used.insert(name);
            } else if (spec.cache.redis || spec.cache.firestore) {
              return TestFileError(ServicePath(name),
                                   "its cache reads Redis or Firestore: give the case fixtures." +
                                       name + " (key: document) to look keys up in instead");
            }
          }
          if constexpr (std::is_same_v<Spec, BigQueryConfig>) {
            if (spec.schema_from_table) {
              return TestFileError(
                  ServicePath(name),
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
      return TestFileError("fixtures." + name, "no enrichment service has this name");
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
        return TestFileError(absl::StrCat("input[", i, "]"),
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
      return TestFileError(absl::StrCat("input[", i, "].topic"),
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
      return TestFileError("expect.topics." + topic, "no service of the config writes this topic");
    }
    auto it = captured.find(topic);
    Report("topic " + topic, expected, it == captured.end() ? std::vector<Json>{} : it->second,
           failures);
  }
  for (const auto& [service, expected] : c.expect_rows) {
    auto it = h.sqlite_tables.find(service);
    if (it == h.sqlite_tables.end()) {
      return TestFileError("expect.rows." + service, "no bigquery service has this name");
    }
    auto rows = ReadRows(it->second.path, it->second.table);
    if (!rows.ok()) return rows.status();
    Report("rows of " + service, expected, *rows, failures);
  }
  for (const auto& [service, expected] : c.expect_archived) {
    auto it = h.archive_roots.find(service);
    if (it == h.archive_roots.end()) {
      return TestFileError("expect.archived." + service, "no icestore service has this name");
    }
    auto lines = ReadArchive(it->second);
    if (!lines.ok()) return lines.status();
    Report("archive of " + service, expected, *lines, failures);
  }
  return failures;
}

}  // namespace

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

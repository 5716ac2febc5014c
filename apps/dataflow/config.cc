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
#include "config_parts.h"
#include "config_reader.h"
#include "dataflow/messagepipeline/loopback.h"
#include "yaml_json.h"

namespace dataflow::app {
namespace {

using yaml_config::ApplyOverride;
using yaml_config::CheckWiring;
using yaml_config::Errors;
using yaml_config::Index;
using yaml_config::IsSecretKey;
using yaml_config::Join;
using yaml_config::kFromEnvironmentTag;
using yaml_config::kWithheld;
using yaml_config::Reader;
using yaml_config::ReadSpec;
using yaml_config::RejectCredentials;
using yaml_config::Scrub;
using yaml_config::SecurityWarnings;

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

}  // namespace

const char* ServiceConfig::kind() const {
  return std::visit([](const auto& s) { return std::decay_t<decltype(s)>::kKind; }, spec);
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
    if (!r.Map(root, "", KeyNames(TopLevelKeys(), {"ops", "in_process", "services"}))) {
      return result;
    }
    ReadKeys(TopLevelKeys(), r, root, "", c);
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

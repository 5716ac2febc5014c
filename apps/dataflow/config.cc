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

std::size_t CountKinds(const YAML::Node& node) {
  std::size_t n = 0;
  for (const std::string& k : KindNames()) n += node[k] ? 1 : 0;
  return n;
}

// A service: its name and exactly one kind's block.
const Block<ServiceConfig>& ServiceBlock() {
  static const auto* const block = [] {
    auto* b = new Block<ServiceConfig>{
        .description = "a service: its name and exactly one kind",
        .keys = {TextKey("name", &ServiceConfig::name, "unique service name", true)},
        .check =
            [](Reader& r, const YAML::Node& node, const std::string& path, ServiceConfig&) {
              const std::vector<std::string> names = KindNames();
              std::vector<std::string> kinds;
              for (const std::string& k : names) {
                if (node[k]) kinds.push_back(k);
              }
              if (kinds.size() != 1) {
                r.Error(path, kinds.empty()
                                  ? "missing the service kind: one of " + absl::StrJoin(names, ", ")
                                  : "more than one service kind: " + absl::StrJoin(kinds, ", "));
              }
            },
    };
    ForEachKind([&]<typename Spec>(std::in_place_type_t<Spec>) {
      b->exactly_one.emplace_back(Spec::kKind);
      ConfigKey<ServiceConfig> kind = BlockKey<ServiceConfig, Spec>(
          Spec::kKind, [](ServiceConfig& s) -> Spec& { return s.spec.emplace<Spec>(); },
          &KindBlock<Spec>, KindBlock<Spec>().description);
      // Read only when it is the one kind given (check reports the others).
      kind.read = [read = kind.read](Reader& r, const YAML::Node& node, const std::string& path,
                                     ServiceConfig& out) {
        if (CountKinds(node) == 1) read(r, node, path, out);
      };
      b->keys.push_back(std::move(kind));
    });
    return b;
  }();
  return *block;
}

// in_process.topics: names.
ConfigKey<ProgramConfig> InProcessTopicsKey() {
  const std::string doc = "in-process topic names; each needs a subscription";
  return {
      .key = "topics",
      .type = "list of names",
      .doc = doc,
      .read =
          [](Reader& r, const YAML::Node& ip, const std::string&, ProgramConfig& c) {
            const YAML::Node topics = ip["topics"];
            if (topics && !topics.IsSequence()) r.Error("in_process.topics", "expected a list");
            for (std::size_t i = 0; topics && topics.IsSequence() && i < topics.size(); ++i) {
              if (!topics[i].IsScalar() || topics[i].Scalar().empty()) {
                r.Error(Index("in_process.topics", i), "expected a topic name");
              } else {
                c.in_process_topics.push_back(topics[i].Scalar());
              }
            }
          },
      .schema =
          [doc](const ProgramConfig&) {
            return schema_types::With(
                {{"type", "array"},
                 {"items",
                  {{"type", nlohmann::json::array({"string", "number", "boolean"})},
                   {"minLength", 1}}}},
                doc);
          },
      .default_text = [](const ProgramConfig&) { return std::string(); },
  };
}

using Subscription = std::pair<std::string, std::string>;  // name → topic
const KeyTable<Subscription>& InProcessSubscriptionKeys() {
  static const auto* const table = new KeyTable<Subscription>{
      TextKey("name", &Subscription::first, "subscription name", true),
      TextKey("topic", &Subscription::second, "an in_process.topics name", true),
  };
  return *table;
}

const Block<Subscription>& InProcessSubscriptionBlock() {
  static const auto* const block = new Block<Subscription>{
      .description = "an in-process subscription: gets every message of its topic",
      .keys = InProcessSubscriptionKeys()};
  return *block;
}

const Block<ProgramConfig>& InProcessBlock() {
  static const auto* const block = new Block<ProgramConfig>{
      .keys = {InProcessTopicsKey(),
               ListKey("subscriptions", &ProgramConfig::in_process_subscriptions,
                       &InProcessSubscriptionBlock, "{name, topic}")},
  };
  return *block;
}

ConfigKey<ProgramConfig> ServicesKey() {
  const std::string doc = "the services, upstream first";
  ConfigKey<ProgramConfig> k = ListKey("services", &ProgramConfig::services, &ServiceBlock, doc,
                                       /*required=*/true, "missing (a list of services)");
  k.type = "list of services";
  // Each kind's section under its own name (`ingestion`, not `services[].ingestion`).
  k.sections = [](const std::string&) {
    return BlockReference(ServiceBlock(), "`services[]`", "");
  };
  return k;
}

}  // namespace

const Block<ProgramConfig>& ProgramBlock() {
  static const auto* const block = new Block<ProgramConfig>{
      .description = "dataflow service config (docs/configuration.md)",
      .keys = Rows(TopLevelKeys(),
                   {
                       BlockKey<ProgramConfig, ProgramConfig::Ops>(
                           "ops", [](ProgramConfig & c) -> auto& { return c.ops; },
                           &PlainBlock<ProgramConfig::Ops, &OpsKeys>,
                           "the /healthz, /readyz, /metrics endpoint"),
                       BlockKey<ProgramConfig, ProgramConfig>(
                           "in_process", [](ProgramConfig & c) -> auto& { return c; },
                           &InProcessBlock, "topics and subscriptions inside this process"),
                       ServicesKey(),
                   }),
  };
  return *block;
}

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
    if (!ReadBlock(ProgramBlock(), r, root, "", c)) return result;
    if (errors.empty()) CheckWiring(c, errors);
    if (errors.empty()) SecurityWarnings(c, result.warnings);
    if (errors.empty()) {
      for (std::size_t i = 0; i < c.services.size(); ++i) {
        std::visit(
            [&](const auto& spec) {
              if (spec.common.dead_letter_topic.empty()) {
                result.warnings.push_back(
                    {Index("services", i) + "." + c.services[i].kind() + ".dead_letter_topic",
                     "not set: a message that fails permanently or " +
                         std::to_string(spec.common.max_delivery_attempts) +
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

// `source:` and `sink:`, the blocks every service kind but ingestion reads from and most
// publish to (config_keys.h).
#include <yaml-cpp/yaml.h>

#include <string>

#include "config_keys.h"
#include "config_reader.h"

namespace dataflow::app {
namespace {

using schema_types::Json;
using yaml_config::Join;
using yaml_config::Reader;

const Block<SourceConfig>& PubsubSourceBlock() {
  static const auto* const block = new Block<SourceConfig>{
      .description = "a Pub/Sub subscription",
      .keys = PubsubSourceKeys(),
      .check =
          [](Reader& r, const YAML::Node&, const std::string& path, SourceConfig& out) {
            if (out.ack_deadline < std::chrono::seconds(10) ||
                out.ack_deadline > std::chrono::seconds(600)) {
              r.Error(Join(path, "ack_deadline"),
                      "must be between 10s and 600s (Pub/Sub's limits)");
            }
            if (out.max_stream_duration < std::chrono::seconds(1)) {
              r.Error(Join(path, "max_stream_duration"), "must be at least 1s");
            }
          },
  };
  return *block;
}

const Block<SourceConfig>& InProcessSourceBlock() {
  static const auto* const block = new Block<SourceConfig>{
      .description = "an in-process subscription (in_process.subscriptions)",
      .keys = {TextKey("subscription", &SourceConfig::subscription, "subscription name", true)},
  };
  return *block;
}

// A source kind: sets `kind` when its key is present.
ConfigKey<SourceConfig> SourceKind(const char* key, SourceConfig::Kind kind,
                                   const Block<SourceConfig>& (*block)()) {
  return BlockKey<SourceConfig, SourceConfig>(
      key,
      [kind](SourceConfig& s) -> SourceConfig& {
        s.kind = kind;
        return s;
      },
      block, block().description);
}

}  // namespace

const Block<SourceConfig>& SourceBlock() {
  static const auto* const block = new Block<SourceConfig>{
      .description = "where the service reads from: a Pub/Sub subscription or an in-process one",
      .keys = {SourceKind("pubsub", SourceConfig::Kind::kPubsub, &PubsubSourceBlock),
               SourceKind("in_process", SourceConfig::Kind::kInProcess, &InProcessSourceBlock)},
      .exactly_one = {"pubsub", "in_process"},
      .gate = [](Reader& r, const YAML::Node& node, const std::string& path,
                 SourceConfig&) -> bool {
        if (node["pubsub"] && node["in_process"]) {
          r.Error(path, "give either pubsub or in_process, not both");
          return false;
        }
        return true;
      },
      .check =
          [](Reader& r, const YAML::Node& node, const std::string& path, SourceConfig&) {
            if (!node["pubsub"] && !node["in_process"]) {
              r.Error(path, "missing pubsub or in_process");
            }
          },
  };
  return *block;
}

// `sink: pubsub` / `sink: in_process`, or a map with a project: `sink: {pubsub: {project: p}}`.
// One row with a form of its own (a scalar or a mapping whose pubsub may be either).
ConfigKey<TopicSinkConfig> TopicSinkKey() {
  return {
      .key = "sink",
      .type = "pubsub \\| in_process \\| {pubsub: {project}}",
      .doc =
          "where the service publishes: Pub/Sub topics (of `project`; empty: the program's "
          "project) or in-process topics (in_process.topics)",
      .required = true,
      .read =
          [](Reader& r, const YAML::Node& parent, const std::string& path, TopicSinkConfig& out) {
            const YAML::Node node = parent["sink"];
            const std::string at = Join(path, "sink");
            if (!node) {
              r.Error(at, "missing (pubsub or in_process)");
              return;
            }
            if (node.IsScalar()) {
              const std::string kind = node.Scalar();
              if (kind == "pubsub") {
                out.kind = TopicSinkConfig::Kind::kPubsub;
              } else if (kind == "in_process") {
                out.kind = TopicSinkConfig::Kind::kInProcess;
              } else {
                r.Error(at, "expected pubsub or in_process, got " + r.Quote(kind));
              }
              return;
            }
            if (!r.Map(node, at, {"pubsub", "in_process"})) return;
            if (const YAML::Node ps = node["pubsub"]) {
              out.kind = TopicSinkConfig::Kind::kPubsub;
              if (ps.IsMap() && r.Map(ps, Join(at, "pubsub"), {"project"})) {
                r.String(ps, "project", Join(at, "pubsub"), out.project);
              }
            } else {
              out.kind = TopicSinkConfig::Kind::kInProcess;
            }
          },
      .schema = [](const TopicSinkConfig&) { return schema_types::Ref(kSinkDefinition); },
      .default_text = [](const TopicSinkConfig&) { return std::string(); },
  };
}

Json TopicSinkSchema() {
  using schema_types::Text;
  using schema_types::With;
  const Json pubsub_options = {{"type", "object"},
                               {"properties",
                                {{"project", Text("Google Cloud project; empty: the "
                                                  "program's project")}}},
                               {"additionalProperties", false},
                               {"description", "Pub/Sub options"}};
  Json map_form = {
      {"type", "object"},
      {"properties",
       {{"pubsub", With({{"anyOf", Json::array({pubsub_options, {{"not", {{"type", "object"}}}}})}},
                        "Pub/Sub topics")},
        {"in_process", With(Json::object(), "in-process topics (in_process.topics)")}}},
      {"additionalProperties", false},
      {"oneOf", ExactlyOne({"pubsub", "in_process"})},
      {"description", "the transport, with options"}};
  return With({{"anyOf", Json::array({{{"enum", Json::array({"pubsub", "in_process"})}},
                                      std::move(map_form)})}},
              "where the service publishes: pubsub or in_process");
}

}  // namespace dataflow::app

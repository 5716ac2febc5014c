// The blocks of the ingestion, bigquery and icestore service kinds (config_keys.h).
#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

#include "config_keys.h"
#include "config_reader.h"
#include "yaml_json.h"

namespace dataflow::app {
namespace {

using schema_types::Json;
using schema_types::Ref;
using schema_types::Text;
using schema_types::With;
using yaml_config::Join;
using yaml_config::Reader;
using yaml_config::RejectCredentials;

const Block<mqttconverter::TopicMapping>& TopicMappingBlock() {
  static const auto* const block = new Block<mqttconverter::TopicMapping>{
      .description = "an MQTT topic filter and the route its messages take",
      .keys = TopicMappingKeys()};
  return *block;
}

const Block<mqttconverter::MqttClientOptions>& MqttBlock() {
  using mqttconverter::MqttClientOptions;
  static const auto* const block = new Block<MqttClientOptions>{
      .keys =
          Rows(MqttKeys(),
               {ListKey("topic_mappings", &MqttClientOptions::topic_mappings, &TopicMappingBlock,
                        "topic filters; the first matching filter names the route",
                        /*required=*/true, "missing (a list of {name, topic, qos})")}),
      .check =
          [](Reader& r, const YAML::Node&, const std::string& path, MqttClientOptions& c) {
            // What the library checks beyond presence (URL scheme, filters...), under this path.
            if (auto s = mqttconverter::ValidateMqttClientOptions(c);
                !s.ok() && !c.broker_url.empty() && !c.topic_mappings.empty()) {
              r.Error(path, std::string(s.message()));
            }
          },
  };
  return *block;
}

// route name → topic, each topic mapping with a route unless default_topic is set.
ConfigKey<IngestionConfig> RoutesKey() {
  const std::string doc =
      "route name → topic; every topic mapping needs a route unless default_topic is set "
      "(checked by validate)";
  return {
      .key = "routes",
      .type = "mapping of route name to topic",
      .doc = doc,
      .required = true,
      .read =
          [](Reader& r, const YAML::Node& node, const std::string& path, IngestionConfig& out) {
            const YAML::Node routes = node["routes"];
            const std::string rp = Join(path, "routes");
            if (!routes) {
              r.Error(rp, "missing (route name: topic)");
              return;
            }
            if (!routes.IsMap()) {
              r.Error(rp, "expected a mapping of route name to topic");
              return;
            }
            for (const auto& kv : routes) {
              const auto route = kv.first.as<std::string>();
              std::string topic;
              r.String(routes, route.c_str(), rp, topic, true);
              out.routes.emplace_back(route, topic);
            }
            for (const auto& t : out.mqtt.topic_mappings) {
              bool mapped = false;
              for (const auto& [route, topic] : out.routes) mapped |= route == t.name;
              if (!mapped && !node["default_topic"]) {
                r.Error(Join(rp, t.name), "missing: topic mapping " + r.Quote(t.name) +
                                              " has no route and there is no default_topic");
              }
            }
          },
      .schema =
          [doc](const IngestionConfig&) {
            return With({{"type", "object"},
                         {"additionalProperties", Text("topic", nullptr, true)},
                         {"propertyNames", {{"type", "string"}, {"minLength", 1}}}},
                        doc);
          },
      .default_text = [](const IngestionConfig&) { return std::string(); },
  };
}

// `schema:` a list of columns (read by bqstore::ColumnsFromJson), or from_table.
ConfigKey<BigQueryConfig> RowSchemaKey() {
  const std::string doc =
      "the row schema: a list of columns, or from_table (BigQuery only); see docs/bqstore.md";
  return {
      .key = "schema",
      .type = "list of columns \\| from_table",
      .doc = doc + " and `column` below",
      .required = true,
      .read =
          [](Reader& r, const YAML::Node& node, const std::string& path, BigQueryConfig& out) {
            const YAML::Node schema = node["schema"];
            const std::string at = Join(path, "schema");
            if (schema && schema.IsScalar()) {
              if (schema.Scalar() == "from_table") {
                out.schema_from_table = true;
              } else {
                r.Error(at, "expected a list of columns or from_table");
              }
            } else if (schema && schema.IsSequence()) {
              auto columns = bqstore::ColumnsFromJson(YamlToJson(schema));
              if (columns.ok()) {
                out.columns = *std::move(columns);
              } else {
                r.Error(at, std::string(columns.status().message()));
              }
            } else if (schema && !schema.IsNull()) {
              r.Error(at, "expected a list of columns or from_table");
            } else {
              r.Error(at,
                      "required: a list of columns ({name, type, mode, source}) or from_table "
                      "(docs/bqstore.md)");
            }
          },
      .schema =
          [doc](const BigQueryConfig&) {
            return With({{"anyOf", Json::array({{{"const", "from_table"}},
                                                {{"type", "array"},
                                                 {"minItems", 1},
                                                 {"items", Ref("#/definitions/column")}}})}},
                        doc);
          },
      .default_text = [](const BigQueryConfig&) { return std::string(); },
  };
}

ConfigKey<BigQueryConfig> ColumnSourcesKey() {
  const std::string doc =
      "with schema: from_table, column → source for columns not read from the payload field "
      "of their name";
  return {
      .key = "sources",
      .type = "mapping of column to source",
      .doc = doc,
      .read =
          [](Reader& r, const YAML::Node& node, const std::string& path, BigQueryConfig& out) {
            const YAML::Node sources = node["sources"];
            if (!sources) return;
            const std::string at = Join(path, "sources");
            if (!sources.IsMap()) {
              r.Error(at, "expected a mapping of column name to source");
            } else {
              for (const auto& kv : sources) {
                const std::string name = kv.first.as<std::string>();
                if (!kv.second.IsScalar()) {
                  r.Error(Join(at, name), "expected a source");
                  continue;
                }
                if (auto s = bqstore::ParseColumnSource(kv.second.Scalar()); !s.ok()) {
                  r.Error(Join(at, name), std::string(s.status().message()));
                }
                out.sources[name] = kv.second.Scalar();
              }
            }
            if (!out.schema_from_table) {
              r.Error(at, "only with schema: from_table (give columns a source:)");
            }
          },
      .schema =
          [doc](const BigQueryConfig&) {
            return With({{"type", "object"}, {"additionalProperties", {{"type", "string"}}}}, doc);
          },
      .default_text = [](const BigQueryConfig&) { return std::string(); },
  };
}

const Block<BigQueryConfig::Table>& TableBlock() {
  using Table = BigQueryConfig::Table;
  static const auto* const block = new Block<Table>{
      .keys = BigQueryTableKeys(),
      .check =
          [](Reader& r, const YAML::Node&, const std::string& path, Table& t) {
            for (const auto& [key, value] : {std::pair{"rest_endpoint", &t.rest_endpoint},
                                             std::pair{"grpc_endpoint", &t.grpc_endpoint}}) {
              RejectCredentials(r, *value, Join(path, key),
                                "Google credentials come from GOOGLE_APPLICATION_CREDENTIALS or "
                                "the metadata server");
            }
          },
  };
  return *block;
}

const Block<BigQueryConfig::Sqlite>& SqliteBlock() {
  return PlainBlock<BigQueryConfig::Sqlite, &SqliteKeys>();
}
const Block<IceStoreConfig::Gcs>& GcsBlock() { return PlainBlock<IceStoreConfig::Gcs, &GcsKeys>(); }
const Block<IceStoreConfig::Local>& LocalBlock() {
  return PlainBlock<IceStoreConfig::Local, &LocalKeys>();
}

}  // namespace

const Block<IngestionConfig>& IngestionBlock() {
  static const auto* const block = new Block<IngestionConfig>{
      .description = "MQTT → topics",
      .keys = Rows(IngestionKeys(),
                   {
                       BlockKey<IngestionConfig, mqttconverter::MqttClientOptions>(
                           "mqtt", [](IngestionConfig & c) -> auto& { return c.mqtt; }, &MqttBlock,
                           "the MQTT broker and subscriptions (docs/mqtt.md)", {.required = true}),
                       SinkKey<IngestionConfig>(),
                       RoutesKey(),  // after mqtt: each topic mapping needs a route
                   }),
      .read_first = {"mqtt", "sink", "routes"},
  };
  return *block;
}

const Block<BigQueryConfig>& BigQueryBlock() {
  const Json from_table = {{"properties", {{"schema", {{"const", "from_table"}}}}},
                           {"required", Json::array({"schema"})}};
  static const auto* const block = new Block<BigQueryConfig>{
      .description = "topic → warehouse (BigQuery or SQLite)",
      .keys = Rows(BigQueryKeys(),
                   {
                       SourceKey<BigQueryConfig>(),
                       OptionalBlockKey("table", &BigQueryConfig::bigquery, &TableBlock,
                                        "a BigQuery table, written over the Storage Write API"),
                       OptionalBlockKey("sqlite", &BigQueryConfig::sqlite, &SqliteBlock,
                                        "the embedded warehouse"),
                       RowSchemaKey(),
                       ColumnSourcesKey(),
                   }),
      // sources after schema: only with from_table.
      .read_first = {"schema", "sources", "source"},
      .exactly_one = {"table", "sqlite"},
      .extra_schema = {{"dependencies", {{"sources", from_table}}},
                       {"if", from_table},
                       {"then", {{"required", Json::array({"table"})}}}},
      .check =
          [](Reader& r, const YAML::Node&, const std::string& path, BigQueryConfig& out) {
            if (out.bigquery.has_value() == out.sqlite.has_value()) {
              r.Error(path, "give exactly one sink: table (BigQuery) or sqlite");
            }
            if (out.schema_from_table && out.sqlite) {
              r.Error(Join(path, "schema"),
                      "from_table needs a BigQuery table; give SQLite a column list");
            }
          },
  };
  return *block;
}

const Block<IceStoreConfig>& IceStoreBlock() {
  using GroupBy = IceStoreConfig::GroupBy;
  static const auto* const block = new Block<IceStoreConfig>{
      .description = "topic → archive of gzip JSONL objects (GCS or a local directory)",
      .keys = Rows(
          IceStoreKeys(),
          {
              SourceKey<IceStoreConfig>(),
              OptionalBlockKey("gcs", &IceStoreConfig::gcs, &GcsBlock, "Google Cloud Storage"),
              OptionalBlockKey("local", &IceStoreConfig::local, &LocalBlock, "a local directory"),
              EnumKey<IceStoreConfig, GroupBy>(
                  "group_by", &IceStoreConfig::group_by, {"day_location", "day"},
                  [](GroupBy g) {
                    return std::string(g == GroupBy::kDay ? "day" : "day_location");
                  },
                  // Verbatim, no ${VAR}.
                  [](Reader& r, const YAML::Node& n, const char* key, const std::string& path,
                     GroupBy& out) {
                    const YAML::Node g = n[key];
                    if (!g) return;
                    const std::string value = g.IsScalar() ? g.Scalar() : "";
                    if (value == "day_location") {
                      out = GroupBy::kDayLocation;
                    } else if (value == "day") {
                      out = GroupBy::kDay;
                    } else {
                      r.Error(Join(path, key),
                              "expected day_location or day, got " + r.Quote(value));
                    }
                  },
                  "object keys YYYY/MM/DD/<location>, or YYYY/MM/DD (day)",
                  /*env=*/false),
          }),
      .read_first = {"source"},
      .exactly_one = {"gcs", "local"},
      .check =
          [](Reader& r, const YAML::Node&, const std::string& path, IceStoreConfig& out) {
            if (out.gcs.has_value() == out.local.has_value()) {
              r.Error(path, "give exactly one sink: gcs or local");
            }
          },
  };
  return *block;
}

}  // namespace dataflow::app

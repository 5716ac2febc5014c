#include "config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

namespace dataflow::app {
namespace {

using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

using Env = std::vector<std::pair<std::string, std::string>>;

ConfigLoadResult Parse(const std::string& yaml, const Env& env = {}) {
  std::map<std::string, std::string> vars(env.begin(), env.end());
  return ParseConfig(yaml, env, [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  });
}

std::vector<std::string> Errors(const ConfigLoadResult& r) {
  std::vector<std::string> out;
  for (const auto& e : r.errors) out.push_back(e.ToString());
  return out;
}

constexpr const char* kEnrichment = R"(
in_process:
  topics: [raw, enriched]
  subscriptions: [{name: raw-sub, topic: raw}, {name: enriched-sub, topic: enriched}]
services:
  - name: enrich
    enrichment:
      source: {in_process: {subscription: raw-sub}}
      sink: in_process
      topic: enriched
      key: {attribute: device_id}
      cache:
        lru: {max_size: 100}
        redis: {addr: "localhost:6379", password: s3cret, cache_ttl: 90s}
        json_file: registry.json
      on_not_found: skip
)";

TEST(ConfigTest, WireFormatsDefaultToTheGoContractAndRefuseUnknownValues) {
  auto r = Parse(kEnrichment);
  ASSERT_THAT(Errors(r), IsEmpty());
  EXPECT_EQ(std::get<EnrichmentConfig>(r.config.services[0].spec).input_format,
            messagepipeline::InputFormat::kAuto);
  EXPECT_EQ(IngestionConfig{}.payload_format, mqttconverter::PayloadFormat::kEnvelope);
  std::string raw = kEnrichment;
  raw += "      input_format: raw\n";
  auto r2 = Parse(raw);
  ASSERT_THAT(Errors(r2), IsEmpty());
  EXPECT_EQ(std::get<EnrichmentConfig>(r2.config.services[0].spec).input_format,
            messagepipeline::InputFormat::kRaw);
  std::string bad = kEnrichment;
  bad += "      input_format: json\n";
  EXPECT_THAT(Errors(Parse(bad)),
              ElementsAre("services[0].enrichment.input_format: expected auto, envelope or raw, "
                          "got \"json\""));
  auto ingestion = Parse(R"(
in_process: {topics: [raw], subscriptions: [{name: raw-sub, topic: raw}]}
services:
  - name: ingest
    ingestion:
      mqtt: {broker_url: "tls://h:8883", topic_mappings: [{name: t, topic: "d/+"}]}
      sink: in_process
      routes: {t: raw}
      payload_format: base64
)");
  EXPECT_THAT(Errors(ingestion), ElementsAre("services[0].ingestion.payload_format: expected "
                                             "envelope or raw, got \"base64\""));
}

TEST(ConfigTest, ParsesAServiceWithItsDefaults) {
  auto r = Parse(kEnrichment);
  ASSERT_THAT(Errors(r), IsEmpty());
  ASSERT_EQ(r.config.services.size(), 1u);
  const auto& s = r.config.services[0];
  EXPECT_EQ(s.name, "enrich");
  EXPECT_STREQ(s.kind(), "enrichment");
  const auto& e = std::get<EnrichmentConfig>(s.spec);
  EXPECT_EQ(e.source.kind, SourceConfig::Kind::kInProcess);
  ASSERT_EQ(e.keys.size(), 1u);
  EXPECT_EQ(e.keys[0].kind, EnrichmentKeyConfig::Kind::kAttribute);
  EXPECT_EQ(e.keys[0].name, "device_id");
  EXPECT_EQ(e.cache.lru->max_size, 100u);
  EXPECT_EQ(e.cache.redis->cache_ttl, std::chrono::seconds(90));
  EXPECT_EQ(e.on_not_found, enrichment::FailurePolicy::kSkip);
  EXPECT_EQ(e.on_error, enrichment::FailurePolicy::kNack);  // the program's default
  EXPECT_EQ(e.common.workers, 5);
  EXPECT_EQ(e.max_in_flight, enrichment::EnrichmentServiceOptions{}.in_flight.max_messages);
  EXPECT_EQ(r.config.shutdown_timeout, std::chrono::seconds(30));
}

TEST(ConfigTest, MaxInFlightIsReadWithinItsRange) {
  std::string yaml = kEnrichment;
  yaml += "      max_in_flight: 250\n";
  auto r = Parse(yaml);
  ASSERT_THAT(Errors(r), IsEmpty());
  EXPECT_EQ(std::get<EnrichmentConfig>(r.config.services[0].spec).max_in_flight, 250u);
  yaml = kEnrichment;
  yaml += "      max_in_flight: 0\n";
  EXPECT_THAT(Errors(Parse(yaml)),
              ElementsAre("services[0].enrichment.max_in_flight: must be between 1 and 1000000, "
                          "got 0"));
}

// kEnrichment with its `key:` line replaced.
std::string EnrichmentWith(const std::string& key_and_more) {
  std::string yaml = kEnrichment;
  const std::string line = "      key: {attribute: device_id}\n";
  yaml.replace(yaml.find(line), line.size(), key_and_more);
  return yaml;
}

TEST(ConfigTest, EnrichmentKeysFieldsAndAttributes) {
  auto r = Parse(EnrichmentWith(R"(      key:
        - {payload: "device.ids[0]"}
        - {topic_segment: 1}
        - {topic_segment: 0, topic_attribute: source}
        - {json_field: deviceId}
      fields: [name, {location: site}]
      attributes: [{location: loc}]
)"));
  ASSERT_THAT(Errors(r), IsEmpty());
  const auto& e = std::get<EnrichmentConfig>(r.config.services[0].spec);
  using Kind = EnrichmentKeyConfig::Kind;
  ASSERT_EQ(e.keys.size(), 4u);
  EXPECT_EQ(e.keys[0].kind, Kind::kPayloadPath);
  EXPECT_EQ(e.keys[0].name, "device.ids[0]");
  EXPECT_EQ(e.keys[1].kind, Kind::kTopicSegment);
  EXPECT_EQ(e.keys[1].segment, 1u);
  EXPECT_EQ(e.keys[1].name, "mqtt_topic");
  EXPECT_EQ(e.keys[2].name, "source");
  EXPECT_EQ(e.keys[3].kind, Kind::kJsonField);
  ASSERT_EQ(e.fields.size(), 2u);
  EXPECT_EQ(e.fields[0].from, "name");
  EXPECT_EQ(e.fields[0].to, "");
  EXPECT_EQ(e.fields[1].from, "location");
  EXPECT_EQ(e.fields[1].to, "site");
  ASSERT_TRUE(e.attributes.has_value());
  ASSERT_EQ(e.attributes->size(), 1u);
  EXPECT_EQ((*e.attributes)[0].to, "loc");
}

TEST(ConfigTest, BadEnrichmentKeysAreNamedWithTheirPath) {
  EXPECT_THAT(Errors(Parse(EnrichmentWith("      key: {payload: \"a..b\"}\n"))),
              ElementsAre(HasSubstr("services[0].enrichment.key.payload: JSON path \"a..b\"")));
  EXPECT_THAT(Errors(Parse(EnrichmentWith("      key: {json_field: a, attribute: b}\n"))),
              ElementsAre(HasSubstr("services[0].enrichment.key: give exactly one of")));
  EXPECT_THAT(
      Errors(Parse(EnrichmentWith("      key: [{topic_segment: -1}]\n"))),
      ElementsAre(HasSubstr("services[0].enrichment.key[0].topic_segment: must be between")));
  EXPECT_THAT(Errors(Parse(EnrichmentWith("      key: []\n"))),
              ElementsAre(HasSubstr("services[0].enrichment.key: an empty list")));
  EXPECT_THAT(Errors(Parse(EnrichmentWith("      key: {attribute: x, topic_attribute: t}\n"))),
              ElementsAre(HasSubstr("key.topic_attribute: only with topic_segment")));
  EXPECT_THAT(
      Errors(Parse(EnrichmentWith("      key: {attribute: x}\n      fields: [{a: b, c: d}]\n"))),
      ElementsAre(HasSubstr("services[0].enrichment.fields[0]: expected a field name")));
}

TEST(ConfigTest, AMissingValueIsReportedWithItsPath) {
  std::string yaml = kEnrichment;
  yaml.replace(yaml.find("addr: \"localhost:6379\", "),
               std::string("addr: \"localhost:6379\", ").size(), "");
  auto r = Parse(yaml);
  EXPECT_THAT(Errors(r), ElementsAre("services[0].enrichment.cache.redis.addr: missing"));
}

TEST(ConfigTest, EveryErrorIsCollectedNotOnlyTheFirst) {
  auto r = Parse(R"(
log_level: loud
shutdown_timeout: soon
services:
  - name: a
    bigquery:
      source: {pubsub: {subscription: s, streams: many}}
      batch_size: 0
      sqlite: {path: w.db}
      schema: [{name: n, type: INT64}]
      tabel: x
  - name: b
    icestore: {source: {in_process: {}}}
)");
  EXPECT_THAT(
      Errors(r),
      ElementsAre(HasSubstr("log_level: expected one of"),
                  "shutdown_timeout: expected a duration like 500ms, 30s or 1m, got \"soon\"",
                  HasSubstr("services[0].bigquery.tabel: unknown key"),
                  "services[0].bigquery.source.pubsub.streams: expected an integer, got \"many\"",
                  "services[0].bigquery.batch_size: must be between 1 and 100000, got 0",
                  "services[1].icestore.source.in_process.subscription: missing",
                  "services[1].icestore: give exactly one sink: gcs or local"));
}

TEST(ConfigTest, PubsubSourceMaxStreamDuration) {
  constexpr const char* kYaml = R"(
services:
  - name: ice
    icestore:
      source: {pubsub: {subscription: s, max_stream_duration: DURATION}}
      local: {root: out}
)";
  auto parse = [&](const std::string& duration) {
    std::string yaml = kYaml;
    yaml.replace(yaml.find("DURATION"), 8, duration);
    return Parse(yaml);
  };
  auto r = parse("10s");
  ASSERT_THAT(Errors(r), IsEmpty());
  EXPECT_EQ(std::get<IceStoreConfig>(r.config.services[0].spec).source.max_stream_duration,
            std::chrono::seconds(10));
  EXPECT_THAT(Errors(parse("500ms")),
              ElementsAre("services[0].icestore.source.pubsub.max_stream_duration: must be at "
                          "least 1s"));
}

TEST(ConfigTest, MqttSizeLimits) {
  constexpr const char* kYaml = R"(
in_process:
  topics: [raw]
  subscriptions: [{name: raw-sub, topic: raw}]
services:
  - name: ingest
    ingestion:
      mqtt:
        broker_url: tcp://127.0.0.1:1883
        topic_mappings: [{name: t, topic: "devices/#", qos: 1}]
        LIMITS
      sink: in_process
      routes: {t: raw}
)";
  auto parse = [&](const std::string& limits) {
    std::string yaml = kYaml;
    yaml.replace(yaml.find("LIMITS"), 6, limits);
    return Parse(yaml);
  };
  auto defaults = parse("");
  ASSERT_THAT(Errors(defaults), IsEmpty());
  const auto& d = std::get<IngestionConfig>(defaults.config.services[0].spec).mqtt;
  EXPECT_EQ(d.max_packet_bytes, 4u << 20);
  EXPECT_EQ(d.max_outstanding_bytes, 64u << 20);
  auto set = parse("max_packet_bytes: 65536\n        max_outstanding_bytes: 1000000");
  ASSERT_THAT(Errors(set), IsEmpty());
  const auto& m = std::get<IngestionConfig>(set.config.services[0].spec).mqtt;
  EXPECT_EQ(m.max_packet_bytes, 65536u);
  EXPECT_EQ(m.max_outstanding_bytes, 1'000'000u);
  EXPECT_THAT(Errors(parse("max_packet_bytes: 300000000")),
              ElementsAre(HasSubstr("services[0].ingestion.mqtt.max_packet_bytes: must be between "
                                    "64 and 268435460")));
}

TEST(ConfigTest, ServiceKindMustBeExactlyOne) {
  auto r = Parse("services:\n  - name: x\n  - name: y\n    bigquery: {}\n    icestore: {}\n");
  EXPECT_THAT(Errors(r),
              ElementsAre(HasSubstr("services[0]: missing the service kind"),
                          "services[1]: more than one service kind: bigquery, icestore"));
}

TEST(ConfigTest, BadPolicyNamesTheAcceptedValues) {
  std::string yaml = kEnrichment;
  yaml.replace(yaml.find("on_not_found: skip"), 18, "on_not_found: drop");
  auto r = Parse(yaml);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].path, "services[0].enrichment.on_not_found");
  EXPECT_THAT(r.errors[0].message, HasSubstr("pass_unenriched"));
}

TEST(ConfigTest, InvalidYamlGivesTheLine) {
  auto r = Parse("services:\n  - name: [unclosed\n");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_THAT(r.errors[0].ToString(), HasSubstr("line 3"));
  EXPECT_THAT(r.errors[0].ToString(), HasSubstr("not valid YAML"));
}

TEST(ConfigTest, EmptyOrMissingServicesIsAnError) {
  EXPECT_THAT(Errors(Parse("")), ElementsAre("(top): empty config"));
  EXPECT_THAT(Errors(Parse("project: p\n")), ElementsAre("services: missing (a list of services)"));
}

TEST(ConfigTest, EnvironmentVariablesExpandInValues) {
  std::string yaml = kEnrichment;
  yaml.replace(yaml.find("\"localhost:6379\""), 16, "\"${REDIS_HOST:-localhost}:${REDIS_PORT}\"");
  auto r = Parse(yaml, {{"REDIS_PORT", "7000"}});
  ASSERT_THAT(Errors(r), IsEmpty());
  EXPECT_EQ(std::get<EnrichmentConfig>(r.config.services[0].spec).cache.redis->addr,
            "localhost:7000");
  auto unset = Parse(yaml);
  EXPECT_THAT(Errors(unset),
              ElementsAre("services[0].enrichment.cache.redis.addr: environment variable "
                          "REDIS_PORT is not set"));
}

TEST(ConfigTest, DataflowVariablesOverrideValuesByServiceName) {
  // workers sits under enrichment, not the service entry: reported, not silently applied.
  auto r = Parse(kEnrichment, {{"DATAFLOW__SERVICES__0__WORKERS", "3"}});
  EXPECT_THAT(Errors(r), ElementsAre(HasSubstr("services[0].workers: unknown key")));
  auto ok = Parse(kEnrichment,
                  {{"DATAFLOW__SERVICES__ENRICH__ENRICHMENT__CACHE__REDIS__ADDR", "redis:6380"},
                   {"DATAFLOW__SERVICES__0__ENRICHMENT__WORKERS", "9"},
                   {"DATAFLOW__SHUTDOWN_TIMEOUT", "5s"}});
  ASSERT_THAT(Errors(ok), IsEmpty());
  const auto& e = std::get<EnrichmentConfig>(ok.config.services[0].spec);
  EXPECT_EQ(e.cache.redis->addr, "redis:6380");
  EXPECT_EQ(e.common.workers, 9);
  EXPECT_EQ(ok.config.shutdown_timeout, std::chrono::seconds(5));
}

TEST(ConfigTest, OverrideOfAnUnknownServiceIsAnError) {
  auto r = Parse(kEnrichment, {{"DATAFLOW__SERVICES__NOPE__ENRICHMENT__WORKERS", "2"}});
  EXPECT_THAT(Errors(r), ElementsAre("DATAFLOW__SERVICES__NOPE__ENRICHMENT__WORKERS: no element "
                                     "named \"nope\" to override"));
}

TEST(ConfigTest, WiringIsChecked) {
  std::string yaml = kEnrichment;
  yaml.replace(yaml.find("subscription: raw-sub}"), 22, "subscription: other}");
  yaml.replace(yaml.find("topic: enriched\n      key"), 15, "topic: missing");
  auto r = Parse(yaml);
  EXPECT_THAT(Errors(r), ElementsAre("services[0].enrichment.source.in_process.subscription: "
                                     "unknown in-process subscription \"other\"",
                                     "services[0].enrichment.topic: unknown in-process topic "
                                     "\"missing\""));
}

TEST(ConfigTest, AnInProcessTopicWithoutSubscriptionIsAnError) {
  std::string yaml = kEnrichment;
  yaml.replace(yaml.find("topics: [raw, enriched]"), 23, "topics: [raw, enriched, orphan]");
  auto r = Parse(yaml);
  EXPECT_THAT(Errors(r), ElementsAre("in_process.topics[2]: topic \"orphan\" has no subscription: "
                                     "messages published to it would be lost"));
}

TEST(ConfigTest, MaxDeliveryAttemptsIsFiniteAndAServiceWithoutDeadLettersIsWarnedAbout) {
  auto defaults = Parse(kEnrichment);
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(
      std::get<EnrichmentConfig>(defaults.config.services[0].spec).common.max_delivery_attempts, 5);
  ASSERT_EQ(defaults.warnings.size(), 1u);
  EXPECT_THAT(defaults.warnings[0].ToString(),
              HasSubstr("services[0].enrichment.dead_letter_topic: not set"));
  EXPECT_THAT(defaults.warnings[0].ToString(), HasSubstr("dropped"));

  std::string yaml = kEnrichment;
  yaml += "      max_delivery_attempts: 12\n      dead_letter_topic: raw\n";
  auto set = Parse(yaml);
  ASSERT_THAT(Errors(set), IsEmpty());
  EXPECT_EQ(std::get<EnrichmentConfig>(set.config.services[0].spec).common.max_delivery_attempts,
            12);
  EXPECT_THAT(set.warnings, IsEmpty());

  std::string zero = kEnrichment;
  zero += "      max_delivery_attempts: 0\n";
  EXPECT_THAT(Errors(Parse(zero)), ElementsAre(HasSubstr("max_delivery_attempts")));
}

TEST(ConfigTest, IcestoreGroupByIsDayLocationOrDay) {
  auto r = LoadConfigFile(std::string(DATAFLOW_SOURCE_DIR) + "/config/local.yaml");
  ASSERT_THAT(Errors(r), IsEmpty());
  EXPECT_EQ(std::get<IceStoreConfig>(r.config.services[3].spec).group_by,
            IceStoreConfig::GroupBy::kDayLocation);
  EXPECT_EQ(std::get<IceStoreConfig>(r.config.services[4].spec).group_by,
            IceStoreConfig::GroupBy::kDay);
  auto bad = Parse(R"(
in_process: {topics: [t], subscriptions: [{name: s, topic: t}]}
services:
  - name: ice
    icestore: {source: {in_process: {subscription: s}}, local: {root: /tmp/x}, group_by: week}
)");
  EXPECT_THAT(Errors(bad), ElementsAre("services[0].icestore.group_by: expected day_location or "
                                       "day, got \"week\""));
}

TEST(ConfigTest, DescribeLeavesSecretsOut) {
  auto r = Parse(kEnrichment);
  ASSERT_TRUE(r.ok());
  const auto lines = Describe(r.config);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(lines[0], HasSubstr("Redis localhost:6379"));
  EXPECT_THAT(lines[0], ::testing::Not(HasSubstr("s3cret")));
}

TEST(ConfigTest, ShippedConfigsAreValid) {
  for (const char* name : {"config/local.yaml", "config/emulators.yaml"}) {
    auto r = LoadConfigFile(std::string(DATAFLOW_SOURCE_DIR) + "/" + name);
    EXPECT_THAT(Errors(r), IsEmpty()) << name;
    const std::size_t services = std::string(name) == "config/local.yaml" ? 5u : 4u;
    EXPECT_EQ(r.config.services.size(), services) << name;
  }
}

TEST(ConfigTest, UnreadableFileIsAnError) {
  auto r = LoadConfigFile("/nonexistent/dataflow.yaml");
  EXPECT_THAT(Errors(r), ElementsAre("/nonexistent/dataflow.yaml: cannot read the config file"));
}

constexpr const char* kIngestion = R"(
in_process:
  topics: [raw]
  subscriptions: [{name: raw-sub, topic: raw}]
services:
  - name: ingest
    ingestion:
      mqtt:
        broker_url: BROKER
        username: device
        password: PASSWORD
        topic_mappings: [{name: t, topic: "devices/+/data", qos: 1}]
      sink: in_process
      routes: {t: raw}
      dead_letter_topic: raw
  - name: enrich
    enrichment:
      source: {in_process: {subscription: raw-sub}}
      sink: in_process
      topic: raw
      key: {attribute: device_id}
      cache:
        redis:
          addr: "REDIS"
          password: PASSWORD
        json_file: registry.json
      dead_letter_topic: raw
)";

std::string Ingestion(const std::string& broker, const std::string& password,
                      const std::string& redis = "127.0.0.1:6379") {
  std::string yaml = kIngestion;
  yaml.replace(yaml.find("BROKER"), 6, broker);
  const std::size_t first = yaml.find("PASSWORD");
  yaml.replace(first, 8, password);
  yaml.replace(yaml.find("PASSWORD", first + password.size()), 8, password);
  yaml.replace(yaml.find("REDIS"), 5, redis);
  return yaml;
}

// Every error and warning, one string each.
std::string AllText(const ConfigLoadResult& r) {
  std::string out;
  for (const auto& e : r.errors) out += e.ToString() + "\n";
  for (const auto& w : r.warnings) out += w.ToString() + "\n";
  return out;
}

TEST(ConfigSecretsTest, CredentialsInUrlsAreRejectedWithoutEchoingThem) {
  auto mqtt = Parse(Ingestion("mqtts://user:Pw-In-Url-1@broker.example.com:8883", "p"));
  EXPECT_THAT(Errors(mqtt), ElementsAre(AllOf(HasSubstr("services[0].ingestion.mqtt: "),
                                              HasSubstr("contains credentials"),
                                              HasSubstr("username and password"))));
  EXPECT_THAT(AllText(mqtt), Not(HasSubstr("Pw-In-Url-1")));
  // Without a scheme the URL would otherwise be quoted by "has no scheme".
  auto bare = Parse(Ingestion("user:Pw-In-Url-2@broker:1883", "p"));
  EXPECT_THAT(Errors(bare), ElementsAre(HasSubstr("contains credentials")));
  EXPECT_THAT(AllText(bare), Not(HasSubstr("Pw-In-Url-2")));

  auto redis = Parse(Ingestion("ssl://broker:8883", "p", "redis://:Pw-In-Url-3@cache:6379"));
  EXPECT_THAT(Errors(redis),
              ElementsAre(AllOf(HasSubstr("services[1].enrichment.cache.redis.addr: contains "
                                          "credentials"),
                                HasSubstr("password key"))));
  EXPECT_THAT(AllText(redis), Not(HasSubstr("Pw-In-Url-3")));

  auto rest = Parse(R"(
services:
  - name: bq
    bigquery:
      source: {pubsub: {subscription: s}}
      table: {dataset: d, table: t, rest_endpoint: "http://u:Pw-In-Url-4@bq.example.com"}
      schema: from_table
      dead_letter_topic: dl
)");
  EXPECT_THAT(Errors(rest), ElementsAre(HasSubstr("table.rest_endpoint: contains credentials")));
  EXPECT_THAT(AllText(rest), Not(HasSubstr("Pw-In-Url-4")));
}

TEST(ConfigSecretsTest, AnUnterminatedExpansionInAPasswordDoesNotEchoIt) {
  auto r = Parse(Ingestion("ssl://broker:8883", "\"Pw-Literal-5${MQTT_PASSWORD\""));
  EXPECT_THAT(Errors(r), Contains("services[0].ingestion.mqtt.password: unterminated ${ (no "
                                  "closing })"));
  EXPECT_THAT(AllText(r), Not(HasSubstr("Pw-Literal-5")));
}

TEST(ConfigSecretsTest, ValuesFromTheEnvironmentAreNeverEchoedInErrors) {
  const std::string secret = "Env-Secret-6";
  std::string yaml = Ingestion("ssl://${S}:8883", "${S}");
  yaml.replace(yaml.find("qos: 1"), 6, "qos: \"${S}\"");
  yaml.replace(yaml.find("{t: raw}"), 8, "{t: \"${S}\"}");
  yaml = "log_level: ${S}\nshutdown_timeout: \"${S}\"\n" + yaml;
  auto r = Parse(
      yaml, {{"S", secret}, {"DATAFLOW__SERVICES__ENRICH__ENRICHMENT__WORKERS", "Env-Secret-7"}});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(Errors(r), Contains("log_level: expected one of trace, debug, info, warn, error, "
                                  "off, got (value withheld: a secret or from the environment)"));
  EXPECT_THAT(Errors(r), Contains(HasSubstr("services[1].enrichment.workers: expected an integer, "
                                            "got (value withheld")));
  EXPECT_THAT(AllText(r), Not(HasSubstr(secret)));
  EXPECT_THAT(AllText(r), Not(HasSubstr("Env-Secret-7")));
}

TEST(ConfigSecretsTest, PlaintextPasswordsToOtherHostsAndSkippedVerificationAreWarnedAbout) {
  auto remote = Parse(Ingestion("tcp://broker.example.com:1883", "p", "cache.example.com:6379"));
  ASSERT_THAT(Errors(remote), IsEmpty());
  std::vector<std::string> warnings;
  for (const auto& w : remote.warnings) warnings.push_back(w.ToString());
  EXPECT_THAT(warnings,
              ElementsAre(HasSubstr("services[0].ingestion.mqtt.password: sent in plaintext "
                                    "(tcp://)"),
                          HasSubstr("services[1].enrichment.cache.redis.password: sent in "
                                    "plaintext")));
  for (const char* url : {"tcp://127.0.0.1:1883", "tcp://localhost", "ws://[::1]:9001/mqtt",
                          "ssl://broker.example.com:8883", "wss://broker.example.com/mqtt"}) {
    auto quiet = Parse(Ingestion(url, "p"));
    EXPECT_THAT(Errors(quiet), IsEmpty()) << url;
    EXPECT_THAT(quiet.warnings, IsEmpty()) << url;
  }
  auto no_password = Parse(Ingestion("tcp://broker.example.com:1883", "\"\"", "cache:6379"));
  EXPECT_THAT(no_password.warnings, IsEmpty());

  std::string skip = Ingestion("ssl://broker.example.com:8883", "p");
  skip.replace(skip.find("username: device"), 16,
               "username: device\n        insecure_skip_verify: true");
  auto skipped = Parse(skip);
  ASSERT_THAT(Errors(skipped), IsEmpty());
  ASSERT_EQ(skipped.warnings.size(), 1u);
  EXPECT_THAT(skipped.warnings[0].ToString(),
              HasSubstr("services[0].ingestion.mqtt.insecure_skip_verify: on: the broker's "
                        "certificate is not checked"));
}

}  // namespace
}  // namespace dataflow::app

#include "dataflow/mqttconverter/mqtt_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

namespace dataflow::mqttconverter {
namespace {

using ::testing::HasSubstr;

MqttClientOptions Valid() {
  return MqttClientOptions{.broker_url = "tcp://127.0.0.1:1883",
                           .topic_mappings = {{.name = "telemetry", .topic = "devices/+/data"}}};
}

messagepipeline::EnvLookup FakeEnv(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(TopicMatchesTest, Wildcards) {
  EXPECT_TRUE(TopicMatches("a/b", "a/b"));
  EXPECT_FALSE(TopicMatches("a/b", "a/c"));
  EXPECT_FALSE(TopicMatches("a/b", "a/b/c"));
  EXPECT_TRUE(TopicMatches("a/+/c", "a/x/c"));
  EXPECT_FALSE(TopicMatches("a/+/c", "a/x/y/c"));
  EXPECT_TRUE(TopicMatches("a/+", "a/"));  // an empty level is a level
  EXPECT_TRUE(TopicMatches("a/#", "a"));
  EXPECT_TRUE(TopicMatches("a/#", "a/b/c"));
  EXPECT_TRUE(TopicMatches("#", "anything/at/all"));
  EXPECT_FALSE(TopicMatches("#", "$SYS/broker/load"));
  EXPECT_FALSE(TopicMatches("+/broker", "$SYS/broker"));
  EXPECT_TRUE(TopicMatches("$SYS/#", "$SYS/broker"));
  EXPECT_TRUE(TopicMatches("$share/g1/devices/+/data", "devices/7/data"));
  EXPECT_FALSE(TopicMatches("$share/g1/devices/+/data", "devices/7/status"));
}

TEST(FindRouteTest, FirstMatchingMappingWins) {
  std::vector<TopicMapping> mappings = {{.name = "alerts", .topic = "devices/+/alert"},
                                        {.name = "all", .topic = "devices/#"}};
  ASSERT_NE(FindRoute(mappings, "devices/1/alert"), nullptr);
  EXPECT_EQ(FindRoute(mappings, "devices/1/alert")->name, "alerts");
  EXPECT_EQ(FindRoute(mappings, "devices/1/data")->name, "all");
  EXPECT_EQ(FindRoute(mappings, "other/1"), nullptr);
}

TEST(ValidateTest, AcceptsAValidConfig) { EXPECT_TRUE(ValidateMqttClientOptions(Valid()).ok()); }

TEST(ValidateTest, AcceptsEverySchemeTheTransportReads) {
  for (const char* url : {"tcp://h", "mqtt://h", "ssl://h", "tls://h", "mqtts://h", "ws://h",
                          "wss://h", "TLS://h:8883"}) {
    MqttClientOptions config = Valid();
    config.broker_url = url;
    EXPECT_TRUE(ValidateMqttClientOptions(config).ok()) << url;
  }
}

TEST(ValidateTest, RejectsBadFieldsNamingThem) {
  struct Case {
    std::function<void(MqttClientOptions&)> mutate;
    std::string field;
  };
  std::vector<Case> cases = {
      {[](auto& c) { c.broker_url = "127.0.0.1:1883"; }, "broker_url"},
      {[](auto& c) { c.broker_url = "http://h:1"; }, "broker_url"},
      {[](auto& c) { c.broker_url = "tcp://:1883"; }, "broker_url"},
      {[](auto& c) { c.keep_alive = std::chrono::seconds(-1); }, "keep_alive"},
      {[](auto& c) { c.connect_timeout = std::chrono::seconds(0); }, "connect_timeout"},
      {[](auto& c) { c.client_cert_file = "cert.pem"; }, "client_cert_file"},
      {[](auto& c) { c.clean_session = false; }, "client_id"},
      {[](auto& c) { c.channel_capacity = 0; }, "channel_capacity"},
      {[](auto& c) { c.max_packet_bytes = 63; }, "max_packet_bytes"},
      {[](auto& c) { c.max_packet_bytes = 268'435'461; }, "max_packet_bytes"},
      {[](auto& c) { c.max_outstanding_bytes = 0; }, "max_outstanding_bytes"},
      {[](auto& c) { c.reconnect_max_backoff = std::chrono::seconds(0); }, "reconnect"},
      {[](auto& c) { c.max_subscribe_refusals = 0; }, "max_subscribe_refusals"},
      {[](auto& c) { c.redelivery_min_backoff = std::chrono::milliseconds(0); },
       "redelivery_min_backoff"},
      {[](auto& c) { c.redelivery_max_backoff = std::chrono::milliseconds(50); },
       "redelivery_max_backoff"},
      {[](auto& c) { c.write_timeout = std::chrono::milliseconds(0); }, "write_timeout"},
      {[](auto& c) { c.topic_mappings.clear(); }, "topic_mappings"},
      {[](auto& c) { c.topic_mappings[0].name = ""; }, "topic_mappings[0].name"},
      {[](auto& c) { c.topic_mappings[0].topic = ""; }, "topic_mappings[0].topic"},
      {[](auto& c) { c.topic_mappings[0].topic = "a/#/b"; }, "topic_mappings[0].topic"},
      {[](auto& c) { c.topic_mappings[0].topic = "a/b#"; }, "topic_mappings[0].topic"},
      {[](auto& c) { c.topic_mappings[0].topic = "a/x+/b"; }, "topic_mappings[0].topic"},
      {[](auto& c) { c.topic_mappings[0].topic = "$share/g"; }, "topic_mappings[0].topic"},
      {[](auto& c) { c.topic_mappings[0].topic = "$share//a"; }, "topic_mappings[0].topic"},
      {[](auto& c) { c.topic_mappings[0].qos = 3; }, "topic_mappings[0].qos"},
  };
  for (const Case& c : cases) {
    MqttClientOptions config = Valid();
    c.mutate(config);
    absl::Status s = ValidateMqttClientOptions(config);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_THAT(std::string(s.message()), HasSubstr(c.field));
  }
}

TEST(EnvTest, ReadsEveryVariable) {
  auto config = LoadMqttClientOptionsFromEnv(
      {},
      FakeEnv({{"MQTT_BROKER_URL", "ssl://broker.example:8883"},
               {"MQTT_CLIENT_ID", "ingest-1"},
               {"MQTT_USERNAME", "u"},
               {"MQTT_PASSWORD", "p"},
               {"MQTT_KEEP_ALIVE_SECONDS", "30"},
               {"MQTT_CONNECT_TIMEOUT_SECONDS", "7"},
               {"MQTT_CA_CERT_FILE", "ca.pem"},
               {"MQTT_CLIENT_CERT_FILE", "c.pem"},
               {"MQTT_CLIENT_KEY_FILE", "k.pem"},
               {"MQTT_INSECURE_SKIP_VERIFY", "true"},
               {"MQTT_CLEAN_SESSION", "false"},
               {"MQTT_ACK_MODE", "receipt"},
               {"MQTT_WRITE_TIMEOUT_SECONDS", "3"},
               {"MQTT_MAX_SUBSCRIBE_REFUSALS", "2"},
               {"MQTT_REDELIVERY_MIN_BACKOFF_MS", "250"},
               {"MQTT_REDELIVERY_MAX_BACKOFF_MS", "4000"},
               {"MQTT_MAX_PACKET_BYTES", "65536"},
               {"MQTT_MAX_OUTSTANDING_BYTES", "1000000"},
               {"MQTT_TOPIC_MAPPINGS", "telemetry=devices/+/data@0; alerts=$share/g/alerts/#"}}));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->broker_url, "ssl://broker.example:8883");
  EXPECT_EQ(config->client_id, "ingest-1");
  EXPECT_EQ(config->username, "u");
  EXPECT_EQ(config->password, "p");
  EXPECT_EQ(config->keep_alive, std::chrono::seconds(30));
  EXPECT_EQ(config->connect_timeout, std::chrono::seconds(7));
  EXPECT_EQ(config->ca_cert_file, "ca.pem");
  EXPECT_EQ(config->client_cert_file, "c.pem");
  EXPECT_EQ(config->client_key_file, "k.pem");
  EXPECT_TRUE(config->insecure_skip_verify);
  EXPECT_FALSE(config->clean_session);
  EXPECT_EQ(config->ack_mode, AckMode::kOnReceipt);
  EXPECT_EQ(config->write_timeout, std::chrono::seconds(3));
  EXPECT_EQ(config->max_subscribe_refusals, 2);
  EXPECT_EQ(config->redelivery_min_backoff, std::chrono::milliseconds(250));
  EXPECT_EQ(config->redelivery_max_backoff, std::chrono::milliseconds(4000));
  EXPECT_EQ(config->max_packet_bytes, 65536u);
  EXPECT_EQ(config->max_outstanding_bytes, 1'000'000u);
  ASSERT_EQ(config->topic_mappings.size(), 2u);
  EXPECT_EQ(config->topic_mappings[0].name, "telemetry");
  EXPECT_EQ(config->topic_mappings[0].topic, "devices/+/data");
  EXPECT_EQ(config->topic_mappings[0].qos, 0);
  EXPECT_EQ(config->topic_mappings[1].name, "alerts");
  EXPECT_EQ(config->topic_mappings[1].topic, "$share/g/alerts/#");
  EXPECT_EQ(config->topic_mappings[1].qos, 1);
}

TEST(EnvTest, UnsetVariablesKeepTheBase) {
  auto config = LoadMqttClientOptionsFromEnv(Valid(), FakeEnv({}));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->broker_url, "tcp://127.0.0.1:1883");
  EXPECT_EQ(config->keep_alive, std::chrono::seconds(10));
  EXPECT_EQ(config->topic_mappings.size(), 1u);
  // The documented defaults (docs/mqtt.md).
  EXPECT_EQ(config->write_timeout, std::chrono::seconds(10));
  EXPECT_EQ(config->max_subscribe_refusals, 5);
  EXPECT_EQ(config->redelivery_min_backoff, std::chrono::milliseconds(100));
  EXPECT_EQ(config->redelivery_max_backoff, std::chrono::seconds(10));
}

TEST(EnvTest, MqttTopicMakesADefaultMapping) {
  auto config = LoadMqttClientOptionsFromEnv({}, FakeEnv({{"MQTT_TOPIC", "sensors/#"}}));
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->topic_mappings.size(), 1u);
  EXPECT_EQ(config->topic_mappings[0].name, "default");
  EXPECT_EQ(config->topic_mappings[0].topic, "sensors/#");
}

TEST(EnvTest, ErrorsNameTheVariable) {
  std::vector<std::pair<std::map<std::string, std::string>, std::string>> cases = {
      {{{"MQTT_TOPIC", "t"}, {"MQTT_KEEP_ALIVE_SECONDS", "ten"}}, "MQTT_KEEP_ALIVE_SECONDS"},
      {{{"MQTT_TOPIC", "t"}, {"MQTT_KEEP_ALIVE_SECONDS", "-5"}}, "MQTT_KEEP_ALIVE_SECONDS"},
      {{{"MQTT_TOPIC", "t"}, {"MQTT_CONNECT_TIMEOUT_SECONDS", "0"}},
       "MQTT_CONNECT_TIMEOUT_SECONDS"},
      {{{"MQTT_TOPIC", "t"}, {"MQTT_INSECURE_SKIP_VERIFY", "maybe"}}, "MQTT_INSECURE_SKIP_VERIFY"},
      {{{"MQTT_TOPIC", "t"}, {"MQTT_CLEAN_SESSION", "2"}}, "MQTT_CLEAN_SESSION"},
      {{{"MQTT_TOPIC", "t"}, {"MQTT_ACK_MODE", "later"}}, "MQTT_ACK_MODE"},
      {{{"MQTT_TOPIC", "t"}, {"MQTT_WRITE_TIMEOUT_SECONDS", "0"}}, "MQTT_WRITE_TIMEOUT_SECONDS"},
      {{{"MQTT_TOPIC", "t"}, {"MQTT_MAX_SUBSCRIBE_REFUSALS", "x"}}, "MQTT_MAX_SUBSCRIBE_REFUSALS"},
      {{{"MQTT_TOPIC", "t"}, {"MQTT_REDELIVERY_MIN_BACKOFF_MS", "-1"}},
       "MQTT_REDELIVERY_MIN_BACKOFF_MS"},
      {{{"MQTT_TOPIC", "t"}, {"MQTT_REDELIVERY_MAX_BACKOFF_MS", "10"}},
       "MQTT_REDELIVERY_MAX_BACKOFF_MS"},  // below the default minimum of 100
      {{{"MQTT_TOPIC", "t"}, {"MQTT_BROKER_URL", "localhost"}}, "MQTT_BROKER_URL"},
      {{{"MQTT_TOPIC", "t"}, {"MQTT_MAX_PACKET_BYTES", "300000000"}}, "MQTT_MAX_PACKET_BYTES"},
      {{{"MQTT_TOPIC", "t"}, {"MQTT_MAX_OUTSTANDING_BYTES", "0"}}, "MQTT_MAX_OUTSTANDING_BYTES"},
      {{{"MQTT_TOPIC", "t"}, {"MQTT_CLEAN_SESSION", "false"}}, "MQTT_CLIENT_ID"},
      {{{"MQTT_TOPIC_MAPPINGS", "justafilter"}}, "MQTT_TOPIC_MAPPINGS"},
      {{{"MQTT_TOPIC_MAPPINGS", "a=x/y@high"}}, "MQTT_TOPIC_MAPPINGS"},
      {{{"MQTT_TOPIC_MAPPINGS", "a=x/y@5"}}, "MQTT_TOPIC_MAPPINGS"},
      {{{"MQTT_TOPIC", "a/#/b"}}, "MQTT_TOPIC"},
      {{}, "MQTT_TOPIC"},  // no mappings at all
  };
  for (const auto& [vars, name] : cases) {
    auto config = LoadMqttClientOptionsFromEnv({}, FakeEnv(vars));
    ASSERT_FALSE(config.ok()) << name;
    EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(config.status().message()), HasSubstr(name));
  }
}

}  // namespace
}  // namespace dataflow::mqttconverter

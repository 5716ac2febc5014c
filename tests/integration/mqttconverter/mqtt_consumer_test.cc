// MqttConsumer against a real Mosquitto broker.
#include "dataflow/mqttconverter/mqtt_consumer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "mqtt_test_util.h"

namespace dataflow::mqttconverter {
namespace {

using messagepipeline::Message;
using testing::Broker;
using ::testing::HasSubstr;
using testing::PopN;
using testing::TestPublisher;
using testing::UniqueTopic;

MQTTClientConfig ConfigFor(std::vector<TopicMapping> mappings) {
  return MQTTClientConfig{.broker_url = Broker()->url(),
                          .connect_timeout = std::chrono::seconds(5),
                          .topic_mappings = std::move(mappings)};
}

std::unique_ptr<MqttConsumer> StartConsumer(MQTTClientConfig config) {
  auto consumer = MqttConsumer::Create(std::move(config));
  EXPECT_TRUE(consumer.ok()) << consumer.status();
  if (!consumer.ok()) return nullptr;
  absl::Status started = (*consumer)->Start();
  EXPECT_TRUE(started.ok()) << started;
  if (!started.ok()) return nullptr;
  return std::move(*consumer);
}

void StopConsumer(MqttConsumer& consumer) {
  EXPECT_TRUE(consumer.Stop(std::chrono::steady_clock::now() + std::chrono::seconds(10)).ok());
}

TEST(MqttConsumerTest, RoutesTopicsAndSetsAttributes) {
  const std::string base = UniqueTopic("routes");
  auto consumer = StartConsumer(ConfigFor({{.name = "alerts", .topic = base + "/+/alert"},
                                           {.name = "telemetry", .topic = base + "/+/data"}}));
  ASSERT_NE(consumer, nullptr);
  EXPECT_TRUE(consumer->IsConnected());
  const auto before = messagepipeline::Clock::now();
  TestPublisher pub;
  const std::string binary("bin\0ary\xff", 8);
  pub.Publish(base + "/dev1/alert", "fire");
  pub.Publish(base + "/dev2/data", binary);
  pub.Publish(base + "/dev2/other", "not subscribed");
  auto got = PopN(consumer->Messages(), 2);
  ASSERT_EQ(got.size(), 2u);
  std::map<std::string, const Message*> by_route;
  for (const Message& m : got) by_route[m.attributes.at("route_name")] = &m;
  ASSERT_TRUE(by_route.contains("alerts"));
  ASSERT_TRUE(by_route.contains("telemetry"));
  EXPECT_EQ(by_route["alerts"]->attributes.at("mqtt_topic"), base + "/dev1/alert");
  EXPECT_EQ(by_route["alerts"]->data.payload, "fire");
  EXPECT_EQ(by_route["telemetry"]->attributes.at("mqtt_topic"), base + "/dev2/data");
  EXPECT_EQ(by_route["telemetry"]->data.payload, binary);
  EXPECT_EQ(by_route["telemetry"]->attributes.at("mqtt_qos"), "1");
  EXPECT_NE(got[0].data.id, got[1].data.id);
  for (Message& m : got) {
    EXPECT_FALSE(m.data.id.empty());
    EXPECT_GE(m.data.publish_time, before);
    EXPECT_LE(m.data.publish_time, messagepipeline::Clock::now());
    EXPECT_EQ(m.delivery_attempt, 1);
    m.Ack();
  }
  StopConsumer(*consumer);
  EXPECT_EQ(consumer->stats().acked, 2u);
  // The unsubscribed topic never arrived: the channel is closed and empty.
  EXPECT_TRUE(consumer->Messages().closed_and_empty());
}

TEST(MqttConsumerTest, FirstMatchingMappingWinsForOverlappingFilters) {
  const std::string base = UniqueTopic("overlap");
  auto consumer = StartConsumer(ConfigFor(
      {{.name = "specific", .topic = base + "/x/#"}, {.name = "catch-all", .topic = base + "/#"}}));
  ASSERT_NE(consumer, nullptr);
  TestPublisher pub;
  pub.Publish(base + "/x/1", "a");
  pub.Publish(base + "/y/1", "b");
  // The broker may send "a" once per matching subscription; "b" matches only catch-all.
  std::vector<Message> got;
  ASSERT_TRUE(dataflow::testing::WaitFor(
      [&] {
        auto more = PopN(consumer->Messages(), 1, std::chrono::milliseconds(50));
        for (auto& m : more) got.push_back(std::move(m));
        return std::any_of(got.begin(), got.end(),
                           [](const Message& m) { return m.data.payload == "b"; }) &&
               std::any_of(got.begin(), got.end(),
                           [](const Message& m) { return m.data.payload == "a"; });
      },
      std::chrono::seconds(15)));
  for (Message& m : got) {
    EXPECT_EQ(m.attributes.at("route_name"), m.data.payload == "a" ? "specific" : "catch-all")
        << m.attributes.at("mqtt_topic");
    m.Ack();
  }
  StopConsumer(*consumer);
}

TEST(MqttConsumerTest, QosZeroAndOne) {
  const std::string base = UniqueTopic("qos");
  auto consumer = StartConsumer(ConfigFor(
      {{.name = "q0", .topic = base + "/zero", .qos = 0}, {.name = "q1", .topic = base + "/one"}}));
  ASSERT_NE(consumer, nullptr);
  TestPublisher pub;
  pub.Publish(base + "/zero", "z", 0);
  pub.Publish(base + "/one", "o", 1);
  auto got = PopN(consumer->Messages(), 2);
  ASSERT_EQ(got.size(), 2u);
  for (Message& m : got) {
    if (m.attributes.at("route_name") == "q0") {
      EXPECT_EQ(m.data.payload, "z");
      EXPECT_EQ(m.attributes.at("mqtt_qos"), "0");
    } else {
      EXPECT_EQ(m.data.payload, "o");
      EXPECT_EQ(m.attributes.at("mqtt_qos"), "1");
    }
    m.Ack();
  }
  StopConsumer(*consumer);
}

TEST(MqttConsumerTest, OneMebibytePayload) {
  const std::string topic = UniqueTopic("big");
  auto consumer = StartConsumer(ConfigFor({{.name = "big", .topic = topic}}));
  ASSERT_NE(consumer, nullptr);
  std::string payload(1 << 20, '\0');
  std::mt19937 rng(42);
  for (char& c : payload) c = static_cast<char>(rng());
  TestPublisher pub;
  pub.Publish(topic, payload);
  auto got = PopN(consumer->Messages(), 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].data.payload.size(), payload.size());
  EXPECT_TRUE(got[0].data.payload == payload);
  got[0].Ack();
  StopConsumer(*consumer);
}

TEST(MqttConsumerTest, NackRedeliversTheSameMessage) {
  const std::string topic = UniqueTopic("nack");
  auto consumer = StartConsumer(ConfigFor({{.name = "r", .topic = topic}}));
  ASSERT_NE(consumer, nullptr);
  TestPublisher pub;
  pub.Publish(topic, "again");
  auto first = PopN(consumer->Messages(), 1);
  ASSERT_EQ(first.size(), 1u);
  const std::string id = first[0].data.id;
  first[0].Nack();
  auto second = PopN(consumer->Messages(), 1);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].data.id, id);
  EXPECT_EQ(second[0].data.payload, "again");
  EXPECT_EQ(second[0].attributes.at("route_name"), "r");
  EXPECT_EQ(second[0].delivery_attempt, 2);
  second[0].Ack();
  StopConsumer(*consumer);
  auto stats = consumer->stats();
  EXPECT_EQ(stats.nacked, 1u);
  EXPECT_EQ(stats.redelivered, 1u);
  EXPECT_EQ(stats.acked, 1u);
  EXPECT_EQ(stats.lost, 0u);
}

// With the installed Paho the PUBACK has already gone out, so a message still unsettled when
// the consumer stops cannot come back from the broker; it must be reported, not vanish.
TEST(MqttConsumerTest, MessageNackedAfterStopIsReportedLost) {
  const std::string topic = UniqueTopic("lost");
  auto consumer = StartConsumer(ConfigFor({{.name = "r", .topic = topic}}));
  ASSERT_NE(consumer, nullptr);
  TestPublisher pub;
  pub.Publish(topic, "in flight");
  auto got = PopN(consumer->Messages(), 1);
  ASSERT_EQ(got.size(), 1u);
  StopConsumer(*consumer);
  got[0].Nack();
  EXPECT_EQ(consumer->stats().lost, 1u);
  EXPECT_EQ(consumer->stats().redelivered, 0u);
}

TEST(MqttConsumerTest, FullChannelStopsReading) {
  const std::string topic = UniqueTopic("backpressure");
  MQTTClientConfig config = ConfigFor({{.name = "r", .topic = topic}});
  config.channel_capacity = 2;
  auto consumer = StartConsumer(config);
  ASSERT_NE(consumer, nullptr);
  TestPublisher pub;
  std::vector<std::string> lines;
  for (int i = 0; i < 10; ++i) lines.push_back(std::to_string(i));
  pub.PublishLines(topic, lines);
  ASSERT_TRUE(dataflow::testing::WaitFor([&] { return consumer->Messages().size() == 2; },
                                         std::chrono::seconds(15)));
  // Two in the channel and at most one held by the blocked receive thread.
  EXPECT_LE(consumer->stats().received, 3u);
  auto got = PopN(consumer->Messages(), 10);
  ASSERT_EQ(got.size(), 10u);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(got[i].data.payload, std::to_string(i));  // one session keeps QoS 1 order
    got[i].Ack();
  }
  StopConsumer(*consumer);
}

TEST(MqttConsumerTest, SharedSubscriptionSplitsTheStream) {
  const std::string topic = UniqueTopic("shared");
  const std::string filter = "$share/ingest/" + topic;
  auto a = StartConsumer(ConfigFor({{.name = "s", .topic = filter}}));
  auto b = StartConsumer(ConfigFor({{.name = "s", .topic = filter}}));
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  TestPublisher pub;
  constexpr int kCount = 40;
  std::vector<std::string> lines;
  for (int i = 0; i < kCount; ++i) lines.push_back(std::to_string(i));
  pub.PublishLines(topic, lines);
  std::set<std::string> seen;
  std::size_t from_a = 0;
  std::size_t from_b = 0;
  ASSERT_TRUE(dataflow::testing::WaitFor(
      [&] {
        for (auto* c : {a.get(), b.get()}) {
          std::vector<Message> batch;
          c->Messages().PopBatchUntil(batch, kCount, std::chrono::steady_clock::now());
          (c == a.get() ? from_a : from_b) += batch.size();
          for (Message& m : batch) {
            EXPECT_EQ(m.attributes.at("route_name"), "s");
            seen.insert(m.data.payload);
            m.Ack();
          }
        }
        return seen.size() == kCount;
      },
      std::chrono::seconds(15)));
  EXPECT_EQ(from_a + from_b, static_cast<std::size_t>(kCount));  // each message once
  EXPECT_GT(from_a, 0u);
  EXPECT_GT(from_b, 0u);
  StopConsumer(*a);
  StopConsumer(*b);
}

TEST(MqttConsumerTest, BadConfigIsAnError) {
  auto bad = MqttConsumer::Create(MQTTClientConfig{.broker_url = "tcp://127.0.0.1:1"});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("topic_mappings"));

  auto bad_filter = MqttConsumer::Create(ConfigFor({{.name = "x", .topic = "a/#/b"}}));
  ASSERT_FALSE(bad_filter.ok());
  EXPECT_THAT(std::string(bad_filter.status().message()), HasSubstr("topic_mappings[0].topic"));
}

TEST(MqttConsumerTest, UnreachableBrokerFailsStart) {
  MQTTClientConfig config = ConfigFor({{.name = "x", .topic = "t"}});
  config.broker_url = "tcp://127.0.0.1:" + std::to_string(dataflow::testing::FreeTcpPort());
  config.connect_timeout = std::chrono::seconds(2);
  auto consumer = MqttConsumer::Create(config);
  ASSERT_TRUE(consumer.ok()) << consumer.status();
  absl::Status started = (*consumer)->Start();
  EXPECT_FALSE(started.ok());
  EXPECT_FALSE((*consumer)->IsConnected());
  auto done = (*consumer)->Done();
  ASSERT_EQ(done.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  EXPECT_FALSE(done.get().ok());
  EXPECT_TRUE((*consumer)->Messages().closed());
  // A second Start is refused, not a crash.
  EXPECT_EQ((*consumer)->Start().code(), absl::StatusCode::kFailedPrecondition);
}

// The restart tests come last: they bounce the shared broker.
TEST(MqttConsumerTest, ZReconnectsAndResubscribesAfterBrokerKilled) {
  const std::string topic = UniqueTopic("reconnect");
  auto consumer = StartConsumer(ConfigFor({{.name = "r", .topic = topic}}));
  ASSERT_NE(consumer, nullptr);
  Broker()->process().Kill();
  ASSERT_TRUE(dataflow::testing::WaitFor([&] { return !consumer->IsConnected(); },
                                         std::chrono::seconds(15)));
  ASSERT_TRUE(Broker()->process().Restart().ok());
  ASSERT_TRUE(dataflow::testing::WaitFor([&] { return consumer->IsConnected(); },
                                         std::chrono::seconds(30)));
  EXPECT_GE(consumer->stats().connects, 2u);
  // The broker lost the clean session: the message arrives only once the consumer has
  // subscribed again, so keep publishing until one does.
  TestPublisher pub;
  std::vector<Message> got;
  int sent = 0;
  ASSERT_TRUE(dataflow::testing::WaitFor(
      [&] {
        pub.Publish(topic, "after-restart-" + std::to_string(sent++));
        got = PopN(consumer->Messages(), 1, std::chrono::milliseconds(100));
        return !got.empty();
      },
      std::chrono::seconds(20)));
  EXPECT_THAT(got[0].data.payload, HasSubstr("after-restart-"));
  EXPECT_EQ(got[0].attributes.at("route_name"), "r");
  got[0].Ack();
  StopConsumer(*consumer);
}

TEST(MqttConsumerTest, ZPersistentSessionKeepsMessagesPublishedWhileAway) {
  const std::string topic = UniqueTopic("persistent");
  MQTTClientConfig config = ConfigFor({{.name = "p", .topic = topic, .qos = 1}});
  config.client_id = "persistent-" + std::to_string(::getpid());
  config.clean_session = false;
  {
    auto first = StartConsumer(config);  // creates the session and its subscription
    ASSERT_NE(first, nullptr);
    StopConsumer(*first);
  }
  TestPublisher pub;
  pub.PublishLines(
      topic, {"while-away-0", "while-away-1", "while-away-2", "while-away-3", "while-away-4"});
  // A graceful restart: Mosquitto saves the session and its queue to disk.
  Broker()->process().Stop();
  ASSERT_TRUE(Broker()->process().Restart().ok());
  auto second = StartConsumer(config);
  ASSERT_NE(second, nullptr);
  auto got = PopN(second->Messages(), 5);
  ASSERT_EQ(got.size(), 5u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(got[i].data.payload, "while-away-" + std::to_string(i));
    EXPECT_EQ(got[i].attributes.at("route_name"), "p");
    got[i].Ack();
  }
  StopConsumer(*second);
}

}  // namespace
}  // namespace dataflow::mqttconverter

// One broker for the whole binary (with persistence, for the persistent-session test).
[[maybe_unused]] ::testing::Environment* const kBroker = ::testing::AddGlobalTestEnvironment(
    new dataflow::mqttconverter::testing::MosquittoEnvironment({.persistence = true}));

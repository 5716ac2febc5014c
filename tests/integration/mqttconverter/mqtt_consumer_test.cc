// MqttConsumer against a real Mosquitto broker.
#include "dataflow/mqttconverter/mqtt_consumer.h"

#include <absl/strings/str_cat.h>
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <random>
#include <set>
#include <thread>

#include "mqtt_test_util.h"
#include "scripted_broker.h"

namespace dataflow::mqttconverter {
namespace {

using messagepipeline::Message;
using testing::Broker;
using ::testing::HasSubstr;
using testing::PopN;
using testing::ScriptedBroker;
using testing::TestPublisher;
using testing::UniqueTopic;

MqttClientOptions ConfigFor(std::vector<TopicMapping> mappings) {
  return MqttClientOptions{.broker_url = Broker()->url(),
                           .connect_timeout = std::chrono::seconds(5),
                           .topic_mappings = std::move(mappings)};
}

std::unique_ptr<MqttConsumer> StartConsumer(MqttClientOptions config) {
  auto consumer = MqttConsumer::Create(std::move(config));
  EXPECT_TRUE(consumer.ok()) << consumer.status();
  if (!consumer.ok()) return nullptr;
  absl::Status started = (*consumer)->Start();
  EXPECT_TRUE(started.ok()) << started;
  if (!started.ok()) return nullptr;
  return std::move(*consumer);
}

// Stop waits up to `wait` for the messages the test still holds to be settled.
void StopConsumer(MqttConsumer& consumer,
                  std::chrono::milliseconds wait = std::chrono::seconds(10)) {
  EXPECT_TRUE(consumer.Stop(std::chrono::steady_clock::now() + wait).ok());
}

// Pops until a message with payload `marker` arrives; returns the ones before it (acked
// marker included last). The marker, published after a consumer started, shows that the
// broker has sent everything it was going to send before it.
std::vector<Message> PopUntilMarker(MqttConsumer& consumer, const std::string& marker) {
  std::vector<Message> got;
  EXPECT_TRUE(dataflow::testing::WaitFor(
      [&] {
        for (Message& m : PopN(consumer.Messages(), 1, std::chrono::milliseconds(100))) {
          got.push_back(std::move(m));
        }
        return !got.empty() && got.back().data.payload == marker;
      },
      std::chrono::seconds(15)))
      << "marker " << marker << " never arrived";
  return got;
}

std::vector<std::string> Payloads(const std::vector<Message>& messages) {
  std::vector<std::string> out;
  for (const Message& m : messages) out.push_back(m.data.payload);
  return out;
}

// A persistent session with a fixed client id, unique to this test.
MqttClientOptions PersistentConfig(const std::string& topic, int qos = 1) {
  MqttClientOptions config = ConfigFor({{.name = "p", .topic = topic, .qos = qos}});
  config.client_id = topic;
  config.clean_session = false;
  return config;
}

// Starts a new connection of `config`'s session and returns, acked, what the broker still held
// for it: everything that arrives before a marker published after the start (marker last).
std::vector<Message> HeldByBroker(const MqttClientOptions& config, int marker_qos = 1) {
  auto b = StartConsumer(config);
  if (b == nullptr) return {};
  TestPublisher().Publish(config.topic_mappings[0].topic, "marker", marker_qos);
  auto got = PopUntilMarker(*b, "marker");
  for (Message& m : got) m.Ack();
  StopConsumer(*b);
  EXPECT_EQ(b->stats().left_with_broker, 0u);
  return got;
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
  // A second copy of "a" may still be on its way; take it too so Stop need not wait for it.
  for (Message& m : PopN(consumer->Messages(), 1, std::chrono::milliseconds(200))) {
    got.push_back(std::move(m));
  }
  for (Message& m : got) {
    EXPECT_EQ(m.attributes.at("route_name"), m.data.payload == "a" ? "specific" : "catch-all")
        << m.attributes.at("mqtt_topic");
    m.Ack();
  }
  StopConsumer(*consumer, std::chrono::milliseconds(500));
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

// Each nack puts the message back after a backoff that grows with its attempt; the attempts count
// the local redeliveries, so the service can dead-letter at its maximum.
TEST(MqttConsumerTest, NackedMessageComesBackAfterABackoffThatGrowsWithTheAttempt) {
  const std::string topic = UniqueTopic("backoff");
  MqttClientOptions config = ConfigFor({{.name = "r", .topic = topic}});
  config.redelivery_min_backoff = std::chrono::milliseconds(20);
  config.redelivery_max_backoff = std::chrono::milliseconds(1000);
  auto consumer = StartConsumer(config);
  ASSERT_NE(consumer, nullptr);
  TestPublisher().Publish(topic, "failing");
  auto got = PopN(consumer->Messages(), 1);
  ASSERT_EQ(got.size(), 1u);
  Message m = std::move(got[0]);
  const std::string id = m.data.id;
  EXPECT_EQ(m.delivery_attempt, 1);
  for (int attempt = 1; attempt <= 5; ++attempt) {
    const auto nacked = std::chrono::steady_clock::now();
    m.Nack();
    got = PopN(consumer->Messages(), 1, std::chrono::seconds(10));
    ASSERT_EQ(got.size(), 1u) << "attempt " << attempt;
    const auto gap = std::chrono::steady_clock::now() - nacked;
    m = std::move(got[0]);
    EXPECT_EQ(m.data.id, id);
    EXPECT_EQ(m.delivery_attempt, attempt + 1);
    // The code's lower bound for a nacked attempt n: min * 2^(n-1), jittered down to half, never
    // below min (20, 20, 40, 80, 160 ms).
    const auto floor = std::max(config.redelivery_min_backoff,
                                config.redelivery_min_backoff * (1 << (attempt - 1)) / 2);
    EXPECT_GE(gap, floor) << "attempt " << attempt;
  }
  m.Ack();
  StopConsumer(*consumer);
  EXPECT_EQ(consumer->stats().nacked, 5u);
  EXPECT_EQ(consumer->stats().redelivered, 5u);
  EXPECT_EQ(consumer->stats().acked, 1u);
}

// A poison QoS 1 message among good ones holds back the PUBACKs of those after it (arrival order)
// until it is settled; the pipeline here nacks it until attempt 3 and then acks it, standing in for
// the service dead-lettering it at max_delivery_attempts. Then every PUBACK must have reached the
// broker: the next connection of the session gets nothing back.
TEST(MqttConsumerTest, PoisonMessageSettledAfterRetriesReleasesTheOthersPubacks) {
  MqttClientOptions config = PersistentConfig(UniqueTopic("poison"));
  config.redelivery_min_backoff = std::chrono::milliseconds(10);
  {
    auto consumer = StartConsumer(config);
    ASSERT_NE(consumer, nullptr);
    TestPublisher().PublishLines(config.topic_mappings[0].topic,
                                 {"g0", "poison", "g1", "g2", "g3"});
    std::vector<int> poison_attempts;
    int good = 0;
    bool settled = false;
    ASSERT_TRUE(dataflow::testing::WaitFor(
        [&] {
          for (Message& m : PopN(consumer->Messages(), 1, std::chrono::milliseconds(100))) {
            if (m.data.payload != "poison") {
              ++good;
              m.Ack();
              continue;
            }
            poison_attempts.push_back(m.delivery_attempt);
            if (m.delivery_attempt < 3) {
              m.Nack();
            } else {
              m.Ack();
              settled = true;
            }
          }
          return settled && good == 4;
        },
        std::chrono::seconds(15)));
    EXPECT_EQ(poison_attempts, (std::vector<int>{1, 2, 3}));
    StopConsumer(*consumer);
    EXPECT_EQ(consumer->stats().left_with_broker, 0u);
    EXPECT_EQ(consumer->stats().acked, 5u);
  }
  EXPECT_EQ(Payloads(HeldByBroker(config)), (std::vector<std::string>{"marker"}));
}

// With a clean session the broker drops a message whose PUBACK was never sent when the
// connection ends, so a message nacked after Stop cannot come back: it is reported lost.
TEST(MqttConsumerTest, MessageNackedAfterStopIsReportedLost) {
  const std::string topic = UniqueTopic("lost");
  auto consumer = StartConsumer(ConfigFor({{.name = "r", .topic = topic}}));
  ASSERT_NE(consumer, nullptr);
  TestPublisher pub;
  pub.Publish(topic, "in flight");
  auto got = PopN(consumer->Messages(), 1);
  ASSERT_EQ(got.size(), 1u);
  StopConsumer(*consumer, std::chrono::milliseconds(200));
  got[0].Nack();
  EXPECT_EQ(consumer->stats().lost, 1u);
  EXPECT_EQ(consumer->stats().redelivered, 0u);
  EXPECT_EQ(consumer->stats().left_with_broker, 0u);
}

// A first connection of `config`'s session receives `lines` (published at `qos`), acks those
// at the indices `ack`, in that order, and is stopped while the pipeline still holds the
// others, which are then settled (nacked) after the connection ended. Returns its stats.
MqttConsumerStats AckSomeAndStop(const MqttClientOptions& config,
                                 const std::vector<std::string>& lines, const std::vector<int>& ack,
                                 int qos = 1) {
  auto a = StartConsumer(config);
  if (a == nullptr) return {};
  TestPublisher().PublishLines(config.topic_mappings[0].topic, lines, qos);
  auto got = PopN(a->Messages(), lines.size());
  EXPECT_EQ(Payloads(got), lines);
  for (int i : ack) got.at(i).Ack();
  StopConsumer(*a, std::chrono::milliseconds(300));
  got.clear();
  return a->stats();
}

// The issue's manual-ack redelivery: a consumer stopped (or crashed) before the pipeline acked
// some QoS 1 messages never sent their PUBACKs, so the broker redelivers exactly those to the
// next connection of the same persistent session, and none of the acked ones.
TEST(MqttConsumerTest, PubackWithheldUntilPipelineAck) {
  const MqttClientOptions config = PersistentConfig(UniqueTopic("withheld"));
  const MqttConsumerStats first = AckSomeAndStop(config, {"m0", "m1", "m2", "m3"}, {0, 1});
  EXPECT_EQ(first.left_with_broker, 2u);
  EXPECT_EQ(first.lost, 0u);
  auto again = HeldByBroker(config);
  EXPECT_EQ(Payloads(again), (std::vector<std::string>{"m2", "m3", "marker"}));
  for (const Message& m : again) {
    if (m.data.payload != "marker") {
      EXPECT_GE(m.delivery_attempt, 2) << m.data.payload;  // resent with DUP
    }
  }
}

// MQTT 3.1.1 sends PUBACKs in the order the PUBLISHes arrived: an acked message whose
// predecessor is still in the pipeline is not released to the broker.
TEST(MqttConsumerTest, PubacksGoOutInArrivalOrder) {
  const MqttClientOptions config = PersistentConfig(UniqueTopic("order"));
  // m1 and m3 are acked first and held; acking m0 releases m0 and m1; m3 waits behind m2.
  const MqttConsumerStats first = AckSomeAndStop(config, {"m0", "m1", "m2", "m3"}, {1, 3, 0});
  EXPECT_EQ(first.left_with_broker, 2u);
  EXPECT_EQ(Payloads(HeldByBroker(config)), (std::vector<std::string>{"m2", "m3", "marker"}));
}

// ack_mode receipt acknowledges on arrival, like mosquitto_sub: nothing comes back, and the
// messages nacked after the connection ended are lost.
TEST(MqttConsumerTest, ReceiptModeDoesNotRedeliver) {
  MqttClientOptions config = PersistentConfig(UniqueTopic("receipt"));
  config.ack_mode = AckMode::kOnReceipt;
  const MqttConsumerStats first = AckSomeAndStop(config, {"r0", "r1"}, {});
  EXPECT_EQ(first.lost, 2u);
  EXPECT_EQ(first.left_with_broker, 0u);
  EXPECT_EQ(Payloads(HeldByBroker(config)), (std::vector<std::string>{"marker"}));
}

// QoS 2: the PUBREC is what the pipeline's ack releases; an unacked message is resent.
TEST(MqttConsumerTest, QosTwoWithheldUntilPipelineAck) {
  const MqttClientOptions config = PersistentConfig(UniqueTopic("qos2"), 2);
  const MqttConsumerStats first = AckSomeAndStop(config, {"e0", "e1"}, {0}, 2);
  EXPECT_EQ(first.left_with_broker, 1u);
  EXPECT_EQ(Payloads(HeldByBroker(config, 2)), (std::vector<std::string>{"e1", "marker"}));
}

// A consumer on `url` (with `tweak` applied to its config) receives `payloads` intact.
void ExpectReceives(const std::string& url, const std::vector<std::string>& payloads,
                    const std::function<void(MqttClientOptions&)>& tweak = {}) {
  const std::string topic = UniqueTopic("transport");
  MqttClientOptions config = ConfigFor({{.name = "t", .topic = topic}});
  config.broker_url = url;
  if (tweak) tweak(config);
  auto consumer = StartConsumer(config);
  ASSERT_NE(consumer, nullptr);
  TestPublisher pub;
  for (const std::string& p : payloads) pub.Publish(topic, p);
  auto got = PopN(consumer->Messages(), payloads.size());
  ASSERT_EQ(got.size(), payloads.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].data.payload.size(), payloads[i].size());
    EXPECT_TRUE(got[i].data.payload == payloads[i]) << i;
    got[i].Ack();
  }
  StopConsumer(*consumer);
  EXPECT_EQ(consumer->stats().acked, payloads.size());
}

std::string RandomBytes(std::size_t n) {
  std::string out(n, '\0');
  std::mt19937 rng(7);
  for (char& c : out) c = static_cast<char>(rng());
  return out;
}

// The broker's certificate names localhost and 127.0.0.1; the host name is checked.
TEST(MqttConsumerTest, TlsVerifiedWithTheBrokersCa) {
  ExpectReceives(absl::StrCat("ssl://localhost:", Broker()->tls_port()), {"over tls"},
                 [](MqttClientOptions& c) { c.ca_cert_file = Broker()->ca_file(); });
}

// tls:// is what Paho (the Go library's MQTT client) calls ssl://: a Go config's URL works.
TEST(MqttConsumerTest, TlsSchemeAsThePahoClientSpellsIt) {
  ExpectReceives(absl::StrCat("tls://localhost:", Broker()->tls_port()), {"over tls://"},
                 [](MqttClientOptions& c) { c.ca_cert_file = Broker()->ca_file(); });
}

TEST(MqttConsumerTest, TlsWithTheWrongCaIsAClearError) {
  MqttClientOptions config = ConfigFor({{.name = "x", .topic = UniqueTopic("tls")}});
  config.broker_url = Broker()->tls_url();
  config.ca_cert_file = Broker()->other_ca_file();
  auto consumer = MqttConsumer::Create(config);
  ASSERT_TRUE(consumer.ok()) << consumer.status();
  absl::Status started = (*consumer)->Start();
  EXPECT_EQ(started.code(), absl::StatusCode::kUnavailable) << started;
  EXPECT_THAT(std::string(started.message()), HasSubstr("certificate verify failed"));
  EXPECT_THAT(std::string(started.message()), HasSubstr(config.broker_url));
}

TEST(MqttConsumerTest, TlsInsecureSkipVerifyAcceptsAnyCertificate) {
  ExpectReceives(Broker()->tls_url(), {"unverified"}, [](MqttClientOptions& c) {
    c.ca_cert_file = Broker()->other_ca_file();
    c.insecure_skip_verify = true;
  });
}

// Through the Node bridge, which fragments every chunk and pings: a 1 MiB payload spans many
// frames, continuation frames included.
TEST(MqttConsumerTest, WebSocketCarriesMessages) {
  ExpectReceives(Broker()->ws_url(), {"over ws", RandomBytes(1 << 20), "after"});
}

TEST(MqttConsumerTest, SecureWebSocketVerifiedWithTheBrokersCa) {
  ExpectReceives(Broker()->wss_url(), {"over wss", RandomBytes(100000)},
                 [](MqttClientOptions& c) { c.ca_cert_file = Broker()->ca_file(); });
}

TEST(MqttConsumerTest, FullChannelStopsReading) {
  const std::string topic = UniqueTopic("backpressure");
  MqttClientOptions config = ConfigFor({{.name = "r", .topic = topic}});
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

// The channel is bounded in bytes too: with max_outstanding_bytes 1 MB and 300 kB messages
// nobody acks, three fit, the reader holds the fourth and stops reading, although the
// channel has room for 1000 messages. Acking frees the budget and the rest flows, in order.
TEST(MqttConsumerTest, UnackedBytesOverMaxOutstandingBytesStopReading) {
  const std::string topic = UniqueTopic("bytes");
  MqttClientOptions config = ConfigFor({{.name = "r", .topic = topic}});
  config.max_outstanding_bytes = 1'000'000;
  auto consumer = StartConsumer(config);
  ASSERT_NE(consumer, nullptr);
  TestPublisher pub;
  constexpr int kMessages = 8;
  for (int i = 0; i < kMessages; ++i) pub.Publish(topic, std::string(300'000, 'a' + i));
  ASSERT_TRUE(dataflow::testing::WaitFor(
      [&] { return consumer->Messages().size() == 3 && consumer->stats().received == 4; },
      std::chrono::seconds(15)));
  EXPECT_EQ(consumer->stats().outstanding_bytes, 900'000u);
  // Without the byte bound every message would be in the channel by now.
  EXPECT_FALSE(dataflow::testing::WaitFor([&] { return consumer->Messages().size() > 3; },
                                          std::chrono::seconds(1)));
  for (int i = 0; i < kMessages; ++i) {
    auto got = PopN(consumer->Messages(), 1);
    ASSERT_EQ(got.size(), 1u) << i;
    EXPECT_TRUE(got[0].data.payload == std::string(300'000, 'a' + i)) << i;
    got[0].Ack();
  }
  EXPECT_EQ(consumer->stats().outstanding_bytes, 0u);
  StopConsumer(*consumer);
}

// Against Mosquitto, over TCP and over WebSocket: a message over max_packet_bytes is skipped
// and PUBACKed (the persistent session holds nothing for the next connection), the one after
// it arrives. Over WebSocket the frame carrying it passes the transport's limits, so the
// MQTT layer can skip it instead of the connection failing (and the broker resending it).
void ExpectOversizeSkippedAndAcknowledged(const std::string& url) {
  MqttClientOptions config = PersistentConfig(UniqueTopic("oversize"));
  config.broker_url = url;
  config.max_packet_bytes = 64 * 1024;
  const std::string topic = config.topic_mappings[0].topic;
  {
    auto consumer = StartConsumer(config);
    ASSERT_NE(consumer, nullptr);
    TestPublisher pub;
    pub.Publish(topic, RandomBytes(1 << 20));
    pub.Publish(topic, "after");
    auto got = PopUntilMarker(*consumer, "after");
    EXPECT_EQ(Payloads(got), std::vector<std::string>{"after"});
    for (Message& m : got) m.Ack();
    EXPECT_EQ(consumer->stats().oversize_skipped, 1u);
    EXPECT_EQ(consumer->stats().connects, 1u);
    StopConsumer(*consumer);
  }
  EXPECT_EQ(Payloads(HeldByBroker(config)), std::vector<std::string>{"marker"});
}

TEST(MqttConsumerTest, OversizePublishIsSkippedAndAcknowledged) {
  ExpectOversizeSkippedAndAcknowledged(Broker()->url());
}

TEST(MqttConsumerTest, OversizePublishOverWebSocketIsSkippedAndAcknowledged) {
  ExpectOversizeSkippedAndAcknowledged(Broker()->ws_url());
}

// A persistent session's backlog arrives right after CONNACK, possibly before the SUBACK;
// Start() must not wait for a SUBACK stuck behind a channel only the pipeline can drain.
TEST(MqttConsumerTest, StartsWhileASessionBacklogFillsTheChannel) {
  MqttClientOptions config = PersistentConfig(UniqueTopic("backlog"));
  config.channel_capacity = 2;
  {
    auto first = StartConsumer(config);  // creates the session and its subscription
    ASSERT_NE(first, nullptr);
    StopConsumer(*first);
  }
  std::vector<std::string> lines;
  for (int i = 0; i < 20; ++i) lines.push_back("b" + std::to_string(i));
  TestPublisher().PublishLines(config.topic_mappings[0].topic, lines);
  auto second = StartConsumer(config);
  ASSERT_NE(second, nullptr);
  auto got = PopN(second->Messages(), lines.size());
  EXPECT_EQ(Payloads(got), lines);
  for (Message& m : got) m.Ack();
  StopConsumer(*second);
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
  auto bad = MqttConsumer::Create(MqttClientOptions{.broker_url = "tcp://127.0.0.1:1"});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("topic_mappings"));

  auto bad_filter = MqttConsumer::Create(ConfigFor({{.name = "x", .topic = "a/#/b"}}));
  ASSERT_FALSE(bad_filter.ok());
  EXPECT_THAT(std::string(bad_filter.status().message()), HasSubstr("topic_mappings[0].topic"));
}

TEST(MqttConsumerTest, UnreachableBrokerFailsStart) {
  MqttClientOptions config = ConfigFor({{.name = "x", .topic = "t"}});
  config.broker_url = "tcp://127.0.0.1:" + std::to_string(dataflow::testing::FreeTcpPort());
  config.connect_timeout = std::chrono::seconds(2);
  auto consumer = MqttConsumer::Create(config);
  ASSERT_TRUE(consumer.ok()) << consumer.status();
  absl::Status started = (*consumer)->Start();
  EXPECT_EQ(started.code(), absl::StatusCode::kUnavailable) << started;
  EXPECT_THAT(std::string(started.message()), HasSubstr(config.broker_url));
  EXPECT_FALSE((*consumer)->IsConnected());
  auto done = (*consumer)->Done();
  ASSERT_EQ(done.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  EXPECT_FALSE(done.get().ok());
  EXPECT_TRUE((*consumer)->Messages().closed());
  // A second Start is refused, not a crash.
  EXPECT_EQ((*consumer)->Start().code(), absl::StatusCode::kFailedPrecondition);
}

// A CONNACK refusal becomes an error that says who refused and why.
TEST(MqttConsumerTest, RefusedConnectionIsAClearError) {
  auto strict = dataflow::testing::MosquittoServer::Start(
      {.extra_config = "allow_anonymous false\npassword_file /dev/null\n"});
  ASSERT_TRUE(strict.ok()) << strict.status();
  MqttClientOptions config = ConfigFor({{.name = "x", .topic = "t"}});
  config.broker_url = (*strict)->url();
  config.username = "nobody";
  config.password = "wrong";
  auto consumer = MqttConsumer::Create(config);
  ASSERT_TRUE(consumer.ok()) << consumer.status();
  absl::Status started = (*consumer)->Start();
  EXPECT_EQ(started.code(), absl::StatusCode::kUnavailable) << started;
  EXPECT_THAT(std::string(started.message()),
              HasSubstr("MQTT broker " + config.broker_url + " refused the connection: "));
  EXPECT_THAT(
      std::string(started.message()),
      ::testing::AnyOf(HasSubstr("bad user name or password"), HasSubstr("not authorized")));
}

MqttClientOptions ScriptedConfig(const ScriptedBroker& broker, std::vector<TopicMapping> mappings) {
  return MqttClientOptions{.broker_url = broker.url(),
                           .connect_timeout = std::chrono::seconds(5),
                           .topic_mappings = std::move(mappings)};
}

// Start() against a broker thread running `script`; returns Start's status.
absl::Status StartAgainst(MqttConsumer& consumer, const std::function<void()>& script) {
  std::thread broker_side(script);
  absl::Status started = consumer.Start();
  broker_side.join();
  return started;
}

TEST(MqttConsumerTest, SubackForAnotherPacketIdIsAProtocolError) {
  ScriptedBroker broker;
  auto consumer = MqttConsumer::Create(ScriptedConfig(broker, {{.name = "a", .topic = "a/#"}}));
  ASSERT_TRUE(consumer.ok()) << consumer.status();
  const absl::Status started = StartAgainst(**consumer, [&] {
    std::uint16_t id = 0;
    std::size_t filters = 0;
    ASSERT_TRUE(broker.AcceptAndConnack());
    ASSERT_TRUE(broker.ReadSubscribe(id, filters));
    EXPECT_TRUE(broker.SendSuback(static_cast<std::uint16_t>(id + 1), {1}));
  });
  EXPECT_EQ(started.code(), absl::StatusCode::kUnavailable) << started;
  EXPECT_THAT(std::string(started.message()), HasSubstr("SUBACK for packet id"));
  EXPECT_THAT(std::string(started.message()), HasSubstr(broker.url()));
  EXPECT_FALSE((*consumer)->IsConnected());
}

TEST(MqttConsumerTest, SubackWithAReturnCodePerFilterOrItIsAProtocolError) {
  ScriptedBroker broker;
  auto consumer = MqttConsumer::Create(
      ScriptedConfig(broker, {{.name = "a", .topic = "a/#"}, {.name = "b", .topic = "b/#"}}));
  ASSERT_TRUE(consumer.ok()) << consumer.status();
  const absl::Status started = StartAgainst(**consumer, [&] {
    std::uint16_t id = 0;
    std::size_t filters = 0;
    ASSERT_TRUE(broker.AcceptAndConnack());
    ASSERT_TRUE(broker.ReadSubscribe(id, filters));
    EXPECT_EQ(filters, 2u);
    EXPECT_TRUE(broker.SendSuback(id, {1}));  // one code for two filters
  });
  EXPECT_EQ(started.code(), absl::StatusCode::kUnavailable) << started;
  EXPECT_THAT(std::string(started.message()), HasSubstr("1 return codes for 2 topic filters"));
}

// The broker grants the subscription, drops the connection, then refuses the SUBSCRIBE on every
// reconnect: the consumer must not look ready while nothing can flow, and gives up after
// max_subscribe_refusals refusals in a row, saying which broker refused which filter.
TEST(MqttConsumerTest, SubscriptionRefusedAfterAReconnectFailsTheConnectionThenTheConsumer) {
  ScriptedBroker broker;
  MqttClientOptions config = ScriptedConfig(broker, {{.name = "r", .topic = "refused/#"}});
  config.max_subscribe_refusals = 3;
  config.reconnect_max_backoff = config.reconnect_min_backoff;  // 1 s between attempts
  auto consumer = MqttConsumer::Create(config);
  ASSERT_TRUE(consumer.ok()) << consumer.status();
  std::atomic<int> refused{0};
  std::jthread broker_side([&] {  // joined also when an assertion returns early
    if (!broker.Handshake()) return;
    // Until the test has seen the granted subscription.
    if (!dataflow::testing::WaitFor([&] { return refused.load() < 0; }, std::chrono::seconds(10)))
      return;
    refused.store(0);
    broker.Drop();
    for (int i = 0; i < config.max_subscribe_refusals; ++i) {
      std::uint16_t id = 0;
      std::size_t filters = 0;
      if (!broker.AcceptAndConnack() || !broker.ReadSubscribe(id, filters)) return;
      if (!broker.SendSuback(id, std::vector<std::uint8_t>(filters, 0x80))) return;
      refused.fetch_add(1);
      // The client, not this broker, must end a connection whose subscription was refused.
      if (!broker.WaitForClose(std::chrono::seconds(5))) return;
    }
  });
  const absl::Status started = (*consumer)->Start();
  ASSERT_TRUE(started.ok()) << started;
  EXPECT_TRUE((*consumer)->IsConnected());
  refused.store(-1);  // lets the broker drop the connection
  ASSERT_TRUE(
      dataflow::testing::WaitFor([&] { return refused.load() >= 1; }, std::chrono::seconds(10)));
  EXPECT_TRUE(dataflow::testing::WaitFor([&] { return !(*consumer)->IsConnected(); },
                                         std::chrono::seconds(2)));
  auto done = (*consumer)->Done();
  ASSERT_EQ(done.wait_for(std::chrono::seconds(15)), std::future_status::ready);
  broker_side.join();
  const absl::Status failed = done.get();
  EXPECT_EQ(failed.code(), absl::StatusCode::kPermissionDenied) << failed;
  EXPECT_THAT(std::string(failed.message()), HasSubstr(broker.url()));
  EXPECT_THAT(std::string(failed.message()), HasSubstr("'refused/#'"));
  EXPECT_THAT(std::string(failed.message()), HasSubstr("3 times in a row"));
  EXPECT_EQ(refused.load(), 3);
  EXPECT_FALSE((*consumer)->IsConnected());
  EXPECT_TRUE((*consumer)->Messages().closed());
  EXPECT_EQ((*consumer)->stats().connects,
            4u);  // no further attempt after giving up
  EXPECT_TRUE((*consumer)->Stop(std::chrono::steady_clock::now() + std::chrono::seconds(1)).ok());
}

// A broker that stops reading (its receive buffer and our send buffer full: the SUBSCRIBE of
// many long filters is more than both hold) while it keeps sending QoS 1 messages. Acking them
// must not block, and Stop must return near its deadline and say what it could not acknowledge.
constexpr int kStalledMessages = 20;

MqttClientOptions StalledConfig(const ScriptedBroker& broker) {
  // Twice what the kernel may buffer for our socket (tcp_wmem's maximum; 4 MiB by default).
  long wmem_max = 4 << 20;
  if (std::FILE* f = std::fopen("/proc/sys/net/ipv4/tcp_wmem", "r")) {
    long lo = 0, def = 0;
    if (std::fscanf(f, "%ld %ld %ld", &lo, &def, &wmem_max) != 3) wmem_max = 4 << 20;
    std::fclose(f);
  }
  const long filters = std::max(256L, 2 * wmem_max / 65000 + 1);
  std::vector<TopicMapping> mappings;
  for (long i = 0; i < filters; ++i) {
    mappings.push_back({.name = "m" + std::to_string(i),
                        .topic = "stalled/" + std::to_string(i) + "/" + std::string(65000, 'x'),
                        .qos = 1});
  }
  mappings.push_back({.name = "s", .topic = "stalled/+", .qos = 1});
  MqttClientOptions config = ScriptedConfig(broker, std::move(mappings));
  config.client_id = "stalled";
  config.clean_session = false;
  return config;
}

// Accepts, answers CONNECT, never reads again, and pushes kStalledMessages QoS 1 messages (a
// resumed session delivers before the SUBACK, so Start returns at the first).
void StallAndPublish(ScriptedBroker& broker) {
  ASSERT_TRUE(broker.AcceptAndConnack());
  for (int i = 1; i <= kStalledMessages; ++i) {
    ASSERT_TRUE(
        broker.SendPublish("stalled/a", "m" + std::to_string(i), 1, static_cast<std::uint16_t>(i)));
  }
}

TEST(MqttConsumerTest, StopReturnsByItsDeadlineWhenTheBrokerStopsReading) {
  ScriptedBroker broker(/*receive_buffer=*/4096);
  auto consumer = MqttConsumer::Create(StalledConfig(broker));
  ASSERT_TRUE(consumer.ok()) << consumer.status();
  const absl::Status started = StartAgainst(**consumer, [&] { StallAndPublish(broker); });
  ASSERT_TRUE(started.ok()) << started;
  auto got = PopN((*consumer)->Messages(), kStalledMessages);
  ASSERT_EQ(got.size(), static_cast<std::size_t>(kStalledMessages));
  for (Message& m : got) m.Ack();  // queued; would block on the socket if written here
  EXPECT_EQ((*consumer)->stats().acked, static_cast<std::uint64_t>(kStalledMessages));
  const auto begin = std::chrono::steady_clock::now();
  const absl::Status stopped = (*consumer)->Stop(begin + std::chrono::seconds(1));
  EXPECT_LT(std::chrono::steady_clock::now() - begin, std::chrono::seconds(2));
  EXPECT_EQ(stopped.code(), absl::StatusCode::kDeadlineExceeded) << stopped;
  EXPECT_THAT(std::string(stopped.message()),
              HasSubstr(absl::StrCat(kStalledMessages, " acknowledgements")));
  EXPECT_THAT(std::string(stopped.message()), HasSubstr(broker.url()));
  EXPECT_EQ((*consumer)->stats().left_with_broker, static_cast<std::uint64_t>(kStalledMessages));
}

TEST(MqttConsumerTest, AWriteTheBrokerDoesNotTakeWithinWriteTimeoutFailsTheConnection) {
  ScriptedBroker broker(/*receive_buffer=*/4096);
  MqttClientOptions config = StalledConfig(broker);
  config.write_timeout = std::chrono::milliseconds(500);
  auto consumer = MqttConsumer::Create(config);
  ASSERT_TRUE(consumer.ok()) << consumer.status();
  const absl::Status started = StartAgainst(**consumer, [&] { StallAndPublish(broker); });
  ASSERT_TRUE(started.ok()) << started;
  auto got = PopN((*consumer)->Messages(), kStalledMessages);
  ASSERT_EQ(got.size(), static_cast<std::size_t>(kStalledMessages));
  for (Message& m : got) m.Ack();
  // The stalled SUBSCRIBE fails the connection; the acks queued behind it stay with the broker's
  // session.
  EXPECT_TRUE(dataflow::testing::WaitFor(
      [&] { return (*consumer)->stats().left_with_broker == kStalledMessages; },
      std::chrono::seconds(10)));
  EXPECT_FALSE((*consumer)->IsConnected());
  const auto begin = std::chrono::steady_clock::now();
  (*consumer)->Stop(begin + std::chrono::seconds(1)).IgnoreError();
  EXPECT_LT(std::chrono::steady_clock::now() - begin, std::chrono::seconds(2));
}

TEST(MqttConsumerTest, KeepAlivePingsGoOutWhileTheReaderIsBlockedOnAFullChannel) {
  ScriptedBroker broker;
  MqttClientOptions config{.broker_url = broker.url(),
                           .keep_alive = std::chrono::seconds(1),
                           .connect_timeout = std::chrono::seconds(5),
                           .topic_mappings = {{.name = "p", .topic = "ping/#", .qos = 0}},
                           .channel_capacity = 1};
  auto consumer = MqttConsumer::Create(config);
  ASSERT_TRUE(consumer.ok()) << consumer.status();
  bool handshake = false;
  const absl::Status started = StartAgainst(**consumer, [&] { handshake = broker.Handshake(); });
  ASSERT_TRUE(handshake);
  ASSERT_TRUE(started.ok()) << started;
  // Nobody pops: the first message fills the channel and the reader blocks on the second.
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(broker.SendPublish("ping/a", "m" + std::to_string(i)));
  ASSERT_TRUE(dataflow::testing::WaitFor([&] { return (*consumer)->Messages().size() == 1; },
                                         std::chrono::seconds(5)));
  // keep_alive 1 s: a ping whenever nothing was written for 0.5 s, and no reconnect although
  // the reader, blocked, cannot see the PINGRESPs this broker never sends.
  EXPECT_GE(broker.CountPingreqs(std::chrono::milliseconds(3000)), 3);
  EXPECT_TRUE((*consumer)->IsConnected());
  EXPECT_EQ((*consumer)->stats().connects, 1u);
  for (Message& m : PopN((*consumer)->Messages(), 3, std::chrono::seconds(5))) m.Ack();
  StopConsumer(**consumer, std::chrono::seconds(2));
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
  // Later publishes may still arrive; the test does not take them.
  StopConsumer(*consumer, std::chrono::milliseconds(500));
}

TEST(MqttConsumerTest, ZPersistentSessionKeepsMessagesPublishedWhileAway) {
  const std::string topic = UniqueTopic("persistent");
  MqttClientOptions config = ConfigFor({{.name = "p", .topic = topic, .qos = 1}});
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

// One broker for the whole binary: persistence for the persistent-session tests, TLS and
// WebSocket listeners for the transport tests.
[[maybe_unused]] ::testing::Environment* const kBroker =
    ::testing::AddGlobalTestEnvironment(new dataflow::mqttconverter::testing::MosquittoEnvironment(
        {.persistence = true, .tls = true, .websocket = true}));

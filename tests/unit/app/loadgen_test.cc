// The load generator: reading payloads (their sentAt is what the demo's benchmark measures
// latency by; the readings table stores it: bigquery_schema_test), a real MQTT run against
// Mosquitto, and the command line.
#include "loadgen.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <vector>

#include "child_process.h"
#include "config.h"
#include "dataflow/messagepipeline/errors.h"
#include "dataflow/messagepipeline/message.h"
#include "dataflow/mqttconverter/mqtt_consumer.h"
#include "dataflow_testing/mosquitto_server.h"
#include "demo.h"

namespace dataflow::app {
namespace {

namespace mp = messagepipeline;
using ::testing::HasSubstr;
using SystemClock = std::chrono::system_clock;

testing::MosquittoServer*& Broker() {
  static testing::MosquittoServer* broker = nullptr;
  return broker;
}

class MosquittoEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    auto server = testing::MosquittoServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    Broker() = server_.get();
  }
  void TearDown() override {
    Broker() = nullptr;
    server_.reset();
  }

 private:
  std::unique_ptr<testing::MosquittoServer> server_;
};

[[maybe_unused]] const auto* const kEnvironment =
    ::testing::AddGlobalTestEnvironment(new MosquittoEnvironment);

// A topic prefix no other test (or earlier run on the same broker) uses.
std::string UniqueTopic(const std::string& base) {
  static int n = 0;
  return "loadgen-test/" + base + "-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
}

SystemClock::time_point AtMicros(std::int64_t micros) {
  return SystemClock::time_point(std::chrono::microseconds(micros));
}

// --- payloads ---

TEST(ReadingGeneratorTest, PayloadIsTheDocumentedReadingJson) {
  ReadingGenerator generator({.devices = 3, .count = 6});
  const auto sent = AtMicros(1714564800123456);  // 2024-05-01T12:00:00.123456Z
  for (int n = 0; n < 6; ++n) {
    const ReadingGenerator::Reading r = generator.Next(sent);
    SCOPED_TRACE(r.payload);
    EXPECT_EQ(r.device, n % 3);
    EXPECT_EQ(r.device_id, "device-" + std::to_string(n % 3));
    EXPECT_EQ(r.seq, n / 3);
    const auto body = nlohmann::json::parse(r.payload, nullptr, false);
    ASSERT_TRUE(body.is_object());
    EXPECT_EQ(body.size(), 5u);
    EXPECT_EQ(body.value("deviceId", ""), r.device_id);
    ASSERT_TRUE(body["temperature"].is_number());
    ASSERT_TRUE(body["humidity"].is_number());
    EXPECT_GE(body["humidity"].get<double>(), 30);
    EXPECT_LE(body["humidity"].get<double>(), 70);
    EXPECT_EQ(body["seq"], r.seq);
    EXPECT_EQ(body["sentAt"], "2024-05-01T12:00:00.123456Z");
    // The documented field order.
    EXPECT_THAT(r.payload, ::testing::StartsWith("{\"deviceId\":"));
    EXPECT_LT(r.payload.find("\"temperature\""), r.payload.find("\"humidity\""));
    EXPECT_LT(r.payload.find("\"seq\""), r.payload.find("\"sentAt\""));
  }
}

TEST(ReadingGeneratorTest, SentAtIsRfc3339WithMicrosecondsAndParses) {
  for (const auto t : {AtMicros(0), AtMicros(1714564800000000), SystemClock::now()}) {
    const std::string text = FormatSentAt(t);
    SCOPED_TRACE(text);
    EXPECT_TRUE(
        std::regex_match(text, std::regex(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z)")));
    auto parsed = mp::ParseTimestamp(text);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, std::chrono::floor<std::chrono::microseconds>(t));
  }
}

TEST(ReadingGeneratorTest, PadsToExactlyThePayloadSize) {
  const auto sent = AtMicros(1714564800123456);
  const std::size_t unpadded = ReadingGenerator({.devices = 1}).Next(sent).payload.size();
  // Room for a "pad" field, too little room for one (whitespace then), exactly no room.
  for (const std::size_t size :
       {std::size_t{512}, unpadded + 40, unpadded + 9, unpadded + 3, unpadded + 1, unpadded}) {
    SCOPED_TRACE(size);
    const std::string payload =
        ReadingGenerator({.devices = 1, .payload_size = size}).Next(sent).payload;
    EXPECT_EQ(payload.size(), size);
    const auto body = nlohmann::json::parse(payload, nullptr, false);
    ASSERT_TRUE(body.is_object()) << payload;
    EXPECT_EQ(body.value("deviceId", ""), "device-0");
    EXPECT_EQ(body.value("sentAt", ""), "2024-05-01T12:00:00.123456Z");
    if (size >= unpadded + 9) {
      EXPECT_TRUE(body["pad"].is_string());
    }
  }
  // A size below the reading's own is not reached by cutting the reading.
  const std::string small = ReadingGenerator({.devices = 1, .payload_size = 10}).Next(sent).payload;
  EXPECT_EQ(small.size(), unpadded);
  EXPECT_FALSE(nlohmann::json::parse(small).contains("pad"));
}

TEST(ReadingGeneratorTest, SameSeedSameReadings) {
  const auto sent = AtMicros(1714564800123456);
  ReadingGenerator a({.devices = 2, .seed = 7});
  ReadingGenerator b({.devices = 2, .seed = 7});
  ReadingGenerator c({.devices = 2, .seed = 8});
  bool any_difference = false;
  for (int i = 0; i < 20; ++i) {
    const std::string pa = a.Next(sent).payload;
    EXPECT_EQ(pa, b.Next(sent).payload);
    any_difference |= pa != c.Next(sent).payload;
  }
  EXPECT_TRUE(any_difference);
}

// `loadgen pubsub` stands in for ingestion: by default it sends what ingestion publishes by
// default (the program's and the library's), the envelope, as the Go ingestion does.
TEST(PubsubLoadgenTest, DefaultFormatIsWhatIngestionPublishesByDefault) {
  EXPECT_EQ(PubsubLoadOptions{}.payload, PubsubPayload::kEnvelope);
  EXPECT_EQ(IngestionConfig{}.payload_format, mqttconverter::PayloadFormat::kEnvelope);
  EXPECT_EQ(mqttconverter::IngestionServiceOptions{}.payload_format,
            mqttconverter::PayloadFormat::kEnvelope);
  // The command's default is the options' (LoadgenCommandTest.ParsesBothTransports).
}

// --- MQTT against a real broker ---

std::unique_ptr<mqttconverter::MqttConsumer> Subscribe(const std::string& filter, int qos) {
  auto consumer = mqttconverter::MqttConsumer::Create(
      {.broker_url = Broker()->url(),
       .connect_timeout = std::chrono::seconds(5),
       .topic_mappings = {{.name = "telemetry", .topic = filter, .qos = qos}},
       // Holds a whole run: Paho serves this process's publisher and subscriber from one
       // thread, so a subscriber blocked on a full channel would stall the publisher.
       .channel_capacity = 10000});
  EXPECT_TRUE(consumer.ok()) << consumer.status();
  if (!consumer.ok()) return nullptr;
  const absl::Status started = (*consumer)->Start();
  EXPECT_TRUE(started.ok()) << started;
  if (!started.ok()) return nullptr;
  return std::move(*consumer);
}

// Takes `n` messages, or fewer if they do not come within a generous bound.
std::vector<mp::Message> Receive(mqttconverter::MqttConsumer& consumer, std::size_t n) {
  std::vector<mp::Message> got;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (got.size() < n && std::chrono::steady_clock::now() < deadline) {
    consumer.Messages().PopBatchUntil(got, n - got.size(), deadline);
  }
  return got;
}

void ExpectReadingsPerTopic(std::vector<mp::Message>& got, const std::string& base, int devices,
                            int per_device) {
  std::map<std::string, std::vector<std::int64_t>> seqs_by_topic;
  for (mp::Message& m : got) {
    const auto body = nlohmann::json::parse(m.data.payload, nullptr, false);
    ASSERT_TRUE(body.is_object()) << m.data.payload;
    const std::string topic = m.attributes.at("mqtt_topic");
    EXPECT_EQ(topic, base + "/" + body.value("deviceId", "?") + "/telemetry");
    seqs_by_topic[topic].push_back(body["seq"].get<std::int64_t>());
    m.Ack();
  }
  ASSERT_EQ(seqs_by_topic.size(), static_cast<std::size_t>(devices));
  for (auto& [topic, seqs] : seqs_by_topic) {
    SCOPED_TRACE(topic);
    std::sort(seqs.begin(), seqs.end());
    std::vector<std::int64_t> expected(per_device);
    for (int i = 0; i < per_device; ++i) expected[i] = i;
    EXPECT_EQ(seqs, expected);
  }
}

TEST(MqttLoadgenTest, EveryReadingArrivesOnItsDevicesTopic) {
  const std::string base = UniqueTopic("qos1");
  auto consumer = Subscribe(base + "/+/telemetry", 1);
  ASSERT_NE(consumer, nullptr);
  std::atomic<std::uint64_t> published{0};
  const absl::Status s =
      PublishReadings(MqttLoadOptions{.load = {.devices = 3, .count = 60, .max_in_flight = 7},
                                      .url = Broker()->url(),
                                      .topic = base + "/{device}/telemetry",
                                      .qos = 1},
                      published);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(published.load(), 60u);
  auto got = Receive(*consumer, 60);
  ASSERT_EQ(got.size(), 60u);
  ExpectReadingsPerTopic(got, base, 3, 20);
  EXPECT_TRUE(consumer->Stop(std::chrono::steady_clock::now() + std::chrono::seconds(10)).ok());
  // Nothing beyond the 60.
  EXPECT_EQ(consumer->stats().received, 60u);
}

// A window far beyond what Paho buffers by default (100 unsent publishes), as fast as the
// broker takes them.
TEST(MqttLoadgenTest, FullWindowAtFullSpeed) {
  const std::string base = UniqueTopic("window");
  auto consumer = Subscribe(base + "/+/telemetry", 1);
  ASSERT_NE(consumer, nullptr);
  std::atomic<std::uint64_t> published{0};
  const absl::Status s =
      PublishReadings(MqttLoadOptions{.load = {.devices = 5, .count = 3000, .max_in_flight = 1000},
                                      .url = Broker()->url(),
                                      .topic = base + "/{device}/telemetry"},
                      published);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(published.load(), 3000u);
  auto got = Receive(*consumer, 3000);
  ASSERT_EQ(got.size(), 3000u);
  ExpectReadingsPerTopic(got, base, 5, 600);
  EXPECT_TRUE(consumer->Stop(std::chrono::steady_clock::now() + std::chrono::seconds(10)).ok());
}

TEST(MqttLoadgenTest, QosZeroAndRateLimitedAndPadded) {
  const std::string base = UniqueTopic("qos0");
  auto consumer = Subscribe(base + "/+/telemetry", 0);
  ASSERT_NE(consumer, nullptr);
  std::atomic<std::uint64_t> published{0};
  const absl::Status s = PublishReadings(
      MqttLoadOptions{.load = {.devices = 2, .count = 20, .rate = 2000, .payload_size = 1024},
                      .url = Broker()->url(),
                      .topic = base + "/{device}/telemetry",
                      .qos = 0},
      published);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(published.load(), 20u);
  auto got = Receive(*consumer, 20);
  ASSERT_EQ(got.size(), 20u);
  for (const mp::Message& m : got) EXPECT_EQ(m.data.payload.size(), 1024u);
  ExpectReadingsPerTopic(got, base, 2, 10);
  EXPECT_TRUE(consumer->Stop(std::chrono::steady_clock::now() + std::chrono::seconds(10)).ok());
}

TEST(MqttLoadgenTest, UnreachableBrokerFailsWithoutHanging) {
  const int port = FreeLoopbackPort();  // nothing listens there
  ASSERT_GT(port, 0);
  std::atomic<std::uint64_t> published{0};
  const absl::Status s = PublishReadings(
      MqttLoadOptions{.load = {.count = 5}, .url = "tcp://127.0.0.1:" + std::to_string(port)},
      published);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_EQ(published.load(), 0u);
}

// --- the command ---

LoadgenOptions MqttCommand(MqttLoadOptions mqtt) {
  LoadgenOptions o;
  o.transport = LoadgenOptions::Transport::kMqtt;
  mqtt.load.progress = false;
  o.mqtt = std::move(mqtt);
  return o;
}

TEST(RunLoadgenTest, ExitCodes) {
  EXPECT_EQ(RunLoadgen(MqttCommand({.load = {.count = 50},
                                    .url = Broker()->url(),
                                    .topic = UniqueTopic("run") + "/{device}"})),
            0);
  const int port = FreeLoopbackPort();
  ASSERT_GT(port, 0);
  EXPECT_EQ(RunLoadgen(MqttCommand(
                {.load = {.count = 3}, .url = "tcp://127.0.0.1:" + std::to_string(port)})),
            1);
}

TEST(RunLoadgenTest, BadOptionsExitTwo) {
  const std::string url = Broker()->url();
  EXPECT_EQ(RunLoadgen(LoadgenOptions{}), 2);  // no transport
  EXPECT_EQ(RunLoadgen(MqttCommand({.load = {.devices = 0}, .url = url})), 2);
  EXPECT_EQ(RunLoadgen(MqttCommand({.load = {.count = 0}, .url = url})), 2);
  EXPECT_EQ(RunLoadgen(MqttCommand({.load = {.rate = -1}, .url = url})), 2);
  EXPECT_EQ(RunLoadgen(MqttCommand({.load = {.max_in_flight = 0}, .url = url})), 2);
  EXPECT_EQ(RunLoadgen(MqttCommand({.url = url, .qos = 3})), 2);
  EXPECT_EQ(RunLoadgen(MqttCommand({.url = url, .topic = "devices/+/telemetry"})), 2);
  EXPECT_EQ(RunLoadgen(MqttCommand({.url = ""})), 2);
  LoadgenOptions pubsub;
  pubsub.transport = LoadgenOptions::Transport::kPubsub;
  pubsub.pubsub.project = "p";  // but no --topic
  EXPECT_EQ(RunLoadgen(pubsub), 2);

  std::atomic<std::uint64_t> published{0};
  const absl::Status s =
      PublishReadings(MqttLoadOptions{.load = {.devices = -1}, .url = url}, published);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("--devices"));
}

// Parses `args` (after the program name) with a fresh `loadgen` command.
struct Parsed {
  LoadgenOptions options;
  bool ok = false;
};
Parsed ParseLoadgen(std::vector<std::string> args) {
  Parsed p;
  CLI::App app;
  AddLoadgenCommand(app, p.options);
  std::reverse(args.begin(), args.end());  // CLI11 takes them last first
  try {
    app.parse(args);
    p.ok = true;
  } catch (const CLI::ParseError&) {
  }
  return p;
}

TEST(LoadgenCommandTest, ParsesBothTransports) {
  auto mqtt = ParseLoadgen(
      {"loadgen",         "mqtt",       "--devices",      "4",   "--count", "100",
       "--rate",          "50",         "--qos",          "0",   "--url",   "tcp://h:1",
       "--topic",         "t/{device}", "--payload-size", "256", "--seed",  "9",
       "--max-in-flight", "8",          "--ack-timeout",  "2.5", "--quiet"});
  ASSERT_TRUE(mqtt.ok);
  EXPECT_EQ(mqtt.options.transport, LoadgenOptions::Transport::kMqtt);
  const MqttLoadOptions& m = mqtt.options.mqtt;
  EXPECT_EQ(m.load.devices, 4);
  EXPECT_EQ(m.load.count, 100);
  EXPECT_EQ(m.load.rate, 50);
  EXPECT_EQ(m.qos, 0);
  EXPECT_EQ(m.url, "tcp://h:1");
  EXPECT_EQ(m.topic, "t/{device}");
  EXPECT_EQ(m.load.payload_size, 256u);
  EXPECT_EQ(m.load.seed, 9u);
  EXPECT_EQ(m.load.max_in_flight, 8);
  EXPECT_EQ(m.load.ack_timeout, std::chrono::milliseconds(2500));
  EXPECT_FALSE(m.load.progress);

  auto pubsub =
      ParseLoadgen({"loadgen", "pubsub", "--project", "p", "--topic", "t", "--format", "raw"});
  ASSERT_TRUE(pubsub.ok);
  EXPECT_EQ(pubsub.options.transport, LoadgenOptions::Transport::kPubsub);
  EXPECT_EQ(pubsub.options.pubsub.project, "p");
  EXPECT_EQ(pubsub.options.pubsub.topic, "t");
  EXPECT_EQ(pubsub.options.pubsub.payload, PubsubPayload::kRaw);
  EXPECT_TRUE(pubsub.options.pubsub.load.progress);
  auto envelope = ParseLoadgen({"loadgen", "pubsub", "--topic", "t"});
  ASSERT_TRUE(envelope.ok);
  EXPECT_EQ(envelope.options.pubsub.payload, PubsubPayload::kEnvelope);
}

TEST(LoadgenCommandTest, RejectsBadUsage) {
  EXPECT_FALSE(ParseLoadgen({"loadgen"}).ok);  // no transport
  EXPECT_FALSE(ParseLoadgen({"loadgen", "mqtt", "--qos", "3"}).ok);
  EXPECT_FALSE(ParseLoadgen({"loadgen", "mqtt", "--count", "0"}).ok);
  EXPECT_FALSE(ParseLoadgen({"loadgen", "mqtt", "--rate", "-2"}).ok);
  EXPECT_FALSE(ParseLoadgen({"loadgen", "pubsub"}).ok);  // --topic is required
  EXPECT_FALSE(ParseLoadgen({"loadgen", "pubsub", "--topic", "t", "--format", "xml"}).ok);
}

TEST(DemoCommandTest, BenchUsesTheLargerLoadUnlessTold) {
  auto parse = [](std::vector<std::string> args) {
    DemoOptions o;
    CLI::App app;
    AddDemoCommand(app, o);
    std::reverse(args.begin(), args.end());
    app.parse(args);
    return o;
  };
  const DemoOptions plain = parse({"demo"});
  EXPECT_FALSE(plain.bench);
  EXPECT_EQ(plain.devices, 10);
  EXPECT_EQ(plain.messages_per_device, 100);
  const DemoOptions bench = parse({"demo", "--bench"});
  EXPECT_TRUE(bench.bench);
  EXPECT_EQ(bench.devices, kBenchDevices);
  EXPECT_EQ(bench.messages_per_device, kBenchMessagesPerDevice);
  const DemoOptions told = parse({"demo", "--bench", "--devices", "2", "--messages", "20"});
  EXPECT_EQ(told.devices, 2);
  EXPECT_EQ(told.messages_per_device, 20);
  const DemoOptions half = parse({"demo", "--devices", "3", "--bench"});
  EXPECT_EQ(half.devices, 3);
  EXPECT_EQ(half.messages_per_device, kBenchMessagesPerDevice);
}

}  // namespace
}  // namespace dataflow::app

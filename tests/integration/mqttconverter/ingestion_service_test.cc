// IngestionService: real Mosquitto → MqttConsumer → StreamingService → in-process broker.
// (The Pub/Sub producer was not available when this was written; the service only needs
// the MessagePublisher interface, so the in-process broker's publisher stands in for it.)
#include "dataflow/mqttconverter/ingestion_service.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <mutex>

#include "dataflow/messagepipeline/in_process_broker.h"
#include "dataflow/mqttconverter/mqtt_consumer.h"
#include "mqtt_test_util.h"

namespace dataflow::mqttconverter {
namespace {

using messagepipeline::InProcessBroker;
using messagepipeline::Message;
using messagepipeline::MessageConsumer;
using messagepipeline::MessagePublisher;
using messagepipeline::OutgoingMessage;
using testing::Broker;
using ::testing::HasSubstr;
using testing::PopN;
using testing::TestPublisher;
using testing::UniqueTopic;

messagepipeline::Deadline In(std::chrono::seconds s) {
  return std::chrono::steady_clock::now() + s;
}

std::shared_ptr<MqttConsumer> NewMqttConsumer(std::vector<TopicMapping> mappings) {
  auto c = MqttConsumer::Create(
      MqttClientOptions{.broker_url = Broker()->url(), .topic_mappings = std::move(mappings)});
  EXPECT_TRUE(c.ok()) << c.status();
  if (!c.ok()) return nullptr;
  return std::shared_ptr<MqttConsumer>(std::move(*c));
}

// Reads what the service published to `topic` of the in-process broker.
class TopicReader {
 public:
  TopicReader(InProcessBroker& broker, const std::string& topic) {
    (void)broker.CreateTopic(topic);  // may exist already
    const std::string sub = topic + "-reader";
    EXPECT_TRUE(broker.CreateSubscription(sub, topic).ok());
    auto c = broker.NewConsumer(sub);
    EXPECT_TRUE(c.ok());
    consumer_ = *c;
    EXPECT_TRUE(consumer_->Start().ok());
  }
  ~TopicReader() { (void)consumer_->Stop(In(std::chrono::seconds(5))); }
  std::vector<Message> Read(std::size_t n) { return PopN(consumer_->Messages(), n); }
  std::size_t queued() { return consumer_->Messages().size(); }

 private:
  std::shared_ptr<MessageConsumer> consumer_;
};

TEST(IngestionServiceTest, PublishesEachRouteToItsTopicWithAttributes) {
  const std::string base = UniqueTopic("ingest");
  auto broker = InProcessBroker::Create();
  TopicReader telemetry(*broker, "raw-telemetry");
  TopicReader alerts(*broker, "raw-alerts");
  TopicReader other(*broker, "raw-other");
  auto consumer = NewMqttConsumer({{.name = "telemetry", .topic = base + "/+/data"},
                                   {.name = "alerts", .topic = base + "/+/alert"},
                                   {.name = "misc", .topic = base + "/+/misc"}});
  ASSERT_NE(consumer, nullptr);
  auto service = IngestionService::Create(
      {.route_topics = {{"telemetry", "raw-telemetry"}, {"alerts", "raw-alerts"}},
       .default_topic = "raw-other",
       .payload_format = PayloadFormat::kRaw},
      consumer, broker->NewPublisher());
  ASSERT_TRUE(service.ok()) << service.status();
  ASSERT_TRUE((*service)->Start().ok());
  TestPublisher pub;
  pub.Publish(base + "/d1/data", "{\"t\":21.5}");
  pub.Publish(base + "/d1/alert", "smoke");
  pub.Publish(base + "/d2/misc", "unmapped");

  auto t = telemetry.Read(1);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].data.payload, "{\"t\":21.5}");
  EXPECT_EQ(t[0].attributes.at("route_name"), "telemetry");
  EXPECT_EQ(t[0].attributes.at("mqtt_topic"), base + "/d1/data");
  auto a = alerts.Read(1);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].data.payload, "smoke");
  EXPECT_EQ(a[0].attributes.at("route_name"), "alerts");
  auto o = other.Read(1);
  ASSERT_EQ(o.size(), 1u);
  EXPECT_EQ(o[0].data.payload, "unmapped");
  EXPECT_EQ(o[0].attributes.at("route_name"), "misc");
  for (auto* v : {&t, &a, &o}) (*v)[0].Ack();

  ASSERT_TRUE((*service)->Stop(In(std::chrono::seconds(10))).ok());
  EXPECT_EQ(consumer->stats().acked, 3u);
  EXPECT_EQ((*service)->metrics().processed, 3u);
}

// The default, as the Go ingestion publishes: the envelope, attributes kept.
TEST(IngestionServiceTest, EnvelopeFormatCarriesMessageData) {
  const std::string topic = UniqueTopic("envelope");
  auto broker = InProcessBroker::Create();
  TopicReader raw(*broker, "raw-env");
  auto consumer = NewMqttConsumer({{.name = "r", .topic = topic}});
  ASSERT_NE(consumer, nullptr);
  auto service = IngestionService::Create(
      {.route_topics = {{"r", "raw-env"}}, .unmapped = UnmappedRoutePolicy::kReject}, consumer,
      broker->NewPublisher());
  ASSERT_TRUE(service.ok()) << service.status();
  ASSERT_TRUE((*service)->Start().ok());
  TestPublisher pub;
  pub.Publish(topic, std::string("\x01\x02\x00", 3));
  auto got = raw.Read(1);
  ASSERT_EQ(got.size(), 1u);
  auto decoded = messagepipeline::DecodeMessageData(got[0].data.payload);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->payload, std::string("\x01\x02\x00", 3));
  EXPECT_FALSE(decoded->id.empty());
  EXPECT_NE(decoded->publish_time, messagepipeline::Clock::time_point{});
  // The in-process next hop gets the data decoded already, equal to what the body decodes to.
  ASSERT_NE(got[0].envelope, nullptr);
  EXPECT_EQ(*got[0].envelope, *decoded);
  EXPECT_EQ(got[0].attributes.at("mqtt_topic"), topic);
  EXPECT_EQ(got[0].attributes.at("route_name"), "r");
  got[0].Ack();
  ASSERT_TRUE((*service)->Stop(In(std::chrono::seconds(10))).ok());
}

TEST(IngestionServiceTest, RejectedRoutesAreDeadLettered) {
  const std::string base = UniqueTopic("reject");
  auto broker = InProcessBroker::Create();
  TopicReader raw(*broker, "raw-known");
  TopicReader dlq(*broker, "ingest-dead-letters");
  auto consumer = NewMqttConsumer(
      {{.name = "known", .topic = base + "/known"}, {.name = "stray", .topic = base + "/stray"}});
  ASSERT_NE(consumer, nullptr);
  auto service = IngestionService::Create(
      {.common = {.dead_letter = broker->NewDeadLetterSink("ingest-dead-letters")},
       .route_topics = {{"known", "raw-known"}},
       .unmapped = UnmappedRoutePolicy::kReject,
       .payload_format = PayloadFormat::kRaw},
      consumer, broker->NewPublisher());
  ASSERT_TRUE(service.ok()) << service.status();
  ASSERT_TRUE((*service)->Start().ok());
  TestPublisher pub;
  pub.Publish(base + "/stray", "nobody wants me");
  pub.Publish(base + "/known", "ok");
  auto dead = dlq.Read(1);
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].data.payload, "nobody wants me");
  EXPECT_THAT(dead[0].attributes.at(std::string(messagepipeline::kDeadLetterErrorAttribute)),
              HasSubstr("stray"));
  auto ok = raw.Read(1);
  ASSERT_EQ(ok.size(), 1u);
  EXPECT_EQ(ok[0].data.payload, "ok");
  dead[0].Ack();
  ok[0].Ack();
  ASSERT_TRUE((*service)->Stop(In(std::chrono::seconds(10))).ok());
  EXPECT_EQ((*service)->metrics().dead_lettered, 1u);
}

// A publisher whose confirmations the test releases by hand, and whose first publish fails.
class GatedPublisher : public MessagePublisher {
 public:
  explicit GatedPublisher(std::shared_ptr<MessagePublisher> next) : next_(std::move(next)) {}
  void PublishAsync(const std::string& topic, OutgoingMessage message,
                    messagepipeline::PublishCallback done) override {
    {
      std::lock_guard lock(mu_);
      ++calls_;
      if (calls_ > 1) {
        pending_.push_back({topic, std::move(message), std::move(done)});
        return;
      }
    }
    done(absl::UnavailableError("first fails"));
  }
  absl::Status Stop(messagepipeline::Deadline /*deadline*/) override { return absl::OkStatus(); }
  std::size_t pending() {
    std::lock_guard lock(mu_);
    return pending_.size();
  }
  // Hands the held publishes on; each completes when the next publisher completes it.
  void ReleaseAll() {
    std::vector<Pending> released;
    {
      std::lock_guard lock(mu_);
      released.swap(pending_);
    }
    for (auto& p : released) next_->PublishAsync(p.topic, std::move(p.message), std::move(p.done));
  }

 private:
  struct Pending {
    std::string topic;
    OutgoingMessage message;
    messagepipeline::PublishCallback done;
  };
  std::shared_ptr<MessagePublisher> next_;
  std::mutex mu_;
  int calls_ = 0;
  std::vector<Pending> pending_;
};

TEST(IngestionServiceTest, AcksOnlyAfterThePublishIsConfirmedAndRetriesFailures) {
  const std::string topic = UniqueTopic("gated");
  auto broker = InProcessBroker::Create();
  TopicReader raw(*broker, "raw-gated");
  auto consumer = NewMqttConsumer({{.name = "g", .topic = topic}});
  ASSERT_NE(consumer, nullptr);
  auto gated = std::make_shared<GatedPublisher>(broker->NewPublisher());
  auto service = IngestionService::Create({.route_topics = {{"g", "raw-gated"}},
                                           .unmapped = UnmappedRoutePolicy::kReject,
                                           .payload_format = PayloadFormat::kRaw},
                                          consumer, gated);
  ASSERT_TRUE(service.ok()) << service.status();
  ASSERT_TRUE((*service)->Start().ok());
  TestPublisher pub;
  pub.Publish(topic, "precious");
  // The first publish fails: the message is nacked, redelivered, and published again.
  ASSERT_TRUE(
      dataflow::testing::WaitFor([&] { return gated->pending() == 1; }, std::chrono::seconds(15)));
  EXPECT_EQ(consumer->stats().nacked, 1u);
  EXPECT_EQ(consumer->stats().redelivered, 1u);
  // Not confirmed yet: not acked.
  EXPECT_EQ(consumer->stats().acked, 0u);
  gated->ReleaseAll();
  auto got = raw.Read(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].data.payload, "precious");
  // In-process topics acknowledge end to end: the MQTT message waits for the reader's ack.
  EXPECT_EQ(consumer->stats().acked, 0u);
  got[0].Ack();
  ASSERT_TRUE(dataflow::testing::WaitFor([&] { return consumer->stats().acked == 1; },
                                         std::chrono::seconds(15)));
  ASSERT_TRUE((*service)->Stop(In(std::chrono::seconds(10))).ok());
  EXPECT_EQ(consumer->stats().lost, 0u);
  EXPECT_EQ(raw.queued(), 0u);  // published exactly once
}

TEST(IngestionServiceTest, RejectsBadOptions) {
  auto broker = InProcessBroker::Create();
  auto consumer = NewMqttConsumer({{.name = "x", .topic = "x"}});
  ASSERT_NE(consumer, nullptr);
  auto publisher = broker->NewPublisher();
  struct Case {
    IngestionServiceOptions options;
    std::shared_ptr<MessagePublisher> publisher;
    std::string error;
  };
  std::vector<Case> cases;
  cases.push_back({{.route_topics = {{"a", "t"}}}, publisher, "default_topic"});
  cases.push_back({{.route_topics = {{"a", ""}}, .default_topic = "d"}, publisher, "empty topic"});
  cases.push_back({{.route_topics = {{"", "t"}}, .default_topic = "d"}, publisher, "empty route"});
  cases.push_back({{.unmapped = UnmappedRoutePolicy::kReject}, publisher, "nothing would pass"});
  cases.push_back({{.default_topic = "d"}, nullptr, "mqtt-ingestion: publisher is null"});
  cases.push_back({{.common = {.num_workers = 0}, .default_topic = "d"}, publisher, "num_workers"});
  cases.push_back({{.common = {.max_delivery_attempts = -1}, .default_topic = "d"},
                   publisher,
                   "max_delivery_attempts"});
  for (Case& c : cases) {
    auto service = IngestionService::Create(std::move(c.options), consumer, c.publisher);
    ASSERT_FALSE(service.ok()) << c.error;
    EXPECT_EQ(service.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(service.status().message()), HasSubstr(c.error));
  }
  auto no_consumer = IngestionService::Create({.default_topic = "d"}, nullptr, publisher);
  EXPECT_FALSE(no_consumer.ok());
}

}  // namespace
}  // namespace dataflow::mqttconverter

[[maybe_unused]] ::testing::Environment* const kBroker = ::testing::AddGlobalTestEnvironment(
    new dataflow::mqttconverter::testing::MosquittoEnvironment());

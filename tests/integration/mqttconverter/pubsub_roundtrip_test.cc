// MQTT → Pub/Sub: real Mosquitto → MqttConsumer → IngestionService → GooglePubsubProducer →
// Google's Pub/Sub emulator, read back with the Pub/Sub consumer.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>

#include "dataflow/mqttconverter/ingestion_service.h"
#include "dataflow/mqttconverter/mqtt_consumer.h"
#include "dataflow/pubsub/admin.h"
#include "dataflow/pubsub/consumer.h"
#include "dataflow/pubsub/producer.h"
#include "dataflow_testing/pubsub_emulator.h"
#include "mqtt_test_util.h"

namespace dataflow::mqttconverter {
namespace {

using messagepipeline::Message;
using testing::Broker;
using testing::PopN;
using testing::TestPublisher;
using testing::UniqueTopic;

constexpr char kProject[] = "mqtt-ingest-test";
dataflow::testing::PubsubEmulator* g_emulator = nullptr;

class EmulatorEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    if (dataflow::testing::FindPubsubEmulator().empty()) return;  // the test skips
    auto e = dataflow::testing::PubsubEmulator::Start();
    ASSERT_TRUE(e.ok()) << e.status();
    emulator_ = *std::move(e);
    g_emulator = emulator_.get();
    setenv("PUBSUB_EMULATOR_HOST", g_emulator->host().c_str(), 1);
    setenv("GOOGLE_CLOUD_PROJECT", kProject, 1);
  }
  void TearDown() override {
    g_emulator = nullptr;
    emulator_.reset();
  }

 private:
  std::unique_ptr<dataflow::testing::PubsubEmulator> emulator_;
};

TEST(MqttToPubsubTest, RoundTripThroughTheEmulator) {
  if (g_emulator == nullptr) GTEST_SKIP() << dataflow::testing::PubsubEmulatorMissingReason();
  auto stub = pubsub::MakePubsubStub();
  ASSERT_TRUE(stub.ok()) << stub.status();
  ASSERT_TRUE(pubsub::CreateTopic(**stub, kProject, "raw-telemetry").ok());
  ASSERT_TRUE(pubsub::CreateTopic(**stub, kProject, "raw-other").ok());
  ASSERT_TRUE(
      pubsub::CreateSubscription(**stub, kProject, "raw-telemetry-sub", "raw-telemetry").ok());
  ASSERT_TRUE(pubsub::CreateSubscription(**stub, kProject, "raw-other-sub", "raw-other").ok());

  const std::string base = UniqueTopic("roundtrip");
  auto mqtt = MqttConsumer::Create(
      MqttClientOptions{.broker_url = Broker()->url(),
                        .topic_mappings = {{.name = "telemetry", .topic = base + "/+/data"},
                                           {.name = "status", .topic = base + "/+/status"}}});
  ASSERT_TRUE(mqtt.ok()) << mqtt.status();
  std::shared_ptr<MqttConsumer> consumer(std::move(*mqtt));
  auto producer = pubsub::GooglePubsubProducer::Create(
      *stub, {.project_id = kProject, .max_batch_delay = std::chrono::milliseconds(10)});
  ASSERT_TRUE(producer.ok()) << producer.status();
  std::shared_ptr<pubsub::GooglePubsubProducer> publisher(std::move(*producer));
  auto service = IngestionService::Create(
      {.route_topics = {{"telemetry", "raw-telemetry"}}, .default_topic = "raw-other"}, consumer,
      publisher);
  ASSERT_TRUE(service.ok()) << service.status();
  ASSERT_TRUE((*service)->Start().ok());

  TestPublisher pub;
  for (int i = 0; i < 5; ++i)
    pub.Publish(base + "/dev" + std::to_string(i) + "/data", "r" + std::to_string(i));
  pub.Publish(base + "/dev9/status", "online");

  std::map<std::string, std::map<std::string, std::string>> telemetry;  // payload → attrs
  {
    auto reader = pubsub::GooglePubsubConsumer::Create(
        *stub, {.project_id = kProject, .subscription_id = "raw-telemetry-sub"});
    ASSERT_TRUE(reader.ok()) << reader.status();
    ASSERT_TRUE((*reader)->Start().ok());
    for (Message& m : PopN((*reader)->Messages(), 5, std::chrono::seconds(30))) {
      // The envelope, as the Go ingestion publishes (the default payload_format).
      auto envelope = messagepipeline::DecodeMessageData(m.data.payload);
      EXPECT_TRUE(envelope.ok()) << envelope.status();
      if (envelope.ok()) telemetry[envelope->payload] = {m.attributes.begin(), m.attributes.end()};
      m.Ack();
    }
    (void)(*reader)->Stop(std::chrono::steady_clock::now() + std::chrono::seconds(10));
  }
  ASSERT_EQ(telemetry.size(), 5u);
  for (int i = 0; i < 5; ++i) {
    const auto& attrs = telemetry["r" + std::to_string(i)];
    EXPECT_EQ(attrs.at("route_name"), "telemetry");
    EXPECT_EQ(attrs.at("mqtt_topic"), base + "/dev" + std::to_string(i) + "/data");
  }
  {
    auto reader = pubsub::GooglePubsubConsumer::Create(
        *stub, {.project_id = kProject, .subscription_id = "raw-other-sub"});
    ASSERT_TRUE(reader.ok()) << reader.status();
    ASSERT_TRUE((*reader)->Start().ok());
    auto other = PopN((*reader)->Messages(), 1, std::chrono::seconds(30));
    ASSERT_EQ(other.size(), 1u);
    EXPECT_EQ(messagepipeline::DecodeMessageData(other[0].data.payload)->payload, "online");
    EXPECT_EQ(other[0].attributes.at("route_name"), "status");
    other[0].Ack();
    (void)(*reader)->Stop(std::chrono::steady_clock::now() + std::chrono::seconds(10));
  }
  ASSERT_TRUE((*service)->Stop(std::chrono::steady_clock::now() + std::chrono::seconds(10)).ok());
  ASSERT_TRUE(publisher->Stop(std::chrono::steady_clock::now() + std::chrono::seconds(10)).ok());
  // Every MQTT message was acked only after its publish resolved, and none was lost.
  EXPECT_EQ(consumer->stats().acked, 6u);
  EXPECT_EQ(consumer->stats().lost, 0u);
}

}  // namespace
}  // namespace dataflow::mqttconverter

[[maybe_unused]] ::testing::Environment* const kMosquitto = ::testing::AddGlobalTestEnvironment(
    new dataflow::mqttconverter::testing::MosquittoEnvironment());
[[maybe_unused]] ::testing::Environment* const kEmulator =
    ::testing::AddGlobalTestEnvironment(new dataflow::mqttconverter::EmulatorEnvironment());

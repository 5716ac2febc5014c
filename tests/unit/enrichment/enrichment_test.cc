#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "dataflow/enrichment/enricher.h"
#include "dataflow/enrichment/enrichment_service.h"
#include "dataflow/messagepipeline/errors.h"
#include "dataflow/messagepipeline/in_process_broker.h"
#include "dataflow/messagepipeline/publisher.h"
#include "dataflow_testing/server_process.h"
#include "device_registry.h"

namespace dataflow::enrichment {
namespace {

namespace mp = messagepipeline;
using dataflow::testing::WaitFor;
using messagepipeline::Message;
using test_support::Device;
using test_support::DeviceRegistry;
using test_support::MakeDeviceEnricher;
using test_support::WithDevice;
using namespace std::chrono_literals;

// The whole service on the in-process broker: raw → enrichment → enriched.
class EnrichmentServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    broker_ = mp::InProcessBroker::Create({.min_redelivery_backoff = 10ms});
    ASSERT_TRUE(broker_->CreateTopic("raw").ok());
    ASSERT_TRUE(broker_->CreateSubscription("raw-sub", "raw").ok());
    ASSERT_TRUE(broker_->CreateTopic("enriched").ok());
    ASSERT_TRUE(broker_->CreateSubscription("enriched-sub", "enriched").ok());
    registry_ = std::make_shared<DeviceRegistry>();
    for (int i = 0; i < 10; ++i) {
      registry_->Add("dev-" + std::to_string(i),
                     {"Sensor " + std::to_string(i), "floor-" + std::to_string(i % 3)});
    }
  }

  std::unique_ptr<EnrichmentService> StartService(EnricherOptions policy,
                                                  int max_delivery_attempts = 5) {
    auto service = EnrichmentService::CreateAsync(
        {.common = {.num_workers = 3, .max_delivery_attempts = max_delivery_attempts}},
        *broker_->NewConsumer("raw-sub"), MakeDeviceEnricher(registry_, policy),
        mp::PublishEnvelope(broker_->NewPublisher(), "enriched"));
    EXPECT_TRUE(service.ok()) << service.status();
    EXPECT_TRUE((*service)->Start().ok());
    return *std::move(service);
  }

  // Reads everything published to "enriched", acking it.
  std::vector<mp::MessageData> Drain(std::size_t expected) {
    auto consumer = *broker_->NewConsumer("enriched-sub");
    EXPECT_TRUE(consumer->Start().ok());
    std::vector<mp::MessageData> out;
    std::vector<mp::Message> batch;
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (out.size() < expected && std::chrono::steady_clock::now() < deadline) {
      consumer->Messages().PopBatchUntil(batch, 64, std::chrono::steady_clock::now() + 100ms);
      for (auto& m : batch) {
        auto decoded = mp::DecodeMessageData(m.data.payload);
        EXPECT_TRUE(decoded.ok()) << decoded.status();
        if (decoded.ok()) out.push_back(*decoded);
        EXPECT_EQ(m.attributes.count("deviceId"), 1u) << "attributes travel with the envelope";
        m.Ack();
      }
      batch.clear();
    }
    EXPECT_TRUE(consumer->Stop(std::chrono::steady_clock::now() + 1s).ok());
    return out;
  }

  std::shared_ptr<mp::InProcessBroker> broker_;
  std::shared_ptr<DeviceRegistry> registry_;
};

TEST_F(EnrichmentServiceTest, EveryKnownDeviceComesOutEnrichedAndUnknownOnesAreSkipped) {
  auto service = StartService({});
  constexpr int kMessages = 300;
  for (int i = 0; i < kMessages; ++i) {
    const std::string device = i % 30 == 29 ? "ghost" : "dev-" + std::to_string(i % 10);
    ASSERT_TRUE(broker_
                    ->Publish("raw", {.id = "r" + std::to_string(i), .payload = "{\"v\":1}"},
                              {{"deviceId", device}})
                    .ok());
  }
  // An input is acked once its enriched copy is acked downstream (end to end): read meanwhile.
  auto drained = std::async(std::launch::async, [&] { return Drain(kMessages - kMessages / 30); });
  ASSERT_TRUE(WaitFor([&] { return broker_->Stats("raw-sub")->acked == kMessages; }, 20s));
  ASSERT_TRUE(service->Stop(10s).ok());
  auto out = drained.get();
  ASSERT_EQ(out.size(), static_cast<std::size_t>(kMessages - kMessages / 30));
  for (const auto& d : out) {
    ASSERT_TRUE(d.enrichment_data.is_object()) << d.id;
    const int index = std::stoi(d.id.substr(1)) % 10;
    EXPECT_EQ(d.enrichment_data.at("name"), "Sensor " + std::to_string(index)) << d.id;
    EXPECT_EQ(d.payload, "{\"v\":1}");
  }
  EXPECT_EQ(service->enrichment_metrics().not_found, static_cast<std::uint64_t>(kMessages / 30));
  EXPECT_EQ(service->enrichment_metrics().enriched, out.size());
}

// The service's own counters tell a message the enricher dropped (skipped) from one it
// published (processed), for the synchronous and the asynchronous downstream alike.
TEST_F(EnrichmentServiceTest, AMessageTheEnricherSkipsIsCountedSkippedNotProcessed) {
  for (const bool async : {false, true}) {
    SCOPED_TRACE(async ? "CreateAsync" : "Create");
    std::atomic<int> published{0};
    auto process = [&](mp::Message&) {
      ++published;
      return absl::OkStatus();
    };
    auto consumer = *broker_->NewConsumer("raw-sub");
    auto enricher = MakeDeviceEnricher(registry_);  // not found: skip
    auto service = async ? EnrichmentService::CreateAsync(
                               {.common = {.num_workers = 2}}, consumer, enricher,
                               [&](mp::Message& m, mp::Completion done) { done(process(m)); })
                         : EnrichmentService::Create({.common = {.num_workers = 2}}, consumer,
                                                     enricher, process);
    ASSERT_TRUE(service.ok()) << service.status();
    ASSERT_TRUE((*service)->Start().ok());
    const std::uint64_t acked_before = broker_->Stats("raw-sub")->acked;
    for (const std::string device : {"dev-1", "ghost", "dev-2", "ghost", "ghost"}) {
      ASSERT_TRUE(broker_->Publish("raw", {.payload = "{}"}, {{"deviceId", device}}).ok());
    }
    ASSERT_TRUE(WaitFor([&] { return broker_->Stats("raw-sub")->acked == acked_before + 5; }, 10s));
    ASSERT_TRUE((*service)->Stop(5s).ok());
    const mp::ServiceMetrics metrics = (*service)->metrics();
    EXPECT_EQ(metrics.received, 5u);
    EXPECT_EQ(metrics.skipped, 3u);
    EXPECT_EQ(metrics.processed, 2u);
    EXPECT_EQ(published.load(), 2);
    EXPECT_EQ((*service)->enrichment_metrics().not_found, 3u);
  }
}

// A downstream that fails later, on its own thread (a publisher's callback), still sends the
// message back as it was received: the envelope goes to the dead letters.
TEST_F(EnrichmentServiceTest, ADeferredDownstreamFailureDeadLettersTheEnvelopeAsReceived) {
  ASSERT_TRUE(broker_->CreateTopic("dead").ok());
  ASSERT_TRUE(broker_->CreateSubscription("dead-sub", "dead").ok());
  std::mutex mu;
  std::vector<mp::Completion> pending;
  auto service = EnrichmentService::CreateAsync(
      {.common = {.num_workers = 1, .dead_letter = broker_->NewDeadLetterSink("dead")}},
      *broker_->NewConsumer("raw-sub"), MakeDeviceEnricher(registry_),
      [&](mp::Message&, mp::Completion done) {
        std::lock_guard lock(mu);
        pending.push_back(std::move(done));
      });
  ASSERT_TRUE(service.ok()) << service.status();
  ASSERT_TRUE((*service)->Start().ok());
  const std::string envelope = mp::EncodeMessageData({.id = "up-9", .payload = R"({"v":9})"});
  ASSERT_TRUE(
      broker_->Publish("raw", {.id = "t-9", .payload = envelope}, {{"deviceId", "dev-4"}}).ok());
  ASSERT_TRUE(WaitFor(
      [&] {
        std::lock_guard lock(mu);
        return pending.size() == 1;
      },
      10s));
  std::thread([&] {
    std::lock_guard lock(mu);
    pending[0](mp::PermanentError("the sink refuses it"));
  }).join();
  auto dead = *broker_->NewConsumer("dead-sub");
  ASSERT_TRUE(dead->Start().ok());
  std::vector<mp::Message> dead_letters;
  dead->Messages().PopBatchUntil(dead_letters, 1, std::chrono::steady_clock::now() + 10s);
  ASSERT_EQ(dead_letters.size(), 1u);
  EXPECT_EQ(dead_letters[0].data.payload, envelope);
  dead_letters[0].Ack();
  ASSERT_TRUE(dead->Stop(std::chrono::steady_clock::now() + 1s).ok());
  ASSERT_TRUE((*service)->Stop(5s).ok());
  EXPECT_EQ((*service)->metrics().dead_lettered, 1u);
  EXPECT_EQ((*service)->metrics().processing_errors, 1u);
}

TEST_F(EnrichmentServiceTest, WithTheNackPolicyABackendOutageLosesNothing) {
  registry_->down = true;
  // Attempts high enough to outlast the outage (with fewer, the messages are given up on).
  auto service = StartService({.on_error = FailurePolicy::kNack}, 1000);
  constexpr int kMessages = 50;
  for (int i = 0; i < kMessages; ++i) {
    ASSERT_TRUE(broker_
                    ->Publish("raw", {.id = "r" + std::to_string(i), .payload = "{}"},
                              {{"deviceId", "dev-" + std::to_string(i % 10)}})
                    .ok());
  }
  ASSERT_TRUE(WaitFor([&] { return broker_->Stats("raw-sub")->nacked >= kMessages; }, 20s));
  EXPECT_EQ(broker_->Stats("raw-sub")->acked, 0u) << "nothing is acked while the backend is down";
  auto drained = std::async(std::launch::async, [&] { return Drain(kMessages); });
  registry_->down = false;  // the backend comes back: redeliveries now succeed
  ASSERT_TRUE(WaitFor([&] { return broker_->Stats("raw-sub")->acked == kMessages; }, 20s));
  ASSERT_TRUE(service->Stop(10s).ok());
  auto out = drained.get();
  std::set<std::string> ids;
  for (const auto& d : out) {
    ids.insert(d.id);
    EXPECT_TRUE(d.enrichment_data.is_object());
  }
  EXPECT_EQ(ids.size(), static_cast<std::size_t>(kMessages));
}

TEST_F(EnrichmentServiceTest, FactoryRejectsNulls) {
  auto consumer = *broker_->NewConsumer("raw-sub");
  auto enricher = MakeDeviceEnricher(registry_);
  EXPECT_EQ(EnrichmentService::Create({}, consumer, nullptr,
                                      [](mp::Message&) { return absl::OkStatus(); })
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EnrichmentService::Create({}, consumer, enricher, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  // An empty name is the kind's default.
  EXPECT_EQ(EnrichmentService::Create({}, consumer, nullptr, nullptr).status().message(),
            "enrichment: enricher is null");
  EXPECT_EQ(EnrichmentService::CreateAsync({}, nullptr, enricher,
                                           mp::PublishEnvelope(broker_->NewPublisher(), "x"))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(EnrichmentServiceTest, SynchronousProcessorSeesTheEnrichedMessage) {
  std::mutex mu;
  std::vector<std::string> names;
  auto service =
      EnrichmentService::Create({.common = {.num_workers = 1}}, *broker_->NewConsumer("raw-sub"),
                                MakeDeviceEnricher(registry_), [&](mp::Message& m) {
                                  std::lock_guard lock(mu);
                                  names.push_back(m.data.enrichment_data.value("name", ""));
                                  return absl::OkStatus();
                                });
  ASSERT_TRUE(service.ok());
  ASSERT_TRUE((*service)->Start().ok());
  ASSERT_TRUE(broker_->Publish("raw", {.payload = "{}"}, {{"deviceId", "dev-4"}}).ok());
  ASSERT_TRUE(WaitFor([&] { return broker_->Stats("raw-sub")->acked == 1; }, 10s));
  ASSERT_TRUE((*service)->Stop(5s).ok());
  EXPECT_EQ(names, std::vector<std::string>{"Sensor 4"});
}

// An envelope input (the Go ingestion's, and ours by default) is unwrapped: the key comes
// from its payload, its enrichment is kept and added to, and what is published is one
// envelope. A message that fails goes to the dead letters as it was received.
TEST_F(EnrichmentServiceTest, EnvelopeInputIsUnwrappedAndAFailureGoesBackAsReceived) {
  ASSERT_TRUE(broker_->CreateTopic("dead").ok());
  ASSERT_TRUE(broker_->CreateSubscription("dead-sub", "dead").ok());
  for (const bool async : {false, true}) {
    SCOPED_TRACE(async ? "CreateAsync" : "Create");
    std::mutex mu;
    std::vector<mp::MessageData> seen;
    auto process = [&](mp::Message& m) {
      if (m.data.payload == "poison") return mp::PermanentError("cannot store it");
      std::lock_guard lock(mu);
      seen.push_back(m.data);
      return absl::OkStatus();
    };
    const EnrichmentServiceOptions options{
        .common = {.num_workers = 1, .dead_letter = broker_->NewDeadLetterSink("dead")}};
    auto consumer = *broker_->NewConsumer("raw-sub");
    auto enricher = MakeDeviceEnricher(registry_);
    auto service = async ? EnrichmentService::CreateAsync(
                               options, consumer, enricher,
                               [&](mp::Message& m, mp::Completion done) { done(process(m)); })
                         : EnrichmentService::Create(options, consumer, enricher, process);
    ASSERT_TRUE(service.ok()) << service.status();
    ASSERT_TRUE((*service)->Start().ok());
    const std::string good = mp::EncodeMessageData(
        {.id = "up-1",
         .payload = R"({"v":1})",
         .publish_time = mp::Clock::time_point(std::chrono::seconds(1700000000)),
         .enrichment_data = {{"upstream", "kept"}}});
    const std::string poison = mp::EncodeMessageData({.id = "up-2", .payload = "poison"});
    ASSERT_TRUE(
        broker_->Publish("raw", {.id = "t-1", .payload = good}, {{"deviceId", "dev-4"}}).ok());
    ASSERT_TRUE(
        broker_->Publish("raw", {.id = "t-2", .payload = poison}, {{"deviceId", "dev-4"}}).ok());
    auto dead = *broker_->NewConsumer("dead-sub");
    ASSERT_TRUE(dead->Start().ok());
    std::vector<mp::Message> dead_letters;
    dead->Messages().PopBatchUntil(dead_letters, 1, std::chrono::steady_clock::now() + 10s);
    ASSERT_EQ(dead_letters.size(), 1u);
    EXPECT_EQ(dead_letters[0].data.payload, poison);  // the envelope, not "poison"
    dead_letters[0].Ack();
    ASSERT_TRUE(dead->Stop(std::chrono::steady_clock::now() + 1s).ok());
    ASSERT_TRUE(
        WaitFor([&] { return broker_->Stats("raw-sub")->acked == (async ? 4u : 2u); }, 10s));
    ASSERT_TRUE((*service)->Stop(5s).ok());
    std::lock_guard lock(mu);
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(seen[0].id, "up-1");
    EXPECT_EQ(seen[0].payload, R"({"v":1})");
    EXPECT_EQ(seen[0].publish_time, mp::Clock::time_point(std::chrono::seconds(1700000000)));
    EXPECT_EQ(seen[0].enrichment_data.value("upstream", ""), "kept");
    EXPECT_EQ(seen[0].enrichment_data.value("name", ""), "Sensor 4");
  }
}

}  // namespace
}  // namespace dataflow::enrichment

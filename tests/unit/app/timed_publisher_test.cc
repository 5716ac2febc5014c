#include "timed_publisher.h"

#include <gtest/gtest.h>

#include <deque>
#include <mutex>

#include "dataflow/messagepipeline/in_process_broker.h"
#include "dataflow/messagepipeline/streaming_service.h"
#include "dataflow/metrics/telemetry.h"
#include "dataflow_testing/server_process.h"
#ifdef DATAFLOW_APP_HAS_PUBSUB
#include "dataflow/pubsub/producer.h"
#endif

namespace dataflow::app {
namespace {

using messagepipeline::InProcessBroker;
using messagepipeline::OutgoingMessage;
using Result = absl::StatusOr<std::string>;
using namespace std::chrono_literals;

std::uint64_t Observed(const prometheus::Histogram& h) {
  return h.Collect().histogram.sample_count;
}

std::shared_ptr<prometheus::Histogram> NewHistogram() {
  return std::make_shared<prometheus::Histogram>(metrics::LatencyBuckets());
}

// A publisher whose results the test hands out later, like a broker that batches.
class LatePublisher final : public messagepipeline::MessagePublisher {
 public:
  void PublishAsync(const std::string& topic, OutgoingMessage message,
                    messagepipeline::PublishCallback done) override {
    std::lock_guard lock(mu_);
    topics_.push_back(topic);
    payloads_.push_back(message.payload);
    callbacks_.push_back(std::move(done));
  }
  absl::Status Stop(messagepipeline::Deadline) override {
    return absl::DeadlineExceededError("late publisher: 2 still unpublished");
  }
  void Resolve(std::size_t i, Result r) {
    messagepipeline::PublishCallback done;
    {
      std::lock_guard lock(mu_);
      done = callbacks_.at(i);
    }
    done(r);
  }
  std::size_t published() {
    std::lock_guard lock(mu_);
    return callbacks_.size();
  }

 private:
  std::mutex mu_;
  std::deque<messagepipeline::PublishCallback> callbacks_;
  std::vector<std::string> topics_;
  std::vector<std::string> payloads_;
};

TEST(TimedPublisher, CreateNeedsPublisherAndHistogram) {
  EXPECT_EQ(TimedPublisher::Create({.histogram = NewHistogram().get()}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      TimedPublisher::Create({.publisher = std::make_shared<LatePublisher>()}).status().code(),
      absl::StatusCode::kInvalidArgument);
}

TEST(TimedPublisher, InProcessBrokerIsTimedWhenTheSubscriptionAcks) {
  auto broker = InProcessBroker::Create();
  ASSERT_TRUE(broker->CreateTopic("out").ok());
  ASSERT_TRUE(broker->CreateSubscription("out-sub", "out").ok());
  auto reader = *broker->NewConsumer("out-sub");
  ASSERT_TRUE(reader->Start().ok());
  auto histogram = NewHistogram();
  auto timed =
      TimedPublisher::Create({.publisher = broker->NewPublisher(), .histogram = histogram.get()});
  ASSERT_TRUE(timed.ok()) << timed.status();
  // PublishEnvelope asks the publisher whether to carry decoded envelopes: the wrapper must
  // answer for the in-process publisher it wraps.
  EXPECT_TRUE((*timed)->TakesEnvelopes());

  for (std::uint64_t i = 1; i <= 3; ++i) {
    std::future<Result> f = (*timed)->Publish("out", OutgoingMessage{.payload = "p"});
    auto m = reader->Messages().Pop();
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ(f.wait_for(0s), std::future_status::timeout) << "complete only once acked";
    EXPECT_EQ(Observed(*histogram), i - 1);
    m->Ack();
    Result id = f.get();
    ASSERT_TRUE(id.ok()) << id.status();
    EXPECT_EQ(*id, m->data.id);
    EXPECT_EQ(Observed(*histogram), i);
  }
  // Errors pass through unchanged, and are timed too.
  Result missing = (*timed)->Publish("missing", OutgoingMessage{}).get();
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Observed(*histogram), 4u);
  EXPECT_TRUE((*timed)->Stop(std::chrono::steady_clock::now()).ok());
}

TEST(TimedPublisher, ALaterResultIsTimedWhenItArrivesAndPassedThrough) {
  auto late = std::make_shared<LatePublisher>();
  auto histogram = NewHistogram();
  auto timed = TimedPublisher::Create({.publisher = late, .histogram = histogram.get()});
  ASSERT_TRUE(timed.ok());
  std::future<Result> a = (*timed)->Publish("t", OutgoingMessage{.payload = "a"});
  std::future<Result> b = (*timed)->Publish("t", OutgoingMessage{.payload = "b"});
  EXPECT_EQ(Observed(*histogram), 0u);
  late->Resolve(1, absl::UnavailableError("down"));
  EXPECT_EQ(Observed(*histogram), 1u);
  EXPECT_EQ(b.get().status(), absl::UnavailableError("down"));
  late->Resolve(0, std::string("id-a"));
  EXPECT_EQ(a.get(), Result(std::string("id-a")));
  EXPECT_EQ(Observed(*histogram), 2u);
  EXPECT_EQ((*timed)->Stop(std::chrono::steady_clock::now()).code(),
            absl::StatusCode::kDeadlineExceeded)
      << "Stop goes to the wrapped publisher";
}

TEST(TimedPublisher, UnderAStreamingServiceEveryMessageIsAckedAndTimedOnce) {
  auto broker = InProcessBroker::Create();
  ASSERT_TRUE(broker->CreateTopic("in").ok());
  ASSERT_TRUE(broker->CreateSubscription("in-sub", "in").ok());
  auto consumer = broker->NewConsumer("in-sub");
  ASSERT_TRUE(consumer.ok());
  auto late = std::make_shared<LatePublisher>();
  auto histogram = NewHistogram();
  std::shared_ptr<messagepipeline::MessagePublisher> timed =
      *TimedPublisher::Create({.publisher = late, .histogram = histogram.get()});
  auto publish = messagepipeline::PublishEnvelope(timed, "out");
  auto service = messagepipeline::StreamingService<std::string>::CreateAsync(
      {.common = {.name = "timed", .num_workers = 2}}, *consumer,
      [](const messagepipeline::Message& m) {
        return messagepipeline::TransformResult<std::string>(
            std::optional<std::string>(m.data.payload));
      },
      [publish](messagepipeline::Message& m, std::string&, messagepipeline::Completion done) {
        publish(m, std::move(done));
      });
  ASSERT_TRUE(service.ok()) << service.status();
  ASSERT_TRUE((*service)->Start().ok());

  constexpr std::size_t kMessages = 5;
  for (std::size_t i = 0; i < kMessages; ++i) {
    ASSERT_TRUE(broker->Publish("in", messagepipeline::MessageData{.payload = "x"}).ok());
  }
  ASSERT_TRUE(testing::WaitFor([&] { return late->published() == kMessages; }, 10s));
  EXPECT_EQ(broker->Stats("in-sub")->acked, 0u) << "no ack before the publish is confirmed";
  for (std::size_t i = kMessages; i-- > 0;) late->Resolve(i, "id-" + std::to_string(i));
  ASSERT_TRUE(testing::WaitFor([&] { return broker->Stats("in-sub")->acked == kMessages; }, 10s));
  ASSERT_TRUE((*service)->Stop(10s).ok());
  EXPECT_EQ((*service)->metrics().processed, kMessages);
  EXPECT_EQ(Observed(*histogram), kMessages);
}

#ifdef DATAFLOW_APP_HAS_PUBSUB
class IdStub final : public pubsub::PubsubStub {
 public:
  absl::StatusOr<pubsub::v1::PublishResponse> Publish(const pubsub::v1::PublishRequest& request,
                                                      std::chrono::milliseconds) override {
    if (request.topic().ends_with("/forbidden")) return absl::PermissionDeniedError("forbidden");
    pubsub::v1::PublishResponse response;
    for (int i = 0; i < request.messages_size(); ++i) {
      response.add_message_ids("m-" + request.messages(i).data());
    }
    return response;
  }
  absl::Status Acknowledge(const pubsub::v1::AcknowledgeRequest&) override { return {}; }
  absl::Status ModifyAckDeadline(const pubsub::v1::ModifyAckDeadlineRequest&) override {
    return {};
  }
  std::unique_ptr<pubsub::PullStream> StreamingPull(std::chrono::milliseconds) override {
    return nullptr;
  }
  absl::StatusOr<pubsub::v1::Topic> CreateTopic(const pubsub::v1::Topic& t) override { return t; }
  absl::Status DeleteTopic(const std::string&) override { return {}; }
  absl::StatusOr<pubsub::v1::Subscription> CreateSubscription(
      const pubsub::v1::Subscription& s) override {
    return s;
  }
  absl::StatusOr<pubsub::v1::Subscription> GetSubscription(const std::string&) override {
    return pubsub::v1::Subscription();
  }
  absl::Status DeleteSubscription(const std::string&) override { return {}; }
};

TEST(TimedPublisher, PubsubProducerIsTimedThroughItsCallback) {
  std::shared_ptr<pubsub::GooglePubsubProducer> producer = *pubsub::GooglePubsubProducer::Create(
      std::make_shared<IdStub>(), {.project_id = "p", .max_batch_messages = 1});
  auto histogram = NewHistogram();
  auto timed = TimedPublisher::Create({.publisher = producer, .histogram = histogram.get()});
  ASSERT_TRUE(timed.ok()) << timed.status();
  std::future<Result> a = (*timed)->Publish("t", OutgoingMessage{.payload = "a"});
  std::future<Result> b = (*timed)->Publish("forbidden", OutgoingMessage{.payload = "b"});
  // A promise-backed future: wait() blocks until the producer's thread answered.
  a.wait();
  b.wait();
  EXPECT_EQ(a.wait_for(0s), std::future_status::ready);
  EXPECT_EQ(a.get(), Result(std::string("m-a")));
  EXPECT_EQ(b.get().status(), absl::PermissionDeniedError("forbidden"));
  EXPECT_EQ(Observed(*histogram), 2u);
  EXPECT_TRUE((*timed)->Stop(std::chrono::steady_clock::now() + 10s).ok());
}
#endif

}  // namespace
}  // namespace dataflow::app

#include "dataflow/messagepipeline/in_process_broker.h"

#include <gtest/gtest.h>

#include <set>

#include "dataflow/messagepipeline/errors.h"
#include "dataflow/messagepipeline/streaming_service.h"
#include "dataflow_testing/server_process.h"

namespace dataflow::messagepipeline {
namespace {

using dataflow::testing::WaitFor;
using namespace std::chrono_literals;

std::shared_ptr<InProcessBroker> BrokerWith(const std::vector<std::string>& subs,
                                            InProcessBrokerOptions options = {}) {
  auto broker = InProcessBroker::Create(options);
  EXPECT_TRUE(broker->CreateTopic("t").ok());
  for (const auto& s : subs) EXPECT_TRUE(broker->CreateSubscription(s, "t").ok());
  return broker;
}

std::optional<Message> PopFor(MessageConsumer& c, std::chrono::milliseconds timeout) {
  std::vector<Message> out;
  c.Messages().PopBatchUntil(out, 1, std::chrono::steady_clock::now() + timeout);
  if (out.empty()) return std::nullopt;
  return std::move(out[0]);
}

TEST(InProcessBroker, NamingErrorsAreClear) {
  auto broker = InProcessBroker::Create();
  EXPECT_EQ(broker->CreateTopic("").code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(broker->CreateTopic("t").ok());
  EXPECT_EQ(broker->CreateTopic("t").code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(broker->CreateSubscription("s", "nope").code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(broker->CreateSubscription("s", "t").ok());
  EXPECT_EQ(broker->CreateSubscription("s", "t").code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(broker->Publish("nope", {}).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(broker->NewConsumer("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(broker->NewConsumer("s", {.channel_capacity = 0}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(broker->Stats("nope").status().code(), absl::StatusCode::kNotFound);
}

TEST(InProcessBroker, FansOutToEverySubscription) {
  auto broker = BrokerWith({"a", "b"});
  auto id = broker->Publish("t", {.payload = "hello"}, {{"k", "v"}});
  ASSERT_TRUE(id.ok());
  for (const char* sub : {"a", "b"}) {
    auto consumer = *broker->NewConsumer(sub);
    ASSERT_TRUE(consumer->Start().ok());
    auto m = PopFor(*consumer, 5s);
    ASSERT_TRUE(m.has_value()) << sub;
    EXPECT_EQ(m->data.id, *id);
    EXPECT_EQ(m->data.payload, "hello");
    EXPECT_EQ(m->attributes.at("k"), "v");
    EXPECT_EQ(m->delivery_attempt, 1);
    EXPECT_NE(m->data.publish_time, Clock::time_point{});
    m->Ack();
    ASSERT_TRUE(consumer->Stop(std::chrono::steady_clock::now() + 1s).ok());
    EXPECT_EQ(broker->Stats(sub)->acked, 1u);
  }
}

TEST(InProcessBroker, NackedMessagesComeBackWithTheAttemptCounted) {
  auto broker = BrokerWith({"s"});
  ASSERT_TRUE(broker->Publish("t", {.payload = "x"}).ok());
  auto consumer = *broker->NewConsumer("s");
  ASSERT_TRUE(consumer->Start().ok());
  auto first = PopFor(*consumer, 5s);
  ASSERT_TRUE(first);
  first->Nack();
  auto second = PopFor(*consumer, 5s);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->data.id, first->data.id);
  EXPECT_EQ(second->delivery_attempt, 2);
  second->Ack();
  ASSERT_TRUE(WaitFor([&] { return broker->Stats("s")->outstanding == 0; }, 5s));
  auto stats = *broker->Stats("s");
  EXPECT_EQ(stats.delivered, 2u);
  EXPECT_EQ(stats.nacked, 1u);
  EXPECT_EQ(stats.acked, 1u);
  EXPECT_EQ(stats.pending, 0u);
}

TEST(InProcessBroker, AnExpiredLeaseIsRedeliveredAndTheLateAckIgnored) {
  auto broker = BrokerWith({"s"}, {.ack_deadline = 50ms});
  ASSERT_TRUE(broker->Publish("t", {.payload = "x"}).ok());
  auto consumer = *broker->NewConsumer("s");
  ASSERT_TRUE(consumer->Start().ok());
  auto first = PopFor(*consumer, 5s);
  ASSERT_TRUE(first);
  auto again = PopFor(*consumer, 10s);  // not settled in time: delivered again
  ASSERT_TRUE(again);
  EXPECT_EQ(again->delivery_attempt, 2);
  first->Ack();  // stale lease: does not remove the redelivered copy
  EXPECT_EQ(broker->Stats("s")->outstanding, 1u);
  again->Ack();
  EXPECT_EQ(broker->Stats("s")->outstanding, 0u);
  EXPECT_GE(broker->Stats("s")->expired, 1u);
}

TEST(InProcessBroker, CompetingConsumersSplitASubscription) {
  auto broker = BrokerWith({"s"});
  auto c1 = *broker->NewConsumer("s", {.channel_capacity = 10});
  auto c2 = *broker->NewConsumer("s", {.channel_capacity = 10});
  std::mutex mu;
  std::multiset<std::string> seen;
  std::vector<std::unique_ptr<StreamingService<std::string>>> services;
  for (auto& c : {c1, c2}) {
    auto svc = StreamingService<std::string>::Create({.num_workers = 2}, c, RawPayloadTransformer,
                                                     [&](Message& m, std::string&) {
                                                       std::lock_guard lock(mu);
                                                       seen.insert(m.data.id);
                                                       return absl::OkStatus();
                                                     });
    ASSERT_TRUE(svc.ok());
    ASSERT_TRUE((*svc)->Start().ok());
    services.push_back(*std::move(svc));
  }
  constexpr int kMessages = 2000;
  for (int i = 0; i < kMessages; ++i) ASSERT_TRUE(broker->Publish("t", {.payload = "p"}).ok());
  ASSERT_TRUE(WaitFor([&] { return broker->Stats("s")->acked == kMessages; }, 30s));
  for (auto& s : services) ASSERT_TRUE(s->Stop(10s).ok());
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(kMessages));
  std::set<std::string> unique(seen.begin(), seen.end());
  EXPECT_EQ(unique.size(), static_cast<std::size_t>(kMessages)) << "no duplicates without failures";
  EXPECT_GT(services[0]->metrics().processed, 0u);
  EXPECT_GT(services[1]->metrics().processed, 0u);
}

TEST(InProcessBroker, StoppingAConsumerReturnsUndeliveredMessages) {
  auto broker = BrokerWith({"s"});
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(broker->Publish("t", {.payload = "p"}).ok());
  auto consumer = *broker->NewConsumer("s", {.channel_capacity = 5});
  ASSERT_TRUE(consumer->Start().ok());
  ASSERT_TRUE(WaitFor([&] { return consumer->Messages().size() == 5; }, 5s));
  ASSERT_TRUE(consumer->Stop(std::chrono::steady_clock::now() + 1s).ok());
  EXPECT_TRUE(consumer->Messages().closed());
  // Drain what reached the channel and nack it, as a pipeline shutting down would.
  while (auto m = consumer->Messages().Pop()) m->Nack();
  EXPECT_EQ(consumer->Done().get().code(), absl::StatusCode::kOk);
  auto stats = *broker->Stats("s");
  EXPECT_EQ(stats.outstanding, 0u);
  EXPECT_EQ(stats.pending, 50u) << "everything is available for the next consumer";
  EXPECT_EQ(stats.acked, 0u);
}

TEST(InProcessBroker, ConsumerLifecycle) {
  auto broker = BrokerWith({"s"});
  auto consumer = *broker->NewConsumer("s");
  ASSERT_TRUE(consumer->Start().ok());
  EXPECT_EQ(consumer->Start().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(consumer->Stop(std::chrono::steady_clock::now()).ok());
  ASSERT_TRUE(consumer->Stop(std::chrono::steady_clock::now()).ok());
  EXPECT_EQ(consumer->Start().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(InProcessBroker, DeadLetterSinkPublishesWithTheErrorAttributes) {
  auto broker = BrokerWith({"s"});
  ASSERT_TRUE(broker->CreateTopic("dead").ok());
  ASSERT_TRUE(broker->CreateSubscription("dead-sub", "dead").ok());
  auto sink = broker->NewDeadLetterSink("dead");
  Message m(MessageData{.id = "9", .payload = "poison"}, {{"a", "b"}});
  m.delivery_attempt = 3;
  ASSERT_TRUE(sink->Send(m, PermanentError("cannot parse"), "svc").ok());
  auto consumer = *broker->NewConsumer("dead-sub");
  ASSERT_TRUE(consumer->Start().ok());
  auto parked = PopFor(*consumer, 5s);
  ASSERT_TRUE(parked);
  EXPECT_EQ(parked->data.payload, "poison");
  EXPECT_EQ(parked->attributes.at("a"), "b");
  EXPECT_NE(parked->attributes.at("dataflow_error").find("cannot parse"), std::string::npos);
  EXPECT_EQ(parked->attributes.at("dataflow_source"), "svc");
  EXPECT_EQ(parked->attributes.at("dataflow_delivery_attempt"), "3");
  parked->Ack();
  EXPECT_EQ(broker->NewDeadLetterSink("missing")->Send(m, absl::InternalError("x"), "s").code(),
            absl::StatusCode::kNotFound);
}

TEST(InProcessBroker, PublisherResolvesWithTheIdAndFailsAfterStop) {
  auto broker = BrokerWith({"s"});
  auto publisher = broker->NewPublisher();
  auto id = publisher->Publish("t", {.payload = "x", .attributes = {{"k", "v"}}}).get();
  ASSERT_TRUE(id.ok());
  EXPECT_FALSE(id->empty());
  EXPECT_EQ(publisher->Publish("missing", {}).get().status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(publisher->Stop(std::chrono::steady_clock::now()).ok());
  EXPECT_EQ(publisher->Publish("t", {}).get().status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(InProcessBroker, ServiceOverTheBrokerRedeliversUntilProcessed) {
  auto broker = BrokerWith({"s"});
  auto consumer = *broker->NewConsumer("s");
  std::atomic<int> attempts{0};
  auto svc = StreamingService<std::string>::Create(
      {.num_workers = 1}, consumer, RawPayloadTransformer, [&](Message& m, std::string&) {
        ++attempts;
        return m.delivery_attempt < 3 ? absl::UnavailableError("sink down") : absl::OkStatus();
      });
  ASSERT_TRUE(svc.ok());
  ASSERT_TRUE((*svc)->Start().ok());
  ASSERT_TRUE(broker->Publish("t", {.payload = "p"}).ok());
  ASSERT_TRUE(WaitFor([&] { return broker->Stats("s")->acked == 1; }, 10s));
  ASSERT_TRUE((*svc)->Stop(5s).ok());
  EXPECT_EQ(attempts.load(), 3);
  EXPECT_EQ((*svc)->metrics().nacked, 2u);
}

}  // namespace
}  // namespace dataflow::messagepipeline

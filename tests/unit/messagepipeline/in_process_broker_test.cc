#include "dataflow/messagepipeline/in_process_broker.h"

#include <gtest/gtest.h>

#include <future>
#include <set>

#include "dataflow/messagepipeline/errors.h"
#include "dataflow/messagepipeline/publisher.h"
#include "dataflow/messagepipeline/streaming_service.h"
#include "dataflow_testing/server_process.h"

namespace dataflow::messagepipeline {
namespace {

using dataflow::testing::WaitFor;
using namespace std::chrono_literals;

std::shared_ptr<InProcessBroker> BrokerWith(const std::vector<std::string>& subs,
                                            InProcessBrokerOptions options = {
                                                .min_redelivery_backoff = 10ms}) {
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

TEST(InProcessBroker, AHandlerHeldPastMaxLeaseGetsItRedeliveredAndTheLateAckEndsIt) {
  auto broker = BrokerWith({"s"}, {.max_lease = 50ms});
  ASSERT_TRUE(broker->Publish("t", {.payload = "x"}).ok());
  auto consumer = *broker->NewConsumer("s");
  ASSERT_TRUE(consumer->Start().ok());
  auto first = PopFor(*consumer, 5s);
  ASSERT_TRUE(first);
  auto again = PopFor(*consumer, 10s);  // not settled in time: delivered again
  ASSERT_TRUE(again);
  EXPECT_EQ(again->delivery_attempt, 2);
  first->Ack();  // any attempt's ack ends the message
  EXPECT_EQ(broker->Stats("s")->outstanding, 0u);
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
    auto svc = StreamingService<std::string>::Create(
        {.common = {.num_workers = 2}}, c, RawPayloadTransformer, [&](Message& m, std::string&) {
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
  // Send is durable only once the dead-letter topic's subscription acked it.
  auto sent = std::async(std::launch::async,
                         [&] { return sink->Send(m, PermanentError("cannot parse"), "svc"); });
  auto consumer = *broker->NewConsumer("dead-sub");
  ASSERT_TRUE(consumer->Start().ok());
  auto parked = PopFor(*consumer, 5s);
  ASSERT_TRUE(parked);
  EXPECT_EQ(sent.wait_for(100ms), std::future_status::timeout) << "not durable before the ack";
  EXPECT_EQ(parked->data.payload, "poison");
  EXPECT_EQ(parked->attributes.at("a"), "b");
  EXPECT_NE(parked->attributes.at("dataflow_error").find("cannot parse"), std::string::npos);
  EXPECT_EQ(parked->attributes.at("dataflow_source"), "svc");
  EXPECT_EQ(parked->attributes.at("dataflow_delivery_attempt"), "3");
  parked->Ack();
  EXPECT_TRUE(sent.get().ok());
  EXPECT_EQ(broker->NewDeadLetterSink("missing")->Send(m, absl::InternalError("x"), "s").code(),
            absl::StatusCode::kNotFound);
}

TEST(InProcessBroker, AnEnvelopePublishReachesEverySubscriberDecodedAlready) {
  auto broker = BrokerWith({"a", "b"});
  auto a = *broker->NewConsumer("a");
  auto b = *broker->NewConsumer("b");
  ASSERT_TRUE(a->Start().ok());
  ASSERT_TRUE(b->Start().ok());
  const MessageData sent{
      .id = "reading-1", .payload = R"({"temp":21.5})", .enrichment_data = {{"location", "lab"}}};
  Message source(sent);
  std::promise<absl::Status> published;
  PublishEnvelope(broker->NewPublisher(), "t")(
      source, [&published](const absl::Status& s) { published.set_value(s); });
  for (MessageConsumer* consumer : {a.get(), b.get()}) {
    auto m = PopFor(*consumer, 5s);
    ASSERT_TRUE(m);
    ASSERT_NE(m->envelope, nullptr);
    EXPECT_EQ(*m->envelope, sent);
    // The body is still the envelope's encoding, for a raw reader or a dead letter.
    EXPECT_EQ(m->data.payload, EncodeMessageData(sent));
    m->Ack();
  }
  EXPECT_TRUE(published.get_future().get().ok());
}

TEST(InProcessBroker, PublisherResolvesWithTheIdAndFailsAfterStop) {
  auto broker = BrokerWith({"s"});
  auto consumer = *broker->NewConsumer("s");
  ASSERT_TRUE(consumer->Start().ok());
  auto publisher = broker->NewPublisher();
  auto pending = publisher->Publish("t", {.payload = "x", .attributes = {{"k", "v"}}});
  auto m = PopFor(*consumer, 5s);
  ASSERT_TRUE(m);
  m->Ack();
  auto id = pending.get();
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(*id, m->data.id);
  EXPECT_EQ(publisher->Publish("missing", {}).get().status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(publisher->Stop(std::chrono::steady_clock::now()).ok());
  EXPECT_EQ(publisher->Publish("t", {}).get().status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(InProcessBroker, APublishCompletesOnlyWhenEverySubscriptionAcked) {
  auto broker = BrokerWith({"a", "b"});
  std::promise<absl::StatusOr<std::string>> done;
  auto result = done.get_future();
  broker->PublishAsync("t", {.payload = "x"}, {}, {},
                       [&](const absl::StatusOr<std::string>& id) { done.set_value(id); });
  auto a = *broker->NewConsumer("a");
  auto b = *broker->NewConsumer("b");
  ASSERT_TRUE(a->Start().ok());
  ASSERT_TRUE(b->Start().ok());
  auto from_a = PopFor(*a, 5s);
  auto from_b = PopFor(*b, 5s);
  ASSERT_TRUE(from_a && from_b);
  from_a->Ack();
  from_b->Nack();  // redelivered inside "b"; the publish keeps waiting
  EXPECT_EQ(result.wait_for(200ms), std::future_status::timeout);
  auto again = PopFor(*b, 5s);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->delivery_attempt, 2);
  EXPECT_EQ(result.wait_for(0ms), std::future_status::timeout);
  again->Ack();
  ASSERT_EQ(result.wait_for(5s), std::future_status::ready);
  auto id = result.get();
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, from_a->data.id);
}

TEST(InProcessBroker, PublishingToATopicWithoutSubscriptionsFails) {
  auto broker = InProcessBroker::Create();
  ASSERT_TRUE(broker->CreateTopic("orphan").ok());
  EXPECT_EQ(broker->TopicsWithoutSubscriptions(), std::vector<std::string>{"orphan"});
  EXPECT_EQ(broker->Publish("orphan", {.payload = "x"}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  auto published = broker->NewPublisher()->Publish("orphan", {.payload = "x"}).get();
  EXPECT_EQ(published.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(published.status().message().find("would be lost"), absl::string_view::npos);
}

TEST(InProcessBroker, AFullSubscriptionPushesBackThenFailsThePublish) {
  auto broker = BrokerWith({"s"}, {.max_subscription_messages = 2, .max_publish_block = 100ms});
  ASSERT_TRUE(broker->Publish("t", {.payload = "1"}).ok());
  ASSERT_TRUE(broker->Publish("t", {.payload = "2"}).ok());
  auto third = broker->Publish("t", {.payload = "3"});
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted) << third.status();
  EXPECT_EQ(broker->Stats("s")->pending, 2u);
}

TEST(InProcessBroker, APublishBlockedOnAFullSubscriptionGetsInWhenAnAckMakesRoom) {
  auto broker = BrokerWith({"s"}, {.max_subscription_messages = 1, .max_publish_block = 60s});
  ASSERT_TRUE(broker->Publish("t", {.payload = "1"}).ok());
  auto blocked =
      std::async(std::launch::async, [&] { return broker->Publish("t", {.payload = "2"}); });
  EXPECT_EQ(blocked.wait_for(100ms), std::future_status::timeout) << "waits for room";
  auto consumer = *broker->NewConsumer("s");
  ASSERT_TRUE(consumer->Start().ok());
  auto m = PopFor(*consumer, 5s);
  ASSERT_TRUE(m);
  m->Ack();
  EXPECT_TRUE(blocked.get().ok());
  auto second = PopFor(*consumer, 5s);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->data.payload, "2");
  second->Ack();
}

TEST(InProcessBroker, AFullSubscriptionIsBoundedInBytesToo) {
  auto broker = BrokerWith({"s"}, {.max_subscription_bytes = 10, .max_publish_block = 50ms});
  ASSERT_TRUE(broker->Publish("t", {.payload = std::string(8, 'x')}).ok());
  EXPECT_EQ(broker->Publish("t", {.payload = std::string(8, 'x')}).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(broker->Stats("s")->held_bytes, 8u);
}

TEST(InProcessBroker, RedeliveryBacksOffWithTheAttempt) {
  auto broker = BrokerWith({"s"}, {.min_redelivery_backoff = 40ms});
  ASSERT_TRUE(broker->Publish("t", {.payload = "x"}).ok());
  auto consumer = *broker->NewConsumer("s");
  ASSERT_TRUE(consumer->Start().ok());
  std::vector<std::chrono::steady_clock::duration> gaps;
  auto m = PopFor(*consumer, 5s);
  for (int attempt = 1; attempt <= 3; ++attempt) {
    ASSERT_TRUE(m);
    ASSERT_EQ(m->delivery_attempt, attempt);
    const auto nacked_at = std::chrono::steady_clock::now();
    m->Nack();
    m = PopFor(*consumer, 5s);
    gaps.push_back(std::chrono::steady_clock::now() - nacked_at);
  }
  ASSERT_TRUE(m);
  m->Ack();
  // Lower bounds the broker guarantees (the upper half of 40, 80, 160 ms).
  EXPECT_GE(gaps[0], 20ms);
  EXPECT_GE(gaps[1], 40ms);
  EXPECT_GE(gaps[2], 80ms);
}

TEST(InProcessBroker, ServiceChainAcksTheSourceOnlyOnceTheLastSinkHasIt) {
  // source topic "t" -> relay service -> topic "out" -> sink service (gated)
  auto broker = BrokerWith({"relay"});
  ASSERT_TRUE(broker->CreateTopic("out").ok());
  ASSERT_TRUE(broker->CreateSubscription("sink", "out").ok());
  auto relay = StreamingService<std::string>::CreateAsync(
      {.common = {.num_workers = 1}}, *broker->NewConsumer("relay"), RawPayloadTransformer,
      [p = PublishEnvelope(broker->NewPublisher(), "out")](Message& m, std::string&,
                                                           Completion done) { p(m, done); });
  ASSERT_TRUE(relay.ok());
  std::promise<void> gate;
  std::shared_future<void> open = gate.get_future().share();
  auto sink = StreamingService<std::string>::Create(
      {.common = {.num_workers = 1}}, *broker->NewConsumer("sink"), RawPayloadTransformer,
      [open](Message&, std::string&) {
        open.wait();
        return absl::OkStatus();
      });
  ASSERT_TRUE(sink.ok());
  ASSERT_TRUE((*sink)->Start().ok());
  ASSERT_TRUE((*relay)->Start().ok());
  std::promise<absl::StatusOr<std::string>> done;
  auto result = done.get_future();
  broker->PublishAsync("t", {.payload = "x"}, {}, {},
                       [&](const absl::StatusOr<std::string>& id) { done.set_value(id); });
  ASSERT_TRUE(WaitFor([&] { return broker->Stats("sink")->outstanding == 1; }, 5s));
  EXPECT_EQ(result.wait_for(200ms), std::future_status::timeout);
  EXPECT_EQ(broker->Stats("relay")->acked, 0u) << "the relay's input waits for the sink";
  gate.set_value();
  ASSERT_EQ(result.wait_for(5s), std::future_status::ready);
  EXPECT_TRUE(result.get().ok());
  ASSERT_TRUE((*relay)->Stop(5s).ok());
  ASSERT_TRUE((*sink)->Stop(5s).ok());
  EXPECT_EQ((*relay)->metrics().processed, 1u);
}

TEST(InProcessBroker, ServiceOverTheBrokerRedeliversUntilProcessed) {
  auto broker = BrokerWith({"s"});
  auto consumer = *broker->NewConsumer("s");
  std::atomic<int> attempts{0};
  auto svc = StreamingService<std::string>::Create(
      {.common = {.num_workers = 1}}, consumer, RawPayloadTransformer,
      [&](Message& m, std::string&) {
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

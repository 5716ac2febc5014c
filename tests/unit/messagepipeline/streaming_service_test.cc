#include "dataflow/messagepipeline/streaming_service.h"

#include <absl/strings/match.h>
#include <gtest/gtest.h>

#include <atomic>
#include <latch>
#include <set>
#include <stdexcept>

#include "dataflow/messagepipeline/errors.h"
#include "dataflow_testing/server_process.h"
#include "scripted_consumer.h"
#include "service_expectations.h"

namespace dataflow::messagepipeline {
namespace {

using testing::ExpectMetrics;
using testing::ExpectOutcomes;
using testing::Outcome;
using testing::RecordingDeadLetterSink;
using testing::ScriptedConsumer;
using namespace std::chrono_literals;

// Payload drives the outcome: "skip" or a testing::ScriptedFailure here, "fail" or "boom" in
// Process; anything else ("ok") is processed.
TransformResult<std::string> Transform(const Message& m) {
  const std::string& p = m.data.payload;
  if (p == "skip") return Skip<std::string>();
  if (auto failure = testing::ScriptedFailure(p)) return *failure;
  return std::optional<std::string>(p);
}

absl::Status Process(Message&, std::string& p) {
  if (p == "fail") return absl::InternalError("sink refused");
  if (p == "boom") throw std::runtime_error("processor exploded");
  return absl::OkStatus();
}

std::unique_ptr<StreamingService<std::string>> MakeService(
    std::shared_ptr<ScriptedConsumer> consumer, StreamingServiceOptions options = {}) {
  auto service = StreamingService<std::string>::Create(std::move(options), std::move(consumer),
                                                       Transform, Process);
  EXPECT_TRUE(service.ok()) << service.status();
  return *std::move(service);
}

// A second Start() is refused and leaves the running workers alone (they once read a handler
// the second call replaced: a data race TSan reports).
TEST(StreamingService, ASecondStartWhileRunningIsRefusedAndChangesNothing) {
  auto consumer = std::make_shared<ScriptedConsumer>();
  auto service = MakeService(consumer, {.common = {.num_workers = 2}});
  ASSERT_TRUE(service->Start().ok());
  for (int i = 0; i < 200; ++i) consumer->Feed("a" + std::to_string(i), "ok");
  EXPECT_EQ(service->Start().code(), absl::StatusCode::kFailedPrecondition);
  for (int i = 0; i < 200; ++i) consumer->Feed("b" + std::to_string(i), "ok");
  ASSERT_TRUE(service->Stop(10s).ok());
  ExpectMetrics(service->metrics(), {.received = 400, .processed = 400});
}

TEST(StreamingService, SettlesEachOutcomeAsDocumented) {
  auto consumer = std::make_shared<ScriptedConsumer>();
  auto service = MakeService(consumer, {.common = {.num_workers = 3}});
  ASSERT_TRUE(service->Start().ok());
  for (const char* p : {"ok", "skip", "bad", "err", "throw", "fail", "boom"}) consumer->Feed(p, p);
  ASSERT_TRUE(service->Stop(10s).ok());
  ExpectOutcomes(*consumer, {{"ok", Outcome::kAcked},
                             {"skip", Outcome::kAcked},
                             // Permanent and no dead-letter sink: dropped (logged, counted,
                             // acked), never retried.
                             {"bad", Outcome::kAcked},
                             {"err", Outcome::kNacked},
                             {"throw", Outcome::kNacked},
                             {"fail", Outcome::kNacked},
                             {"boom", Outcome::kNacked}});
  ExpectMetrics(service->metrics(), {.received = 7,
                                     .processed = 1,
                                     .skipped = 1,
                                     .dropped = 1,
                                     .nacked = 4,
                                     .transform_errors = 3,
                                     .processing_errors = 2});
}

TEST(StreamingService, PermanentErrorsGoToTheDeadLetterSinkAndAreAcked) {
  auto consumer = std::make_shared<ScriptedConsumer>();
  auto dlq = std::make_shared<RecordingDeadLetterSink>();
  auto service = MakeService(consumer, {.common = {.name = "svc", .dead_letter = dlq}});
  ASSERT_TRUE(service->Start().ok());
  consumer->Feed("poison", "bad", 1, {{"device", "d7"}});
  consumer->Feed("transient", "err");
  ASSERT_TRUE(service->Stop(10s).ok());
  EXPECT_EQ(consumer->outcome("poison"), Outcome::kAcked);
  EXPECT_EQ(consumer->outcome("transient"), Outcome::kNacked);
  auto letters = dlq->letters();
  ASSERT_EQ(letters.size(), 1u);
  EXPECT_EQ(letters[0].id, "poison");
  EXPECT_EQ(letters[0].payload, "bad");
  EXPECT_EQ(letters[0].attributes.at("device"), "d7");
  EXPECT_NE(letters[0].attributes.at("dataflow_error").find("payload does not parse"),
            std::string::npos);
  EXPECT_EQ(letters[0].attributes.at("dataflow_source"), "svc");
  EXPECT_EQ(service->metrics().dead_lettered, 1u);
}

// An empty common.name is the kind's default, in dead letters and errors as before the name
// moved into ServiceOptions.
TEST(StreamingService, AnEmptyNameIsTheKindsDefault) {
  auto consumer = std::make_shared<ScriptedConsumer>();
  auto dlq = std::make_shared<RecordingDeadLetterSink>();
  auto service = MakeService(consumer, {.common = {.dead_letter = dlq}});
  ASSERT_TRUE(service->Start().ok());
  consumer->Feed("poison", "bad");
  ASSERT_TRUE(service->Stop(10s).ok());
  ASSERT_EQ(dlq->letters().size(), 1u);
  EXPECT_EQ(dlq->letters()[0].attributes.at("dataflow_source"), "streaming-service");
  auto invalid = StreamingService<std::string>::Create({.common = {.num_workers = 0}}, consumer,
                                                       Transform, Process);
  EXPECT_TRUE(absl::StartsWith(invalid.status().message(), "streaming-service: num_workers"))
      << invalid.status();
}

TEST(StreamingService, ExhaustedDeliveryAttemptsAreDeadLettered) {
  auto consumer = std::make_shared<ScriptedConsumer>();
  auto dlq = std::make_shared<RecordingDeadLetterSink>();
  auto service =
      MakeService(consumer, {.common = {.dead_letter = dlq, .max_delivery_attempts = 3}});
  ASSERT_TRUE(service->Start().ok());
  consumer->Feed("third", "err", 3);  // still within the limit: nacked for another try
  consumer->Feed("fourth", "ok", 4);  // over the limit: parked, never processed
  ASSERT_TRUE(service->Stop(10s).ok());
  EXPECT_EQ(consumer->outcome("third"), Outcome::kNacked);
  EXPECT_EQ(consumer->outcome("fourth"), Outcome::kAcked);
  ASSERT_EQ(dlq->letters().size(), 1u);
  EXPECT_EQ(dlq->letters()[0].attributes.at("dataflow_delivery_attempt"), "4");
  EXPECT_EQ(service->metrics().processed, 0u);
}

TEST(StreamingService, AttemptsAreFiniteByDefaultAndWithoutASinkTheMessageIsDropped) {
  auto consumer = std::make_shared<ScriptedConsumer>();
  auto service = MakeService(consumer, {.common = {.num_workers = 1}});
  ASSERT_TRUE(service->Start().ok());
  consumer->Feed("last-try", "err", kDefaultMaxDeliveryAttempts);
  consumer->Feed("over", "err", kDefaultMaxDeliveryAttempts + 1);
  ASSERT_TRUE(service->Stop(10s).ok());
  EXPECT_EQ(consumer->outcome("last-try"), Outcome::kNacked);
  EXPECT_EQ(consumer->outcome("over"), Outcome::kAcked) << "given up on, so it cannot loop";
  EXPECT_EQ(service->metrics().dropped, 1u);
  EXPECT_EQ(service->metrics().dead_lettered, 0u);
}

TEST(StreamingService, DeadLetterAttributesAreBoundedAndNeverCarryThePayload) {
  auto consumer = std::make_shared<ScriptedConsumer>();
  auto dlq = std::make_shared<RecordingDeadLetterSink>();
  const std::string huge(70000, 't');  // an MQTT topic may be 65 535 bytes
  auto service = StreamingService<std::string>::Create(
      {.common = {.dead_letter = dlq}}, consumer, Transform, [&](Message& m, std::string&) {
        // An error that quotes the whole payload, as a careless parser might.
        return PermanentError("cannot store " + m.data.payload);
      });
  ASSERT_TRUE(service.ok());
  ASSERT_TRUE((*service)->Start().ok());
  consumer->Feed("big", std::string(100000, 'p'), 1, {{"mqtt_topic", huge}});
  ASSERT_TRUE((*service)->Stop(10s).ok());
  ASSERT_EQ(dlq->letters().size(), 1u);
  const Attributes attributes = dlq->letters()[0].attributes;  // letters() is a copy
  for (const auto& [key, value] : attributes) {
    EXPECT_LE(value.size(), kMaxAttributeValueBytes) << key;
  }
  EXPECT_EQ(attributes.at("mqtt_topic").substr(0, 10), huge.substr(0, 10));
  EXPECT_NE(attributes.at("dataflow_error").find("bytes)"), std::string::npos)
      << "the cut is marked with the original size";
  EXPECT_EQ(dlq->letters()[0].payload.size(), 100000u) << "the payload itself is kept";
}

TEST(StreamingService, AFailingDeadLetterSinkMeansNack) {
  auto consumer = std::make_shared<ScriptedConsumer>();
  auto dlq = std::make_shared<RecordingDeadLetterSink>();
  dlq->FailWith(absl::UnavailableError("dlq down"));
  auto service = MakeService(consumer, {.common = {.dead_letter = dlq}});
  ASSERT_TRUE(service->Start().ok());
  consumer->Feed("poison", "bad");
  ASSERT_TRUE(service->Stop(10s).ok());
  EXPECT_EQ(consumer->outcome("poison"), Outcome::kNacked);
}

TEST(StreamingService, FactoryRejectsBadArguments) {
  auto consumer = std::make_shared<ScriptedConsumer>();
  auto expect_invalid = [](auto result, const char* mentions) {
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(result.status().message().find(mentions), absl::string_view::npos) << result.status();
  };
  using Svc = StreamingService<std::string>;
  expect_invalid(Svc::Create({}, nullptr, Transform, Process), "consumer");
  expect_invalid(Svc::Create({}, consumer, nullptr, Process), "transformer");
  expect_invalid(Svc::Create({}, consumer, Transform, nullptr), "processor");
  expect_invalid(Svc::Create({.common = {.num_workers = 0}}, consumer, Transform, Process),
                 "num_workers");
  expect_invalid(Svc::Create({.common = {.num_workers = -2}}, consumer, Transform, Process),
                 "num_workers");
  expect_invalid(
      Svc::Create({.common = {.max_delivery_attempts = -1}}, consumer, Transform, Process),
      "max_delivery_attempts");
}

TEST(StreamingService, LifecycleEdgesAreDefined) {
  auto consumer = std::make_shared<ScriptedConsumer>();
  auto service = MakeService(consumer);
  EXPECT_TRUE(service->Stop(1s).ok());  // Stop before Start: nothing to do
  EXPECT_EQ(service->Start().code(), absl::StatusCode::kFailedPrecondition);  // no restart

  auto consumer2 = std::make_shared<ScriptedConsumer>();
  auto service2 = MakeService(consumer2);
  ASSERT_TRUE(service2->Start().ok());
  EXPECT_EQ(service2->Start().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(consumer2->starts(), 1);
  EXPECT_TRUE(service2->Stop(5s).ok());
  EXPECT_TRUE(service2->Stop(5s).ok());  // second Stop returns the first result
}

TEST(StreamingService, ConsumerStartFailureIsReturned) {
  auto consumer = std::make_shared<ScriptedConsumer>();
  consumer->FailStartWith(absl::UnavailableError("broker unreachable"));
  auto service = MakeService(consumer);
  auto started = service->Start();
  EXPECT_EQ(started.code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(service->Stop(1s).ok());
}

TEST(StreamingService, StopDrainsEverythingAlreadyReceived) {
  auto consumer = std::make_shared<ScriptedConsumer>();
  std::atomic<int> processed{0};
  auto service = StreamingService<std::string>::Create({.common = {.num_workers = 2}}, consumer,
                                                       Transform, [&](Message&, std::string&) {
                                                         ++processed;
                                                         return absl::OkStatus();
                                                       });
  ASSERT_TRUE(service.ok());
  for (int i = 0; i < 500; ++i) consumer->Feed("m" + std::to_string(i), "ok");
  ASSERT_TRUE((*service)->Start().ok());
  ASSERT_TRUE((*service)->Stop(30s).ok());
  EXPECT_EQ(processed.load(), 500);
  EXPECT_EQ(consumer->count(Outcome::kAcked), 500u);
}

TEST(StreamingService, StopPastTheDeadlineNacksWhatIsLeftAndSaysHowMany) {
  auto consumer = std::make_shared<ScriptedConsumer>();
  std::latch entered(1);
  std::atomic<bool> release{false};
  auto service = StreamingService<std::string>::Create({.common = {.num_workers = 1}}, consumer,
                                                       Transform, [&](Message& m, std::string&) {
                                                         if (m.data.id == "slow") {
                                                           entered.count_down();
                                                           while (!release.load())
                                                             std::this_thread::yield();
                                                         }
                                                         return absl::OkStatus();
                                                       });
  ASSERT_TRUE(service.ok());
  consumer->Feed("slow", "ok");
  for (int i = 0; i < 10; ++i) consumer->Feed("q" + std::to_string(i), "ok");
  ASSERT_TRUE((*service)->Start().ok());
  entered.wait();
  std::jthread releaser([&] {
    // Once the deadline has expired, let the in-flight call finish.
    EXPECT_TRUE(
        dataflow::testing::WaitFor([&] { return (*service)->draining_past_deadline(); }, 30s, 1ms));
    release = true;
  });
  absl::Status stopped = (*service)->Stop(100ms);
  EXPECT_EQ(stopped.code(), absl::StatusCode::kDeadlineExceeded) << stopped;
  EXPECT_NE(stopped.message().find("10 messages were nacked"), absl::string_view::npos) << stopped;
  EXPECT_EQ(consumer->outcome("slow"), Outcome::kAcked);  // in-flight work still completes
  EXPECT_EQ(consumer->count(Outcome::kNacked), 10u);
  EXPECT_EQ(consumer->count(Outcome::kPending), 0u);
  // Every message received ends in exactly one outcome, those nacked at the deadline too.
  const ServiceMetrics m = (*service)->metrics();
  EXPECT_EQ(m.received, 11u);
  EXPECT_EQ(m.processed, 1u);
  EXPECT_EQ(m.nacked, 10u);
}

TEST(StreamingService, ManyWorkersSettleEveryMessageExactlyOnce) {
  auto consumer = std::make_shared<ScriptedConsumer>(256);
  std::mutex mu;
  std::multiset<std::string> seen;
  auto service = StreamingService<std::string>::Create(
      {.common = {.num_workers = 8}}, consumer, Transform, [&](Message& m, std::string& p) {
        std::lock_guard lock(mu);
        seen.insert(m.data.id);
        return p == "fail" ? absl::InternalError("x") : absl::OkStatus();
      });
  ASSERT_TRUE(service.ok());
  ASSERT_TRUE((*service)->Start().ok());
  constexpr int kMessages = 20000;
  {
    std::vector<std::jthread> feeders;
    for (int f = 0; f < 2; ++f) {
      feeders.emplace_back([&, f] {
        for (int i = f; i < kMessages; i += 2) {
          consumer->Feed("m" + std::to_string(i), i % 10 == 0 ? "fail" : "ok");
        }
      });
    }
  }
  ASSERT_TRUE((*service)->Stop(60s).ok());
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(kMessages));
  for (int i = 0; i < kMessages; ++i) {
    const std::string id = "m" + std::to_string(i);
    ASSERT_EQ(seen.count(id), 1u) << id;
    ASSERT_EQ(consumer->settle_calls(id), 1) << id;
    ASSERT_EQ(consumer->outcome(id), i % 10 == 0 ? Outcome::kNacked : Outcome::kAcked) << id;
  }
  const ServiceMetrics m = (*service)->metrics();
  EXPECT_EQ(m.processed + m.nacked, static_cast<std::uint64_t>(kMessages));
}

TEST(PayloadValidation, SkipsOutOfRangePayloads) {
  auto consumer = std::make_shared<ScriptedConsumer>();
  std::atomic<int> processed{0};
  auto service = StreamingService<std::string>::Create(
      {}, consumer, WithPayloadValidation<std::string>(RawPayloadTransformer, {2, 4}),
      [&](Message&, std::string&) {
        ++processed;
        return absl::OkStatus();
      });
  ASSERT_TRUE(service.ok());
  ASSERT_TRUE((*service)->Start().ok());
  consumer->Feed("short", "a");
  consumer->Feed("fits", "abc");
  consumer->Feed("long", "abcde");
  ASSERT_TRUE((*service)->Stop(10s).ok());
  EXPECT_EQ(processed.load(), 1);
  EXPECT_EQ((*service)->metrics().skipped, 2u);
  EXPECT_EQ(consumer->outcome("short"), Outcome::kAcked);
  EXPECT_EQ(consumer->outcome("long"), Outcome::kAcked);
}

TEST(EnvelopeTransformer, UndecodablePayloadIsPermanent) {
  Message bad(MessageData{.id = "1", .payload = "not json"});
  auto r = EnvelopeTransformer(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(IsPermanent(r.status()));
  Message good(MessageData{.id = "2", .payload = EncodeMessageData({.id = "inner"})});
  auto g = EnvelopeTransformer(good);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ((*g)->id, "inner");
}

}  // namespace
}  // namespace dataflow::messagepipeline

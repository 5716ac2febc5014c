#include "dataflow/messagepipeline/stage_service.h"

#include <absl/strings/match.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <mutex>
#include <thread>
#include <vector>

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

// Payload drives the stage: "skip", or a testing::ScriptedFailure; anything else is replaced
// by "<payload>+" (the mutation) and continues, the original kept as received.
absl::StatusOr<StageResult> Stage(Message& m) {
  const std::string p = m.data.payload;
  if (p == "skip") return StageResult{.action = StageAction::kSkip};
  if (auto failure = testing::ScriptedFailure(p)) return *failure;
  MessageData received = m.data;
  m.data.payload = p + "+";
  return StageResult{.received = std::move(received)};
}

// Downstream: "fail+" is refused (transient), "poison+" permanently; the rest are recorded.
struct Downstream {
  absl::Status operator()(Message& m) {
    if (m.data.payload == "fail+") return absl::UnavailableError("sink down");
    if (m.data.payload == "poison+") return PermanentError("sink refuses it");
    std::lock_guard lock(mu);
    seen.push_back(m.data.payload);
    return absl::OkStatus();
  }
  std::mutex mu;
  std::vector<std::string> seen;
};

TEST(StageService, SettlesAndCountsEachOutcome) {
  auto consumer = std::make_shared<ScriptedConsumer>();
  auto dlq = std::make_shared<RecordingDeadLetterSink>();
  auto downstream = std::make_shared<Downstream>();
  auto service =
      StageService::Create({.common = {.name = "stage", .num_workers = 3, .dead_letter = dlq}},
                           consumer, Stage, [downstream](Message& m) { return (*downstream)(m); });
  ASSERT_TRUE(service.ok()) << service.status();
  ASSERT_TRUE((*service)->Start().ok());
  for (const char* p : {"ok", "skip", "bad", "err", "throw", "fail", "poison"}) {
    consumer->Feed(p, p);
  }
  ASSERT_TRUE((*service)->Stop(10s).ok());
  ExpectOutcomes(*consumer, {{"ok", Outcome::kAcked},
                             {"skip", Outcome::kAcked},
                             {"bad", Outcome::kAcked},  // dead-lettered
                             {"err", Outcome::kNacked},
                             {"throw", Outcome::kNacked},
                             {"fail", Outcome::kNacked},
                             {"poison", Outcome::kAcked}});  // dead-lettered
  ExpectMetrics((*service)->metrics(), {.received = 7,
                                        .processed = 1,
                                        .skipped = 1,
                                        .dead_lettered = 2,
                                        .nacked = 3,
                                        .transform_errors = 3,
                                        .processing_errors = 2});
  EXPECT_EQ(downstream->seen, std::vector<std::string>{"ok+"});
  // The downstream's poison goes to the dead letters as it was received, not as staged.
  std::vector<std::string> letters;
  for (const auto& letter : dlq->letters()) letters.push_back(letter.payload);
  std::sort(letters.begin(), letters.end());
  EXPECT_EQ(letters, (std::vector<std::string>{"bad", "poison"}));
}

TEST(StageService, AsyncDownstreamSettlesWhenItCompletesLaterAndRestoresOnFailure) {
  auto consumer = std::make_shared<ScriptedConsumer>();
  auto dlq = std::make_shared<RecordingDeadLetterSink>();
  std::mutex mu;
  std::vector<std::pair<std::string, Completion>> pending;
  auto service = StageService::CreateAsync({.common = {.num_workers = 2, .dead_letter = dlq}},
                                           consumer, Stage, [&](Message& m, Completion done) {
                                             std::lock_guard lock(mu);
                                             pending.emplace_back(m.data.payload, std::move(done));
                                           });
  ASSERT_TRUE(service.ok()) << service.status();
  ASSERT_TRUE((*service)->Start().ok());
  for (const char* p : {"ok", "skip", "poison"}) consumer->Feed(p, p);
  ASSERT_TRUE(dataflow::testing::WaitFor(
      [&] {
        std::lock_guard lock(mu);
        return pending.size() == 2;
      },
      10s));
  EXPECT_EQ(consumer->outcome("ok"), Outcome::kPending) << "not acked before downstream confirmed";
  EXPECT_EQ(consumer->outcome("skip"), Outcome::kAcked);
  // Completions from another thread, after the workers moved on.
  std::thread([&] {
    std::lock_guard lock(mu);
    for (auto& [payload, done] : pending) {
      done(payload == "poison+" ? PermanentError("refused") : absl::OkStatus());
    }
  }).join();
  ASSERT_TRUE((*service)->Stop(10s).ok());
  EXPECT_EQ(consumer->outcome("ok"), Outcome::kAcked);
  EXPECT_EQ(consumer->outcome("poison"), Outcome::kAcked);
  ASSERT_EQ(dlq->letters().size(), 1u);
  EXPECT_EQ(dlq->letters()[0].payload, "poison");
  ExpectMetrics(
      (*service)->metrics(),
      {.received = 3, .processed = 1, .skipped = 1, .dead_lettered = 1, .processing_errors = 1});
}

TEST(StageService, FactoryRejectsBadArguments) {
  auto consumer = std::make_shared<ScriptedConsumer>();
  auto ok = [](Message&) { return absl::OkStatus(); };
  auto no_consumer = StageService::Create({}, nullptr, Stage, ok);
  EXPECT_EQ(no_consumer.status().code(), absl::StatusCode::kInvalidArgument);
  // An empty name is the kind's default.
  EXPECT_TRUE(absl::StartsWith(no_consumer.status().message(), "stage: consumer is null"))
      << no_consumer.status();
  EXPECT_EQ(StageService::Create({}, consumer, nullptr, ok).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(StageService::Create({}, consumer, Stage, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      StageService::Create({.common = {.num_workers = 0}}, consumer, Stage, ok).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(StageService::Create({.common = {.max_delivery_attempts = -1}}, consumer, Stage, ok)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(StageService::CreateAsync({.in_flight = {.max_messages = 0}}, consumer, Stage,
                                      [](Message&, Completion done) { done(absl::OkStatus()); })
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dataflow::messagepipeline

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <stdexcept>

#include "dataflow/messagepipeline/streaming_service.h"
#include "dataflow_testing/server_process.h"
#include "scripted_consumer.h"

namespace dataflow::messagepipeline {
namespace {

using dataflow::testing::WaitFor;
using testing::Outcome;
using testing::ScriptedConsumer;
using namespace std::chrono_literals;

TransformResult<std::string> Transform(const Message& m) {
  return std::optional<std::string>(m.data.payload);
}

// A sink that confirms later: each call keeps the completion the test calls.
class LateSink {
 public:
  void Accept(const std::string& id, Completion done) {
    std::lock_guard lock(mu_);
    completions_[id] = std::move(done);
  }
  // Calls the completion outside the lock, as a broker's callback thread would.
  void Resolve(const std::string& id, absl::Status s) {
    Completion done;
    {
      std::lock_guard lock(mu_);
      done = completions_.at(id);
    }
    done(std::move(s));
  }
  std::size_t accepted() {
    std::lock_guard lock(mu_);
    return completions_.size();
  }

 private:
  std::mutex mu_;
  std::map<std::string, Completion> completions_;
};

auto Into(LateSink& sink) {
  return [&sink](Message& m, std::string&, Completion done) {
    sink.Accept(m.data.id, std::move(done));
  };
}

TEST(AsyncStreamingService, SettlesEachMessageWhenItsSinkConfirms) {
  auto consumer = std::make_shared<ScriptedConsumer>();
  LateSink sink;
  auto service = StreamingService<std::string>::CreateAsync({.common = {.num_workers = 2}},
                                                            consumer, Transform, Into(sink));
  ASSERT_TRUE(service.ok()) << service.status();
  ASSERT_TRUE((*service)->Start().ok());
  consumer->Feed("a", "x");
  consumer->Feed("b", "x");
  ASSERT_TRUE(WaitFor([&] { return sink.accepted() == 2; }, 10s));
  EXPECT_EQ(consumer->outcome("a"), Outcome::kPending) << "never acked before the sink confirms";
  sink.Resolve("b", absl::UnavailableError("publish failed"));
  sink.Resolve("a", absl::OkStatus());
  ASSERT_TRUE((*service)->Stop(10s).ok());
  EXPECT_EQ(consumer->outcome("a"), Outcome::kAcked);
  EXPECT_EQ(consumer->outcome("b"), Outcome::kNacked);
  EXPECT_EQ((*service)->metrics().processed, 1u);
  EXPECT_EQ((*service)->metrics().nacked, 1u);
}

TEST(AsyncStreamingService, AThrowingProcessorNacksAndASecondCompletionIsIgnored) {
  auto consumer = std::make_shared<ScriptedConsumer>();
  auto service = StreamingService<std::string>::CreateAsync(
      {}, consumer, Transform, [](Message& m, std::string&, Completion done) {
        if (m.data.id == "throw") throw std::runtime_error("boom");
        done(absl::OkStatus());                       // inline, before Track() returned
        done(absl::UnavailableError("second call"));  // ignored
      });
  ASSERT_TRUE(service.ok());
  ASSERT_TRUE((*service)->Start().ok());
  consumer->Feed("throw", "x");
  consumer->Feed("twice", "x");
  ASSERT_TRUE((*service)->Stop(10s).ok());
  EXPECT_EQ(consumer->outcome("throw"), Outcome::kNacked);
  EXPECT_EQ(consumer->outcome("twice"), Outcome::kAcked);
  EXPECT_EQ(consumer->settle_calls("twice"), 1);
}

TEST(AsyncStreamingService, ASlowCompletionDoesNotHoldBackLaterOnes) {
  auto consumer = std::make_shared<ScriptedConsumer>();
  LateSink sink;
  auto service = StreamingService<std::string>::CreateAsync({.common = {.num_workers = 1}},
                                                            consumer, Transform, Into(sink));
  ASSERT_TRUE(service.ok());
  ASSERT_TRUE((*service)->Start().ok());
  consumer->Feed("slow", "x");
  consumer->Feed("fast", "x");
  ASSERT_TRUE(WaitFor([&] { return sink.accepted() == 2; }, 10s));
  sink.Resolve("fast", absl::OkStatus());
  // Settled as soon as its own result arrives, while the earlier one still waits.
  ASSERT_TRUE(WaitFor([&] { return consumer->outcome("fast") == Outcome::kAcked; }, 10s));
  EXPECT_EQ(consumer->outcome("slow"), Outcome::kPending);
  sink.Resolve("slow", absl::OkStatus());
  ASSERT_TRUE((*service)->Stop(10s).ok());
  EXPECT_EQ(consumer->outcome("slow"), Outcome::kAcked);
}

TEST(AsyncStreamingService, MaxInFlightBytesBoundsWhatWaitsForTheSink) {
  auto consumer = std::make_shared<ScriptedConsumer>();
  LateSink sink;
  auto service = StreamingService<std::string>::CreateAsync(
      {.common = {.num_workers = 1}, .in_flight = {.max_messages = 1000, .max_bytes = 10}},
      consumer, Transform, Into(sink));
  ASSERT_TRUE(service.ok());
  ASSERT_TRUE((*service)->Start().ok());
  // 4 bytes each: two fit under 10 bytes, the third waits until one is confirmed.
  for (int i = 0; i < 3; ++i) consumer->Feed("m" + std::to_string(i), "1234");
  ASSERT_TRUE(WaitFor([&] { return sink.accepted() == 2; }, 10s));
  EXPECT_FALSE(WaitFor([&] { return sink.accepted() == 3; }, 300ms));
  sink.Resolve("m0", absl::OkStatus());
  ASSERT_TRUE(WaitFor([&] { return sink.accepted() == 3; }, 10s));
  sink.Resolve("m1", absl::OkStatus());
  sink.Resolve("m2", absl::OkStatus());
  ASSERT_TRUE((*service)->Stop(10s).ok());
  EXPECT_EQ(consumer->count(Outcome::kAcked), 3u);
}

TEST(AsyncStreamingService, MaxInFlightBoundsWhatWaitsForTheSink) {
  auto consumer = std::make_shared<ScriptedConsumer>();
  LateSink sink;
  auto service = StreamingService<std::string>::CreateAsync(
      {.common = {.num_workers = 1}, .in_flight = {.max_messages = 3}}, consumer, Transform,
      Into(sink));
  ASSERT_TRUE(service.ok());
  ASSERT_TRUE((*service)->Start().ok());
  for (int i = 0; i < 20; ++i) consumer->Feed("m" + std::to_string(i), "x");
  // 3 in flight; the worker waits in Track() for room before it starts a fourth.
  ASSERT_TRUE(WaitFor([&] { return sink.accepted() >= 3; }, 10s));
  EXPECT_EQ(sink.accepted(), 3u);
  for (int i = 0; i < 20; ++i) {
    const std::string id = "m" + std::to_string(i);
    ASSERT_TRUE(WaitFor([&] { return sink.accepted() > static_cast<std::size_t>(i); }, 10s));
    sink.Resolve(id, absl::OkStatus());
  }
  ASSERT_TRUE((*service)->Stop(10s).ok());
  EXPECT_EQ(consumer->count(Outcome::kAcked), 20u);
}

TEST(AsyncStreamingService, StopPastTheDeadlineNacksUnconfirmedMessages) {
  auto consumer = std::make_shared<ScriptedConsumer>();
  LateSink sink;
  auto service = StreamingService<std::string>::CreateAsync({.common = {.num_workers = 1}},
                                                            consumer, Transform, Into(sink));
  ASSERT_TRUE(service.ok());
  ASSERT_TRUE((*service)->Start().ok());
  consumer->Feed("confirmed", "x");
  consumer->Feed("stuck", "x");
  ASSERT_TRUE(WaitFor([&] { return sink.accepted() == 2; }, 10s));
  sink.Resolve("confirmed", absl::OkStatus());
  absl::Status stopped = (*service)->Stop(200ms);
  EXPECT_EQ(stopped.code(), absl::StatusCode::kDeadlineExceeded) << stopped;
  EXPECT_EQ(consumer->outcome("confirmed"), Outcome::kAcked);
  EXPECT_EQ(consumer->outcome("stuck"), Outcome::kNacked);
  sink.Resolve("stuck", absl::OkStatus());  // a late confirmation changes nothing
  EXPECT_EQ(consumer->settle_calls("stuck"), 1);
}

TEST(AsyncStreamingService, FactoryRejectsBadArguments) {
  auto consumer = std::make_shared<ScriptedConsumer>();
  using Svc = StreamingService<std::string>;
  auto none = Svc::CreateAsync({}, consumer, Transform, nullptr);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument);
  auto zero = Svc::CreateAsync({.in_flight = {.max_messages = 0}}, consumer, Transform,
                               [](Message&, std::string&, Completion done) { done({}); });
  EXPECT_EQ(zero.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(zero.status().message().find("in_flight.max_messages"), absl::string_view::npos);
}

}  // namespace
}  // namespace dataflow::messagepipeline

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

// A sink that confirms later: each call hands out a promise the test resolves.
class LateSink {
 public:
  std::future<absl::Status> Accept(const std::string& id) {
    std::lock_guard lock(mu_);
    auto& p = promises_[id];
    return p.get_future();
  }
  void Resolve(const std::string& id, absl::Status s) {
    std::lock_guard lock(mu_);
    promises_.at(id).set_value(std::move(s));
  }
  std::size_t accepted() {
    std::lock_guard lock(mu_);
    return promises_.size();
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::promise<absl::Status>> promises_;
};

TEST(AsyncStreamingService, SettlesEachMessageWhenItsSinkConfirms) {
  auto consumer = std::make_shared<ScriptedConsumer>();
  LateSink sink;
  auto service = StreamingService<std::string>::CreateAsync(
      {.num_workers = 2}, consumer, Transform,
      [&](Message& m, std::string&) { return sink.Accept(m.data.id); });
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

TEST(AsyncStreamingService, AThrowingOrEmptyProcessorNacks) {
  auto consumer = std::make_shared<ScriptedConsumer>();
  auto service = StreamingService<std::string>::CreateAsync(
      {}, consumer, Transform, [](Message& m, std::string&) -> std::future<absl::Status> {
        if (m.data.id == "throw") throw std::runtime_error("boom");
        return {};  // an empty future is a bug in the processor, not a success
      });
  ASSERT_TRUE(service.ok());
  ASSERT_TRUE((*service)->Start().ok());
  consumer->Feed("throw", "x");
  consumer->Feed("empty", "x");
  ASSERT_TRUE((*service)->Stop(10s).ok());
  EXPECT_EQ(consumer->outcome("throw"), Outcome::kNacked);
  EXPECT_EQ(consumer->outcome("empty"), Outcome::kNacked);
}

TEST(AsyncStreamingService, MaxInFlightBoundsWhatWaitsForTheSink) {
  auto consumer = std::make_shared<ScriptedConsumer>();
  LateSink sink;
  auto service = StreamingService<std::string>::CreateAsync(
      {.num_workers = 1, .max_in_flight = 3}, consumer, Transform,
      [&](Message& m, std::string&) { return sink.Accept(m.data.id); });
  ASSERT_TRUE(service.ok());
  ASSERT_TRUE((*service)->Start().ok());
  for (int i = 0; i < 20; ++i) consumer->Feed("m" + std::to_string(i), "x");
  // 3 tracked + 1 waiting in the settler's hands + 1 held by the blocked worker at most.
  ASSERT_TRUE(WaitFor([&] { return sink.accepted() >= 3; }, 10s));
  EXPECT_LE(sink.accepted(), 5u);
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
  auto service = StreamingService<std::string>::CreateAsync(
      {.num_workers = 1}, consumer, Transform,
      [&](Message& m, std::string&) { return sink.Accept(m.data.id); });
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
  auto zero = Svc::CreateAsync({.max_in_flight = 0}, consumer, Transform,
                               [](Message&, std::string&) { return ReadyStatus({}); });
  EXPECT_EQ(zero.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(zero.status().message().find("max_in_flight"), absl::string_view::npos);
}

}  // namespace
}  // namespace dataflow::messagepipeline

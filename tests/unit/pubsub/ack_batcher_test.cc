// AckBatcher on a fake clock over the FakeStub: batching, retries of failed acks and nacks
// within the lease (and not past it), extensions' results. Every call runs on the test
// thread, so no waiting is needed.
#include "ack_batcher.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "fake_stub.h"

namespace dataflow::pubsub {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::FakeStub;

class AckBatcherTest : public ::testing::Test {
 protected:
  std::shared_ptr<FakeStub> stub = std::make_shared<FakeStub>();
  SteadyClock::time_point t0 = SteadyClock::time_point() + std::chrono::hours(1);
  SteadyClock::time_point now = t0;
  AckBatcher batcher{stub,
                     {.subscription = "projects/p/subscriptions/s",
                      .ack_deadline = seconds(30),
                      .backoff = {.initial = milliseconds(100), .maximum = milliseconds(100)},
                      .clock = [this] { return now; }}};

  LeasedId Id(const std::string& id, seconds lease = seconds(30)) { return {id, t0 + lease}; }
  std::vector<std::string> Acked() {
    std::lock_guard lock(stub->mu);
    return stub->acked;
  }
  int AckCalls() {
    std::lock_guard lock(stub->mu);
    return stub->ack_calls;
  }
};

TEST_F(AckBatcherTest, SendsTheQueuedAcksInOneRequestAndNacksAsDeadlineZero) {
  batcher.Ack(Id("a"));
  batcher.Ack(Id("b"));
  batcher.Nack(Id("c"));
  EXPECT_EQ(batcher.Unsent(), 3u);
  EXPECT_EQ(AckCalls(), 0);  // nothing goes out before a flush
  batcher.Flush(/*retries=*/true);
  EXPECT_EQ(AckCalls(), 1);
  EXPECT_EQ(Acked(), (std::vector<std::string>{"a", "b"}));
  {
    std::lock_guard lock(stub->mu);
    EXPECT_EQ(stub->nacked, (std::vector<std::string>{"c"}));
    EXPECT_TRUE(stub->extended.empty());
  }
  EXPECT_EQ(batcher.Unsent(), 0u);
  EXPECT_EQ(batcher.stats().acks_sent, 2u);
  EXPECT_EQ(batcher.stats().nacks_sent, 1u);
}

TEST_F(AckBatcherTest, SplitsRequestsAt2500Ids) {
  for (int i = 0; i < 2501; ++i) batcher.Ack(Id(std::to_string(i)));
  batcher.Flush(true);
  EXPECT_EQ(AckCalls(), 2);
  EXPECT_EQ(Acked().size(), 2501u);
}

TEST_F(AckBatcherTest, AFailedAckIsRetriedAfterTheBackoff) {
  stub->ack_failures = 1;
  batcher.Ack(Id("a"));
  batcher.Flush(true);
  EXPECT_EQ(AckCalls(), 1);
  EXPECT_TRUE(Acked().empty());
  EXPECT_EQ(batcher.Unsent(), 1u);
  EXPECT_FALSE(batcher.WaitIdle(SteadyClock::now()));  // waiting for its retry
  batcher.Flush(true);  // the backoff (50..100 ms) has not passed on the fake clock
  EXPECT_EQ(AckCalls(), 1);
  now += milliseconds(100);
  batcher.Flush(false);  // a flush without retries leaves it waiting too
  EXPECT_EQ(AckCalls(), 1);
  batcher.Flush(true);
  EXPECT_EQ(AckCalls(), 2);
  EXPECT_EQ(Acked(), (std::vector<std::string>{"a"}));
  EXPECT_TRUE(batcher.WaitIdle(SteadyClock::now()));
  EXPECT_EQ(batcher.stats().settle_retries, 1u);
  EXPECT_EQ(batcher.stats().acks_sent, 1u);  // first attempts only
}

TEST_F(AckBatcherTest, AFailedNackIsRetriedToo) {
  stub->modack_failures = 1;
  batcher.Nack(Id("n"));
  batcher.Flush(true);
  now += milliseconds(100);
  batcher.Flush(true);
  std::lock_guard lock(stub->mu);
  EXPECT_EQ(stub->nacked, (std::vector<std::string>{"n"}));
  EXPECT_EQ(stub->modack_calls, 2);
}

TEST_F(AckBatcherTest, AnAckIsGivenUpWhenTheLeaseRunsOutWhileRetrying) {
  stub->ack_fail_forever = true;
  batcher.Ack(Id("a", seconds(10)));
  batcher.Flush(true);
  now += milliseconds(100);
  batcher.Flush(true);
  EXPECT_EQ(AckCalls(), 2);
  EXPECT_EQ(batcher.stats().settles_expired, 0u);
  now = t0 + seconds(10);  // the lease ends: the server redelivers the message anyway
  batcher.Flush(true);
  EXPECT_EQ(AckCalls(), 2);
  EXPECT_EQ(batcher.stats().settles_expired, 1u);
  EXPECT_EQ(batcher.Unsent(), 0u);
  EXPECT_TRUE(batcher.WaitIdle(SteadyClock::now()));
}

TEST_F(AckBatcherTest, AnAckWhoseLeaseEndsBeforeTheRetryIsGivenUpAtOnce) {
  stub->ack_failures = 1;
  batcher.Ack({"a", t0 + milliseconds(10)});  // the retry would come 50..100 ms later
  batcher.Flush(true);
  EXPECT_EQ(batcher.stats().settles_expired, 1u);
  EXPECT_EQ(batcher.Unsent(), 0u);
}

TEST_F(AckBatcherTest, ANonRetryableFailureIsCountedNotRetried) {
  stub->settle_fail_with = absl::StatusCode::kInvalidArgument;
  stub->ack_failures = 1;
  batcher.Ack(Id("a"));
  batcher.Flush(true);
  now += seconds(1);
  batcher.Flush(true);
  EXPECT_EQ(AckCalls(), 1);
  EXPECT_EQ(batcher.stats().settles_failed, 1u);
  EXPECT_EQ(batcher.Unsent(), 0u);
}

TEST_F(AckBatcherTest, ExtensionsReportConfirmedAndRetriedIds) {
  auto results = batcher.Extend({Id("a"), Id("b")});
  ASSERT_EQ(results.size(), 1u);
  EXPECT_TRUE(results[0].confirmed);
  EXPECT_EQ(results[0].at, t0);
  EXPECT_EQ(results[0].ids, (std::vector<std::string>{"a", "b"}));
  {
    std::lock_guard lock(stub->mu);
    EXPECT_EQ(stub->extended, (std::vector<std::string>{"a", "b"}));
  }
  stub->modack_failures = 1;
  // "late"'s lease ends before the retry could be made: left out (given up).
  results = batcher.Extend({Id("c"), {"late", t0 + milliseconds(10)}});
  ASSERT_EQ(results.size(), 1u);
  EXPECT_FALSE(results[0].confirmed);
  EXPECT_EQ(results[0].ids, (std::vector<std::string>{"c"}));
  EXPECT_GE(results[0].at, t0 + milliseconds(50));
  EXPECT_LE(results[0].at, t0 + milliseconds(100));
  EXPECT_EQ(batcher.stats().extensions_sent, 4u);
  EXPECT_EQ(batcher.stats().settles_expired, 1u);
  EXPECT_EQ(batcher.stats().settle_retries, 0u);  // rescheduled by the lease manager
}

}  // namespace
}  // namespace dataflow::pubsub

// FlowControl alone: the message and byte limits, the one message that always fits, and
// Shutdown() waking a waiter.
#include "flow_control.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

namespace dataflow::pubsub {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// Polls flow.stats() (which has no signal) until `waiting` callers block; false after 30 s.
bool AwaitWaiting(const FlowControl& flow, std::size_t waiting) {
  const auto give_up = std::chrono::steady_clock::now() + seconds(30);
  while (flow.stats().waiting != waiting) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    std::this_thread::sleep_for(milliseconds(1));
  }
  return true;
}

TEST(FlowControl, WaitsAtMaxMessagesUntilOneIsReleased) {
  FlowControl flow(2, 1000);
  ASSERT_TRUE(flow.Acquire(10));
  ASSERT_TRUE(flow.Acquire(10));
  auto third = std::async(std::launch::async, [&] { return flow.Acquire(10); });
  ASSERT_TRUE(AwaitWaiting(flow, 1));
  EXPECT_EQ(third.wait_for(milliseconds(0)), std::future_status::timeout);
  flow.Release(10);
  EXPECT_TRUE(third.get());
  const auto s = flow.stats();
  EXPECT_EQ(s.messages, 2u);
  EXPECT_EQ(s.bytes, 20u);
  EXPECT_EQ(s.waiting, 0u);
}

TEST(FlowControl, WaitsAtMaxBytes) {
  FlowControl flow(100, 100);
  ASSERT_TRUE(flow.Acquire(60));
  auto next = std::async(std::launch::async, [&] { return flow.Acquire(60); });
  ASSERT_TRUE(AwaitWaiting(flow, 1));
  flow.Release(60);
  EXPECT_TRUE(next.get());
  EXPECT_EQ(flow.stats().bytes, 60u);
}

TEST(FlowControl, OneMessageOverTheByteLimitStillFitsAlone) {
  FlowControl flow(10, 100);
  ASSERT_TRUE(flow.Acquire(500));  // none out: it must not wait forever
  EXPECT_EQ(flow.stats().bytes, 500u);
  auto next = std::async(std::launch::async, [&] { return flow.Acquire(1); });
  ASSERT_TRUE(AwaitWaiting(flow, 1));
  flow.Release(500);
  EXPECT_TRUE(next.get());
}

TEST(FlowControl, ShutdownWakesAWaiterWithoutCountingIt) {
  FlowControl flow(1, 1000);
  ASSERT_TRUE(flow.Acquire(10));
  auto blocked = std::async(std::launch::async, [&] { return flow.Acquire(10); });
  ASSERT_TRUE(AwaitWaiting(flow, 1));
  flow.Shutdown();
  // Bounded: if Shutdown() does not wake it, room does, and the test fails instead of hanging.
  const bool woken = blocked.wait_for(seconds(30)) == std::future_status::ready;
  if (!woken) flow.Release(10);
  EXPECT_TRUE(woken);
  EXPECT_FALSE(blocked.get());
  EXPECT_FALSE(flow.Acquire(1));  // with room too
  EXPECT_EQ(flow.stats().messages, 1u);
  flow.Release(10);
  EXPECT_EQ(flow.stats().messages, 0u);
}

TEST(FlowControl, ReleasesSeveralAtOnce) {
  FlowControl flow(3, 1000);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(flow.Acquire(5));
  flow.Release(10, 2);
  EXPECT_EQ(flow.stats().messages, 1u);
  EXPECT_EQ(flow.stats().bytes, 5u);
}

}  // namespace
}  // namespace dataflow::pubsub

#include "dataflow/messagepipeline/backoff.h"

#include <gtest/gtest.h>

#include <random>

namespace dataflow::messagepipeline {
namespace {

TEST(Backoff, GrowsWithJitterUpToTheMaximum) {
  auto b = ExponentialBackoff::Create({.initial = std::chrono::milliseconds(100),
                                       .maximum = std::chrono::milliseconds(1000),
                                       .multiplier = 2.0});
  ASSERT_TRUE(b.ok());
  auto first = b->Next();
  EXPECT_GE(first.count(), 50);
  EXPECT_LE(first.count(), 100);
  for (int i = 0; i < 20; ++i) {
    auto d = b->Next();
    EXPECT_LE(d.count(), 1000);
  }
  EXPECT_GE(b->Next().count(), 500);  // capped range is [max/2, max]
  b->Reset();
  EXPECT_LE(b->Next().count(), 100);
  EXPECT_FALSE(ExponentialBackoff::Create({.initial = std::chrono::milliseconds(0)}).ok());
  EXPECT_FALSE(ExponentialBackoff::Create({.multiplier = 0.5}).ok());
}

TEST(Backoff, ADelayForACountedRetryGrowsLikeTheLoop) {
  const BackoffOptions options{.initial = std::chrono::milliseconds(10),
                               .maximum = std::chrono::milliseconds(1000),
                               .multiplier = 2.0};
  std::minstd_rand rng(1);
  for (int retry = 1; retry <= 12; ++retry) {
    const std::int64_t upper = std::min<std::int64_t>(10 << (retry - 1), 1000);
    const auto d = BackoffDelay(options, retry, rng).count();
    EXPECT_GE(d, upper / 2) << "retry " << retry;
    EXPECT_LE(d, upper) << "retry " << retry;
  }
  // A huge retry count neither overflows nor exceeds the maximum.
  EXPECT_LE(BackoffDelay(options, 1 << 30, rng).count(), 1000);
  EXPECT_GE(BackoffDelay(options, 1 << 30, rng).count(), 500);
}

}  // namespace
}  // namespace dataflow::messagepipeline

#include "dataflow/messagepipeline/bounded_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <numeric>
#include <thread>

namespace dataflow::messagepipeline {
namespace {

TEST(BoundedQueue, FifoAndCapacity) {
  BoundedQueue<int> q(2);
  EXPECT_TRUE(q.TryPush(1));
  EXPECT_TRUE(q.TryPush(2));
  EXPECT_FALSE(q.TryPush(3));  // full
  EXPECT_EQ(q.size(), 2u);
  EXPECT_EQ(q.Pop(), 1);
  EXPECT_EQ(q.Pop(), 2);
}

TEST(BoundedQueue, ZeroCapacityMeansOne) { EXPECT_EQ(BoundedQueue<int>(0).capacity(), 1u); }

TEST(BoundedQueue, PushBlocksUntilThereIsRoom) {
  BoundedQueue<int> q(1);
  ASSERT_TRUE(q.Push(1));
  std::atomic<bool> pushed{false};
  std::jthread producer([&] {
    int two = 2;
    EXPECT_TRUE(q.Push(std::move(two)));
    pushed = true;
  });
  // The producer cannot finish while the queue is full.
  EXPECT_FALSE(pushed.load());
  EXPECT_EQ(q.Pop(), 1);
  EXPECT_EQ(q.Pop(), 2);  // waits for the producer
  producer.join();
  EXPECT_TRUE(pushed.load());
}

TEST(BoundedQueue, CloseDrainsThenEnds) {
  BoundedQueue<int> q(4);
  q.Push(1);
  q.Push(2);
  q.Close();
  int three = 3;
  EXPECT_FALSE(q.Push(std::move(three)));
  EXPECT_EQ(three, 3);
  EXPECT_EQ(q.Pop(), 1);
  EXPECT_EQ(q.Pop(), 2);
  EXPECT_EQ(q.Pop(), std::nullopt);
  EXPECT_TRUE(q.closed_and_empty());
}

TEST(BoundedQueue, FailedPushLeavesTheItemWithTheCaller) {
  BoundedQueue<std::unique_ptr<int>> q(1);
  q.Close();
  auto item = std::make_unique<int>(7);
  EXPECT_FALSE(q.Push(std::move(item)));
  ASSERT_NE(item, nullptr);
  EXPECT_EQ(*item, 7);
}

TEST(BoundedQueue, CloseWakesABlockedPusher) {
  BoundedQueue<int> q(1);
  q.Push(1);
  std::atomic<int> result{-1};
  std::jthread producer([&] {
    int two = 2;
    result = q.Push(std::move(two)) ? 1 : 0;
  });
  q.Close();
  producer.join();
  EXPECT_EQ(result, 0);
}

TEST(BoundedQueue, PopBatchTakesAFairShare) {
  BoundedQueue<int> q(100);
  for (int i = 0; i < 40; ++i) q.Push(int{i});
  std::vector<int> out;
  EXPECT_EQ(q.PopBatch(out, 32, /*share_among=*/4), 10u);  // 40 queued / 4 workers
  EXPECT_EQ(q.PopBatch(out, 5), 5u);
  EXPECT_EQ(out.front(), 0);
  EXPECT_EQ(out.back(), 14);
}

TEST(BoundedQueue, PopBatchUntilTimesOutEmpty) {
  BoundedQueue<int> q(4);
  std::vector<int> out;
  EXPECT_EQ(
      q.PopBatchUntil(out, 4, std::chrono::steady_clock::now() + std::chrono::milliseconds(5)), 0u);
  EXPECT_FALSE(q.closed_and_empty());
}

TEST(BoundedQueue, PushAllStopsAtCloseAndLeavesTheRest) {
  BoundedQueue<std::unique_ptr<int>> q(2);
  std::vector<std::unique_ptr<int>> items;
  for (int i = 0; i < 5; ++i) items.push_back(std::make_unique<int>(i));
  std::atomic<std::size_t> pushed{0};
  std::jthread producer([&] { pushed = q.PushAll(items); });
  EXPECT_EQ(*q.Pop().value(), 0);  // let one more in, then close
  q.Close();
  producer.join();
  const std::size_t n = pushed.load();
  ASSERT_GE(n, 2u);
  ASSERT_LT(n, 5u);
  for (std::size_t i = n; i < items.size(); ++i) {
    ASSERT_NE(items[i], nullptr) << "unpushed items stay with the caller";
  }
}

TEST(BoundedQueue, ManyProducersManyConsumersLoseNothing) {
  BoundedQueue<int> q(64);
  constexpr int kPerProducer = 20000;
  std::atomic<long> sum{0};
  std::atomic<int> count{0};
  {
    std::vector<std::jthread> consumers;
    for (int c = 0; c < 3; ++c) {
      consumers.emplace_back([&] {
        std::vector<int> batch;
        while (q.PopBatch(batch, 16, 3) > 0) {
          for (int v : batch) {
            sum += v;
            ++count;
          }
          batch.clear();
        }
      });
    }
    {
      std::vector<std::jthread> producers;
      for (int p = 0; p < 3; ++p) {
        producers.emplace_back([&] {
          for (int i = 1; i <= kPerProducer; ++i) ASSERT_TRUE(q.Push(int{i}));
        });
      }
    }
    q.Close();
  }
  EXPECT_EQ(count.load(), 3 * kPerProducer);
  EXPECT_EQ(sum.load(), 3L * kPerProducer * (kPerProducer + 1) / 2);
}

}  // namespace
}  // namespace dataflow::messagepipeline

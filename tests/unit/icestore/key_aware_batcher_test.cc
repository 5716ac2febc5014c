#include "dataflow/icestore/key_aware_batcher.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>

#include "dataflow_testing/server_process.h"

namespace dataflow::icestore {
namespace {

using messagepipeline::Message;
using messagepipeline::MessageData;
using namespace std::chrono_literals;

// OldestIdleCut() when CutIdle has nothing to cut.
constexpr auto kNone = std::chrono::steady_clock::time_point::max();

struct AckCounts {
  std::atomic<int> acked{0};
  std::atomic<int> nacked{0};
  Message Make(std::string id) {
    return Message(MessageData{.id = std::move(id)}, {},
                   messagepipeline::MakeAckHandler([this] { acked++; }, [this] { nacked++; }));
  }
};

// Records every group; acks them all.
struct Recorder {
  std::mutex mu;
  std::vector<std::pair<std::string, std::size_t>> groups;  // key, records
  std::vector<std::size_t> bytes;
  GroupSink Sink() {
    return [this](FlushedGroup& g) {
      {
        std::lock_guard lock(mu);
        groups.emplace_back(g.object.batch_key, g.object.records);
        bytes.push_back(g.object.jsonl.size());
      }
      for (auto& m : g.messages) m.Ack();
    };
  }
  std::vector<std::pair<std::string, std::size_t>> Groups() {
    std::lock_guard lock(mu);
    return groups;
  }
};

std::string Line(std::size_t n) { return std::string(n - 1, 'x') + "\n"; }

// CutIdle(opened_by) cuts only the keys whose batch got its first record at or before it (the
// service's idle_linger); OldestIdleCut says when the oldest of them did.
TEST(KeyAwareBatcher, CutIdleCutsOnlyBatchesOpenedByItsBound) {
  Recorder rec;
  AckCounts acks;
  auto batcher = KeyAwareBatcher::Create(
      {.batch_size = 100, .flush_interval = std::chrono::hours(1)}, rec.Sink());
  ASSERT_TRUE(batcher.ok());
  auto& b = **batcher;
  EXPECT_EQ(b.OldestIdleCut(), kNone);
  b.Add("a", Line(10), acks.Make("a1"));
  const auto opened = b.OldestIdleCut();
  ASSERT_NE(opened, kNone);
  b.Add("a", Line(10), acks.Make("a2"));  // a later record does not make the batch younger
  EXPECT_EQ(b.OldestIdleCut(), opened);
  b.CutIdle(opened - 1ns);
  EXPECT_EQ(b.open_batches(), 1u);
  b.CutIdle(opened);
  EXPECT_EQ(b.open_batches(), 0u);
  b.Close();
  EXPECT_EQ(rec.Groups(), (std::vector<std::pair<std::string, std::size_t>>{{"a", 2}}));
  EXPECT_EQ(acks.acked.load(), 2);
}

// Group commit for idle flushes: a key whose object is being written is not cut again until
// that upload is done; other keys are cut at once.
TEST(KeyAwareBatcher, CutIdleHoldsAKeyWhileItsUploadIsInFlight) {
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::vector<std::pair<std::string, std::size_t>> groups;  // key, records, in upload order
  std::atomic<int> uploaded{0};
  GroupSink sink = [&](FlushedGroup& g) {
    std::unique_lock lock(mu);
    groups.emplace_back(g.object.batch_key, g.object.records);
    if (g.object.batch_key == "a") cv.wait(lock, [&] { return release; });
    for (auto& m : g.messages) m.Ack();
  };
  AckCounts acks;
  auto batcher = KeyAwareBatcher::Create(
      {.batch_size = 100, .flush_interval = std::chrono::hours(1)}, sink, [&] { ++uploaded; });
  ASSERT_TRUE(batcher.ok());
  auto& b = **batcher;
  b.Add("a", Line(10), acks.Make("a1"));
  EXPECT_NE(b.OldestIdleCut(), kNone);
  b.CutIdle();  // "a" goes to an upload thread, which blocks
  ASSERT_TRUE(dataflow::testing::WaitFor(
      [&] {
        std::lock_guard lock(mu);
        return groups.size() == 1;
      },
      10s));
  b.Add("a", Line(10), acks.Make("a2"));
  b.Add("a", Line(10), acks.Make("a3"));
  b.Add("b", Line(10), acks.Make("b1"));
  b.CutIdle();  // only "b": "a" is still uploading
  ASSERT_TRUE(dataflow::testing::WaitFor([&] { return uploaded.load() == 1; }, 10s));
  EXPECT_EQ(b.OldestIdleCut(), kNone);
  EXPECT_EQ(b.open_batches(), 1u);
  {
    std::lock_guard lock(mu);
    release = true;
  }
  cv.notify_all();
  ASSERT_TRUE(dataflow::testing::WaitFor([&] { return uploaded.load() == 2; }, 10s));
  EXPECT_NE(b.OldestIdleCut(), kNone);
  b.CutIdle();  // now "a" again, with both records that arrived while it was written
  b.Close();
  EXPECT_EQ(groups,
            (std::vector<std::pair<std::string, std::size_t>>{{"a", 1}, {"b", 1}, {"a", 2}}));
  EXPECT_EQ(acks.acked.load(), 4);
}

TEST(KeyAwareBatcher, RejectsBadOptions) {
  Recorder rec;
  EXPECT_FALSE(KeyAwareBatcher::Create({}, nullptr).ok());
  EXPECT_FALSE(KeyAwareBatcher::Create({.batch_size = 0}, rec.Sink()).ok());
  EXPECT_FALSE(KeyAwareBatcher::Create({.flush_interval = 0ms}, rec.Sink()).ok());
  EXPECT_FALSE(KeyAwareBatcher::Create({.max_object_bytes = 0}, rec.Sink()).ok());
  EXPECT_FALSE(
      KeyAwareBatcher::Create({.max_object_bytes = 100, .max_buffered_bytes = 50}, rec.Sink())
          .ok());
  auto bad = KeyAwareBatcher::Create({.max_concurrent_uploads = 0}, rec.Sink());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("max_concurrent_uploads"), std::string::npos);
}

TEST(KeyAwareBatcher, FlushesEachKeyAtBatchSizeAndTheRestOnClose) {
  Recorder rec;
  AckCounts acks;
  auto b = KeyAwareBatcher::Create({.batch_size = 3, .flush_interval = 1h}, rec.Sink());
  ASSERT_TRUE(b.ok());
  for (int i = 0; i < 7; ++i) (*b)->Add("a", Line(10), acks.Make("a" + std::to_string(i)));
  for (int i = 0; i < 2; ++i) (*b)->Add("b", Line(10), acks.Make("b" + std::to_string(i)));
  ASSERT_TRUE(testing::WaitFor([&] { return rec.Groups().size() == 2; }, 10s));
  for (auto& [key, n] : rec.Groups()) {
    EXPECT_EQ(key, "a");
    EXPECT_EQ(n, 3u);
  }
  EXPECT_EQ((*b)->open_batches(), 2u);  // a: 1 left, b: 2
  EXPECT_EQ((*b)->buffered_bytes(), 30u);
  (*b)->Close();
  auto groups = rec.Groups();
  ASSERT_EQ(groups.size(), 4u);
  std::map<std::string, std::size_t> tail(groups.begin() + 2, groups.end());
  EXPECT_EQ(tail["a"], 1u);
  EXPECT_EQ(tail["b"], 2u);
  EXPECT_EQ(acks.acked, 9);
  EXPECT_EQ(acks.nacked, 0);
}

TEST(KeyAwareBatcher, FlushesAllKeysOnTheInterval) {
  Recorder rec;
  AckCounts acks;
  auto b = KeyAwareBatcher::Create({.batch_size = 100, .flush_interval = 1h}, rec.Sink());
  ASSERT_TRUE(b.ok());
  (*b)->Add("a", Line(5), acks.Make("1"));
  (*b)->Add("b", Line(5), acks.Make("2"));
  (*b)->MaybeFlush(std::chrono::steady_clock::now());  // not yet due
  EXPECT_EQ((*b)->open_batches(), 2u);
  const auto due = (*b)->next_flush();
  (*b)->MaybeFlush(due);
  EXPECT_EQ((*b)->open_batches(), 0u);
  EXPECT_GT((*b)->next_flush(), due);  // re-armed
  ASSERT_TRUE(testing::WaitFor([&] { return acks.acked == 2; }, 10s));
  EXPECT_EQ(rec.Groups().size(), 2u);
}

TEST(KeyAwareBatcher, ObjectsNeverExceedTheEncodedByteCap) {
  Recorder rec;
  AckCounts acks;
  auto b = KeyAwareBatcher::Create(
      {.batch_size = 1000, .flush_interval = 1h, .max_object_bytes = 100}, rec.Sink());
  ASSERT_TRUE(b.ok());
  for (int i = 0; i < 10; ++i) (*b)->Add("k", Line(30), acks.Make(std::to_string(i)));
  (*b)->Add("k", Line(250), acks.Make("huge"));  // bigger than the cap: an object of its own
  (*b)->Add("k", Line(30), acks.Make("after"));
  (*b)->Close();
  std::size_t total = 0;
  int oversized = 0;
  for (std::size_t bytes : rec.bytes) {
    if (bytes > 100) {
      ++oversized;
      EXPECT_EQ(bytes, 250u);
    }
    total += bytes;
  }
  EXPECT_EQ(oversized, 1);
  EXPECT_EQ(total, 10u * 30 + 250 + 30);
  // 30-byte lines, 100-byte cap: three per object, so 10 lines → 3+3+3+1.
  EXPECT_EQ(rec.Groups()[0].second, 3u);
  EXPECT_EQ(acks.acked, 12);
}

TEST(KeyAwareBatcher, MemoryCapForcesTheLargestBatchOut) {
  Recorder rec;
  AckCounts acks;
  auto b = KeyAwareBatcher::Create({.batch_size = 1000,
                                    .flush_interval = 1h,
                                    .max_object_bytes = 100,
                                    .max_buffered_bytes = 150},
                                   rec.Sink());
  ASSERT_TRUE(b.ok());
  (*b)->Add("small", Line(20), acks.Make("s1"));
  (*b)->Add("big", Line(60), acks.Make("b1"));
  (*b)->Add("big", Line(30), acks.Make("b2"));  // 110 buffered
  EXPECT_TRUE(rec.Groups().empty());
  (*b)->Add("other", Line(50), acks.Make("o1"));  // 160 > 150: "big" (90) goes
  ASSERT_TRUE(testing::WaitFor([&] { return rec.Groups().size() == 1; }, 10s));
  EXPECT_EQ(rec.Groups()[0], (std::pair<std::string, std::size_t>{"big", 2}));
  EXPECT_EQ((*b)->buffered_bytes(), 70u);
  EXPECT_LE((*b)->buffered_bytes(), 150u);
  (*b)->Close();
  EXPECT_EQ(acks.acked, 4);
}

TEST(KeyAwareBatcher, UploadsRunConcurrentlyButBounded) {
  constexpr int kMax = 3;
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> running{0}, peak{0}, started{0};
  AckCounts acks;
  auto b = KeyAwareBatcher::Create({.batch_size = 1, .max_concurrent_uploads = kMax},
                                   [&](FlushedGroup& g) {
                                     const int now = ++running;
                                     int p = peak.load();
                                     while (now > p && !peak.compare_exchange_weak(p, now)) {
                                     }
                                     ++started;
                                     std::unique_lock lock(mu);
                                     cv.wait(lock, [&] { return release; });
                                     --running;
                                     for (auto& m : g.messages) m.Ack();
                                   });
  ASSERT_TRUE(b.ok());
  std::atomic<int> added{0};
  std::jthread producer([&] {
    for (int i = 0; i < 20; ++i) {
      (*b)->Add("k" + std::to_string(i), Line(4), acks.Make(std::to_string(i)));
      ++added;
    }
  });
  // kMax uploads block in the sink, kMax more wait in the queue, then Add blocks.
  ASSERT_TRUE(testing::WaitFor([&] { return started == kMax; }, 10s));
  ASSERT_TRUE(testing::WaitFor([&] { return added == 2 * kMax; }, 10s));
  EXPECT_LT(added.load(), 20);  // backpressure held the producer
  {
    std::lock_guard lock(mu);
    release = true;
  }
  cv.notify_all();
  producer.join();
  (*b)->Close();
  EXPECT_EQ(peak.load(), kMax);
  EXPECT_EQ(acks.acked, 20);
}

TEST(KeyAwareBatcher, SinkThatThrowsOrForgetsNacks) {
  AckCounts acks;
  auto b = KeyAwareBatcher::Create({.batch_size = 2}, [](FlushedGroup& g) {
    if (g.object.batch_key == "throw") throw std::runtime_error("boom");
    // "forget": settles nothing
  });
  ASSERT_TRUE(b.ok());
  (*b)->Add("throw", Line(3), acks.Make("1"));
  (*b)->Add("forget", Line(3), acks.Make("2"));
  (*b)->Close();
  EXPECT_EQ(acks.nacked, 2);
  EXPECT_EQ(acks.acked, 0);
  (*b)->Add("late", Line(3), acks.Make("3"));  // after Close: nacked, not lost
  EXPECT_EQ(acks.nacked, 3);
}

}  // namespace
}  // namespace dataflow::icestore

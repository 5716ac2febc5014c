#include "dataflow/cache/lru_cache.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "counting_fetcher.h"
#include "dataflow_testing/server_process.h"

namespace dataflow::cache {
namespace {

using ::dataflow::testing::WaitFor;
using Source = testing::CountingFetcher<std::string, std::string>;
using Lru = InMemoryLruCache<std::string, std::string>;

std::unique_ptr<Lru> MakeLru(LruCacheOptions options, std::shared_ptr<Source> source) {
  auto lru = Lru::Create(options, std::move(source));
  EXPECT_TRUE(lru.ok()) << lru.status();
  return *std::move(lru);
}

TEST(LRUCacheTest, RejectsBadOptions) {
  auto zero = Lru::Create({.max_size = 0});
  EXPECT_EQ(zero.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(zero.status().message(), ::testing::HasSubstr("max_size"));
  EXPECT_EQ(Lru::Create({.max_size = 4, .shards = 5}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Lru::Create({.max_size = 4, .shards = -1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Lru::Create({.ttl = std::chrono::seconds(-1)}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(LRUCacheTest, MissWithoutFallbackIsNotFound) {
  auto lru = MakeLru({.max_size = 4}, nullptr);
  EXPECT_TRUE(absl::IsNotFound(lru->Fetch("a").status()));
  lru->Write("a", "1");
  EXPECT_EQ(*lru->Fetch("a"), "1");
}

TEST(LRUCacheTest, FallbackIsCalledOnceThenHit) {
  auto source = std::make_shared<Source>();
  source->Put("k", "v");
  auto lru = MakeLru({.max_size = 4}, source);
  EXPECT_EQ(*lru->Fetch("k"), "v");
  EXPECT_EQ(*lru->Fetch("k"), "v");
  EXPECT_EQ(source->calls(), 1);
  auto stats = lru->Stats();
  EXPECT_EQ(stats.hits, 1u);
  EXPECT_EQ(stats.misses, 1u);
  EXPECT_EQ(stats.fallback_calls, 1u);
}

// CLOCK: a hit sets the entry's reference bit; the hand spares (and clears) referenced
// entries and evicts the first unreferenced one.
TEST(LRUCacheTest, ReferencedEntrySurvivesEvictionOverUnreferenced) {
  auto source = std::make_shared<Source>();
  for (const char* k : {"a", "b", "c"}) source->Put(k, std::string(k) + "!");
  auto lru = MakeLru({.max_size = 2, .shards = 1}, source);
  ASSERT_TRUE(lru->Fetch("a").ok());
  ASSERT_TRUE(lru->Fetch("b").ok());
  ASSERT_TRUE(lru->Fetch("a").ok());  // a referenced, b not
  ASSERT_TRUE(lru->Fetch("c").ok());  // evicts b, although a was inserted first
  EXPECT_EQ(source->calls(), 3);
  EXPECT_EQ(*lru->Fetch("a"), "a!");
  EXPECT_EQ(source->calls(), 3);
  EXPECT_EQ(*lru->Fetch("b"), "b!");  // a referenced again, c never hit: evicts c
  EXPECT_EQ(source->calls(), 4);
  EXPECT_EQ(*lru->Fetch("a"), "a!");
  EXPECT_EQ(source->calls(), 4);
  EXPECT_EQ(lru->Size(), 2u);
  EXPECT_EQ(lru->Stats().evictions, 2u);
}

// Without any hits CLOCK degenerates to FIFO: the oldest insert goes first.
TEST(LRUCacheTest, UnreferencedEntriesLeaveInInsertionOrder) {
  auto lru = MakeLru({.max_size = 3, .shards = 1}, nullptr);
  for (const char* k : {"a", "b", "c", "d", "e"}) lru->Write(k, k);
  EXPECT_TRUE(absl::IsNotFound(lru->Fetch("a").status()));
  EXPECT_TRUE(absl::IsNotFound(lru->Fetch("b").status()));
  for (const char* k : {"c", "d", "e"}) EXPECT_EQ(*lru->Fetch(k), k);
  EXPECT_EQ(lru->Stats().evictions, 2u);
}

TEST(LRUCacheTest, WriteMarksAnExistingEntryReferenced) {
  auto lru = MakeLru({.max_size = 2, .shards = 1}, nullptr);
  lru->Write("a", "1");
  lru->Write("b", "2");
  lru->Write("a", "3");  // replaces a's value and spares it once
  lru->Write("c", "4");  // evicts b
  EXPECT_EQ(*lru->Fetch("a"), "3");
  EXPECT_TRUE(absl::IsNotFound(lru->Fetch("b").status()));
  EXPECT_EQ(*lru->Fetch("c"), "4");
}

TEST(LRUCacheTest, DeletedSlotIsReusedWithoutEviction) {
  auto lru = MakeLru({.max_size = 2, .shards = 1}, nullptr);
  lru->Write("a", "1");
  lru->Write("b", "2");
  lru->Delete("a");
  EXPECT_EQ(lru->Size(), 1u);
  lru->Write("c", "3");
  EXPECT_EQ(lru->Stats().evictions, 0u);
  EXPECT_EQ(*lru->Fetch("b"), "2");
  EXPECT_EQ(*lru->Fetch("c"), "3");
  lru->Write("d", "4");
  EXPECT_EQ(lru->Stats().evictions, 1u);
  EXPECT_EQ(lru->Size(), 2u);
}

TEST(LRUCacheTest, DefaultShardCountFitsSmallCaches) {
  // One entry: one shard, and it holds the entry.
  auto lru = MakeLru({.max_size = 1}, nullptr);
  lru->Write("a", "1");
  EXPECT_EQ(*lru->Fetch("a"), "1");
  lru->Write("b", "2");
  EXPECT_EQ(lru->Size(), 1u);
  EXPECT_EQ(*lru->Fetch("b"), "2");
}

TEST(LRUCacheTest, SizeNeverExceedsMaxAcrossShards) {
  auto source = std::make_shared<Source>();
  for (int i = 0; i < 1000; ++i) source->Put(std::to_string(i), "v");
  auto lru = MakeLru({.max_size = 100, .shards = 7}, source);
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 1000; ++i) {
      ASSERT_TRUE(lru->Fetch(std::to_string((i * 37 + round) % 1000)).ok());
      ASSERT_LE(lru->Size(), 100u);
    }
  }
  EXPECT_GT(lru->Size(), 50u);  // shards fill unevenly, but all of them fill
  EXPECT_GT(lru->Stats().evictions, 0u);
}

TEST(LRUCacheTest, ErrorsAreReturnedAndNotCached) {
  auto source = std::make_shared<Source>();
  source->Put("k", "v");
  source->FailWith(absl::UnavailableError("source down"));
  auto lru = MakeLru({.max_size = 4, .negative_ttl = std::chrono::hours(1)}, source);
  auto failed = lru->Fetch("k");
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kUnavailable);
  source->FailWith(absl::OkStatus());
  EXPECT_EQ(*lru->Fetch("k"), "v");
  EXPECT_EQ(source->calls(), 2);
}

TEST(LRUCacheTest, NotFoundIsNotCachedByDefault) {
  auto source = std::make_shared<Source>();
  auto lru = MakeLru({.max_size = 4}, source);
  EXPECT_TRUE(absl::IsNotFound(lru->Fetch("k").status()));
  source->Put("k", "late");
  EXPECT_EQ(*lru->Fetch("k"), "late");
  EXPECT_EQ(source->calls(), 2);
}

TEST(LRUCacheTest, NegativeCachingRemembersNotFoundForItsTtl) {
  auto source = std::make_shared<Source>();
  auto lru = MakeLru({.max_size = 4, .negative_ttl = std::chrono::milliseconds(100)}, source);
  EXPECT_TRUE(absl::IsNotFound(lru->Fetch("k").status()));
  source->Put("k", "late");
  EXPECT_TRUE(absl::IsNotFound(lru->Fetch("k").status()));  // remembered
  EXPECT_EQ(source->calls(), 1);
  EXPECT_TRUE(WaitFor([&] { return lru->Fetch("k").ok(); }, std::chrono::seconds(10)));
  EXPECT_EQ(*lru->Fetch("k"), "late");
}

TEST(LRUCacheTest, TtlExpiresValues) {
  auto source = std::make_shared<Source>();
  source->Put("k", "v1");
  auto lru = MakeLru({.max_size = 4, .ttl = std::chrono::milliseconds(50)}, source);
  EXPECT_EQ(*lru->Fetch("k"), "v1");
  source->Put("k", "v2");
  EXPECT_TRUE(WaitFor([&] { return *lru->Fetch("k") == "v2"; }, std::chrono::seconds(10)));
  EXPECT_GE(source->calls(), 2);
}

TEST(LRUCacheTest, DeleteForcesRefetch) {
  auto source = std::make_shared<Source>();
  source->Put("k", "v");
  auto lru = MakeLru({.max_size = 4}, source);
  ASSERT_TRUE(lru->Fetch("k").ok());
  lru->Delete("k");
  ASSERT_TRUE(lru->Fetch("k").ok());
  EXPECT_EQ(source->calls(), 2);
}

TEST(LRUCacheTest, ClosedCacheFailsFetch) {
  auto lru = MakeLru({.max_size = 4}, nullptr);
  lru->Write("k", "v");
  EXPECT_TRUE(lru->Close().ok());
  EXPECT_EQ(lru->Fetch("k").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(lru->Close().ok());
}

class ThrowingFetcher final : public Fetcher<std::string, std::string> {
 public:
  absl::StatusOr<std::string> Fetch(const std::string&) override {
    throw std::runtime_error("boom");
  }
  absl::Status Close() override { return absl::OkStatus(); }
};

TEST(LRUCacheTest, ThrowingFallbackBecomesInternalError) {
  auto lru = Lru::Create({.max_size = 4}, std::make_shared<ThrowingFetcher>());
  ASSERT_TRUE(lru.ok());
  auto got = (*lru)->Fetch("k");
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(got.status().message(), ::testing::HasSubstr("boom"));
}

// 100 concurrent misses on one key: one source call, all share the value.
TEST(LRUCacheConcurrencyTest, SingleFlight) {
  auto source = std::make_shared<Source>();
  source->Put("hot", "value");
  source->CloseGate();
  auto lru = MakeLru({.max_size = 16}, source);
  std::vector<absl::StatusOr<std::string>> results(100);
  std::vector<std::thread> threads;
  for (int i = 0; i < 100; ++i) {
    threads.emplace_back([&, i] { results[i] = lru->Fetch("hot"); });
  }
  // Hold the leader in the source until every caller has missed and joined the flight.
  ASSERT_TRUE(WaitFor([&] { return source->waiting() == 1 && lru->Stats().misses == 100; },
                      std::chrono::seconds(20)));
  source->OpenGate();
  for (auto& t : threads) t.join();
  EXPECT_EQ(source->calls(), 1);
  for (const auto& r : results) {
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(*r, "value");
  }
}

TEST(LRUCacheConcurrencyTest, SingleFlightSharesErrors) {
  auto source = std::make_shared<Source>();
  source->FailWith(absl::DeadlineExceededError("slow source"));
  source->CloseGate();
  auto lru = MakeLru({.max_size = 16}, source);
  std::vector<absl::Status> results(20);
  std::vector<std::thread> threads;
  for (int i = 0; i < 20; ++i) {
    threads.emplace_back([&, i] { results[i] = lru->Fetch("k").status(); });
  }
  ASSERT_TRUE(WaitFor([&] { return lru->Stats().misses == 20; }, std::chrono::seconds(20)));
  source->OpenGate();
  for (auto& t : threads) t.join();
  EXPECT_EQ(source->calls(), 1);
  for (const auto& s : results) EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded);
}

// Many threads on overlapping keys with a small capacity: evictions, write-backs and hits
// race; every answer must still be the right value for its key.
TEST(LRUCacheConcurrencyTest, MixedLoadReturnsCorrectValues) {
  auto source = std::make_shared<Source>();
  for (int i = 0; i < 200; ++i) source->Put(std::to_string(i), "v" + std::to_string(i));
  auto lru = MakeLru({.max_size = 50, .shards = 4, .ttl = std::chrono::milliseconds(5)}, source);
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 3000; ++i) {
        const int k = (i * 7 + t * 13) % 200;
        auto v = lru->Fetch(std::to_string(k));
        if (!v.ok() || *v != "v" + std::to_string(k)) wrong.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_LE(lru->Size(), 50u);
  auto stats = lru->Stats();
  EXPECT_EQ(stats.hits + stats.misses, 8u * 3000u);
}

// Hits (shared lock) race misses, write-backs, evictions, Write, Delete, negative caching
// and Stats() (exclusive lock) on few shards with a skewed key mix; run under TSan. Every
// answer must be right for its key and the size bound must hold throughout.
TEST(LRUCacheConcurrencyTest, HitsRaceEvictionsWritesAndDeletes) {
  auto source = std::make_shared<Source>();
  constexpr int kKeys = 400;  // keys >= 300 exist nowhere: negative caching
  for (int i = 0; i < 300; ++i) source->Put(std::to_string(i), "v" + std::to_string(i));
  auto lru =
      MakeLru({.max_size = 64, .shards = 2, .negative_ttl = std::chrono::seconds(1)}, source);
  constexpr int kThreads = 6;
  constexpr int kOps = 20000;
  std::atomic<int> wrong{0};
  std::atomic<int> fetches{0};
  std::atomic<bool> over_bound{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::uint64_t x = 0x9E3779B97F4A7C15ull * (t + 1);
      for (int i = 0; i < kOps; ++i) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;  // xorshift
        // Square a uniform number: small keys come up far more often (hot keys).
        const auto u = static_cast<int>(x % 1000);
        const int k = u * u / (1000 * 1000 / kKeys);
        const std::string key = std::to_string(k);
        if (i % 97 == 0 && k < 300) {
          lru->Write(key, "v" + key);
        } else if (i % 89 == 0) {
          lru->Delete(key);
        } else if (i % 501 == 0) {
          if (lru->Stats().size > 64) over_bound = true;
        } else {
          fetches.fetch_add(1);
          auto v = lru->Fetch(key);
          const bool right = k < 300 ? (v.ok() && *v == "v" + key) : absl::IsNotFound(v.status());
          if (!right) wrong.fetch_add(1);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_FALSE(over_bound.load());
  const auto stats = lru->Stats();
  EXPECT_LE(stats.size, 64u);
  EXPECT_GT(stats.evictions, 0u);
  EXPECT_GT(stats.hits, 0u);
  EXPECT_EQ(stats.hits + stats.misses, static_cast<std::uint64_t>(fetches.load()));
  EXPECT_EQ(stats.fallback_calls, static_cast<std::uint64_t>(source->calls()));
}

}  // namespace
}  // namespace dataflow::cache

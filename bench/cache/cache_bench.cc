// Cache hot paths: InMemoryLruCache hits under a Zipf key distribution (1 and 2 threads,
// with the hit ratio, beside a private cache per thread as the scaling baseline), and RedisCache
// hits at concurrency 1 and 16 against the server in $DATAFLOW_BENCH_REDIS (host:port;
// bench/cache/redis_bench.sh starts one and runs redis-benchmark beside this).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "dataflow/cache/lru_cache.h"
#include "dataflow/cache/redis_cache.h"

namespace {

using dataflow::cache::Fetcher;

constexpr int kKeys = 1'000'000;
constexpr std::size_t kCapacity = 100'000;

// Source of truth for misses: a cheap computed value.
class Source final : public Fetcher<std::int64_t, std::string> {
 public:
  absl::StatusOr<std::string> Fetch(const std::int64_t& key) override {
    return "value-" + std::to_string(key);
  }
  absl::Status Close() override { return absl::OkStatus(); }
};

// Zipf(s=0.99) samples over [0, kKeys) by inverse CDF on a table built once: rebuilding
// it for every run and thread took more time than the measured loops.
std::vector<std::int64_t> ZipfKeys(std::size_t n, unsigned seed) {
  static const std::vector<double> cdf = [] {
    std::vector<double> c(kKeys);
    double sum = 0;
    for (int i = 0; i < kKeys; ++i) c[i] = (sum += 1.0 / std::pow(i + 1, 0.99));
    return c;
  }();
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, cdf.back());
  std::vector<std::int64_t> keys(n);
  for (auto& k : keys) k = std::lower_bound(cdf.begin(), cdf.end(), u(rng)) - cdf.begin();
  return keys;
}

using BenchLru = dataflow::cache::InMemoryLruCache<std::int64_t, std::string>;
std::unique_ptr<BenchLru> g_lru;

// The timed loop all LRU benchmarks share: fetch the thread's keys round robin, then report
// items/s and (thread 0) the hit ratio of the loop, leaving out `preloaded` warm-up misses.
void FetchLoop(benchmark::State& state, BenchLru& lru, const std::vector<std::int64_t>& keys,
               std::uint64_t preloaded = 0) {
  std::size_t i = 0;
  for (auto _ : state) {
    auto v = lru.Fetch(keys[i++ & (keys.size() - 1)]);
    benchmark::DoNotOptimize(v);
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    const auto stats = lru.Stats();
    state.counters["hit_ratio"] = static_cast<double>(stats.hits) /
                                  static_cast<double>(stats.hits + stats.misses - preloaded);
  }
}

std::unique_ptr<BenchLru> NewBenchLru() {
  return *BenchLru::Create({.max_size = kCapacity, .shards = 64}, std::make_shared<Source>());
}

void BM_LruZipf(benchmark::State& state) {
  // Each run starts from an empty cache; the other threads touch g_lru only inside the
  // loop, which begins with a barrier.
  if (state.thread_index() == 0) g_lru = NewBenchLru();
  FetchLoop(state, *g_lru, ZipfKeys(1 << 20, 17 + state.thread_index()));
}
// Warm-up happens inside the timed loop; long runs make the cold start negligible.
BENCHMARK(BM_LruZipf)->Threads(1)->Threads(2)->MinTime(2.0)->UseRealTime();

// Hits only (the "hits/s"): a cache of kCapacity entries holding every key the
// stream asks for (the Zipf samples folded into [0, kCapacity)), loaded before the timed
// loop (every thread's loop starts together, after thread 0's setup), so nothing misses.
void BM_LruZipfHits(benchmark::State& state) {
  if (state.thread_index() == 0) {
    g_lru = NewBenchLru();
    for (std::int64_t k = 0; k < static_cast<std::int64_t>(kCapacity); ++k) {
      benchmark::DoNotOptimize(g_lru->Fetch(k));
    }
  }
  auto keys = ZipfKeys(1 << 20, 17 + state.thread_index());
  for (auto& k : keys) k %= static_cast<std::int64_t>(kCapacity);
  FetchLoop(state, *g_lru, keys, kCapacity);
}
BENCHMARK(BM_LruZipfHits)->Threads(1)->Threads(2)->MinTime(2.0)->UseRealTime();

// The scaling this machine allows: the same work with one private cache per thread, so
// nothing is shared. BM_LruZipf at N threads over this at N threads is the cost of sharing.
void BM_LruZipfPerThread(benchmark::State& state) {
  auto lru = NewBenchLru();
  FetchLoop(state, *lru, ZipfKeys(1 << 20, 17 + state.thread_index()));
}
BENCHMARK(BM_LruZipfPerThread)->Threads(1)->Threads(2)->MinTime(2.0)->UseRealTime();

struct Profile {
  std::string name;
  std::string email;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Profile, name, email)

void BM_RedisHit(benchmark::State& state) {
  static std::unique_ptr<dataflow::cache::RedisCache<std::string, Profile>> cache;
  const char* addr = std::getenv("DATAFLOW_BENCH_REDIS");
  if (addr == nullptr) {
    state.SkipWithError("set DATAFLOW_BENCH_REDIS=host:port (see redis_bench.sh)");
    return;
  }
  if (state.thread_index() == 0) {
    auto created =
        dataflow::cache::RedisCache<std::string, Profile>::Create({.addr = addr, .pool_size = 16});
    if (!created.ok()) {
      state.SkipWithError(created.status().ToString().c_str());
      return;
    }
    cache = *std::move(created);
    (void)cache->Write("bench:user", {"Ada", "ada@example.com"});
  }
  for (auto _ : state) {
    auto v = cache->Fetch("bench:user");
    if (!v.ok()) state.SkipWithError(v.status().ToString().c_str());
    benchmark::DoNotOptimize(v);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RedisHit)->Threads(1)->Threads(16)->MinTime(2.0)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();

// Cache hot paths: InMemoryLRUCache hits under a Zipf key distribution (1 and 2 threads,
// with the hit ratio), and RedisCache hits at concurrency 1 and 16 against the server in
// $DATAFLOW_BENCH_REDIS (host:port; bench/cache/redis_bench.sh starts one and runs
// redis-benchmark beside this).
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdlib>
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

// Zipf(s=0.99) samples over [0, kKeys) by inverse CDF on a precomputed table.
std::vector<std::int64_t> ZipfKeys(std::size_t n, unsigned seed) {
  std::vector<double> cdf(kKeys);
  double sum = 0;
  for (int i = 0; i < kKeys; ++i) cdf[i] = (sum += 1.0 / std::pow(i + 1, 0.99));
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, sum);
  std::vector<std::int64_t> keys(n);
  for (auto& k : keys) k = std::lower_bound(cdf.begin(), cdf.end(), u(rng)) - cdf.begin();
  return keys;
}

dataflow::cache::InMemoryLRUCache<std::int64_t, std::string>* g_lru = nullptr;

void BM_LruZipf(benchmark::State& state) {
  if (state.thread_index() == 0) {
    g_lru = dataflow::cache::InMemoryLRUCache<std::int64_t, std::string>::Create(
                {.max_size = kCapacity, .shards = 64}, std::make_shared<Source>())
                ->release();
  }
  const auto keys = ZipfKeys(1 << 20, 17 + state.thread_index());
  std::size_t i = 0;
  for (auto _ : state) {
    auto v = g_lru->Fetch(keys[i++ & ((1 << 20) - 1)]);
    benchmark::DoNotOptimize(v);
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    const auto stats = g_lru->Stats();
    state.counters["hit_ratio"] =
        static_cast<double>(stats.hits) / static_cast<double>(stats.hits + stats.misses);
  }
}
// Warm-up happens inside the timed loop; long runs make the cold start negligible.
BENCHMARK(BM_LruZipf)->Threads(1)->Threads(2)->MinTime(2.0)->UseRealTime();

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

// A read-through cache chain from its layers' options: an in-memory LRU in front of Redis in
// front of a source of truth (any Fetcher: Firestore, a file, ...), each layer optional.
//
//   auto chain = cache::BuildCacheChain<std::string, Json>(
//       {.lru = cache::LruCacheOptions{.max_size = 10000}, .redis = redis_config,
//        .source = firestore});
//   chain->fetcher->Fetch("device-1");  // LRU, then Redis, then Firestore
//   chain->lru->Stats();                // each layer's counters
//   chain->RegisterMetrics(telemetry, {{"service", "enrichment"}});  // ... on /metrics
#pragma once

#include <absl/status/statusor.h>

#include <memory>
#include <optional>

#include "dataflow/cache/fetcher.h"
#include "dataflow/cache/lru_cache.h"
#include "dataflow/cache/redis_cache.h"
#include "dataflow/cache/redis_stub.h"
#include "dataflow/messagepipeline/errors.h"

namespace dataflow::cache {

template <typename K, typename V>
struct CacheChainOptions {
  std::optional<LruCacheOptions> lru;  // the front layer
  std::optional<RedisOptions> redis;   // between the LRU and the source
  FetcherPtr<K, V> source;             // the source of truth; null: the caches only
};

template <typename K, typename V>
struct CacheChain {
  FetcherPtr<K, V> fetcher;  // the front of the chain: Fetch and Close here
  // The layers, for their stats; null when not configured.
  std::shared_ptr<InMemoryLruCache<K, V>> lru;
  std::shared_ptr<RedisCache<K, V>> redis;

  // Every layer's RegisterMetrics: the dataflow_cache_* families, labelled `labels` and
  // layer="lru" or "redis", until the layer is destroyed.
  void RegisterMetrics(metrics::Telemetry& telemetry, const metrics::Labels& labels) const {
    if (redis) redis->RegisterMetrics(telemetry, labels);
    if (lru) lru->RegisterMetrics(telemetry, labels);
  }
};

// Errors name the layer that could not be made ("cache.redis: ...").
template <typename K, typename V>
absl::StatusOr<CacheChain<K, V>> BuildCacheChain(const CacheChainOptions<K, V>& options) {
  CacheChain<K, V> chain{.fetcher = options.source};
  if (options.redis) {
    auto redis = RedisCache<K, V>::Create(*options.redis, chain.fetcher);
    if (!redis.ok()) {
      return messagepipeline::Annotate(redis.status(), "cache.redis (" + options.redis->addr + ")");
    }
    chain.redis = *std::move(redis);
    chain.fetcher = chain.redis;
  }
  if (options.lru) {
    auto lru = InMemoryLruCache<K, V>::Create(*options.lru, chain.fetcher);
    if (!lru.ok()) return messagepipeline::Annotate(lru.status(), "cache.lru");
    chain.lru = *std::move(lru);
    chain.fetcher = chain.lru;
  }
  return chain;
}

}  // namespace dataflow::cache

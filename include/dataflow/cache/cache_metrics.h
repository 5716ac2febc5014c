// The cache layers' metric families (docs/operations.md "Enrichment and caches"), labelled
// with the caller's labels and layer="lru" or layer="redis". InMemoryLruCache::RegisterMetrics
// and RedisCache::RegisterMetrics export them on a Telemetry (CacheChain::RegisterMetrics for
// every layer of a chain); the writers are here for a caller with stats of its own (and for
// the test that every stats field is exported).
#pragma once

#include <functional>

#include "dataflow/metrics/registration.h"

namespace dataflow::cache {

struct LruCacheStats;
struct RedisCacheStats;

// dataflow_cache_{hits,misses,fallback_calls,evictions}_total and the dataflow_cache_entries
// gauge, layer="lru".
void WriteLruCacheMetrics(metrics::ScrapeWriter& out, const metrics::Labels& labels,
                          const LruCacheStats& stats);
// dataflow_cache_{hits,misses,fallback_calls,decode_errors,backend_errors,bypassed}_total,
// layer="redis".
void WriteRedisCacheMetrics(metrics::ScrapeWriter& out, const metrics::Labels& labels,
                            const RedisCacheStats& stats);

namespace internal {
// For the layers' RegisterMetrics: the layers are templates, the families are written here.
metrics::Registration RegisterLruCacheMetrics(metrics::Telemetry& telemetry,
                                              const metrics::Labels& labels,
                                              std::function<LruCacheStats()> stats);
metrics::Registration RegisterRedisCacheMetrics(metrics::Telemetry& telemetry,
                                                const metrics::Labels& labels,
                                                std::function<RedisCacheStats()> stats);
}  // namespace internal

}  // namespace dataflow::cache

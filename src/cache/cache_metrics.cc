// The package's families; a new counter is a line here and a line in docs/operations.md.
#include "dataflow/cache/cache_metrics.h"

#include <cstdint>
#include <utility>

#include "dataflow/cache/lru_cache.h"
#include "dataflow/cache/redis_cache.h"
#include "dataflow/metrics/telemetry.h"

namespace dataflow::cache {
namespace {

metrics::Labels WithLayer(metrics::Labels labels, const char* layer) {
  labels["layer"] = layer;
  return labels;
}

void WriteCommonCacheMetrics(metrics::ScrapeWriter& out, const metrics::Labels& labels,
                             std::uint64_t hits, std::uint64_t misses,
                             std::uint64_t fallback_calls) {
  out.Counter("dataflow_cache_hits_total", "Lookups answered by this cache layer.", labels, hits);
  out.Counter("dataflow_cache_misses_total", "Lookups this cache layer could not answer.", labels,
              misses);
  out.Counter("dataflow_cache_fallback_calls_total",
              "Lookups this layer passed to the next one down the chain.", labels, fallback_calls);
}

}  // namespace

void WriteLruCacheMetrics(metrics::ScrapeWriter& out, const metrics::Labels& labels,
                          const LruCacheStats& s) {
  const metrics::Labels layer = WithLayer(labels, "lru");
  WriteCommonCacheMetrics(out, layer, s.hits, s.misses, s.fallback_calls);
  out.Counter("dataflow_cache_evictions_total", "Entries evicted to stay within max_size.", layer,
              s.evictions);
  out.Gauge("dataflow_cache_entries", "Entries held by this in-memory cache layer.", layer, s.size);
}

void WriteRedisCacheMetrics(metrics::ScrapeWriter& out, const metrics::Labels& labels,
                            const RedisCacheStats& s) {
  const metrics::Labels layer = WithLayer(labels, "redis");
  WriteCommonCacheMetrics(out, layer, s.hits, s.misses, s.fallback_calls);
  out.Counter("dataflow_cache_decode_errors_total",
              "Values present in the cache whose bytes did not decode.", layer, s.decode_errors);
  out.Counter("dataflow_cache_backend_errors_total", "Cache server commands that failed.", layer,
              s.backend_errors);
  out.Counter("dataflow_cache_bypassed_total",
              "Lookups that skipped the cache server while it was marked down.", layer, s.skipped);
}

namespace internal {

metrics::Registration RegisterLruCacheMetrics(metrics::Telemetry& telemetry,
                                              const metrics::Labels& labels,
                                              std::function<LruCacheStats()> stats) {
  return telemetry.Register([labels, stats = std::move(stats)](metrics::ScrapeWriter& out) {
    WriteLruCacheMetrics(out, labels, stats());
  });
}

metrics::Registration RegisterRedisCacheMetrics(metrics::Telemetry& telemetry,
                                                const metrics::Labels& labels,
                                                std::function<RedisCacheStats()> stats) {
  return telemetry.Register([labels, stats = std::move(stats)](metrics::ScrapeWriter& out) {
    WriteRedisCacheMetrics(out, labels, stats());
  });
}

}  // namespace internal
}  // namespace dataflow::cache

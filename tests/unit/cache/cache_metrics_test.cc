// The cache layers' families: every stats field exported, the labels dashboards rely on, and
// a layer's registration lasting as long as the layer.
#include "dataflow/cache/cache_metrics.h"

#include <gtest/gtest.h>

#include <string>

#include "dataflow/cache/chain_builder.h"
#include "dataflow/cache/lru_cache.h"
#include "dataflow/cache/redis_cache.h"
#include "dataflow/metrics/telemetry.h"
#include "dataflow_testing/metrics_fields.h"

namespace dataflow::cache {
namespace {

// When a stats struct gains a field, its binding stops compiling: export the field
// (cache_metrics.cc, docs/operations.md) and add it here.
TEST(CacheMetrics, EveryStatsFieldIsExported) {
  LruCacheStats lru;
  auto& [l1, l2, l3, l4, l5] = lru;
  const auto lru_values = testing::DistinctValues(l1, l2, l3, l4, l5);
  testing::ExpectEveryValueExported(lru_values, [&](metrics::ScrapeWriter& out) {
    WriteLruCacheMetrics(out, {{"service", "s"}}, lru);
  });
  RedisCacheStats redis;
  auto& [r1, r2, r3, r4, r5, r6] = redis;
  const auto redis_values = testing::DistinctValues(r1, r2, r3, r4, r5, r6);
  testing::ExpectEveryValueExported(redis_values, [&](metrics::ScrapeWriter& out) {
    WriteRedisCacheMetrics(out, {{"service", "s"}}, redis);
  });
}

// A source of truth that knows one key.
class OneKey final : public Fetcher<std::string, std::string> {
 public:
  absl::StatusOr<std::string> Fetch(const std::string& key) override {
    if (key == "k") return std::string("v");
    return absl::NotFoundError(key);
  }
  absl::Status Close() override { return absl::OkStatus(); }
};

TEST(CacheMetrics, AChainsLayersExportTheirStatsWithTheirLayerUntilDestroyed) {
  metrics::Telemetry telemetry;
  auto chain = BuildCacheChain<std::string, std::string>(
      {.lru = LruCacheOptions{.max_size = 10}, .source = std::make_shared<OneKey>()});
  ASSERT_TRUE(chain.ok()) << chain.status();
  chain->RegisterMetrics(telemetry, {{"service", "enrichment"}});
  ASSERT_TRUE(chain->fetcher->Fetch("k").ok());  // a miss, then
  ASSERT_TRUE(chain->fetcher->Fetch("k").ok());  // a hit
  const std::string text = telemetry.Render();
  for (const char* line : {
           "# HELP dataflow_cache_hits_total Lookups answered by this cache layer.",
           R"(dataflow_cache_hits_total{layer="lru",service="enrichment"} 1)",
           R"(dataflow_cache_misses_total{layer="lru",service="enrichment"} 1)",
           R"(dataflow_cache_fallback_calls_total{layer="lru",service="enrichment"} 1)",
           R"(dataflow_cache_entries{layer="lru",service="enrichment"} 1)",
       }) {
    EXPECT_NE(text.find(std::string(line) + "\n"), std::string::npos) << line << "\n" << text;
  }
  EXPECT_EQ(telemetry.rejected(), 0u);
  *chain = {};
  EXPECT_EQ(telemetry.Render().find("dataflow_cache_"), std::string::npos) << telemetry.Render();
}

}  // namespace
}  // namespace dataflow::cache

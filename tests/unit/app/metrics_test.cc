#include "metrics.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

namespace dataflow::app {
namespace {

// Checks the text the way a scraper reads it: every family's HELP and TYPE once, before its
// samples, and all of a family's samples in one group.
void ExpectWellFormed(const std::string& text) {
  std::istringstream lines(text);
  std::string line;
  std::set<std::string> closed;  // families whose group has ended
  std::string current;
  std::map<std::string, int> types;
  while (std::getline(lines, line)) {
    ASSERT_FALSE(line.empty());
    if (line.starts_with("# HELP ")) continue;
    if (line.starts_with("# TYPE ")) {
      std::string name = line.substr(7, line.find(' ', 7) - 7);
      EXPECT_EQ(++types[name], 1) << "TYPE twice for " << name;
      if (!current.empty()) closed.insert(current);
      current = name;
      continue;
    }
    std::string sample = line.substr(0, line.find_first_of("{ "));
    EXPECT_TRUE(sample.starts_with(current)) << line << " outside family " << current;
    EXPECT_FALSE(closed.contains(sample)) << "family " << sample << " split";
  }
}

TEST(StandardFamilies, ServiceEnrichmentCacheConsumersAndLatencyForTwoServices) {
  metrics::Telemetry telemetry;
  for (const char* service : {"ingestion", "enrichment"}) {
    // One callback per service, as the runner registers them: families still group.
    telemetry.AddCallback([service](metrics::ScrapeWriter& out) {
      WriteServiceMetrics(out, service,
                          messagepipeline::ServiceMetrics{.received = 10,
                                                          .processed = 5,
                                                          .skipped = 2,
                                                          .dead_lettered = 1,
                                                          .dropped = 1,
                                                          .nacked = 2,
                                                          .transform_errors = 1,
                                                          .processing_errors = 2,
                                                          .batches = 3,
                                                          .batched_messages = 7});
      WriteConsumerConnected(out, service, true);
    });
  }
  telemetry.AddCallback([](metrics::ScrapeWriter& out) {
    WriteEnrichmentMetrics(out, "enrichment",
                           enrichment::EnrichmentMetrics{
                               .enriched = 4, .no_key = 1, .not_found = 2, .fetch_errors = 3});
    WriteCacheStats(out, "enrichment", "lru",
                    cache::LruCacheStats{
                        .hits = 9, .misses = 3, .fallback_calls = 2, .evictions = 1, .size = 8});
    WriteCacheStats(out, "enrichment", "redis",
                    cache::RedisCacheStats{.hits = 2,
                                           .misses = 1,
                                           .decode_errors = 0,
                                           .backend_errors = 4,
                                           .skipped = 6,
                                           .fallback_calls = 1});
    WriteMqttConsumerStats(
        out, "ingestion",
        mqttconverter::MqttConsumerStats{.received = 11, .lost = 2, .left_with_broker = 3});
  });
  PublishLatency(telemetry, "enrichment").Observe(0.002);
  RegisterBuildInfo(telemetry, "1.2.3");
  const std::string out = telemetry.Render();
  ASSERT_EQ(telemetry.rejected(), 0u) << out;
  ExpectWellFormed(out);
  auto has = [&](const std::string& line) { return out.find(line + "\n") != std::string::npos; };
  // acked = processed + skipped + dead_lettered + dropped
  EXPECT_TRUE(has(R"(dataflow_messages_acked_total{service="ingestion"} 9)")) << out;
  EXPECT_TRUE(has(R"(dataflow_messages_received_total{service="enrichment"} 10)"));
  EXPECT_TRUE(has(R"(dataflow_messages_dropped_total{service="enrichment"} 1)"));
  EXPECT_TRUE(has(R"(dataflow_messages_nacked_total{service="enrichment"} 2)"));
  EXPECT_TRUE(has(R"(dataflow_batched_messages_total{service="ingestion"} 7)"));
  EXPECT_TRUE(has(R"(dataflow_enrichment_not_found_total{service="enrichment"} 2)"));
  // Labels in name order (prometheus-cpp keeps them in a std::map).
  EXPECT_TRUE(has(R"(dataflow_cache_hits_total{layer="lru",service="enrichment"} 9)"));
  EXPECT_TRUE(has(R"(dataflow_cache_hits_total{layer="redis",service="enrichment"} 2)"));
  EXPECT_TRUE(has(R"(dataflow_cache_misses_total{layer="lru",service="enrichment"} 3)"));
  EXPECT_TRUE(has(R"(dataflow_cache_entries{layer="lru",service="enrichment"} 8)"));
  EXPECT_TRUE(has(R"(dataflow_cache_bypassed_total{layer="redis",service="enrichment"} 6)"));
  EXPECT_TRUE(has(R"(dataflow_mqtt_received_total{service="ingestion"} 11)"));
  EXPECT_TRUE(has(R"(dataflow_mqtt_lost_total{service="ingestion"} 2)"));
  EXPECT_TRUE(has(R"(dataflow_mqtt_left_with_broker_total{service="ingestion"} 3)"));
  EXPECT_TRUE(
      has(R"(dataflow_publish_latency_seconds_bucket{service="enrichment",le="0.0025"} 1)"));
  EXPECT_TRUE(has(R"(dataflow_publish_latency_seconds_bucket{service="enrichment",le="0.001"} 0)"));
  EXPECT_TRUE(has(R"(dataflow_publish_latency_seconds_count{service="enrichment"} 1)"));
  EXPECT_TRUE(has(R"(dataflow_consumer_connected{service="ingestion"} 1)"));
  EXPECT_TRUE(has(R"(dataflow_build_info{version="1.2.3"} 1)"));
}

// Sets each field to its own power of two (from 2^10), so every exported value, and the sum
// dataflow_messages_acked_total exports, is recognisable; returns them.
template <typename... Fields>
std::vector<std::uint64_t> Distinct(Fields&... fields) {
  std::vector<std::uint64_t> values;
  std::uint64_t next = 1024;
  ((fields = static_cast<std::remove_reference_t<Fields>>(next), values.push_back(next), next *= 2),
   ...);
  return values;
}

void ExpectAllExported(const std::vector<std::uint64_t>& values, const std::string& text) {
  for (std::uint64_t v : values) {
    EXPECT_NE(text.find(" " + std::to_string(v) + "\n"), std::string::npos)
        << "a stats field with value " << v << " is not exported:\n"
        << text;
  }
}

// Every field of every stats struct reaches /metrics. When a struct gains a field, its
// structured binding here stops compiling: export the field (metrics.cc, docs/operations.md)
// and add it to the binding.
TEST(StandardFamilies, EveryStatsFieldIsExported) {
  messagepipeline::ServiceMetrics service;
  auto& [s1, s2, s3, s4, s5, s6, s7, s8, s9, s10] = service;
  enrichment::EnrichmentMetrics enrichment;
  auto& [e1, e2, e3, e4] = enrichment;
  cache::LruCacheStats lru;
  auto& [l1, l2, l3, l4, l5] = lru;
  cache::RedisCacheStats redis;
  auto& [r1, r2, r3, r4, r5, r6] = redis;
  mqttconverter::MqttConsumerStats mqtt;
  auto& [m1, m2, m3, m4, m5, m6, m7, m8, m9, m10] = mqtt;
  const std::vector<std::vector<std::uint64_t>> values = {
      Distinct(s1, s2, s3, s4, s5, s6, s7, s8, s9, s10), Distinct(e1, e2, e3, e4),
      Distinct(l1, l2, l3, l4, l5), Distinct(r1, r2, r3, r4, r5, r6),
      Distinct(m1, m2, m3, m4, m5, m6, m7, m8, m9, m10)};
  for (std::size_t i = 0; i < values.size(); ++i) {
    metrics::Telemetry telemetry;
    telemetry.AddCallback([&, i](metrics::ScrapeWriter& out) {
      switch (i) {
        case 0:
          return WriteServiceMetrics(out, "s", service);
        case 1:
          return WriteEnrichmentMetrics(out, "s", enrichment);
        case 2:
          return WriteCacheStats(out, "s", "lru", lru);
        case 3:
          return WriteCacheStats(out, "s", "redis", redis);
        default:
          return WriteMqttConsumerStats(out, "s", mqtt);
      }
    });
    const std::string text = telemetry.Render();
    EXPECT_EQ(telemetry.rejected(), 0u);
    ExpectAllExported(values[i], text);
  }
#ifdef DATAFLOW_APP_HAS_PUBSUB
  pubsub::GooglePubsubConsumer::Stats pubsub;
  auto& [p1, p2, p3, p4, p5, p6, p7, p8, p9, p10, p11, p12, p13, p14] = pubsub;
  const auto pubsub_values = Distinct(p1, p2, p3, p4, p5, p6, p7, p8, p9, p10, p11, p12, p13, p14);
  metrics::Telemetry telemetry;
  telemetry.AddCallback(
      [&](metrics::ScrapeWriter& out) { WritePubsubConsumerStats(out, "s", pubsub); });
  const std::string text = telemetry.Render();
  EXPECT_EQ(telemetry.rejected(), 0u);
  ExpectAllExported(pubsub_values, text);
#endif
}

}  // namespace
}  // namespace dataflow::app

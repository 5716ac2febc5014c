#include "metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

namespace dataflow::app {
namespace {

using namespace std::chrono_literals;

TEST(PrometheusText, CounterGaugeAndHistogramFamiliesExactly) {
  PrometheusText text;
  text.Counter("requests_total", "Requests served.", {{"path", "/a"}}, 3);
  text.Gauge("temperature_celsius", "Help with a \\ backslash\nand a newline.", {}, 21.5);
  // A second label set of the first family, added after another family: still grouped.
  text.Counter("requests_total", "Requests served.", {{"path", "q\"uote\\back\nnl"}},
               std::uint64_t{7});
  text.Histogram("latency_seconds", "Latency.", {{"svc", "x"}},
                 HistogramSnapshot{
                     .bounds = {0.005, 0.5, 1}, .cumulative = {0, 1, 3}, .count = 4, .sum = 5.25});
  text.Histogram("latency_seconds", "Latency.", {{"svc", "y"}},
                 HistogramSnapshot{.bounds = {0.005, 0.5, 1}, .cumulative = {0, 0, 0}});

  EXPECT_EQ(text.Render(), R"(# HELP requests_total Requests served.
# TYPE requests_total counter
requests_total{path="/a"} 3
requests_total{path="q\"uote\\back\nnl"} 7
# HELP temperature_celsius Help with a \\ backslash\nand a newline.
# TYPE temperature_celsius gauge
temperature_celsius 21.5
# HELP latency_seconds Latency.
# TYPE latency_seconds histogram
latency_seconds_bucket{svc="x",le="0.005"} 0
latency_seconds_bucket{svc="x",le="0.5"} 1
latency_seconds_bucket{svc="x",le="1"} 3
latency_seconds_bucket{svc="x",le="+Inf"} 4
latency_seconds_sum{svc="x"} 5.25
latency_seconds_count{svc="x"} 4
latency_seconds_bucket{svc="y",le="0.005"} 0
latency_seconds_bucket{svc="y",le="0.5"} 0
latency_seconds_bucket{svc="y",le="1"} 0
latency_seconds_bucket{svc="y",le="+Inf"} 0
latency_seconds_sum{svc="y"} 0
latency_seconds_count{svc="y"} 0
)");
  EXPECT_EQ(text.rejected(), 0u);
}

TEST(PrometheusText, AHistogramWithoutLabelsHasOnlyLe) {
  PrometheusText text;
  text.Histogram("h", "H.", {},
                 HistogramSnapshot{.bounds = {1}, .cumulative = {2}, .count = 2, .sum = 0.5});
  EXPECT_EQ(text.Render(), R"(# HELP h H.
# TYPE h histogram
h_bucket{le="1"} 2
h_bucket{le="+Inf"} 2
h_sum 0.5
h_count 2
)");
}

TEST(PrometheusText, NumbersInPrometheusSyntax) {
  EXPECT_EQ(PrometheusText::FormatValue(std::numeric_limits<double>::quiet_NaN()), "NaN");
  EXPECT_EQ(PrometheusText::FormatValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(PrometheusText::FormatValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(PrometheusText::FormatValue(0.1), "0.1");
  EXPECT_EQ(PrometheusText::FormatValue(0.0005), "0.0005");
  EXPECT_EQ(PrometheusText::FormatValue(1e-05), "1e-05");
  EXPECT_EQ(PrometheusText::FormatValue(0.00012), "0.00012");
  EXPECT_EQ(PrometheusText::FormatValue(2.0), "2");
  EXPECT_EQ(PrometheusText::FormatValue(0.0), "0");
  EXPECT_EQ(PrometheusText::FormatValue(-1.5), "-1.5");
  EXPECT_EQ(PrometheusText::FormatValue(123456.25), "123456.25");
  EXPECT_EQ(PrometheusText::FormatValue(1e20), "100000000000000000000");
  EXPECT_EQ(PrometheusText::FormatValue(1e21), "1e+21");
  EXPECT_EQ(PrometheusText::FormatValue(-3), "-3");
  EXPECT_EQ(PrometheusText::FormatValue(std::numeric_limits<std::int64_t>::min()),
            "-9223372036854775808");
  EXPECT_EQ(PrometheusText::FormatValue(std::numeric_limits<std::uint64_t>::max()),
            "18446744073709551615");
}

TEST(PrometheusText, NamesAreValidated) {
  EXPECT_TRUE(PrometheusText::IsValidMetricName("a:b_c9"));
  EXPECT_TRUE(PrometheusText::IsValidMetricName("_x"));
  EXPECT_FALSE(PrometheusText::IsValidMetricName(""));
  EXPECT_FALSE(PrometheusText::IsValidMetricName("9lives"));
  EXPECT_FALSE(PrometheusText::IsValidMetricName("with-dash"));
  EXPECT_FALSE(PrometheusText::IsValidMetricName("sp ace"));
  EXPECT_TRUE(PrometheusText::IsValidLabelName("layer_2"));
  EXPECT_FALSE(PrometheusText::IsValidLabelName("a:b")) << "colons only in metric names";
  EXPECT_FALSE(PrometheusText::IsValidLabelName("__reserved"));
  EXPECT_FALSE(PrometheusText::IsValidLabelName("1a"));
}

TEST(PrometheusText, ProgrammingErrorsAreLeftOutAndCounted) {
  PrometheusText text;
  text.Counter("ok_total", "Fine.", {{"a", "1"}}, 1);
  text.Counter("bad-name", "Bad.", {}, 1);                         // invalid metric name
  text.Counter("ok_total", "Fine.", {{"__a", "1"}}, 1);            // reserved label name
  text.Counter("ok_total", "Fine.", {{"a", "1"}, {"a", "2"}}, 1);  // label given twice
  text.Counter("ok_total", "Fine.", {{"a", "1"}}, 2);              // same series twice
  text.Gauge("ok_total", "Fine.", {{"a", "3"}}, 1);                // another type
  text.Histogram("h", "H.", {{"le", "1"}}, HistogramSnapshot{});   // reserved for buckets
  text.Histogram("h", "H.", {}, HistogramSnapshot{.bounds = {1, 1}, .cumulative = {0, 0}});
  text.Histogram("h", "H.", {}, HistogramSnapshot{.bounds = {1}, .cumulative = {}});
  EXPECT_EQ(text.rejected(), 8u);
  EXPECT_EQ(text.Render(), R"(# HELP ok_total Fine.
# TYPE ok_total counter
ok_total{a="1"} 1
)");
}

TEST(LatencyHistogram, BucketsAreCumulativeWithSumAndCount) {
  auto h = LatencyHistogram::Create({0.001, 0.01, 0.1});
  ASSERT_TRUE(h.ok()) << h.status();
  (*h)->Observe(500us);                         // le 0.001
  (*h)->Observe(1ms);                           // on the bound: le 0.001
  (*h)->Observe(1ms + 1ns);                     // le 0.01
  (*h)->Observe(50ms);                          // le 0.1
  (*h)->Observe(2s);                            // +Inf only
  (*h)->Observe(std::chrono::nanoseconds(-5));  // a clock step back counts as 0
  HistogramSnapshot s = (*h)->Snapshot();
  EXPECT_EQ(s.bounds, (std::vector<double>{0.001, 0.01, 0.1}));
  EXPECT_EQ(s.cumulative, (std::vector<std::uint64_t>{3, 4, 5}));
  EXPECT_EQ(s.count, 6u);
  const std::int64_t total_ns = 500'000 + 1'000'000 + 1'000'001 + 50'000'000 + 2'000'000'000;
  EXPECT_DOUBLE_EQ(s.sum, static_cast<double>(total_ns) / 1e9);
}

TEST(LatencyHistogram, DefaultBoundsCoverHalfAMillisecondToTenSeconds) {
  LatencyHistogram h;
  ASSERT_FALSE(h.bounds().empty());
  EXPECT_EQ(h.bounds().front(), 0.0005);
  EXPECT_EQ(h.bounds().back(), 10.0);
  EXPECT_TRUE(std::is_sorted(h.bounds().begin(), h.bounds().end()));
  EXPECT_EQ(h.Snapshot().count, 0u);
}

TEST(LatencyHistogram, CreateRejectsBadBounds) {
  EXPECT_EQ(LatencyHistogram::Create({0.1, 0.1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LatencyHistogram::Create({1, 0.5}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LatencyHistogram::Create({0}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LatencyHistogram::Create({std::numeric_limits<double>::infinity()}).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto only_inf = LatencyHistogram::Create({});
  ASSERT_TRUE(only_inf.ok());
  (*only_inf)->Observe(3ms);
  EXPECT_EQ((*only_inf)->Snapshot().count, 1u);
}

TEST(LatencyHistogram, ConcurrentObservationsAllCount) {
  LatencyHistogram h;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 20000;
  std::atomic<bool> done{false};
  // A reader snapshots throughout: every snapshot must be internally ordered.
  std::thread reader([&] {
    while (!done.load()) {
      HistogramSnapshot s = h.Snapshot();
      ASSERT_TRUE(std::is_sorted(s.cumulative.begin(), s.cumulative.end()));
      ASSERT_GE(s.count, s.cumulative.back());
    }
  });
  {
    std::vector<std::jthread> writers;
    for (int t = 0; t < kThreads; ++t) {
      writers.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          h.Observe(std::chrono::microseconds((t * kPerThread + i) % 20000));
        }
      });
    }
  }
  done = true;
  reader.join();
  HistogramSnapshot s = h.Snapshot();
  EXPECT_EQ(s.count, std::uint64_t{kThreads} * kPerThread);
  std::int64_t expected_ns = 0;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) expected_ns += ((t * kPerThread + i) % 20000) * 1000;
  }
  EXPECT_DOUBLE_EQ(s.sum, static_cast<double>(expected_ns) / 1e9);
  // Observations 0..19999 us, four times over: 0..500 us land in the first bucket.
  EXPECT_EQ(s.cumulative.front(), 4u * 501);
}

TEST(MetricsRegistry, RendersEveryCollectorWithFamiliesGrouped) {
  MetricsRegistry registry;
  registry.AddCollector([](PrometheusText& out) { out.Counter("x_total", "X.", {{"s", "a"}}, 1); });
  auto y = registry.AddCollector([](PrometheusText& out) { out.Gauge("y", "Y.", {}, 2); });
  registry.AddCollector([](PrometheusText& out) { out.Counter("x_total", "X.", {{"s", "b"}}, 5); });
  EXPECT_EQ(registry.Render(), R"(# HELP x_total X.
# TYPE x_total counter
x_total{s="a"} 1
x_total{s="b"} 5
# HELP y Y.
# TYPE y gauge
y 2
)");
  registry.RemoveCollector(y);
  EXPECT_EQ(registry.Render().find("# TYPE y"), std::string::npos);
}

TEST(MetricsRegistry, AThrowingCollectorDoesNotHideTheOthers) {
  MetricsRegistry registry;
  registry.AddCollector([](PrometheusText&) { throw std::runtime_error("service gone"); });
  registry.AddCollector([](PrometheusText& out) { out.Gauge("still_here", "Yes.", {}, 1); });
  EXPECT_NE(registry.Render().find("still_here 1\n"), std::string::npos);
}

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

TEST(StandardFamilies, ServiceEnrichmentCacheAndLatencyForTwoServices) {
  PrometheusText text;
  for (const char* service : {"ingestion", "enrichment"}) {
    WriteServiceMetrics(text, service,
                        messagepipeline::ServiceMetrics{.received = 10,
                                                        .processed = 5,
                                                        .skipped = 2,
                                                        .dead_lettered = 1,
                                                        .nacked = 2,
                                                        .transform_errors = 1,
                                                        .processing_errors = 2,
                                                        .batches = 3,
                                                        .batched_messages = 7});
    WriteConsumerConnected(text, service, true);
  }
  WriteEnrichmentMetrics(
      text, "enrichment",
      enrichment::EnrichmentMetrics{.enriched = 4, .no_key = 1, .not_found = 2, .fetch_errors = 3});
  WriteCacheStats(
      text, "enrichment", "lru",
      cache::LRUCacheStats{.hits = 9, .misses = 3, .fallback_calls = 2, .evictions = 1, .size = 8});
  WriteCacheStats(text, "enrichment", "redis",
                  cache::RedisCacheStats{.hits = 2,
                                         .misses = 1,
                                         .decode_errors = 0,
                                         .backend_errors = 4,
                                         .skipped = 6,
                                         .fallback_calls = 1});
  LatencyHistogram latency;
  latency.Observe(2ms);
  WritePublishLatency(text, "enrichment", latency.Snapshot());
  WriteBuildInfo(text, "1.2.3");
  ASSERT_EQ(text.rejected(), 0u);
  const std::string out = text.Render();
  ExpectWellFormed(out);
  auto has = [&](const std::string& line) { return out.find(line + "\n") != std::string::npos; };
  // acked = processed + skipped + dead_lettered
  EXPECT_TRUE(has(R"(dataflow_messages_acked_total{service="ingestion"} 8)")) << out;
  EXPECT_TRUE(has(R"(dataflow_messages_received_total{service="enrichment"} 10)"));
  EXPECT_TRUE(has(R"(dataflow_messages_nacked_total{service="enrichment"} 2)"));
  EXPECT_TRUE(has(R"(dataflow_batched_messages_total{service="ingestion"} 7)"));
  EXPECT_TRUE(has(R"(dataflow_enrichment_not_found_total{service="enrichment"} 2)"));
  EXPECT_TRUE(has(R"(dataflow_cache_hits_total{service="enrichment",layer="lru"} 9)"));
  EXPECT_TRUE(has(R"(dataflow_cache_hits_total{service="enrichment",layer="redis"} 2)"));
  EXPECT_TRUE(has(R"(dataflow_cache_misses_total{service="enrichment",layer="lru"} 3)"));
  EXPECT_TRUE(has(R"(dataflow_cache_entries{service="enrichment",layer="lru"} 8)"));
  EXPECT_TRUE(has(R"(dataflow_cache_bypassed_total{service="enrichment",layer="redis"} 6)"));
  EXPECT_TRUE(
      has(R"(dataflow_publish_latency_seconds_bucket{service="enrichment",le="0.0025"} 1)"));
  EXPECT_TRUE(has(R"(dataflow_publish_latency_seconds_bucket{service="enrichment",le="0.001"} 0)"));
  EXPECT_TRUE(has(R"(dataflow_publish_latency_seconds_count{service="enrichment"} 1)"));
  EXPECT_TRUE(has(R"(dataflow_consumer_connected{service="ingestion"} 1)"));
  EXPECT_TRUE(has(R"(dataflow_build_info{version="1.2.3"} 1)"));
}

}  // namespace
}  // namespace dataflow::app

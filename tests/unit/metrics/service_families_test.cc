#include "dataflow/metrics/service_families.h"

#include <gtest/gtest.h>

#include <string>

#include "dataflow_testing/metrics_fields.h"

namespace dataflow::metrics {
namespace {

TEST(ServiceFamilies, OutcomesConnectedAndPublishLatencyPerService) {
  Telemetry telemetry;
  telemetry.AddCallback([](ScrapeWriter& out) {
    WriteServiceMetrics(out, "enrichment",
                        messagepipeline::ServiceMetrics{.received = 9,
                                                        .processed = 4,
                                                        .skipped = 2,
                                                        .dead_lettered = 1,
                                                        .dropped = 1,
                                                        .nacked = 1});
    WriteConsumerConnected(out, "enrichment", false);
  });
  PublishLatency(telemetry, "enrichment").Observe(0.003);
  // The same service's histogram again (a second publisher of the service): one series.
  EXPECT_EQ(&PublishLatency(telemetry, "enrichment"), &PublishLatency(telemetry, "enrichment"));
  const std::string text = telemetry.Render();
  EXPECT_EQ(telemetry.rejected(), 0u);
  auto has = [&](const std::string& line) { return text.find(line + "\n") != std::string::npos; };
  // acked: every outcome settled with an ack.
  EXPECT_TRUE(has(R"(dataflow_messages_acked_total{service="enrichment"} 8)")) << text;
  EXPECT_TRUE(has(R"(dataflow_messages_nacked_total{service="enrichment"} 1)"));
  EXPECT_TRUE(has(R"(dataflow_consumer_connected{service="enrichment"} 0)"));
  EXPECT_TRUE(
      has(R"(dataflow_publish_latency_seconds_bucket{service="enrichment",le="0.0025"} 0)"));
  EXPECT_TRUE(has(R"(dataflow_publish_latency_seconds_bucket{service="enrichment",le="0.005"} 1)"));
  EXPECT_TRUE(has(R"(dataflow_publish_latency_seconds_count{service="enrichment"} 1)"));
}

// When ServiceMetrics gains a field, the binding stops compiling: export the field
// (service_families.cc, docs/operations.md) and add it here.
TEST(ServiceFamilies, EveryServiceMetricsFieldIsExported) {
  messagepipeline::ServiceMetrics service;
  auto& [s1, s2, s3, s4, s5, s6, s7, s8, s9, s10] = service;
  const auto values = testing::DistinctValues(s1, s2, s3, s4, s5, s6, s7, s8, s9, s10);
  testing::ExpectEveryValueExported(
      values, [&](ScrapeWriter& out) { WriteServiceMetrics(out, "s", service); });
}

TEST(ServiceFamilies, BuildInfoAndTheServiceLabel) {
  Telemetry telemetry;
  RegisterBuildInfo(telemetry, "1.2.3");
  EXPECT_EQ(ServiceLabels("enrichment"), (Labels{{"service", "enrichment"}}));
  EXPECT_EQ(telemetry.Render(),
            R"(# HELP dataflow_build_info The running dataflow version; always 1.
# TYPE dataflow_build_info gauge
dataflow_build_info{version="1.2.3"} 1
)");
}

}  // namespace
}  // namespace dataflow::metrics

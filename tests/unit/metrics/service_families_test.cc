#include "dataflow/metrics/service_families.h"

#include <gtest/gtest.h>

#include <string>

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

}  // namespace
}  // namespace dataflow::metrics

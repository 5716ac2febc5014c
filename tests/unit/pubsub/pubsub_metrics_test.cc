// The Pub/Sub consumer's families: every stats field exported, with the names dashboards use.
#include "dataflow/pubsub/pubsub_metrics.h"

#include <gtest/gtest.h>

#include <string>

#include "dataflow/metrics/telemetry.h"
#include "dataflow_testing/metrics_fields.h"

namespace dataflow::pubsub {
namespace {

// When the Stats struct gains a field, the binding stops compiling: export the field
// (pubsub_metrics.cc, docs/operations.md) and add it here.
TEST(PubsubMetrics, EveryStatsFieldIsExported) {
  GooglePubsubConsumer::Stats stats;
  auto& [p1, p2, p3, p4, p5, p6, p7, p8, p9, p10, p11, p12, p13, p14] = stats;
  const auto values =
      testing::DistinctValues(p1, p2, p3, p4, p5, p6, p7, p8, p9, p10, p11, p12, p13, p14);
  testing::ExpectEveryValueExported(values, [&](metrics::ScrapeWriter& out) {
    WritePubsubConsumerMetrics(out, {{"service", "s"}}, stats);
  });
}

TEST(PubsubMetrics, SettlesGivenUpAreCountedUnderTheirNames) {
  metrics::Telemetry telemetry;
  telemetry.AddCallback([](metrics::ScrapeWriter& out) {
    WritePubsubConsumerMetrics(out, {{"service", "bigquery"}},
                               {.settles_expired = 2, .settles_failed = 3});
  });
  const std::string text = telemetry.Render();
  EXPECT_NE(text.find("dataflow_pubsub_settles_expired_total{service=\"bigquery\"} 2\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("dataflow_pubsub_settles_failed_total{service=\"bigquery\"} 3\n"),
            std::string::npos)
      << text;
}

}  // namespace
}  // namespace dataflow::pubsub

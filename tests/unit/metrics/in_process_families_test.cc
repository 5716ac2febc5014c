// The in-process broker's families: every subscription stats field exported, and every
// subscription of a real broker (later ones included) labelled with its name and topic.
#include "dataflow/metrics/in_process_families.h"

#include <gtest/gtest.h>

#include <string>

#include "dataflow_testing/metrics_fields.h"

namespace dataflow::metrics {
namespace {

namespace mp = messagepipeline;

// When SubscriptionStats gains a field, the binding stops compiling: export the field
// (in_process_families.cc, docs/operations.md) and add it here.
TEST(InProcessFamilies, EveryStatsFieldIsExported) {
  mp::SubscriptionStats stats;
  auto& [pending, outstanding, delivered, acked, nacked, expired, held_bytes] = stats;
  const auto values =
      testing::DistinctValues(pending, outstanding, delivered, acked, nacked, expired, held_bytes);
  testing::ExpectEveryValueExported(values, [&](ScrapeWriter& out) {
    WriteInProcessSubscriptionMetrics(out, {{"subscription", "s"}, {"topic", "t"}}, stats);
  });
}

TEST(InProcessFamilies, EverySubscriptionOfTheBrokerWithItsTopic) {
  auto broker = mp::InProcessBroker::Create();
  ASSERT_TRUE(broker->CreateTopic("raw").ok());
  ASSERT_TRUE(broker->CreateTopic("enriched").ok());
  ASSERT_TRUE(broker->CreateSubscription("raw-enrichment", "raw").ok());
  Telemetry telemetry;
  AddInProcessBrokerFamilies(telemetry, broker);
  // Made after the registration: still exported.
  ASSERT_TRUE(broker->CreateSubscription("enriched-bigquery", "enriched").ok());
  ASSERT_TRUE(broker->CreateSubscription("enriched-icestore", "enriched").ok());
  ASSERT_TRUE(broker->Publish("raw", {.payload = "12345"}).ok());
  ASSERT_TRUE(broker->Publish("raw", {.payload = "678"}).ok());
  ASSERT_TRUE(broker->Publish("enriched", {.payload = "9"}).ok());

  const std::string text = telemetry.Render();
  EXPECT_EQ(telemetry.rejected(), 0u) << text;
  for (
      const char* line : {
          "# TYPE dataflow_in_process_pending_messages gauge",
          "# TYPE dataflow_in_process_acked_total counter",
          R"(dataflow_in_process_pending_messages{subscription="raw-enrichment",topic="raw"} 2)",
          R"(dataflow_in_process_held_bytes{subscription="raw-enrichment",topic="raw"} 8)",
          R"(dataflow_in_process_pending_messages{subscription="enriched-bigquery",topic="enriched"} 1)",
          R"(dataflow_in_process_pending_messages{subscription="enriched-icestore",topic="enriched"} 1)",
          R"(dataflow_in_process_delivered_total{subscription="enriched-icestore",topic="enriched"} 0)",
      }) {
    EXPECT_NE(text.find(std::string(line) + "\n"), std::string::npos) << line << "\n" << text;
  }
}

}  // namespace
}  // namespace dataflow::metrics

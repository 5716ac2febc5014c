// The enricher's families: every stats field exported, with the names dashboards use.
#include "dataflow/enrichment/enrichment_metrics.h"

#include <gtest/gtest.h>

#include <string>

#include "dataflow/metrics/telemetry.h"
#include "dataflow_testing/metrics_fields.h"

namespace dataflow::enrichment {
namespace {

// When EnrichmentMetrics gains a field, the binding stops compiling: export the field
// (enrichment_metrics.cc, docs/operations.md) and add it here.
TEST(EnrichmentMetrics, EveryStatsFieldIsExported) {
  EnrichmentMetrics stats;
  auto& [e1, e2, e3, e4] = stats;
  const auto values = testing::DistinctValues(e1, e2, e3, e4);
  testing::ExpectEveryValueExported(values, [&](metrics::ScrapeWriter& out) {
    WriteEnrichmentMetrics(out, {{"service", "s"}}, stats);
  });
}

TEST(EnrichmentMetrics, TheNamesAndLabelsDashboardsRelyOn) {
  metrics::Telemetry telemetry;
  telemetry.AddCallback([](metrics::ScrapeWriter& out) {
    WriteEnrichmentMetrics(out, {{"service", "enrichment"}},
                           {.enriched = 4, .no_key = 1, .not_found = 2, .fetch_errors = 3});
  });
  const std::string text = telemetry.Render();
  for (const char* line : {
           "# HELP dataflow_enrichment_not_found_total Lookups whose key exists nowhere in the "
           "cache chain.",
           R"(dataflow_enrichment_enriched_total{service="enrichment"} 4)",
           R"(dataflow_enrichment_no_key_total{service="enrichment"} 1)",
           R"(dataflow_enrichment_not_found_total{service="enrichment"} 2)",
           R"(dataflow_enrichment_fetch_errors_total{service="enrichment"} 3)",
       }) {
    EXPECT_NE(text.find(std::string(line) + "\n"), std::string::npos) << line << "\n" << text;
  }
}

}  // namespace
}  // namespace dataflow::enrichment

// The package's families; a new counter is a line here and a line in docs/operations.md.
#include "dataflow/enrichment/enrichment_metrics.h"

#include "dataflow/enrichment/enrichment_service.h"
#include "dataflow/metrics/telemetry.h"

namespace dataflow::enrichment {

void WriteEnrichmentMetrics(metrics::ScrapeWriter& out, const metrics::Labels& labels,
                            const EnrichmentMetrics& m) {
  out.Counter("dataflow_enrichment_enriched_total", "Messages enriched with a fetched value.",
              labels, m.enriched);
  out.Counter("dataflow_enrichment_no_key_total",
              "Messages without a lookup key (passed on unenriched).", labels, m.no_key);
  out.Counter("dataflow_enrichment_not_found_total",
              "Lookups whose key exists nowhere in the cache chain.", labels, m.not_found);
  out.Counter("dataflow_enrichment_fetch_errors_total",
              "Lookups that failed in a backend (not a miss).", labels, m.fetch_errors);
}

void EnrichmentService::RegisterMetrics(metrics::Telemetry& telemetry,
                                        const metrics::Labels& labels) {
  metrics_ = telemetry.Register([this, labels](metrics::ScrapeWriter& out) {
    WriteEnrichmentMetrics(out, labels, enrichment_metrics());
  });
}

}  // namespace dataflow::enrichment

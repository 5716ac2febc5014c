// The enricher's metric families (docs/operations.md "Enrichment and caches"), which
// EnrichmentService::RegisterMetrics exports on a Telemetry; the writer is here for a caller
// with an enricher of its own (and for the test that every stats field is exported).
#pragma once

#include "dataflow/enrichment/enricher.h"
#include "dataflow/metrics/registration.h"

namespace dataflow::enrichment {

// dataflow_enrichment_{enriched,no_key,not_found,fetch_errors}_total.
void WriteEnrichmentMetrics(metrics::ScrapeWriter& out, const metrics::Labels& labels,
                            const EnrichmentMetrics& metrics);

}  // namespace dataflow::enrichment

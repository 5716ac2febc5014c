// The archive service's metric families (docs/operations.md "Archive"), which
// IceStorageService::RegisterMetrics exports on a Telemetry; the writer is here for a caller
// with counts of its own (and for the test that every count is exported).
#pragma once

#include <cstdint>

#include "dataflow/metrics/registration.h"

namespace dataflow::icestore {

// dataflow_archive_objects_written_total.
void WriteIceStoreMetrics(metrics::ScrapeWriter& out, const metrics::Labels& labels,
                          std::uint64_t objects_written);

}  // namespace dataflow::icestore

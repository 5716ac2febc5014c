// The package's families; a new counter is a line here and a line in docs/operations.md.
#include "dataflow/icestore/icestore_metrics.h"

#include "dataflow/icestore/ice_storage_service.h"
#include "dataflow/metrics/telemetry.h"

namespace dataflow::icestore {

void WriteIceStoreMetrics(metrics::ScrapeWriter& out, const metrics::Labels& labels,
                          std::uint64_t objects_written) {
  out.Counter("dataflow_archive_objects_written_total", "Archive objects written.", labels,
              objects_written);
}

void IceStorageService::RegisterMetrics(metrics::Telemetry& telemetry,
                                        const metrics::Labels& labels) {
  metrics_ = telemetry.Register([this, labels](metrics::ScrapeWriter& out) {
    WriteIceStoreMetrics(out, labels, objects_written());
  });
}

}  // namespace dataflow::icestore

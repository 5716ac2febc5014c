// One builder per service kind: the library service a config block describes, with its
// consumer, publishers and backends (backends.h), as the ServiceGroup member the Pipeline runs.
#pragma once

#include <absl/status/statusor.h>

#include <string>

#include "backends.h"
#include "config.h"

namespace dataflow::app {

absl::StatusOr<ServiceParts> BuildService(const std::string& name, const IngestionConfig& c,
                                          const BuildContext& context);
absl::StatusOr<ServiceParts> BuildService(const std::string& name, const EnrichmentConfig& c,
                                          const BuildContext& context);
absl::StatusOr<ServiceParts> BuildService(const std::string& name, const BigQueryConfig& c,
                                          const BuildContext& context);
absl::StatusOr<ServiceParts> BuildService(const std::string& name, const IceStoreConfig& c,
                                          const BuildContext& context);

}  // namespace dataflow::app

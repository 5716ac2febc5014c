// One builder per service kind: the library service a config block describes, with its
// consumer, publishers and backends (backends.h), as the ServiceGroup member the Pipeline runs.
#pragma once

#include <absl/status/statusor.h>

#include <memory>
#include <string>

#include "backends.h"
#include "config.h"
#include "dataflow/messagepipeline/service_options.h"

namespace dataflow::app {

// The library's options every service has, from the keys every kind's config block has
// (dead_letter_topic resolved to `dead_letter` by the caller).
inline messagepipeline::ServiceOptions CommonOptions(
    const std::string& name, const ServiceCommonConfig& c,
    std::shared_ptr<messagepipeline::DeadLetterSink> dead_letter) {
  return {.name = name,
          .num_workers = c.workers,
          .dead_letter = std::move(dead_letter),
          .max_delivery_attempts = c.max_delivery_attempts};
}

absl::StatusOr<ServiceParts> BuildService(const std::string& name, const IngestionConfig& c,
                                          const BuildContext& context);
absl::StatusOr<ServiceParts> BuildService(const std::string& name, const EnrichmentConfig& c,
                                          const BuildContext& context);
absl::StatusOr<ServiceParts> BuildService(const std::string& name, const BigQueryConfig& c,
                                          const BuildContext& context);
absl::StatusOr<ServiceParts> BuildService(const std::string& name, const IceStoreConfig& c,
                                          const BuildContext& context);

}  // namespace dataflow::app

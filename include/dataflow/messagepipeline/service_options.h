// The options every service kind has, embedded as `common` in each *ServiceOptions, and the
// in-flight window of the services whose downstream confirms asynchronously:
//
//   StreamingServiceOptions{.common = {.name = "relay", .num_workers = 4},
//                           .in_flight = {.max_messages = 500}};
//
// Kept apart from service_core.h so the options headers stay light. The mapping into the
// delivery policy and the checks of these fields are in service_core.h (DeliveryPolicyOf,
// ValidateServiceOptions), once for every service.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "dataflow/messagepipeline/dead_letter.h"

namespace dataflow::messagepipeline {

// Pub/Sub's default for a subscription's dead-letter policy; every service uses it unless told
// otherwise, so a message that can never succeed is never retried forever.
inline constexpr int kDefaultMaxDeliveryAttempts = 5;

struct ServiceOptions {
  // Names the service in logs, errors, metric labels and dead-letter attributes; empty: the
  // kind's default ("streaming-service", "batching-service", "stage", "enrichment",
  // "icestore", "mqtt-ingestion"), set by the kind's Create.
  std::string name;
  int num_workers = 5;                          // the Go library's default
  std::shared_ptr<DeadLetterSink> dead_letter;  // optional
  // Deliveries a message gets before it is given up on; 0: unlimited (not recommended).
  // Sources that do not count deliveries (delivery_attempt 0) are never cut off by it.
  int max_delivery_attempts = kDefaultMaxDeliveryAttempts;
};

// Fills in an empty name with the kind's default; each kind's Create calls it first, so its
// errors name the service too.
inline void SetDefaultName(ServiceOptions& options, std::string_view kind_default) {
  if (options.name.empty()) options.name = kind_default;
}

// Only in the per-message services with an asynchronous downstream (a publisher, an
// in-process topic): messages, and their payload bytes, awaiting their sink's confirmation at
// most; a worker waits for room (backpressure). Not part of ServiceOptions: the batching
// services have no such window. A braced `in_flight` replaces both fields, so restate
// max_messages where a kind's default differs from this one (ingestion, enrichment: 4000).
struct InFlightLimits {
  std::size_t max_messages = 1000;
  std::size_t max_bytes = 64 << 20;  // 0: no byte limit
};

}  // namespace dataflow::messagepipeline

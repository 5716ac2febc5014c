// StreamCore: what every per-message service (StreamingService, StageService) wires the same
// way: its outcome counters, the DeliveryPolicy over them, the WorkerPool that drains the
// consumer, and, for a downstream that confirms asynchronously, the InFlightSettler on the
// pool's tail thread. The service supplies only what it does with one message.
//
// A service declares its StreamCore last, so the workers (which call back into the service)
// stop before anything they use is destroyed. Thread-safe as its parts are.
#pragma once

#include <absl/status/status.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "dataflow/messagepipeline/consumer.h"
#include "dataflow/messagepipeline/dead_letter.h"
#include "dataflow/messagepipeline/service_core.h"
#include "dataflow/messagepipeline/service_options.h"

namespace dataflow::messagepipeline {

struct StreamCoreOptions {
  ServiceOptions common;  // its name already set (SetDefaultName)
  // An async downstream: an InFlightSettler holds up to `in_flight` until each is confirmed.
  bool async = false;
  InFlightLimits in_flight;
};

class StreamCore {
 public:
  // The checks every per-message service makes (consumer, workers, in-flight window, delivery
  // policy); InvalidArgument naming the service.
  static absl::Status Validate(const StreamCoreOptions& options, const MessageConsumer* consumer);

  StreamCore(StreamCoreOptions options, std::shared_ptr<MessageConsumer> consumer);
  StreamCore(const StreamCore&) = delete;
  StreamCore& operator=(const StreamCore&) = delete;

  // Starts the workers; each calls `handle` for every message it pops, concurrently.
  absl::Status Start(std::function<void(Message&)> handle);
  absl::Status Stop(Deadline deadline) { return pool_.Stop(deadline); }
  void Wait() { pool_.Wait(); }
  [[nodiscard]] ServiceMetrics metrics() const { return counters_.Snapshot(); }
  [[nodiscard]] bool aborting() const { return pool_.aborting(); }

  ServiceCounters& counters() { return counters_; }
  DeliveryPolicy& policy() { return policy_; }
  // Only for options.async (null otherwise).
  InFlightSettler* settler() { return settler_.get(); }

 private:
  ServiceCounters counters_;
  DeliveryPolicy policy_;
  std::unique_ptr<InFlightSettler> settler_;
  WorkerPool pool_;  // last: its threads use everything above
};

}  // namespace dataflow::messagepipeline

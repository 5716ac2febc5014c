// `dataflow run`: builds the services a ProgramConfig describes and runs them until SIGINT or
// SIGTERM (or until a consumer fails for good), then stops them within the shutdown timeout.
//
// Services start last-to-first (sinks before sources) and stop in config order, so list
// them upstream first: each one drains what it holds before the next stops, and a service
// reading an in-process topic first waits (within the timeout) for that topic's backlog.
#pragma once

#include <absl/status/statusor.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config.h"
#include "dataflow/messagepipeline/in_process_broker.h"
#include "dataflow/messagepipeline/service_core.h"
#include "dataflow/metrics/telemetry.h"
#include "ops_server.h"

namespace dataflow::app {

struct Backends;

// What the program knows about one running service, for logs, the progress line and the
// ops endpoints.
struct ServiceStatus {
  std::string name;
  std::string kind;
  bool connected = true;  // its consumer is connected and pulling
  messagepipeline::ServiceMetrics metrics;
};

// What Build takes from its caller instead of making it (`dataflow test`).
struct PipelineHooks {
  // The broker of the in-process topics; null: a new one with default options.
  std::shared_ptr<messagepipeline::InProcessBroker> broker;
  // By ingestion service name: the in-process subscription it reads instead of MQTT (its
  // messages carry the attributes the MQTT consumer sets). Drained on Stop like any
  // in-process source.
  std::map<std::string, std::string> ingestion_inputs;
  // The backends the config may name; null: DefaultBackends() (backends.h).
  const Backends* backends = nullptr;
};

class Pipeline {
 public:
  // Connects to every backend the config names; errors name the service.
  static absl::StatusOr<std::unique_ptr<Pipeline>> Build(const ProgramConfig& config,
                                                         PipelineHooks hooks = {});
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  absl::Status Start();
  // A consumer that ended by itself (a permanent error); OK while all run.
  [[nodiscard]] absl::Status Failure() const;
  // Stops every service within `timeout`. Not OK if a service could not drain in time, or
  // messages had to be nacked or were left in an in-process topic (lost with the process).
  absl::Status Stop(std::chrono::milliseconds timeout);
  [[nodiscard]] std::vector<ServiceStatus> Status() const;
  // Every service's metric families (docs/operations.md), for /metrics; the caller may add
  // its own.
  [[nodiscard]] metrics::Telemetry& telemetry() const;
  // One entry per service: its consumer connected and pulling.
  [[nodiscard]] std::vector<ComponentReadiness> Readiness() const;

  struct Impl;

 private:
  explicit Pipeline(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Blocks SIGINT and SIGTERM in the calling thread and every thread it starts afterwards, so
// RunProgram can take them synchronously. Call first thing in main().
void BlockStopSignals();

// Builds, starts, waits for a stop signal, stops. Returns the exit code: 0 after a clean
// stop, 1 when building or starting failed, a consumer failed, or the stop was not clean.
int RunProgram(const ProgramConfig& config);

}  // namespace dataflow::app

// What every service of a pipeline is (Service), and the group that runs several of them as
// one program (ServiceGroup): start order, stop order, the drain of in-process topics between
// them, and the watch for a consumer that ended by itself.
//
//   ServiceGroup group({.broker = broker});
//   group.Add({.name = "ingest", .kind = "ingestion", .service = ingestion,
//              .consumer = mqtt});                                   // upstream first
//   group.Add({.name = "store", .kind = "bigquery", .service = sink, .consumer = sub,
//              .in_process_input = "enriched-sub",
//              .close_after_stop = {[inserter](Deadline) { return inserter->Close(); }}});
//   if (auto s = group.Start(); !s.ok()) ...                         // sinks first
//   ... until a signal, or until !group.Failure().ok()
//   auto stopped = group.Stop(std::chrono::steady_clock::now() + 30s);  // upstream first
//
// Thread-safety: Start and Stop from one thread; Failure, Status and members from any.
#pragma once

#include <absl/status/status.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dataflow/messagepipeline/consumer.h"
#include "dataflow/messagepipeline/service_core.h"

namespace dataflow::messagepipeline {

class InProcessBroker;

class Service {
 public:
  virtual ~Service() = default;
  virtual absl::Status Start() = 0;
  // Drains in-flight work by `deadline` and nacks what is left; see WorkerPool::Stop.
  virtual absl::Status Stop(Deadline deadline) = 0;
  [[nodiscard]] virtual ServiceMetrics metrics() const = 0;
  // Batching sinks cut partial batches as soon as no input waits, from now on: the services
  // upstream are stopping and wait for what they published to be stored.
  virtual void FlushPromptly() {}
};

struct ServiceGroupMember {
  std::string name;
  std::string kind;  // for logs: ingestion, enrichment, bigquery, ...
  std::shared_ptr<Service> service;
  // The service's input: its readiness, and the failure watch.
  std::shared_ptr<MessageConsumer> consumer;
  // An in-process subscription the service reads: drained (within the stop deadline) before
  // the service stops, so what upstream published is processed rather than nacked.
  std::string in_process_input;
  // What the service writes to and must close once it stopped (publishers, inserters).
  std::vector<std::function<absl::Status(Deadline)>> close_after_stop;
};

struct ServiceGroupOptions {
  // The broker of the in-process topics the members read, if any: drained between stops,
  // and checked for messages left behind.
  std::shared_ptr<InProcessBroker> broker;
  // The in-process subscriptions checked for messages left behind at Stop; empty: the
  // members' inputs.
  std::vector<std::string> subscriptions;
};

class ServiceGroup {
 public:
  explicit ServiceGroup(ServiceGroupOptions options = {});
  // Stops what is still running, with no time to drain (anything held is nacked).
  ~ServiceGroup();
  ServiceGroup(const ServiceGroup&) = delete;
  ServiceGroup& operator=(const ServiceGroup&) = delete;

  // Add upstream services before the ones that read what they publish.
  void Add(ServiceGroupMember member);

  // Starts the members last-added first, so nothing is published before its reader runs.
  // When one fails to start, the ones already started are stopped and its error (naming it)
  // is returned.
  absl::Status Start();

  // OK while every consumer runs; the first consumer that ended by itself, named.
  [[nodiscard]] absl::Status Failure() const;

  // Stops the members in the order they were added, each after its in-process input drained
  // (within `deadline`), then closes what it writes to. Not OK if a member failed to stop or
  // close, messages were nacked while stopping, or messages were left in an in-process
  // subscription (never acknowledged to their source, which sends them again). Idempotent.
  absl::Status Stop(Deadline deadline);

  [[nodiscard]] const std::vector<ServiceGroupMember>& members() const { return members_; }

 private:
  void DrainInProcess(const std::string& subscription, Deadline deadline) const;

  ServiceGroupOptions options_;
  std::vector<ServiceGroupMember> members_;
  std::size_t started_ = 0;  // members started, counted from the back
  bool stopped_ = false;
};

}  // namespace dataflow::messagepipeline

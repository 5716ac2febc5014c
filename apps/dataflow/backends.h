// The backends a config can name, registered by name (messagepipeline/registry.h):
//   transports     pubsub, in_process       where services read, publish and park dead letters
//   cache_sources  json_file, firestore     an enrichment cache chain's source of truth
//   tables         sqlite, bigquery         a bigquery service's inserter
//   archives       local, gcs               an icestore service's uploader
// Each is registered once, next to its package's wiring (backends_<package>.cc); a build
// without a package (the demo preset leaves the Google Cloud ones out) does not register its
// backends, and a config naming one gets an error listing what the build has.
#pragma once

#include <absl/status/statusor.h>

#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "config.h"
#include "dataflow/bqstore/json_schema_rows.h"
#include "dataflow/cache/fetcher.h"
#include "dataflow/icestore/uploader.h"
#include "dataflow/messagepipeline/dead_letter.h"
#include "dataflow/messagepipeline/in_process_broker.h"
#include "dataflow/messagepipeline/publisher.h"
#include "dataflow/messagepipeline/registry.h"
#include "dataflow/messagepipeline/service.h"
#include "dataflow/metrics/telemetry.h"

namespace dataflow::app {

// One service under construction: the group member its builder fills. Its parts register
// their own metric families on BuildContext::telemetry (their RegisterMetrics).
struct ServiceParts {
  messagepipeline::ServiceGroupMember member;
};

struct BuildContext;

// A message transport. One per pipeline and name, made on first use.
class Transport {
 public:
  virtual ~Transport() = default;
  // Sets parts.member.consumer (and in_process_input for a subscription the group drains).
  virtual absl::Status Consume(const SourceConfig& source, ServiceParts& parts) = 0;
  // Publishes to `topics` (created first when the config asks for it); closed after the
  // service stopped.
  virtual absl::StatusOr<std::shared_ptr<messagepipeline::MessagePublisher>> Publisher(
      const std::string& project, const std::vector<std::string>& topics, ServiceParts& parts) = 0;
  virtual absl::StatusOr<std::shared_ptr<messagepipeline::DeadLetterSink>> DeadLetters(
      const std::string& project, const std::string& topic, ServiceParts& parts) = 0;
};

using CacheSource = cache::FetcherPtr<std::string, nlohmann::json>;
using RowInserter = std::shared_ptr<bqstore::DataBatchInserter<bqstore::RowInput>>;

struct Backends {
  Backends();
  messagepipeline::Registry<std::shared_ptr<Transport>, const BuildContext&> transports;
  messagepipeline::Registry<CacheSource, const CacheChainConfig&, const BuildContext&>
      cache_sources;
  messagepipeline::Registry<RowInserter, const BigQueryConfig&, const BuildContext&> tables;
  messagepipeline::Registry<std::shared_ptr<icestore::DataUploader>, const IceStoreConfig&>
      archives;
};

// Every backend this build has.
const Backends& DefaultBackends();

// The registrations, one per package (backends_<package>.cc).
void RegisterInProcessBackends(Backends& backends);
void RegisterPubsubBackends(Backends& backends);
void RegisterJsonFileBackend(Backends& backends);
void RegisterFirestoreBackend(Backends& backends);
void RegisterSqliteBackend(Backends& backends);
void RegisterBigQueryBackend(Backends& backends);
void RegisterArchiveBackends(Backends& backends);

// The backend names a config selects.
std::string_view BackendName(SourceConfig::Kind kind);
std::string_view BackendName(TopicSinkConfig::Kind kind);
std::string_view CacheSourceName(const CacheChainConfig& cache);  // "" without a source
std::string_view TableBackendName(const BigQueryConfig& config);
std::string_view ArchiveBackendName(const IceStoreConfig& config);

// What the service builders use while a Pipeline is built.
struct BuildContext {
  const ProgramConfig& config;
  const Backends& backends;
  std::shared_ptr<messagepipeline::InProcessBroker> broker;
  metrics::Telemetry& telemetry;
  // By ingestion service name: the in-process subscription it reads instead of MQTT.
  std::map<std::string, std::string> ingestion_inputs;

  // `override_project`, or the program's project when empty.
  [[nodiscard]] std::string Project(const std::string& override_project) const;
  // The pipeline's transport of that name, made on first use.
  absl::StatusOr<Transport*> TransportNamed(std::string_view name) const;

  // The source's consumer into parts.member (and the subscription to drain).
  absl::Status Consume(const SourceConfig& source, ServiceParts& parts) const;
  // A publisher to `topics` whose publish latency is measured for the service.
  absl::StatusOr<std::shared_ptr<messagepipeline::MessagePublisher>> Publisher(
      const TopicSinkConfig& sink, const std::vector<std::string>& topics,
      ServiceParts& parts) const;
  // Null when `topic` is empty; on the transport `transport`.
  absl::StatusOr<std::shared_ptr<messagepipeline::DeadLetterSink>> DeadLetters(
      std::string_view transport, const std::string& project, const std::string& topic,
      ServiceParts& parts) const;

  // Made by TransportNamed; they live as long as the context (the build).
  mutable std::map<std::string, std::shared_ptr<Transport>, std::less<>> transports = {};
};

}  // namespace dataflow::app

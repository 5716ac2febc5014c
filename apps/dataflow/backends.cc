#include "backends.h"

#include "dataflow/messagepipeline/errors.h"
#include "dataflow/metrics/service_families.h"
#include "timed_publisher.h"

namespace dataflow::app {
namespace {
namespace mp = messagepipeline;

constexpr const char* kMissingHint =
    "the demo preset leaves out the Google Cloud backends (Pub/Sub, Firestore, BigQuery "
    "Storage Write): build with the release or dev preset";

}  // namespace

Backends::Backends()
    : transports("transport", kMissingHint),
      cache_sources("cache source", kMissingHint),
      tables("table backend", kMissingHint),
      archives("archive backend", kMissingHint) {}

const Backends& DefaultBackends() {
  static const Backends* const backends = [] {
    auto* b = new Backends();
    RegisterInProcessBackends(*b);
    RegisterJsonFileBackend(*b);
    RegisterSqliteBackend(*b);
    RegisterArchiveBackends(*b);
#ifdef DATAFLOW_APP_HAS_PUBSUB
    RegisterPubsubBackends(*b);
#endif
#ifdef DATAFLOW_APP_HAS_FIRESTORE
    RegisterFirestoreBackend(*b);
#endif
#ifdef DATAFLOW_APP_HAS_STORAGE_WRITE
    RegisterBigQueryBackend(*b);
#endif
    return b;
  }();
  return *backends;
}

std::string_view BackendName(SourceConfig::Kind kind) {
  return kind == SourceConfig::Kind::kInProcess ? "in_process" : "pubsub";
}

std::string_view BackendName(TopicSinkConfig::Kind kind) {
  return kind == TopicSinkConfig::Kind::kInProcess ? "in_process" : "pubsub";
}

std::string_view CacheSourceName(const CacheChainConfig& cache) {
  if (cache.json_file) return "json_file";
  if (cache.firestore) return "firestore";
  return "";
}

std::string_view TableBackendName(const BigQueryConfig& config) {
  return config.sqlite ? "sqlite" : "bigquery";
}

std::string_view ArchiveBackendName(const IceStoreConfig& config) {
  return config.local ? "local" : "gcs";
}

std::string BuildContext::Project(const std::string& override_project) const {
  return override_project.empty() ? config.project : override_project;
}

absl::StatusOr<Transport*> BuildContext::TransportNamed(std::string_view name) const {
  auto it = transports.find(name);
  if (it != transports.end()) return it->second.get();
  auto made = backends.transports.Create(name, *this);
  if (!made.ok()) return made.status();
  return transports.emplace(std::string(name), *std::move(made)).first->second.get();
}

absl::Status BuildContext::Consume(const SourceConfig& source, ServiceParts& parts) const {
  auto transport = TransportNamed(BackendName(source.kind));
  if (!transport.ok()) return mp::Annotate(transport.status(), "source");
  return mp::Annotate((*transport)->Consume(source, parts), "source");
}

absl::StatusOr<std::shared_ptr<mp::MessagePublisher>> BuildContext::Publisher(
    const TopicSinkConfig& sink, const std::vector<std::string>& topics,
    ServiceParts& parts) const {
  auto transport = TransportNamed(BackendName(sink.kind));
  if (!transport.ok()) return mp::Annotate(transport.status(), "sink");
  auto publisher = (*transport)->Publisher(Project(sink.project), topics, parts);
  if (!publisher.ok()) return mp::Annotate(publisher.status(), "sink");
  auto timed =
      TimedPublisher::Create({.publisher = *std::move(publisher),
                              .histogram = &metrics::PublishLatency(telemetry, parts.member.name)});
  if (!timed.ok()) return timed.status();
  return std::shared_ptr<mp::MessagePublisher>(*std::move(timed));
}

absl::StatusOr<std::shared_ptr<mp::DeadLetterSink>> BuildContext::DeadLetters(
    std::string_view transport_name, const std::string& project, const std::string& topic,
    ServiceParts& parts) const {
  if (topic.empty()) return std::shared_ptr<mp::DeadLetterSink>();
  auto transport = TransportNamed(transport_name);
  if (!transport.ok()) return mp::Annotate(transport.status(), "dead_letter_topic");
  auto sink = (*transport)->DeadLetters(Project(project), topic, parts);
  if (!sink.ok()) return mp::Annotate(sink.status(), "dead_letter_topic");
  return sink;
}

}  // namespace dataflow::app

#include "services.h"

#include "dataflow/bqstore/bigquery_service.h"
#include "dataflow/icestore/archival.h"
#include "dataflow/icestore/ice_storage_service.h"
#include "dataflow/messagepipeline/errors.h"
#include "dataflow/metrics/service_families.h"
#include "dataflow/mqttconverter/ingestion_service.h"
#include "dataflow/mqttconverter/mqtt_consumer.h"

namespace dataflow::app {
namespace {
namespace mp = messagepipeline;

ServiceParts NewParts(const std::string& name, const char* kind) {
  ServiceParts parts;
  parts.member.name = name;
  parts.member.kind = kind;
  return parts;
}

}  // namespace

absl::StatusOr<ServiceParts> BuildService(const std::string& name, const IngestionConfig& c,
                                          const BuildContext& context) {
  ServiceParts parts = NewParts(name, IngestionConfig::kKind);
  std::vector<std::string> topics{c.default_topic};
  mqttconverter::IngestionServiceOptions options{
      .common = CommonOptions(name, c.common, nullptr),
      .unmapped = c.default_topic.empty() ? mqttconverter::UnmappedRoutePolicy::kReject
                                          : mqttconverter::UnmappedRoutePolicy::kDefaultTopic,
      .default_topic = c.default_topic,
      .payload_format = c.payload_format,
      .in_flight = {.max_messages = c.max_in_flight}};
  for (const auto& [route, topic] : c.routes) {
    options.route_topics[route] = topic;
    topics.push_back(topic);
  }
  // Dead letters go where the service publishes: MQTT has no dead-letter topics.
  auto dead = context.DeadLetters(BackendName(c.sink.kind), c.sink.project,
                                  c.common.dead_letter_topic, parts);
  if (!dead.ok()) return dead.status();
  options.common.dead_letter = *dead;
  auto publisher = context.Publisher(c.sink, topics, parts);
  if (!publisher.ok()) return publisher.status();
  if (auto input = context.ingestion_inputs.find(name); input != context.ingestion_inputs.end()) {
    const SourceConfig source{.kind = SourceConfig::Kind::kInProcess,
                              .subscription = input->second};
    if (auto s = context.Consume(source, parts); !s.ok()) return mp::Annotate(s, "input");
  } else {
    auto consumer = mqttconverter::MqttConsumer::Create(c.mqtt);
    if (!consumer.ok()) return mp::Annotate(consumer.status(), "mqtt");
    (*consumer)->RegisterMetrics(context.telemetry, metrics::ServiceLabels(name));
    parts.member.consumer = *std::move(consumer);
  }
  auto service =
      mqttconverter::IngestionService::Create(options, parts.member.consumer, *publisher);
  if (!service.ok()) return service.status();
  (*service)->RegisterMetrics(context.telemetry, metrics::ServiceLabels(name));
  parts.member.service = *std::move(service);
  return parts;
}

absl::StatusOr<ServiceParts> BuildService(const std::string& name, const BigQueryConfig& c,
                                          const BuildContext& context) {
  ServiceParts parts = NewParts(name, BigQueryConfig::kKind);
  auto inserter = context.backends.tables.Create(TableBackendName(c), c, context);
  if (!inserter.ok()) return inserter.status();
  bool payload = c.schema_from_table;
  for (const auto& column : c.columns) {
    payload |= !column.source || column.source->kind == bqstore::ColumnSource::Kind::kPayload;
  }
  auto transformer =
      bqstore::RowInputTransformer({.input_format = c.input_format, .parse_payload = payload});
  auto dead = context.DeadLetters(BackendName(c.source.kind), c.source.project,
                                  c.common.dead_letter_topic, parts);
  if (!dead.ok()) return dead.status();
  if (auto s = context.Consume(c.source, parts); !s.ok()) return s;
  auto service = bqstore::NewBigQueryService<bqstore::RowInput>(
      {.common = CommonOptions(name, c.common, *dead),
       .batch_size = c.batch_size,
       .flush_interval = c.flush_interval,
       .flush_when_idle = c.flush_when_idle,
       .idle_linger = c.idle_linger},
      parts.member.consumer, std::move(transformer), *inserter);
  if (!service.ok()) return service.status();
  parts.member.service = *std::move(service);
  parts.member.close_after_stop.push_back([i = *inserter](mp::Deadline) { return i->Close(); });
  return parts;
}

absl::StatusOr<ServiceParts> BuildService(const std::string& name, const IceStoreConfig& c,
                                          const BuildContext& context) {
  ServiceParts parts = NewParts(name, IceStoreConfig::kKind);
  auto uploader = context.backends.archives.Create(ArchiveBackendName(c), c);
  if (!uploader.ok()) return uploader.status();
  auto dead = context.DeadLetters(BackendName(c.source.kind), c.source.project,
                                  c.common.dead_letter_topic, parts);
  if (!dead.ok()) return dead.status();
  if (auto s = context.Consume(c.source, parts); !s.ok()) return s;
  icestore::IceStorageServiceOptions options{.common = CommonOptions(name, c.common, *dead),
                                             .flush_when_idle = c.flush_when_idle,
                                             .idle_linger = c.idle_linger};
  options.batcher.batch_size = c.batch_size;
  options.batcher.flush_interval = c.flush_interval;
  auto service = icestore::IceStorageService::Create(
      options, parts.member.consumer, *uploader,
      icestore::MakeArchivalTransformer(c.input_format, c.group_by == IceStoreConfig::GroupBy::kDay
                                                            ? icestore::ArchivalKey::kDay
                                                            : icestore::ArchivalKey::kDayLocation));
  if (!service.ok()) return service.status();
  (*service)->RegisterMetrics(context.telemetry, metrics::ServiceLabels(name));
  parts.member.service = *std::move(service);
  return parts;
}

}  // namespace dataflow::app

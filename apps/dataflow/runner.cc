#include "runner.h"

#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>
#include <pthread.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <map>
#include <thread>

#include "dataflow/bqstore/bigquery_service.h"
#include "dataflow/bqstore/json_schema_rows.h"
#include "dataflow/bqstore/schema_sqlite_inserter.h"
#include "dataflow/cache/lru_cache.h"
#include "dataflow/cache/redis_cache.h"
#include "dataflow/enrichment/enrichment_service.h"
#include "dataflow/icestore/gcs_uploader.h"
#include "dataflow/icestore/ice_storage_service.h"
#include "dataflow/icestore/local_directory_uploader.h"
#include "dataflow/messagepipeline/in_process_broker.h"
#include "dataflow/messagepipeline/log_format.h"
#include "dataflow/messagepipeline/logging.h"
#include "dataflow/messagepipeline/publisher.h"
#include "dataflow/messagepipeline/service.h"
#include "dataflow/mqttconverter/ingestion_service.h"
#include "dataflow/mqttconverter/mqtt_consumer.h"
#include "dataflow/version.h"
#include "json_documents.h"
#include "metrics.h"
#include "ops_server.h"
#include "timed_publisher.h"
#ifdef DATAFLOW_APP_HAS_PUBSUB
#include "dataflow/pubsub/admin.h"
#include "dataflow/pubsub/consumer.h"
#include "dataflow/pubsub/producer.h"
#endif
#ifdef DATAFLOW_APP_HAS_FIRESTORE
#include "dataflow/cache/firestore.h"
#endif
#ifdef DATAFLOW_APP_HAS_STORAGE_WRITE
#include "dataflow/bqstore/schema_bigquery_inserter.h"
#include "dataflow/gcp/channel.h"
#endif

namespace dataflow::app {
namespace {

namespace mp = messagepipeline;
using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// One running service, whatever its kind.
struct Service {
  std::string name;
  std::string kind;
  std::shared_ptr<mp::MessageConsumer> consumer;
  std::string in_process_subscription;  // its backlog is drained before it stops
  std::shared_ptr<mp::Service> service;
  std::vector<std::function<absl::Status(mp::Deadline)>> stop_after;  // its publishers
  std::function<void(metrics::ScrapeWriter&)> write_extra_metrics;    // kind-specific families
};

absl::Status Annotate(const absl::Status& s, const std::string& where) {
  return absl::Status(s.code(), where + ": " + std::string(s.message()));
}

// Unused in builds without the Google Cloud packages (the demo preset).
[[maybe_unused]] std::string ProjectOf(const ProgramConfig& config,
                                       const std::string& override_project) {
  return override_project.empty() ? config.project : override_project;
}

// Metadata from a JSON object file {"<key>": {...}}: the embedded source of truth (Firestore's
// stand-in). Values are whatever objects the file holds.
class JsonFileSource final : public cache::Fetcher<std::string, Json> {
 public:
  static absl::StatusOr<std::shared_ptr<JsonFileSource>> Load(const std::string& path) {
    auto registry = LoadJsonDocuments(path);
    if (!registry.ok()) return registry.status();
    auto source = std::make_shared<JsonFileSource>();
    source->documents_ = *std::move(registry);
    return source;
  }
  absl::StatusOr<Json> Fetch(const std::string& key) override {
    auto it = documents_.find(key);
    if (it == documents_.end()) return absl::NotFoundError("no document " + key);
    return it.value();
  }
  absl::Status Close() override { return absl::OkStatus(); }

 private:
  Json documents_;
};

}  // namespace

struct Pipeline::Impl {
  // First, so it goes last: its scrape callbacks own services that count in its histograms.
  metrics::Telemetry telemetry;
  ProgramConfig config;
  std::shared_ptr<mp::InProcessBroker> broker;
  std::map<std::string, std::string> ingestion_inputs;  // PipelineHooks
#ifdef DATAFLOW_APP_HAS_PUBSUB
  std::map<std::string, std::shared_ptr<pubsub::PubsubStub>> stubs;  // by project
#endif
  std::vector<Service> services;
  std::unique_ptr<mp::ServiceGroup> group;  // runs `services`

  absl::Status NeedPubsub(const std::string& what) const {
#ifdef DATAFLOW_APP_HAS_PUBSUB
    (void)what;
    return absl::OkStatus();
#else
    return absl::FailedPreconditionError(
        what +
        ": this build has no Google Cloud Pub/Sub support (the demo preset leaves it "
        "out); build with the release or dev preset");
#endif
  }

#ifdef DATAFLOW_APP_HAS_PUBSUB
  absl::StatusOr<std::shared_ptr<pubsub::PubsubStub>> Stub(const std::string& project) {
    auto& stub = stubs[project];
    if (!stub) {
      auto made = pubsub::MakePubsubStub();
      if (!made.ok()) return made.status();
      stub = *std::move(made);
    }
    return stub;
  }
  absl::StatusOr<std::shared_ptr<pubsub::GooglePubsubProducer>> Producer(
      const std::string& project) {
    auto stub = Stub(project);
    if (!stub.ok()) return stub.status();
    auto producer = pubsub::GooglePubsubProducer::Create(*stub, {.project_id = project});
    if (!producer.ok()) return producer.status();
    return std::shared_ptr<pubsub::GooglePubsubProducer>(*std::move(producer));
  }
#endif

  absl::StatusOr<std::shared_ptr<mp::MessageConsumer>> Consumer(const SourceConfig& source) {
    if (source.kind == SourceConfig::Kind::kInProcess) {
      auto consumer = broker->NewConsumer(source.subscription);
      if (!consumer.ok()) return consumer.status();
      return std::shared_ptr<mp::MessageConsumer>(*std::move(consumer));
    }
    if (auto s = NeedPubsub("source.pubsub"); !s.ok()) return s;
#ifdef DATAFLOW_APP_HAS_PUBSUB
    const std::string project = ProjectOf(config, source.project);
    auto stub = Stub(project);
    if (!stub.ok()) return stub.status();
    if (config.create_pubsub_resources) {
      auto t = pubsub::CreateTopic(**stub, project, source.topic);
      if (!t.ok() && !absl::IsAlreadyExists(t)) return t;
      auto s = pubsub::CreateSubscription(**stub, project, source.subscription, source.topic,
                                          {.ack_deadline = source.ack_deadline});
      if (!s.ok() && !absl::IsAlreadyExists(s)) return s;
    }
    auto consumer = pubsub::GooglePubsubConsumer::Create(
        *stub, {.project_id = project,
                .subscription_id = source.subscription,
                .streams = source.streams,
                .max_outstanding_messages = source.max_outstanding_messages,
                .ack_deadline = source.ack_deadline,
                .max_stream_duration = source.max_stream_duration});
    if (!consumer.ok()) return consumer.status();
    return std::shared_ptr<mp::MessageConsumer>(*std::move(consumer));
#else
    return absl::InternalError("unreachable");
#endif
  }

  // A publisher for `kind`, its Stop registered on `service`; with `topics`, creates them
  // first when the config asks for it.
  absl::StatusOr<std::shared_ptr<mp::MessagePublisher>> Publisher(
      bool in_process, const std::string& project_override, const std::vector<std::string>& topics,
      Service& service) {
    prometheus::Histogram* latency = &PublishLatency(telemetry, service.name);
    if (in_process) {
      return Timed({.publisher = broker->NewPublisher(), .histogram = latency});
    }
    if (auto s = NeedPubsub("sink pubsub"); !s.ok()) return s;
#ifdef DATAFLOW_APP_HAS_PUBSUB
    const std::string project = ProjectOf(config, project_override);
    if (config.create_pubsub_resources) {
      auto stub = Stub(project);
      if (!stub.ok()) return stub.status();
      for (const auto& topic : topics) {
        if (topic.empty()) continue;
        auto t = pubsub::CreateTopic(**stub, project, topic);
        if (!t.ok() && !absl::IsAlreadyExists(t)) return t;
      }
    }
    auto producer = Producer(project);
    if (!producer.ok()) return producer.status();
    service.stop_after.push_back([p = *producer](mp::Deadline d) { return p->Stop(d); });
    return Timed({.publisher = *producer, .histogram = latency});
#else
    (void)project_override;
    (void)topics;
    (void)service;
    return absl::InternalError("unreachable");
#endif
  }

  static absl::StatusOr<std::shared_ptr<mp::MessagePublisher>> Timed(TimedPublisherOptions o) {
    auto timed = TimedPublisher::Create(std::move(o));
    if (!timed.ok()) return timed.status();
    return std::shared_ptr<mp::MessagePublisher>(*std::move(timed));
  }

  absl::StatusOr<std::shared_ptr<mp::DeadLetterSink>> DeadLetters(
      bool in_process, const std::string& project_override, const std::string& topic,
      Service& service) {
    if (topic.empty()) return std::shared_ptr<mp::DeadLetterSink>();
    if (in_process) return broker->NewDeadLetterSink(topic);
    if (auto s = NeedPubsub("dead_letter_topic"); !s.ok()) return s;
#ifdef DATAFLOW_APP_HAS_PUBSUB
    const std::string project = ProjectOf(config, project_override);
    if (config.create_pubsub_resources) {
      auto stub = Stub(project);
      if (!stub.ok()) return stub.status();
      auto t = pubsub::CreateTopic(**stub, project, topic);
      if (!t.ok() && !absl::IsAlreadyExists(t)) return t;
    }
    auto producer = Producer(project);
    if (!producer.ok()) return producer.status();
    service.stop_after.push_back([p = *producer](mp::Deadline d) { return p->Stop(d); });
    return std::shared_ptr<mp::DeadLetterSink>(
        std::make_shared<pubsub::PubsubDeadLetterSink>(*producer, topic));
#else
    (void)project_override;
    (void)service;
    return absl::InternalError("unreachable");
#endif
  }

  // The chain, and into `stats` a writer of each layer's hit/miss counters.
  absl::StatusOr<std::shared_ptr<cache::Fetcher<std::string, Json>>> CacheChain(
      const CacheChainConfig& c, const std::string& service,
      std::vector<std::function<void(metrics::ScrapeWriter&)>>& stats) {
    std::shared_ptr<cache::Fetcher<std::string, Json>> chain;
    if (c.json_file) {
      auto source = JsonFileSource::Load(*c.json_file);
      if (!source.ok()) return Annotate(source.status(), "cache.json_file");
      chain = *std::move(source);
    } else if (c.firestore) {
#ifdef DATAFLOW_APP_HAS_FIRESTORE
      auto fs = cache::Firestore<std::string, Json>::Create(
          {.project_id = ProjectOf(config, c.firestore->project),
           .collection_name = c.firestore->collection,
           .database_id = c.firestore->database});
      if (!fs.ok()) return Annotate(fs.status(), "cache.firestore");
      chain = *std::move(fs);
#else
      return absl::FailedPreconditionError(
          "cache.firestore: this build has no Firestore support (the demo preset leaves it "
          "out); build with the release or dev preset");
#endif
    }
    if (c.redis) {
      auto redis = cache::RedisCache<std::string, Json>::Create(*c.redis, chain);
      if (!redis.ok()) return Annotate(redis.status(), "cache.redis (" + c.redis->addr + ")");
      std::shared_ptr<cache::RedisCache<std::string, Json>> layer = *std::move(redis);
      stats.push_back([layer, service](metrics::ScrapeWriter& out) {
        WriteCacheStats(out, service, "redis", layer->Stats());
      });
      chain = layer;
    }
    if (c.lru) {
      auto lru = cache::InMemoryLRUCache<std::string, Json>::Create(
          {.max_size = c.lru->max_size, .ttl = c.lru->ttl}, chain);
      if (!lru.ok()) return Annotate(lru.status(), "cache.lru");
      std::shared_ptr<cache::InMemoryLRUCache<std::string, Json>> layer = *std::move(lru);
      stats.push_back([layer, service](metrics::ScrapeWriter& out) {
        WriteCacheStats(out, service, "lru", layer->Stats());
      });
      chain = layer;
    }
    return chain;
  }

  absl::StatusOr<Service> Ingestion(const std::string& name, const IngestionConfig& c) {
    Service svc{.name = name, .kind = "ingestion"};
    const bool in_process = c.sink.kind == TopicSinkConfig::Kind::kInProcess;
    std::vector<std::string> topics{c.default_topic};
    mqttconverter::IngestionServiceOptions options{
        .name = name,
        .unmapped = c.default_topic.empty() ? mqttconverter::UnmappedRoutePolicy::kReject
                                            : mqttconverter::UnmappedRoutePolicy::kDefaultTopic,
        .default_topic = c.default_topic,
        .payload_format = c.payload_format,
        .num_workers = c.workers,
        .max_delivery_attempts = c.max_delivery_attempts};
    for (const auto& [route, topic] : c.routes) {
      options.route_topics[route] = topic;
      topics.push_back(topic);
    }
    auto dead = DeadLetters(in_process, c.sink.project, c.dead_letter_topic, svc);
    if (!dead.ok()) return dead.status();
    options.dead_letter = *dead;
    auto publisher = Publisher(in_process, c.sink.project, topics, svc);
    if (!publisher.ok()) return publisher.status();
    if (auto input = ingestion_inputs.find(name); input != ingestion_inputs.end()) {
      auto consumer =
          Consumer({.kind = SourceConfig::Kind::kInProcess, .subscription = input->second});
      if (!consumer.ok()) return Annotate(consumer.status(), "input");
      svc.consumer = *std::move(consumer);
      svc.in_process_subscription = input->second;
    } else {
      auto consumer = mqttconverter::MqttConsumer::Create(c.mqtt);
      if (!consumer.ok()) return Annotate(consumer.status(), "mqtt");
      svc.consumer = std::shared_ptr<mp::MessageConsumer>(*std::move(consumer));
    }
    auto service = mqttconverter::IngestionService::Create(options, svc.consumer, *publisher);
    if (!service.ok()) return service.status();
    std::shared_ptr<mqttconverter::IngestionService> s = *std::move(service);
    svc.service = s;
    svc.write_extra_metrics = [s, name](metrics::ScrapeWriter& out) {
      out.Counter("dataflow_ingestion_rejected_total",
                  "Messages of a route without a topic, dropped (no dead-letter topic).",
                  {{"service", name}}, s->rejected());
    };
    return svc;
  }

  absl::StatusOr<Service> Enrichment(const std::string& name, const EnrichmentConfig& c) {
    Service svc{.name = name, .kind = "enrichment"};
    const bool in_process = c.source.kind == SourceConfig::Kind::kInProcess;
    if (in_process) svc.in_process_subscription = c.source.subscription;
    std::vector<std::function<void(metrics::ScrapeWriter&)>> cache_stats;
    auto chain = CacheChain(c.cache, name, cache_stats);
    if (!chain.ok()) return chain.status();
    std::vector<enrichment::KeyExtractor<std::string>> keys;
    for (const EnrichmentKeyConfig& k : c.keys) {
      switch (k.kind) {
        case EnrichmentKeyConfig::Kind::kJsonField:
          keys.push_back(enrichment::JsonPayloadKey(k.name));
          break;
        case EnrichmentKeyConfig::Kind::kPayloadPath: {
          auto path = enrichment::JsonPath::Parse(k.name);
          if (!path.ok()) return Annotate(path.status(), "key");
          keys.push_back(enrichment::PayloadPathKey(*std::move(path)));
          break;
        }
        case EnrichmentKeyConfig::Kind::kAttribute:
          keys.push_back(enrichment::AttributeKey(k.name));
          break;
        case EnrichmentKeyConfig::Kind::kTopicSegment:
          keys.push_back(enrichment::TopicSegmentKey(k.segment, k.name));
          break;
      }
    }
    auto key = keys.size() == 1 ? keys.front() : enrichment::FirstKey(std::move(keys));
    // By default icestore's grouping attribute, `location`, comes from the document.
    enrichment::DocumentSelection selection{.fields = c.fields};
    if (c.attributes) {
      selection.attributes = *c.attributes;
    } else if (!c.location_attribute.empty()) {
      selection.attributes = {{.from = "location", .to = c.location_attribute}};
    }
    auto applier = enrichment::SelectingApplier(std::move(selection));
    auto enricher = enrichment::MakeEnricher<std::string, Json>(
        *chain, key, applier, {.on_not_found = c.on_not_found, .on_error = c.on_error});
    if (!enricher.ok()) return enricher.status();
    auto dead = DeadLetters(in_process, c.source.project, c.dead_letter_topic, svc);
    if (!dead.ok()) return dead.status();
    const bool sink_in_process = c.sink.kind == TopicSinkConfig::Kind::kInProcess;
    auto publisher = Publisher(sink_in_process, c.sink.project, {c.topic}, svc);
    if (!publisher.ok()) return publisher.status();
    auto consumer = Consumer(c.source);
    if (!consumer.ok()) return Annotate(consumer.status(), "source");
    svc.consumer = *consumer;
    auto service = enrichment::EnrichmentService::CreateAsync(
        {.name = name,
         .num_workers = c.workers,
         .dead_letter = *dead,
         .max_delivery_attempts = c.max_delivery_attempts,
         .input_format = c.input_format},
        svc.consumer, *enricher, mp::PublishEnvelope(*publisher, c.topic));
    if (!service.ok()) return service.status();
    std::shared_ptr<enrichment::EnrichmentService> s = *std::move(service);
    svc.service = s;
    svc.stop_after.push_back([chain = *chain](mp::Deadline) { return chain->Close(); });
    svc.write_extra_metrics = [s, name, cache_stats](metrics::ScrapeWriter& out) {
      WriteEnrichmentMetrics(out, name, s->enrichment_metrics());
      for (const auto& write : cache_stats) write(out);
    };
    return svc;
  }

#ifdef DATAFLOW_APP_HAS_STORAGE_WRITE
  // The table and endpoints of a `table:` block, for either inserter's options.
  template <typename Options>
  void SetTableOptions(const BigQueryConfig& c, Options& options) const {
    options.writer.project_id = ProjectOf(config, c.bigquery->project);
    options.writer.dataset_id = c.bigquery->dataset;
    options.writer.table_id = c.bigquery->table;
    options.table.create_if_missing = c.bigquery->create_table;
    options.table.create_dataset = c.bigquery->create_dataset;
    options.admin.endpoint = c.bigquery->rest_endpoint;
    if (!c.bigquery->grpc_endpoint.empty()) {
      options.writer.channel.endpoint = c.bigquery->grpc_endpoint;
      // Plaintext only to this machine or with BIGQUERY_EMULATOR_HOST set; else TLS.
      options.writer.channel.insecure =
          gcp::PlaintextAllowed(c.bigquery->grpc_endpoint, "BIGQUERY_EMULATOR_HOST");
    }
  }
#endif

  // Rows as the config's `schema:` describes them: any JSON payload, any table.
  absl::StatusOr<std::shared_ptr<bqstore::DataBatchInserter<bqstore::RowInput>>> SchemaInserter(
      const BigQueryConfig& c) {
    if (c.sqlite) {
      auto converter = bqstore::RowConverter::Create(c.columns);
      if (!converter.ok()) return Annotate(converter.status(), "schema");
      std::error_code ignored;  // SQLite reports a directory that cannot be made clearly
      std::filesystem::create_directories(std::filesystem::path(c.sqlite->path).parent_path(),
                                          ignored);
      auto sqlite = bqstore::SchemaSQLiteInserter::Create(
          {.path = c.sqlite->path, .table = c.sqlite->table}, *converter);
      if (!sqlite.ok()) return Annotate(sqlite.status(), "sqlite");
      return std::shared_ptr<bqstore::DataBatchInserter<bqstore::RowInput>>(*std::move(sqlite));
    }
#ifdef DATAFLOW_APP_HAS_STORAGE_WRITE
    bqstore::SchemaBigQueryInserterOptions options;
    SetTableOptions(c, options);
    options.columns = c.columns;  // empty with from_table
    options.sources = c.sources;
    auto bq = bqstore::SchemaBigQueryInserter::Create(std::move(options));
    if (!bq.ok()) return Annotate(bq.status(), "table");
    return std::shared_ptr<bqstore::DataBatchInserter<bqstore::RowInput>>(*std::move(bq));
#else
    return absl::FailedPreconditionError(
        "table: this build has no BigQuery Storage Write support (the demo preset leaves it "
        "out); build with the release or dev preset");
#endif
  }

  absl::StatusOr<Service> BigQuery(const std::string& name, const BigQueryConfig& c) {
    auto inserter = SchemaInserter(c);
    if (!inserter.ok()) return inserter.status();
    bool payload = c.schema_from_table;
    for (const auto& column : c.columns) {
      payload |= !column.source || column.source->kind == bqstore::ColumnSource::Kind::kPayload;
    }
    auto transformer =
        bqstore::RowInputTransformer({.input_format = c.input_format, .parse_payload = payload});
    Service svc{.name = name, .kind = "bigquery"};
    const bool in_process = c.source.kind == SourceConfig::Kind::kInProcess;
    if (in_process) svc.in_process_subscription = c.source.subscription;
    auto dead = DeadLetters(in_process, c.source.project, c.dead_letter_topic, svc);
    if (!dead.ok()) return dead.status();
    auto consumer = Consumer(c.source);
    if (!consumer.ok()) return Annotate(consumer.status(), "source");
    svc.consumer = *consumer;
    auto service = bqstore::NewBigQueryService<bqstore::RowInput>(
        {.name = name,
         .num_workers = c.workers,
         .batch_size = c.batch_size,
         .flush_interval = c.flush_interval,
         .flush_when_idle = c.flush_when_idle,
         .dead_letter = *dead,
         .max_delivery_attempts = c.max_delivery_attempts},
        svc.consumer, std::move(transformer), *inserter);
    if (!service.ok()) return service.status();
    std::shared_ptr<bqstore::BigQueryService<bqstore::RowInput>> s = *std::move(service);
    svc.service = s;
    svc.stop_after.push_back([i = *inserter](mp::Deadline) { return i->Close(); });
    return svc;
  }

  absl::StatusOr<Service> IceStore(const std::string& name, const IceStoreConfig& c) {
    Service svc{.name = name, .kind = "icestore"};
    const bool in_process = c.source.kind == SourceConfig::Kind::kInProcess;
    if (in_process) svc.in_process_subscription = c.source.subscription;
    std::shared_ptr<icestore::DataUploader> uploader;
    if (c.local) {
      auto local = icestore::LocalDirectoryUploader::Create(
          {.root = c.local->root, .prefix = c.local->prefix});
      if (!local.ok()) return Annotate(local.status(), "local");
      uploader = *std::move(local);
    } else {
      auto gcs =
          icestore::GcsBatchUploader::Create({.bucket = c.gcs->bucket, .prefix = c.gcs->prefix});
      if (!gcs.ok()) return Annotate(gcs.status(), "gcs");
      uploader = *std::move(gcs);
    }
    auto dead = DeadLetters(in_process, c.source.project, c.dead_letter_topic, svc);
    if (!dead.ok()) return dead.status();
    auto consumer = Consumer(c.source);
    if (!consumer.ok()) return Annotate(consumer.status(), "source");
    svc.consumer = *consumer;
    icestore::IceStorageServiceOptions options{.name = name,
                                               .num_workers = c.workers,
                                               .dead_letter = *dead,
                                               .max_delivery_attempts = c.max_delivery_attempts,
                                               .flush_when_idle = c.flush_when_idle};
    options.batcher.batch_size = c.batch_size;
    options.batcher.flush_interval = c.flush_interval;
    auto service = icestore::IceStorageService::Create(
        options, svc.consumer, uploader,
        icestore::MakeArchivalTransformer(c.input_format,
                                          c.group_by == IceStoreConfig::GroupBy::kDay
                                              ? icestore::ArchivalKey::kDay
                                              : icestore::ArchivalKey::kDayLocation));
    if (!service.ok()) return service.status();
    std::shared_ptr<icestore::IceStorageService> s = *std::move(service);
    svc.service = s;
    svc.write_extra_metrics = [s, name](metrics::ScrapeWriter& out) {
      out.Counter("dataflow_archive_objects_written_total", "Archive objects written.",
                  {{"service", name}}, s->objects_written());
    };
    return svc;
  }
};

namespace {
// The service's families (docs/operations.md) on the pipeline's telemetry, read from its stats
// at scrape time: the common ones, its kind's, its consumer's own (MQTT, Pub/Sub).
void AddMetrics(metrics::Telemetry& telemetry, const Service& svc) {
  std::function<void(metrics::ScrapeWriter&)> consumer_stats;
  if (auto mqtt = std::dynamic_pointer_cast<mqttconverter::MqttConsumer>(svc.consumer)) {
    consumer_stats = [mqtt, name = svc.name](metrics::ScrapeWriter& out) {
      WriteMqttConsumerStats(out, name, mqtt->stats());
    };
  }
#ifdef DATAFLOW_APP_HAS_PUBSUB
  if (auto ps = std::dynamic_pointer_cast<pubsub::GooglePubsubConsumer>(svc.consumer)) {
    consumer_stats = [ps, name = svc.name](metrics::ScrapeWriter& out) {
      WritePubsubConsumerStats(out, name, ps->stats());
    };
  }
#endif
  telemetry.AddCallback([name = svc.name, service = svc.service, consumer = svc.consumer,
                         kind_stats = svc.write_extra_metrics,
                         consumer_stats = std::move(consumer_stats)](metrics::ScrapeWriter& out) {
    WriteServiceMetrics(out, name, service->metrics());
    WriteConsumerConnected(out, name, consumer->IsConnected());
    if (kind_stats) kind_stats(out);
    if (consumer_stats) consumer_stats(out);
  });
}
}  // namespace

Pipeline::Pipeline(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Pipeline::~Pipeline() = default;  // the group stops what still runs

absl::StatusOr<std::unique_ptr<Pipeline>> Pipeline::Build(const ProgramConfig& config,
                                                          PipelineHooks hooks) {
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  impl->broker = hooks.broker ? std::move(hooks.broker) : mp::InProcessBroker::Create();
  impl->ingestion_inputs = std::move(hooks.ingestion_inputs);
  for (const auto& topic : config.in_process_topics) {
    if (auto s = impl->broker->CreateTopic(topic); !s.ok()) return Annotate(s, "in_process.topics");
  }
  for (const auto& [name, topic] : config.in_process_subscriptions) {
    if (auto s = impl->broker->CreateSubscription(name, topic); !s.ok()) {
      return Annotate(s, "in_process.subscriptions");
    }
  }
  for (std::size_t i = 0; i < config.services.size(); ++i) {
    const ServiceConfig& sc = config.services[i];
    const std::string where = absl::StrCat("services[", i, "] (", sc.name, ")");
    absl::StatusOr<Service> built = std::visit(
        [&](const auto& spec) -> absl::StatusOr<Service> {
          using Spec = std::decay_t<decltype(spec)>;
          if constexpr (std::is_same_v<Spec, IngestionConfig>)
            return impl->Ingestion(sc.name, spec);
          if constexpr (std::is_same_v<Spec, EnrichmentConfig>)
            return impl->Enrichment(sc.name, spec);
          if constexpr (std::is_same_v<Spec, BigQueryConfig>) return impl->BigQuery(sc.name, spec);
          if constexpr (std::is_same_v<Spec, IceStoreConfig>) return impl->IceStore(sc.name, spec);
        },
        sc.spec);
    if (!built.ok()) return Annotate(built.status(), where);
    AddMetrics(impl->telemetry, *built);
    impl->services.push_back(*std::move(built));
  }
  mp::ServiceGroupOptions group{.broker = impl->broker};
  for (const auto& [name, topic] : config.in_process_subscriptions) {
    group.subscriptions.push_back(name);
  }
  impl->group = std::make_unique<mp::ServiceGroup>(std::move(group));
  for (const Service& s : impl->services) {
    impl->group->Add({.name = s.name,
                      .kind = s.kind,
                      .service = s.service,
                      .consumer = s.consumer,
                      .in_process_input = s.in_process_subscription,
                      .close_after_stop = s.stop_after});
  }
  return std::unique_ptr<Pipeline>(new Pipeline(std::move(impl)));
}

absl::Status Pipeline::Start() { return impl_->group->Start(); }

absl::Status Pipeline::Failure() const { return impl_->group->Failure(); }

absl::Status Pipeline::Stop(std::chrono::milliseconds timeout) {
  return impl_->group->Stop(Clock::now() + timeout);
}

std::vector<ServiceStatus> Pipeline::Status() const {
  std::vector<ServiceStatus> out;
  for (const auto& s : impl_->services) {
    out.push_back({.name = s.name,
                   .kind = s.kind,
                   .connected = s.consumer->IsConnected(),
                   .metrics = s.service->metrics()});
  }
  return out;
}

metrics::Telemetry& Pipeline::telemetry() const { return impl_->telemetry; }

std::vector<ComponentReadiness> Pipeline::Readiness() const {
  std::vector<ComponentReadiness> out;
  for (const auto& s : impl_->services) out.push_back(ConsumerReadiness(s.name, *s.consumer));
  return out;
}

void BlockStopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

namespace {

// The next SIGINT/SIGTERM within `wait`, or 0.
int WaitForStopSignal(std::chrono::milliseconds wait) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  timespec ts{.tv_sec = static_cast<time_t>(wait.count() / 1000),
              .tv_nsec = static_cast<long>((wait.count() % 1000) * 1000000)};
  const int sig = sigtimedwait(&set, nullptr, &ts);
  return sig > 0 ? sig : 0;
}

}  // namespace

int RunProgram(const ProgramConfig& config) {
  for (const auto& line : Describe(config)) Log()->info("service {}", line);
  auto pipeline = Pipeline::Build(config);
  if (!pipeline.ok()) {
    Announce(spdlog::level::err, pipeline.status().ToString());
    return 1;
  }
  // Up before the services start, so probes see "live, not ready" while consumers connect.
  RegisterBuildInfo((*pipeline)->telemetry(), DATAFLOW_VERSION);
  std::unique_ptr<OpsServer> ops;
  if (config.ops.enabled) {
    auto started =
        OpsServer::Start({.host = config.ops.host, .port = config.ops.port},
                         {.live = [] { return true; },
                          .readiness = [p = pipeline->get()] { return p->Readiness(); },
                          .metrics = [p = pipeline->get()] { return p->telemetry().Collect(); }});
    if (!started.ok()) {
      Announce(spdlog::level::err, "ops endpoint: " + started.status().ToString());
      return 1;
    }
    ops = *std::move(started);
    Log()->info("ops endpoint listening host={} port={} paths=/healthz,/readyz,/metrics",
                config.ops.host, ops->port());
  }
  if (auto s = (*pipeline)->Start(); !s.ok()) {
    Announce(spdlog::level::err, "starting " + s.ToString());
    (void)(*pipeline)->Stop(config.shutdown_timeout);
    return 1;
  }
  Log()->info("running services={} (SIGINT or SIGTERM stops them)", config.services.size());
  bool failed = false;
  while (true) {
    if (const int sig = WaitForStopSignal(std::chrono::milliseconds(200)); sig != 0) {
      Log()->info("stopping signal={} timeout_ms={}", strsignal(sig),
                  config.shutdown_timeout.count());
      break;
    }
    if (auto s = (*pipeline)->Failure(); !s.ok()) {
      Announce(spdlog::level::err, s.ToString());
      failed = true;
      break;
    }
  }
  // A second signal while stopping means "now": exit without waiting for the drain.
  std::atomic<bool> stopped{false};
  std::jthread impatient([&stopped] {
    while (!stopped.load()) {
      if (WaitForStopSignal(std::chrono::milliseconds(100)) != 0) {
        Announce(spdlog::level::warn, "second stop signal, exiting without draining");
        std::_Exit(1);
      }
    }
  });
  const absl::Status stop = (*pipeline)->Stop(config.shutdown_timeout);
  stopped = true;
  impatient.join();
  if (ops) ops->Stop();
  for (const auto& s : (*pipeline)->Status()) {
    Announce(spdlog::level::info,
             absl::StrCat("service stopped name=", s.name, " kind=", s.kind,
                          " received=", s.metrics.received, " processed=", s.metrics.processed,
                          " skipped=", s.metrics.skipped, " dead_lettered=",
                          s.metrics.dead_lettered, " nacked=", s.metrics.nacked));
  }
  if (!stop.ok()) {
    Announce(spdlog::level::err, "stop was not clean: " + std::string(stop.message()));
    return 1;
  }
  return failed ? 1 : 0;
}

}  // namespace dataflow::app

// The dataflow program's configuration: one YAML file describing the services one process
// runs (docs/configuration.md is the reference, config/ has examples).
//
// Loading never stops at the first problem: every error is collected with the path of the
// value it is about (`services[1].enrichment.cache.redis.addr: missing`), so `dataflow
// validate` can print them all. Environment variables take part twice:
//   - `${NAME}` / `${NAME:-default}` inside a value is replaced by the variable (secrets can
//     stay out of the file);
//   - `DATAFLOW__<path>` overrides the value at <path>, segments separated by `__`, a
//     service selected by its name (`DATAFLOW__SERVICES__ENRICH__ENRICHMENT__CACHE__REDIS__ADDR`
//     for the service named "enrich"), case-insensitive, `-` in names written as `_`.
// Secrets (passwords) are never part of Describe(); errors never show a password or a value
// from the environment, and credentials inside URLs are refused (docs/configuration.md).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "dataflow/bqstore/json_schema_rows.h"
#include "dataflow/cache/redis_stub.h"
#include "dataflow/enrichment/enricher.h"
#include "dataflow/enrichment/enrichment_service.h"
#include "dataflow/enrichment/keys.h"
#include "dataflow/messagepipeline/environment.h"
#include "dataflow/messagepipeline/message.h"
#include "dataflow/messagepipeline/service_core.h"
#include "dataflow/mqttconverter/ingestion_service.h"
#include "dataflow/mqttconverter/mqtt_config.h"

namespace dataflow::app {

// Where a service reads from.
struct SourceConfig {
  enum class Kind { kPubsub, kInProcess };
  Kind kind = Kind::kPubsub;
  std::string subscription;
  std::string topic;    // Pub/Sub: the subscription's topic, needed to create it
  std::string project;  // Pub/Sub; empty: the program's project
  int streams = 1;      // Pub/Sub StreamingPull streams
  std::size_t max_outstanding_messages = 1000;
  // Pub/Sub: the lease asked for each delivery and extension; a crashed copy's messages go
  // to another copy after at most this long.
  std::chrono::seconds ack_deadline{30};
  // Pub/Sub: each StreamingPull stream is renewed this often; it bounds how long the
  // emulator keeps leasing messages into the stream of a copy that was killed.
  std::chrono::milliseconds max_stream_duration{std::chrono::seconds(60)};
};

// Where a service publishes to.
struct TopicSinkConfig {
  enum class Kind { kPubsub, kInProcess };
  Kind kind = Kind::kPubsub;
  std::string project;  // Pub/Sub; empty: the program's project
};

// The keys every service kind has (config_keys.cc, AddCommonKeys); the program maps them to
// the library's messagepipeline::ServiceOptions (CommonOptions, services.h).
struct ServiceCommonConfig {
  // Messages that can never succeed are parked here (same transport as the service's input);
  // empty: they are logged, counted as dropped and acked.
  std::string dead_letter_topic;
  int workers = messagepipeline::ServiceOptions{}.num_workers;
  // Deliveries before a message is given up on (dead-lettered, or dropped without a topic).
  int max_delivery_attempts = messagepipeline::kDefaultMaxDeliveryAttempts;
};

struct IngestionConfig {
  static constexpr const char* kKind = "ingestion";  // its key under services[]
  mqttconverter::MqttClientOptions mqtt;
  TopicSinkConfig sink;
  std::vector<std::pair<std::string, std::string>> routes;  // route name → topic
  std::string default_topic;  // for unmapped routes; empty: they are rejected
  // What is published: the JSON envelope (as the Go ingestion publishes) or the MQTT bytes.
  mqttconverter::PayloadFormat payload_format = mqttconverter::PayloadFormat::kEnvelope;
  ServiceCommonConfig common;
  // Publishes awaiting confirmation at most (the library's default).
  std::size_t max_in_flight = mqttconverter::IngestionServiceOptions{}.in_flight.max_messages;
};

struct CacheChainConfig {
  struct Lru {
    std::size_t max_size = 10000;
    std::chrono::milliseconds ttl{0};
  };
  struct Firestore {
    std::string project;  // empty: the program's project
    std::string collection;
    std::string database = "(default)";
  };
  std::optional<Lru> lru;
  std::optional<cache::RedisOptions> redis;
  std::optional<Firestore> firestore;
  std::optional<std::string> json_file;  // the registry file (the demo's source of truth)
};

// Where an enrichment key is looked for (enrichment/keys.h).
struct EnrichmentKeyConfig {
  enum class Kind { kJsonField, kPayloadPath, kAttribute, kTopicSegment };
  Kind kind = Kind::kJsonField;
  std::string name;  // the field, payload path or attribute; for kTopicSegment the topic attribute
  std::size_t segment = 0;
};

struct EnrichmentConfig {
  static constexpr const char* kKind = "enrichment";  // its key under services[]
  SourceConfig source;
  // How input bodies are read: auto (an envelope if it is one, else raw), envelope or raw.
  messagepipeline::InputFormat input_format = messagepipeline::InputFormat::kAuto;
  TopicSinkConfig sink;
  std::string topic;                      // output topic
  std::vector<EnrichmentKeyConfig> keys;  // tried in order; at least one
  // Document fields merged into enrichmentData (empty: all), and copied into attributes
  // (unset: `location` into location_attribute).
  std::vector<enrichment::FieldMapping> fields;
  std::optional<std::vector<enrichment::FieldMapping>> attributes;
  CacheChainConfig cache;
  enrichment::FailurePolicy on_not_found = enrichment::FailurePolicy::kPassUnenriched;
  enrichment::FailurePolicy on_error = enrichment::FailurePolicy::kNack;
  std::string location_attribute = "location";  // copied from the metadata; empty: not set
  ServiceCommonConfig common;
  // Publishes awaiting confirmation at most (the library's default).
  std::size_t max_in_flight = enrichment::EnrichmentServiceOptions{}.in_flight.max_messages;
};

struct BigQueryConfig {
  static constexpr const char* kKind = "bigquery";  // its key under services[]
  SourceConfig source;
  // How input bodies are read: auto (an envelope if it is one, else raw), envelope or raw.
  messagepipeline::InputFormat input_format = messagepipeline::InputFormat::kAuto;
  std::size_t batch_size = 100;
  std::chrono::milliseconds flush_interval{std::chrono::minutes(1)};
  bool flush_when_idle = false;              // also flush a partial batch when no input is waiting
  std::chrono::milliseconds idle_linger{0};  // ... once its first message waited this long
  struct Table {
    std::string project;  // empty: the program's project
    std::string dataset;
    std::string table;
    bool create_table = true;
    bool create_dataset = false;
    // Local servers: the REST base URL (http://host:port) and the Storage Write gRPC address
    // (host:port; plaintext only to loopback or with BIGQUERY_EMULATOR_HOST set, else TLS).
    // Empty: Google's endpoints, or BIGQUERY_EMULATOR_HOST. No credentials inside either.
    std::string rest_endpoint;
    std::string grpc_endpoint;
  };
  struct Sqlite {
    std::string path;
    std::string table = "readings";
  };
  std::optional<Table> bigquery;
  std::optional<Sqlite> sqlite;  // one of the two
  // The row schema (docs/bqstore.md): `schema:` a list of columns, or `schema: from_table`
  // (BigQuery only; `sources:` maps column names to sources). One of the two is required.
  std::vector<bqstore::ColumnSpec> columns;
  bool schema_from_table = false;
  std::map<std::string, std::string> sources;
  ServiceCommonConfig common;
};

struct IceStoreConfig {
  static constexpr const char* kKind = "icestore";  // its key under services[]
  SourceConfig source;
  // How input bodies are read: auto (an envelope if it is one, else raw), envelope or raw.
  messagepipeline::InputFormat input_format = messagepipeline::InputFormat::kAuto;
  std::size_t batch_size = 100;
  std::chrono::milliseconds flush_interval{std::chrono::minutes(1)};
  bool flush_when_idle = false;              // also flush a partial batch when no input is waiting
  std::chrono::milliseconds idle_linger{0};  // ... once its first message waited this long
  struct Gcs {
    std::string bucket;
    std::string prefix;
  };
  struct Local {
    std::string root;
    std::string prefix;
  };
  std::optional<Gcs> gcs;
  std::optional<Local> local;  // one of the two
  // Object key: the day and the message's location (the Go library's), or the day only
  // (dead-letter archives: a location may be what made the message fail).
  enum class GroupBy { kDayLocation, kDay };
  GroupBy group_by = GroupBy::kDayLocation;
  ServiceCommonConfig common;
};

struct ServiceConfig {
  std::string name;
  using Spec = std::variant<IngestionConfig, EnrichmentConfig, BigQueryConfig, IceStoreConfig>;
  Spec spec;
  [[nodiscard]] const char* kind() const;
};

struct ProgramConfig {
  std::string project;  // Google Cloud project; empty: $GOOGLE_CLOUD_PROJECT
  std::string log_level = "info";
  // Create the Pub/Sub topics and subscriptions the services name when they are missing
  // (emulators, development); production infrastructure is usually managed elsewhere.
  bool create_pubsub_resources = false;
  std::chrono::milliseconds shutdown_timeout{std::chrono::seconds(30)};
  struct Ops {
    bool enabled = true;
    std::string host = "0.0.0.0";
    int port = 9464;
  } ops;
  // In-process topics and subscriptions, for pipelines inside one process.
  std::vector<std::string> in_process_topics;
  std::vector<std::pair<std::string, std::string>> in_process_subscriptions;  // name → topic
  std::vector<ServiceConfig> services;
};

struct ConfigError {
  std::string path;
  std::string message;
  [[nodiscard]] std::string ToString() const { return path + ": " + message; }
};

using messagepipeline::EnvLookup;
using messagepipeline::ProcessEnvironment;
// Every variable of the process environment; for the DATAFLOW__ overrides.
std::vector<std::pair<std::string, std::string>> EnvironmentVariables();

struct ConfigLoadResult {
  ProgramConfig config;
  std::vector<ConfigError> errors;  // empty: the config is valid
  // Valid but risky (a service that drops what it cannot process); printed by validate/run.
  std::vector<ConfigError> warnings;
  [[nodiscard]] bool ok() const { return errors.empty(); }
};

// `environment` holds the variables for DATAFLOW__ overrides; `lookup` resolves ${NAME}.
ConfigLoadResult ParseConfig(const std::string& yaml_text,
                             const std::vector<std::pair<std::string, std::string>>& environment,
                             const EnvLookup& lookup);
ConfigLoadResult LoadConfigFile(const std::string& path);

// One line per service and its wiring, without secrets; for `validate` and the start log.
std::vector<std::string> Describe(const ProgramConfig& config);

}  // namespace dataflow::app

#include "config_keys.h"

#include <set>

namespace dataflow::app {
namespace {

using mqttconverter::MqttClientOptions;

// dead_letter_topic, workers, max_delivery_attempts: every service kind has them, in its
// `common` member.
template <typename Spec>
void AddCommonKeys(KeyTable<Spec>& table) {
  using Common = ServiceCommonConfig;
  static const KeyTable<Common> kCommon = {
      TextKey("dead_letter_topic", &Common::dead_letter_topic,
              "topic (of the service's own transport) where messages that can never succeed are "
              "parked; unset: they are logged, counted as dropped and acked"),
      IntKey("workers", &Common::workers, 1, 1024, "concurrent workers"),
      IntKey("max_delivery_attempts", &Common::max_delivery_attempts, 1, 1000,
             "deliveries before a message is given up on (dead-lettered, or dropped without a "
             "dead_letter_topic)")};
  for (const ConfigKey<Common>& row : kCommon) table.push_back(Embedded(&Spec::common, row));
}

template <typename Spec>
ConfigKey<Spec> InputFormatKey() {
  return EnumKey<Spec, messagepipeline::InputFormat>(
      "input_format", &Spec::input_format, {"auto", "envelope", "raw"},
      [](messagepipeline::InputFormat f) {
        return std::string(messagepipeline::InputFormatName(f));
      },
      [](yaml_config::Reader& r, const YAML::Node& n, const char* key, const std::string& path,
         messagepipeline::InputFormat& out) { r.Format(n, key, path, out); },
      "how the input is read: auto (an envelope when the body is one, else raw), envelope or "
      "raw (docs/messagepipeline.md)");
}

template <typename Spec>
ConfigKey<Spec> PolicyKey(const char* key, enrichment::FailurePolicy Spec::*member,
                          const std::string& doc) {
  return EnumKey<Spec, enrichment::FailurePolicy>(
      key, member, {"skip", "pass_unenriched", "nack"},
      [](enrichment::FailurePolicy p) { return std::string(enrichment::FailurePolicyName(p)); },
      [](yaml_config::Reader& r, const YAML::Node& n, const char* k, const std::string& path,
         enrichment::FailurePolicy& out) { r.Policy(n, k, path, out); },
      doc);
}

// The services that publish: messages awaiting the publish's confirmation.
template <typename Spec>
ConfigKey<Spec> MaxInFlightKey() {
  return IntKey("max_in_flight", &Spec::max_in_flight, 1, 1'000'000,
                "publishes awaiting confirmation, at most; over in-process topics a publish is "
                "confirmed once every sink stored the message, so this is the pipeline's "
                "end-to-end window (docs/operations.md)");
}

// batch_size, flush_interval, flush_when_idle, idle_linger of the batching sinks.
template <typename Spec>
void AddBatchingKeys(KeyTable<Spec>& table, long long max_batch, const std::string& batch,
                     const std::string& flush, const std::string& idle) {
  table.push_back(IntKey("batch_size", &Spec::batch_size, 1, max_batch, batch));
  table.push_back(DurationKey("flush_interval", &Spec::flush_interval, flush));
  table.push_back(BoolKey("flush_when_idle", &Spec::flush_when_idle, idle));
  table.push_back(DurationKey("idle_linger", &Spec::idle_linger,
                              "with flush_when_idle: how long a partial batch's first message "
                              "waits for more before an idle cut (fewer, larger writes under "
                              "a steady stream)"));
}

}  // namespace

const KeyTable<IngestionConfig>& IngestionKeys() {
  static const auto* const table = [] {
    auto* t = new KeyTable<IngestionConfig>{
        TextKey("default_topic", &IngestionConfig::default_topic,
                "topic for unmapped routes; unset: they are rejected"),
        EnumKey<IngestionConfig, mqttconverter::PayloadFormat>(
            "payload_format", &IngestionConfig::payload_format, {"envelope", "raw"},
            [](mqttconverter::PayloadFormat f) {
              return std::string(f == mqttconverter::PayloadFormat::kEnvelope ? "envelope" : "raw");
            },
            [](yaml_config::Reader& r, const YAML::Node& n, const char* key,
               const std::string& path, mqttconverter::PayloadFormat& out) {
              auto v = r.Scalar(n, key, path, false);
              if (!v) return;
              if (*v == "envelope") {
                out = mqttconverter::PayloadFormat::kEnvelope;
              } else if (*v == "raw") {
                out = mqttconverter::PayloadFormat::kRaw;
              } else {
                r.Error(yaml_config::Join(path, key),
                        "expected envelope or raw, got " + r.Quote(*v));
              }
            },
            "what ingestion publishes: envelope (the Go library's JSON {id, payload, "
            "publishTime}) or raw (the MQTT bytes, attributes beside them)"),
    };
    AddCommonKeys(*t);
    t->push_back(MaxInFlightKey<IngestionConfig>());
    return t;
  }();
  return *table;
}

const KeyTable<EnrichmentConfig>& EnrichmentKeys() {
  static const auto* const table = [] {
    auto* t = new KeyTable<EnrichmentConfig>{
        InputFormatKey<EnrichmentConfig>(),
        TextKey("topic", &EnrichmentConfig::topic, "where enriched envelopes are published", true),
        PolicyKey("on_not_found", &EnrichmentConfig::on_not_found,
                  "a key without a document: skip (ack, drop), pass_unenriched or nack"),
        PolicyKey("on_error", &EnrichmentConfig::on_error,
                  "a lookup that failed: skip, pass_unenriched or nack (retried)"),
        TextKey("location_attribute", &EnrichmentConfig::location_attribute,
                "when attributes is not given: the attribute set from the document's location "
                "field; empty: none"),
    };
    AddCommonKeys(*t);
    t->push_back(MaxInFlightKey<EnrichmentConfig>());
    return t;
  }();
  return *table;
}

const KeyTable<BigQueryConfig>& BigQueryKeys() {
  static const auto* const table = [] {
    auto* t = new KeyTable<BigQueryConfig>{InputFormatKey<BigQueryConfig>()};
    AddBatchingKeys(*t, 100000, "rows per batch", "longest a partial batch waits",
                    "also flush a partial batch when no input is waiting");
    AddCommonKeys(*t);
    return t;
  }();
  return *table;
}

const KeyTable<IceStoreConfig>& IceStoreKeys() {
  static const auto* const table = [] {
    auto* t = new KeyTable<IceStoreConfig>{InputFormatKey<IceStoreConfig>()};
    AddBatchingKeys(*t, 1000000, "messages per object, at most", "longest an open batch waits",
                    "also cut open batches when no input is waiting");
    AddCommonKeys(*t);
    return t;
  }();
  return *table;
}

const KeyTable<ProgramConfig>& TopLevelKeys() {
  static const auto* const table = new KeyTable<ProgramConfig>{
      TextKey("project", &ProgramConfig::project,
              "Google Cloud project of Pub/Sub, Firestore, BigQuery; empty: "
              "$GOOGLE_CLOUD_PROJECT"),
      EnumKey<ProgramConfig, std::string>(
          "log_level", &ProgramConfig::log_level,
          {"trace", "debug", "info", "warn", "error", "off"},
          [](const std::string& level) { return level; },
          [](yaml_config::Reader& r, const YAML::Node& n, const char* key, const std::string& path,
             std::string& out) {
            std::string level = out;
            r.String(n, key, path, level);
            static const std::set<std::string> kLevels = {"trace", "debug", "info",
                                                          "warn",  "error", "off"};
            if (!kLevels.contains(level)) {
              r.Error(
                  yaml_config::Join(path, key),
                  "expected one of trace, debug, info, warn, error, off, got " + r.Quote(level));
            }
            out = level;
          },
          "log level (--log-level wins)"),
      BoolKey("create_pubsub_resources", &ProgramConfig::create_pubsub_resources,
              "create missing topics and subscriptions (emulators, development)"),
      DurationKey("shutdown_timeout", &ProgramConfig::shutdown_timeout,
                  "time to drain and stop every service"),
  };
  return *table;
}

const KeyTable<MqttClientOptions>& MqttKeys() {
  static const auto* const table = new KeyTable<MqttClientOptions>{
      TextKey("broker_url", &MqttClientOptions::broker_url,
              "tcp://, ssl:// (or tls://), ws://, wss://, mqtt:// or mqtts:// URL, without "
              "credentials (scheme and credentials are checked by validate)",
              /*required=*/true),
      TextKey("client_id", &MqttClientOptions::client_id,
              "set it with clean_session: false to resume a persistent session; empty: "
              "client_id_prefix and a random suffix"),
      TextKey("client_id_prefix", &MqttClientOptions::client_id_prefix,
              "prefix of generated client ids"),
      TextKey("username", &MqttClientOptions::username, "broker user name"),
      TextKey("password", &MqttClientOptions::password,
              "broker password; use ${VAR} to keep it out of the file"),
      DurationKey("keep_alive", &MqttClientOptions::keep_alive, "MQTT keep-alive (0 to 65535 s)"),
      DurationKey("connect_timeout", &MqttClientOptions::connect_timeout, "connection timeout"),
      TextKey("ca_cert_file", &MqttClientOptions::ca_cert_file,
              "CA certificates (PEM) for ssl:// and wss://"),
      TextKey("client_cert_file", &MqttClientOptions::client_cert_file,
              "client certificate (PEM), with client_key_file"),
      TextKey("client_key_file", &MqttClientOptions::client_key_file,
              "client key (PEM), with client_cert_file"),
      BoolKey("insecure_skip_verify", &MqttClientOptions::insecure_skip_verify,
              "tests only: do not check the broker's certificate"),
      BoolKey("clean_session", &MqttClientOptions::clean_session,
              "false: a persistent session (needs client_id)"),
      DurationKey("write_timeout", &MqttClientOptions::write_timeout,
                  "longest a socket write may wait"),
      IntKey("max_subscribe_refusals", &MqttClientOptions::max_subscribe_refusals, 1, 1'000'000,
             "SUBACK refusals in a row before the consumer gives up"),
      DurationKey("redelivery_min_backoff", &MqttClientOptions::redelivery_min_backoff,
                  "first delay before a nacked message is redelivered"),
      DurationKey("redelivery_max_backoff", &MqttClientOptions::redelivery_max_backoff,
                  "longest delay before a nacked message is redelivered"),
      IntKey("max_packet_bytes", &MqttClientOptions::max_packet_bytes, 64, 268'435'460,
             "largest MQTT packet accepted, in bytes"),
      IntKey("max_outstanding_bytes", &MqttClientOptions::max_outstanding_bytes, 1, 1LL << 40,
             "payload bytes received and not yet acked after which reading pauses"),
      EnumKey<MqttClientOptions, mqttconverter::AckMode>(
          "ack_mode", &MqttClientOptions::ack_mode, {"pipeline", "receipt"},
          [](mqttconverter::AckMode m) { return std::string(mqttconverter::AckModeName(m)); },
          [](yaml_config::Reader& r, const YAML::Node& n, const char* key, const std::string& path,
             mqttconverter::AckMode& out) {
            std::string mode;
            r.String(n, key, path, mode);
            if (!mode.empty() && !mqttconverter::ParseAckMode(mode, &out)) {
              r.Error(yaml_config::Join(path, key),
                      "expected pipeline or receipt, got " + r.Quote(mode));
            }
          },
          "pipeline: PUBACK once the pipeline acked the message; receipt: on arrival",
          /*env=*/true, /*any_case=*/true),
  };
  return *table;
}

const KeyTable<mqttconverter::TopicMapping>& TopicMappingKeys() {
  using mqttconverter::TopicMapping;
  static const auto* const table = new KeyTable<TopicMapping>{
      TextKey("name", &TopicMapping::name, "route name (a key of routes)", true),
      TextKey("topic", &TopicMapping::topic,
              "MQTT topic filter ($share/group/... for shared subscriptions)", true),
      IntKey("qos", &TopicMapping::qos, 0, 2, "subscription QoS"),
  };
  return *table;
}

const KeyTable<SourceConfig>& PubsubSourceKeys() {
  static const auto* const table = new KeyTable<SourceConfig>{
      TextKey("subscription", &SourceConfig::subscription, "subscription name", true),
      TextKey("topic", &SourceConfig::topic,
              "the subscription's topic; needed with create_pubsub_resources"),
      TextKey("project", &SourceConfig::project,
              "Google Cloud project; empty: the program's project"),
      IntKey("streams", &SourceConfig::streams, 1, 64, "StreamingPull streams"),
      IntKey("max_outstanding_messages", &SourceConfig::max_outstanding_messages, 1, 1000000,
             "messages leased and not yet acked, at most"),
      DurationKey("ack_deadline", &SourceConfig::ack_deadline,
                  "lease asked for each delivery and extension, 10s to 600s (the range is "
                  "checked by validate)"),
      DurationKey("max_stream_duration", &SourceConfig::max_stream_duration,
                  "each StreamingPull stream is renewed this often; at least 1s (checked by "
                  "validate)"),
  };
  return *table;
}

const KeyTable<ProgramConfig::Ops>& OpsKeys() {
  using Ops = ProgramConfig::Ops;
  static const auto* const table = new KeyTable<Ops>{
      BoolKey("enabled", &Ops::enabled, "serve it"),
      TextKey("host", &Ops::host, "listen address"),
      IntKey("port", &Ops::port, 0, 65535, "listen port"),
  };
  return *table;
}

const KeyTable<CacheChainConfig::Lru>& LruKeys() {
  using Lru = CacheChainConfig::Lru;
  static const auto* const table = new KeyTable<Lru>{
      IntKey("max_size", &Lru::max_size, 1, 1LL << 40, "entries kept, at most"),
      DurationKey("ttl", &Lru::ttl, "time to live of an entry; 0: until evicted"),
  };
  return *table;
}

const KeyTable<cache::RedisOptions>& RedisKeys() {
  using cache::RedisOptions;
  static const auto* const table = new KeyTable<RedisOptions>{
      TextKey("addr", &RedisOptions::addr, "host:port, without credentials (checked by validate)",
              true),
      TextKey("password", &RedisOptions::password,
              "AUTH password; use ${VAR} to keep it out of the file"),
      IntKey("db", &RedisOptions::db, 0, 1 << 20, "database number (SELECT)"),
      DurationKey("cache_ttl", &RedisOptions::cache_ttl, "time to live of a cached value; 0: none"),
      TextKey("key_prefix", &RedisOptions::key_prefix, "prepended to every key"),
      IntKey("pool_size", &RedisOptions::pool_size, 1, 1024, "connections open at once, at most"),
      DurationKey("command_timeout", &RedisOptions::command_timeout, "longest a command may take"),
  };
  return *table;
}

const KeyTable<CacheChainConfig::Firestore>& FirestoreKeys() {
  using Firestore = CacheChainConfig::Firestore;
  static const auto* const table = new KeyTable<Firestore>{
      TextKey("project", &Firestore::project, "Google Cloud project; empty: the program's project"),
      TextKey("collection", &Firestore::collection, "collection of the documents", true),
      TextKey("database", &Firestore::database, "database id"),
  };
  return *table;
}

const KeyTable<BigQueryConfig::Table>& BigQueryTableKeys() {
  using Table = BigQueryConfig::Table;
  static const auto* const table = new KeyTable<Table>{
      TextKey("project", &Table::project, "Google Cloud project; empty: the program's project"),
      TextKey("dataset", &Table::dataset, "dataset", true),
      TextKey("table", &Table::table, "table", true),
      BoolKey("create_table", &Table::create_table, "create the table when it is missing"),
      BoolKey("create_dataset", &Table::create_dataset, "create the dataset when it is missing"),
      TextKey("rest_endpoint", &Table::rest_endpoint,
              "local servers: the REST base URL (http://host:port); empty: Google's, or "
              "BIGQUERY_EMULATOR_HOST. No credentials (checked by validate)"),
      TextKey("grpc_endpoint", &Table::grpc_endpoint,
              "local servers: the Storage Write address (host:port; plaintext only to loopback "
              "or with BIGQUERY_EMULATOR_HOST set). No credentials (checked by validate)"),
  };
  return *table;
}

const KeyTable<BigQueryConfig::Sqlite>& SqliteKeys() {
  using Sqlite = BigQueryConfig::Sqlite;
  static const auto* const table = new KeyTable<Sqlite>{
      TextKey("path", &Sqlite::path, "database file (its directory is created)", true),
      TextKey("table", &Sqlite::table, "table name"),
  };
  return *table;
}

const KeyTable<IceStoreConfig::Gcs>& GcsKeys() {
  using Gcs = IceStoreConfig::Gcs;
  static const auto* const table = new KeyTable<Gcs>{
      TextKey("bucket", &Gcs::bucket, "bucket", true),
      TextKey("prefix", &Gcs::prefix, "object name prefix"),
  };
  return *table;
}

const KeyTable<IceStoreConfig::Local>& LocalKeys() {
  using Local = IceStoreConfig::Local;
  static const auto* const table = new KeyTable<Local>{
      TextKey("root", &Local::root, "directory", true),
      TextKey("prefix", &Local::prefix, "file name prefix"),
  };
  return *table;
}

std::string ConfigReference() {
  // The file from the top, then the blocks the service kinds share and the columns of a
  // bigquery schema.
  return BlockReference(ProgramBlock(), "Top level", "") + BlockReference(SourceBlock(), "source") +
         BlockReference(ColumnBlock(), "column");
}

}  // namespace dataflow::app

#include "config_keys.h"

namespace dataflow::app {
namespace {

using mqttconverter::MQTTClientConfig;

template <typename Out>
std::string Section(const std::string& title, const std::string& prefix, const KeyTable<Out>& table,
                    const Out& defaults = {}) {
  return "#### " + title + "\n\n| key | type | default | meaning |\n|---|---|---|---|\n" +
         ReferenceRows(table, prefix, defaults) + "\n";
}

}  // namespace

const KeyTable<MQTTClientConfig>& MqttKeys() {
  static const auto* const table = new KeyTable<MQTTClientConfig>{
      TextKey("broker_url", &MQTTClientConfig::broker_url,
              "tcp://, ssl:// (or tls://), ws://, wss://, mqtt:// or mqtts:// URL, without "
              "credentials (scheme and credentials are checked by validate)",
              /*required=*/true),
      TextKey("client_id", &MQTTClientConfig::client_id,
              "set it with clean_session: false to resume a persistent session; empty: "
              "client_id_prefix and a random suffix"),
      TextKey("client_id_prefix", &MQTTClientConfig::client_id_prefix,
              "prefix of generated client ids"),
      TextKey("username", &MQTTClientConfig::username, "broker user name"),
      TextKey("password", &MQTTClientConfig::password,
              "broker password; use ${VAR} to keep it out of the file"),
      DurationKey("keep_alive", &MQTTClientConfig::keep_alive, "MQTT keep-alive (0 to 65535 s)"),
      DurationKey("connect_timeout", &MQTTClientConfig::connect_timeout, "connection timeout"),
      TextKey("ca_cert_file", &MQTTClientConfig::ca_cert_file,
              "CA certificates (PEM) for ssl:// and wss://"),
      TextKey("client_cert_file", &MQTTClientConfig::client_cert_file,
              "client certificate (PEM), with client_key_file"),
      TextKey("client_key_file", &MQTTClientConfig::client_key_file,
              "client key (PEM), with client_cert_file"),
      BoolKey("insecure_skip_verify", &MQTTClientConfig::insecure_skip_verify,
              "tests only: do not check the broker's certificate"),
      BoolKey("clean_session", &MQTTClientConfig::clean_session,
              "false: a persistent session (needs client_id)"),
      DurationKey("write_timeout", &MQTTClientConfig::write_timeout,
                  "longest a socket write may wait"),
      IntKey("max_subscribe_refusals", &MQTTClientConfig::max_subscribe_refusals, 1, 1'000'000,
             "SUBACK refusals in a row before the consumer gives up"),
      DurationKey("redelivery_min_backoff", &MQTTClientConfig::redelivery_min_backoff,
                  "first delay before a nacked message is redelivered"),
      DurationKey("redelivery_max_backoff", &MQTTClientConfig::redelivery_max_backoff,
                  "longest delay before a nacked message is redelivered"),
      IntKey("max_packet_bytes", &MQTTClientConfig::max_packet_bytes, 64, 268'435'460,
             "largest MQTT packet accepted, in bytes"),
      IntKey("max_outstanding_bytes", &MQTTClientConfig::max_outstanding_bytes, 1, 1LL << 40,
             "payload bytes received and not yet acked after which reading pauses"),
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

const KeyTable<cache::RedisConfig>& RedisKeys() {
  using cache::RedisConfig;
  static const auto* const table = new KeyTable<RedisConfig>{
      TextKey("addr", &RedisConfig::addr, "host:port, without credentials (checked by validate)",
              true),
      TextKey("password", &RedisConfig::password,
              "AUTH password; use ${VAR} to keep it out of the file"),
      IntKey("db", &RedisConfig::db, 0, 1 << 20, "database number (SELECT)"),
      DurationKey("cache_ttl", &RedisConfig::cache_ttl, "time to live of a cached value; 0: none"),
      TextKey("key_prefix", &RedisConfig::key_prefix, "prepended to every key"),
      IntKey("pool_size", &RedisConfig::pool_size, 1, 1024, "connections open at once, at most"),
      DurationKey("command_timeout", &RedisConfig::command_timeout, "longest a command may take"),
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
  std::string out;
  out += Section("`ops`", "ops.", OpsKeys());
  out += Section("`source.pubsub`", "", PubsubSourceKeys());
  out += Section("Every service kind", "", CommonServiceKeys<BigQueryConfig>(), BigQueryConfig{});
  out += Section("`ingestion.mqtt`", "mqtt.", MqttKeys());
  out += Section("`ingestion.mqtt.topic_mappings[]`", "", TopicMappingKeys());
  out += Section("`enrichment.cache.lru`", "cache.lru.", LruKeys());
  out += Section("`enrichment.cache.redis`", "cache.redis.", RedisKeys());
  out += Section("`enrichment.cache.firestore`", "cache.firestore.", FirestoreKeys());
  out += Section("`bigquery.table`", "table.", BigQueryTableKeys());
  out += Section("`bigquery.sqlite`", "sqlite.", SqliteKeys());
  out += Section("`icestore.gcs`", "gcs.", GcsKeys());
  out += Section("`icestore.local`", "local.", LocalKeys());
  return out;
}

}  // namespace dataflow::app

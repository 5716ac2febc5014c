// The config's blocks (config_table.h): one table per block, from which config.cc reads,
// config_schema.cc describes and docs/configuration.md lists (ConfigReference). Each block
// is defined next to what reads its kind: config_sources.cc (source, sink), config_services.cc
// (ingestion, bigquery, icestore), config_enrichment.cc, config.cc (top level, ops,
// in_process, services); the one-value keys of the library's option structs in config_keys.cc.
#pragma once

#include <string>
#include <utility>

#include "config.h"
#include "config_table.h"

namespace dataflow::app {

// One-value keys (config_keys.cc), the rows of the blocks below.
const KeyTable<mqttconverter::MqttClientOptions>& MqttKeys();     // ingestion.mqtt
const KeyTable<mqttconverter::TopicMapping>& TopicMappingKeys();  // ingestion.mqtt.topic_mappings[]
const KeyTable<SourceConfig>& PubsubSourceKeys();                 // source.pubsub
const KeyTable<ProgramConfig::Ops>& OpsKeys();                    // ops
const KeyTable<CacheChainConfig::Lru>& LruKeys();                 // enrichment.cache.lru
const KeyTable<cache::RedisOptions>& RedisKeys();                 // enrichment.cache.redis
const KeyTable<CacheChainConfig::Firestore>& FirestoreKeys();     // enrichment.cache.firestore
const KeyTable<BigQueryConfig::Table>& BigQueryTableKeys();       // bigquery.table
const KeyTable<BigQueryConfig::Sqlite>& SqliteKeys();             // bigquery.sqlite
const KeyTable<IceStoreConfig::Gcs>& GcsKeys();                   // icestore.gcs
const KeyTable<IceStoreConfig::Local>& LocalKeys();               // icestore.local
const KeyTable<IngestionConfig>& IngestionKeys();
const KeyTable<EnrichmentConfig>& EnrichmentKeys();
const KeyTable<BigQueryConfig>& BigQueryKeys();
const KeyTable<IceStoreConfig>& IceStoreKeys();
const KeyTable<ProgramConfig>& TopLevelKeys();  // project, log_level, …

// `source:` and `sink:` of the service kinds (config_sources.cc); the schema describes each
// once, as a definition the kinds refer to.
const Block<SourceConfig>& SourceBlock();
template <typename Spec>
ConfigKey<Spec> SourceKey() {
  return BlockKey<Spec, SourceConfig>(
      "source", [](Spec& s) -> SourceConfig& { return s.source; }, &SourceBlock,
      "where the service reads from (`source` below)",
      {.required = true,
       .missing = "missing (pubsub: {subscription: …} or in_process: {subscription: …})",
       .definition = "#/definitions/source"});
}
inline constexpr char kSinkDefinition[] = "#/definitions/topic_sink";
ConfigKey<TopicSinkConfig> TopicSinkKey();  // on TopicSinkConfig; SinkKey adapts it
nlohmann::json TopicSinkSchema();           // the definition
template <typename Spec>
ConfigKey<Spec> SinkKey() {
  ConfigKey<TopicSinkConfig> k = TopicSinkKey();
  return {
      .key = k.key,
      .type = k.type,
      .doc = k.doc,
      .required = k.required,
      .read = [read = k.read](yaml_config::Reader& r, const YAML::Node& n, const std::string& path,
                              Spec& out) { read(r, n, path, out.sink); },
      .schema = [](const Spec&) { return schema_types::Ref(kSinkDefinition); },
      .default_text = [](const Spec&) { return std::string(); }};
}

// The service kinds' blocks.
const Block<IngestionConfig>& IngestionBlock();    // config_services.cc
const Block<EnrichmentConfig>& EnrichmentBlock();  // config_enrichment.cc
const Block<EnrichmentKeyConfig>& EnrichmentKeyBlock();
const Block<BigQueryConfig>& BigQueryBlock();  // config_services.cc
const Block<IceStoreConfig>& IceStoreBlock();
template <typename Spec>
const Block<Spec>& KindBlock();
template <>
inline const Block<IngestionConfig>& KindBlock() {
  return IngestionBlock();
}
template <>
inline const Block<EnrichmentConfig>& KindBlock() {
  return EnrichmentBlock();
}
template <>
inline const Block<BigQueryConfig>& KindBlock() {
  return BigQueryBlock();
}
template <>
inline const Block<IceStoreConfig>& KindBlock() {
  return IceStoreBlock();
}

// A column of a bigquery `schema:` list (config_columns.cc): its keys for the schema and the
// reference; bqstore::ColumnsFromJson reads them (config_schema_test checks it takes these).
const Block<bqstore::ColumnSpec>& ColumnBlock();
// The keys a RECORD's nested fields take (the BigQuery field's; no source, default…).
inline constexpr const char* kRecordFieldKeys[] = {"name", "type", "mode", "fields"};

// The whole file (config.cc): top-level keys, ops, in_process, services.
const Block<ProgramConfig>& ProgramBlock();

// The generated part of docs/configuration.md's reference: one table per block, in the
// markdown the doc holds between its config-reference markers.
std::string ConfigReference();

}  // namespace dataflow::app

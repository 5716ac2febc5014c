// The key tables (config_table.h) of the config's blocks: what config.cc reads,
// config_schema.cc describes and docs/configuration.md lists (ConfigReference).
#pragma once

#include <string>

#include "config.h"
#include "config_table.h"

namespace dataflow::app {

const KeyTable<mqttconverter::MqttClientOptions>& MqttKeys();     // ingestion.mqtt (scalars)
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

// Every key of a service kind's block that is one value (the rest, sources, sinks, routes,
// keys, caches, tables, are read by hand around them).
const KeyTable<IngestionConfig>& IngestionKeys();
const KeyTable<EnrichmentConfig>& EnrichmentKeys();
const KeyTable<BigQueryConfig>& BigQueryKeys();
const KeyTable<IceStoreConfig>& IceStoreKeys();
// project, create_pubsub_resources, shutdown_timeout.
const KeyTable<ProgramConfig>& TopLevelKeys();

// The generated part of docs/configuration.md's reference: one table per block above, in
// the markdown the doc holds between its config-reference markers.
std::string ConfigReference();

}  // namespace dataflow::app

// The key tables (config_table.h) of the config's blocks: what config.cc reads,
// config_schema.cc describes and docs/configuration.md lists (ConfigReference).
#pragma once

#include <string>

#include "config.h"
#include "config_table.h"

namespace dataflow::app {

const KeyTable<mqttconverter::MQTTClientConfig>& MqttKeys();      // ingestion.mqtt (scalars)
const KeyTable<mqttconverter::TopicMapping>& TopicMappingKeys();  // ingestion.mqtt.topic_mappings[]
const KeyTable<SourceConfig>& PubsubSourceKeys();                 // source.pubsub
const KeyTable<ProgramConfig::Ops>& OpsKeys();                    // ops
const KeyTable<CacheChainConfig::Lru>& LruKeys();                 // enrichment.cache.lru
const KeyTable<cache::RedisConfig>& RedisKeys();                  // enrichment.cache.redis
const KeyTable<CacheChainConfig::Firestore>& FirestoreKeys();     // enrichment.cache.firestore
const KeyTable<BigQueryConfig::Table>& BigQueryTableKeys();       // bigquery.table
const KeyTable<BigQueryConfig::Sqlite>& SqliteKeys();             // bigquery.sqlite
const KeyTable<IceStoreConfig::Gcs>& GcsKeys();                   // icestore.gcs
const KeyTable<IceStoreConfig::Local>& LocalKeys();               // icestore.local

// dead_letter_topic, workers, max_delivery_attempts: every service kind has them.
template <typename Spec>
KeyTable<Spec> CommonServiceKeys() {
  return {
      TextKey("dead_letter_topic", &Spec::dead_letter_topic,
              "topic (of the service's own transport) where messages that can never succeed "
              "are parked; unset: they are logged, counted as dropped and acked"),
      IntKey("workers", &Spec::workers, 1, 1024, "concurrent workers"),
      IntKey("max_delivery_attempts", &Spec::max_delivery_attempts, 1, 1000,
             "deliveries before a message is given up on (dead-lettered, or dropped without a "
             "dead_letter_topic)"),
  };
}

// The generated part of docs/configuration.md's reference: one table per block above, in
// the markdown the doc holds between its config-reference markers.
std::string ConfigReference();

}  // namespace dataflow::app

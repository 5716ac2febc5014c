// The library's stats structs as metric families on the program's telemetry
// (dataflow/metrics/telemetry.h): the services, the enricher, the cache layers and the MQTT
// and Pub/Sub consumers keep their counters in stats structs of their own, so the runner
// registers a scrape callback per component that writes them with these functions and the
// library's (dataflow/metrics/service_families.h). What is counted where it happens goes
// straight into the telemetry (PublishLatency, RegisterBuildInfo). docs/operations.md lists
// every family.
//
// Typical wiring (the runner does this once per service it creates):
//   telemetry.AddCallback([svc = service.get()](metrics::ScrapeWriter& out) {
//     WriteServiceMetrics(out, "enrichment", svc->metrics());
//     WriteEnrichmentMetrics(out, "enrichment", svc->enrichment_metrics());
//   });
//   prometheus::Histogram& latency = PublishLatency(telemetry, "enrichment");
#pragma once

#include <string_view>

#include "dataflow/cache/lru_cache.h"
#include "dataflow/cache/redis_cache.h"
#include "dataflow/enrichment/enricher.h"
#include "dataflow/messagepipeline/service_core.h"
#include "dataflow/metrics/service_families.h"
#include "dataflow/metrics/telemetry.h"
#include "dataflow/mqttconverter/mqtt_consumer.h"
#ifdef DATAFLOW_APP_HAS_PUBSUB
#include "dataflow/pubsub/consumer.h"
#endif

namespace dataflow::app {

// The families every service exports, from the library (service_families.h).
using metrics::PublishLatency;
using metrics::WriteConsumerConnected;
using metrics::WriteServiceMetrics;

// The families of the library's other stats structs. `service` is the service's name
// (ingestion, enrichment, bqstore, icestore...), the label that tells the pipeline's stages
// apart.

// dataflow_enrichment_{enriched,no_key,not_found,fetch_errors}_total{service}.
void WriteEnrichmentMetrics(metrics::ScrapeWriter& out, std::string_view service,
                            const enrichment::EnrichmentMetrics& metrics);

// dataflow_cache_{hits,misses,fallback_calls}_total{service,layer} for any layer, plus
// dataflow_cache_evictions_total and the dataflow_cache_entries gauge for an LRU layer, and
// dataflow_cache_{decode_errors,backend_errors,bypassed}_total for a Redis layer.
void WriteCacheStats(metrics::ScrapeWriter& out, std::string_view service, std::string_view layer,
                     const cache::LruCacheStats& stats);
void WriteCacheStats(metrics::ScrapeWriter& out, std::string_view service, std::string_view layer,
                     const cache::RedisCacheStats& stats);

// dataflow_mqtt_{received,acked,nacked,redelivered,lost,unrouted,connects,left_with_broker,
// oversize_skipped}_total{service} and the dataflow_mqtt_outstanding_bytes gauge.
void WriteMqttConsumerStats(metrics::ScrapeWriter& out, std::string_view service,
                            const mqttconverter::MqttConsumerStats& stats);

#ifdef DATAFLOW_APP_HAS_PUBSUB
// dataflow_pubsub_{received,acks_sent,nacks_sent,extensions_sent,reconnects,stream_renewals,
// settle_retries,settles_expired,settles_failed,delivery_counts_evicted}_total{service} and
// the dataflow_pubsub_{outstanding_messages,outstanding_bytes,streams_waiting_for_flow_control,
// delivery_counts} gauges.
void WritePubsubConsumerStats(metrics::ScrapeWriter& out, std::string_view service,
                              const pubsub::GooglePubsubConsumer::Stats& stats);
#endif

// dataflow_build_info{version} 1.
void RegisterBuildInfo(metrics::Telemetry& telemetry, std::string_view version);

}  // namespace dataflow::app

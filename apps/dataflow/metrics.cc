#include "metrics.h"

namespace dataflow::app {

void WriteEnrichmentMetrics(metrics::ScrapeWriter& out, std::string_view service,
                            const enrichment::EnrichmentMetrics& m) {
  const metrics::Labels labels = {{"service", std::string(service)}};
  out.Counter("dataflow_enrichment_enriched_total", "Messages enriched with a fetched value.",
              labels, m.enriched);
  out.Counter("dataflow_enrichment_no_key_total",
              "Messages without a lookup key (passed on unenriched).", labels, m.no_key);
  out.Counter("dataflow_enrichment_not_found_total",
              "Lookups whose key exists nowhere in the cache chain.", labels, m.not_found);
  out.Counter("dataflow_enrichment_fetch_errors_total",
              "Lookups that failed in a backend (not a miss).", labels, m.fetch_errors);
}

void WriteMqttConsumerStats(metrics::ScrapeWriter& out, std::string_view service,
                            const mqttconverter::MqttConsumerStats& m) {
  const metrics::Labels labels = {{"service", std::string(service)}};
  out.Counter("dataflow_mqtt_received_total", "MQTT PUBLISHes delivered to the pipeline.", labels,
              m.received);
  out.Counter("dataflow_mqtt_acked_total", "MQTT messages the pipeline acked.", labels, m.acked);
  out.Counter("dataflow_mqtt_nacked_total", "MQTT messages the pipeline nacked.", labels, m.nacked);
  out.Counter("dataflow_mqtt_redelivered_total",
              "Nacked MQTT messages handed to the pipeline again.", labels, m.redelivered);
  out.Counter("dataflow_mqtt_lost_total",
              "MQTT messages neither processed nor coming back (clean session, QoS 0 or "
              "ack_mode receipt).",
              labels, m.lost);
  out.Counter("dataflow_mqtt_unrouted_total", "MQTT messages that matched no topic mapping.",
              labels, m.unrouted);
  out.Counter("dataflow_mqtt_connects_total", "Successful MQTT connects, reconnects included.",
              labels, m.connects);
  out.Counter("dataflow_mqtt_left_with_broker_total",
              "Unacknowledged QoS 1/2 messages left for the broker to redeliver when a "
              "connection ended.",
              labels, m.left_with_broker);
  out.Counter("dataflow_mqtt_oversize_skipped_total",
              "PUBLISHes over max_packet_bytes, skipped unread.", labels, m.oversize_skipped);
  out.Gauge("dataflow_mqtt_outstanding_bytes",
            "Payload bytes received and not yet acked (bounded by max_outstanding_bytes).", labels,
            m.outstanding_bytes);
}

#ifdef DATAFLOW_APP_HAS_PUBSUB
void WritePubsubConsumerStats(metrics::ScrapeWriter& out, std::string_view service,
                              const pubsub::GooglePubsubConsumer::Stats& m) {
  const metrics::Labels labels = {{"service", std::string(service)}};
  out.Counter("dataflow_pubsub_received_total", "Messages received from StreamingPull.", labels,
              m.received);
  out.Counter("dataflow_pubsub_acks_sent_total", "Ack ids sent (first attempts).", labels,
              m.acks_sent);
  out.Counter("dataflow_pubsub_nacks_sent_total", "Nack ids sent (first attempts).", labels,
              m.nacks_sent);
  out.Counter("dataflow_pubsub_extensions_sent_total", "Lease extensions sent.", labels,
              m.extensions_sent);
  out.Counter("dataflow_pubsub_reconnects_total", "Streams reopened after an error.", labels,
              m.reconnects);
  out.Counter("dataflow_pubsub_stream_renewals_total",
              "Streams reopened at their max_stream_duration.", labels, m.stream_renewals);
  out.Counter("dataflow_pubsub_settle_retries_total",
              "Ack, nack and extension ids sent again after a failure.", labels, m.settle_retries);
  out.Counter("dataflow_pubsub_settles_expired_total",
              "Ack and nack ids given up because their lease ran out while retrying (the "
              "message is redelivered).",
              labels, m.settles_expired);
  out.Counter("dataflow_pubsub_settles_failed_total",
              "Ack, nack and extension ids dropped on a non-retryable error.", labels,
              m.settles_failed);
  out.Gauge("dataflow_pubsub_outstanding_messages",
            "Messages handed to the pipeline and not yet settled.", labels, m.outstanding_messages);
  out.Gauge("dataflow_pubsub_outstanding_bytes", "Bytes of those messages.", labels,
            m.outstanding_bytes);
  out.Gauge("dataflow_pubsub_streams_waiting_for_flow_control",
            "StreamingPull streams waiting for room under the flow-control limits.", labels,
            m.streams_waiting_for_flow_control);
  out.Gauge("dataflow_pubsub_delivery_counts",
            "Message ids whose deliveries the consumer counts itself now.", labels,
            m.delivery_counts);
  out.Counter("dataflow_pubsub_delivery_counts_evicted_total",
              "Delivery counts forgotten over delivery_count_capacity.", labels,
              m.delivery_counts_evicted);
}
#endif

namespace {
void WriteCommonCacheStats(metrics::ScrapeWriter& out, const metrics::Labels& labels,
                           std::uint64_t hits, std::uint64_t misses, std::uint64_t fallback_calls) {
  out.Counter("dataflow_cache_hits_total", "Lookups answered by this cache layer.", labels, hits);
  out.Counter("dataflow_cache_misses_total", "Lookups this cache layer could not answer.", labels,
              misses);
  out.Counter("dataflow_cache_fallback_calls_total",
              "Lookups this layer passed to the next one down the chain.", labels, fallback_calls);
}
}  // namespace

void WriteCacheStats(metrics::ScrapeWriter& out, std::string_view service, std::string_view layer,
                     const cache::LruCacheStats& s) {
  const metrics::Labels labels = {{"service", std::string(service)}, {"layer", std::string(layer)}};
  WriteCommonCacheStats(out, labels, s.hits, s.misses, s.fallback_calls);
  out.Counter("dataflow_cache_evictions_total", "Entries evicted to stay within max_size.", labels,
              s.evictions);
  out.Gauge("dataflow_cache_entries", "Entries held by this in-memory cache layer.", labels,
            s.size);
}

void WriteCacheStats(metrics::ScrapeWriter& out, std::string_view service, std::string_view layer,
                     const cache::RedisCacheStats& s) {
  const metrics::Labels labels = {{"service", std::string(service)}, {"layer", std::string(layer)}};
  WriteCommonCacheStats(out, labels, s.hits, s.misses, s.fallback_calls);
  out.Counter("dataflow_cache_decode_errors_total",
              "Values present in the cache whose bytes did not decode.", labels, s.decode_errors);
  out.Counter("dataflow_cache_backend_errors_total", "Cache server commands that failed.", labels,
              s.backend_errors);
  out.Counter("dataflow_cache_bypassed_total",
              "Lookups that skipped the cache server while it was marked down.", labels, s.skipped);
}

void RegisterBuildInfo(metrics::Telemetry& telemetry, std::string_view version) {
  telemetry
      .Gauge("dataflow_build_info", "The running dataflow version; always 1.",
             {{"version", std::string(version)}})
      .Set(1);
}

}  // namespace dataflow::app

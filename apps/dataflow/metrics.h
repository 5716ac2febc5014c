// Metrics for the ops endpoint: a Prometheus text-format writer (exposition format 0.0.4),
// a lock-free latency histogram, a registry of collectors rendered on each scrape, and the
// functions that write the standard `dataflow_*` families for a service, an enricher, a cache
// layer and a publish-latency histogram. docs/operations.md lists every family.
//
// Typical wiring (the runner does this once per service it creates):
//   registry.AddCollector([svc = service.get()](PrometheusText& out) {
//     WriteServiceMetrics(out, "enrichment", svc->metrics());
//     WriteEnrichmentMetrics(out, "enrichment", svc->enrichment_metrics());
//   });
//   registry.AddCollector([lru](PrometheusText& out) {
//     WriteCacheStats(out, "enrichment", "lru", lru->Stats());
//   });
//   registry.AddCollector([h = latency](PrometheusText& out) {
//     WritePublishLatency(out, "enrichment", h->Snapshot());
//   });
#pragma once

#include <absl/container/flat_hash_map.h>
#include <absl/container/flat_hash_set.h>
#include <absl/status/statusor.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "dataflow/cache/lru_cache.h"
#include "dataflow/cache/redis_cache.h"
#include "dataflow/enrichment/enricher.h"
#include "dataflow/messagepipeline/service_core.h"
#include "dataflow/mqttconverter/mqtt_consumer.h"
#ifdef DATAFLOW_APP_HAS_PUBSUB
#include "dataflow/pubsub/consumer.h"
#endif

namespace dataflow::app {

// A metric's label set, written in this order.
using MetricLabels = std::vector<std::pair<std::string, std::string>>;

// A histogram's state at one moment. cumulative[i] counts the observations <= bounds[i]; the
// implicit +Inf bucket is `count`.
struct HistogramSnapshot {
  std::vector<double> bounds;  // upper bounds ("le"), ascending, finite
  std::vector<std::uint64_t> cumulative;
  std::uint64_t count = 0;
  double sum = 0;
};

// Builds one scrape's text. Samples of a family are grouped under one HELP/TYPE header
// however many label sets (and callers) add to it, in the order families first appear.
//
// A bad metric or label name, a family re-added with another type, a reserved or repeated
// label name, or a label set added twice to a family is a programming error: the sample is
// left out, the error logged (rate-limited) and counted in rejected(). We skip rather than
// assert because a scrape must never bring down the service it observes; tests check
// rejected() == 0. Not thread-safe: one per scrape.
class PrometheusText {
 public:
  template <typename T>
  requires std::is_arithmetic_v<T>
  void Counter(std::string_view name, std::string_view help, const MetricLabels& labels, T value) {
    Add(name, help, Type::kCounter, labels, FormatValue(value));
  }
  template <typename T>
  requires std::is_arithmetic_v<T>
  void Gauge(std::string_view name, std::string_view help, const MetricLabels& labels, T value) {
    Add(name, help, Type::kGauge, labels, FormatValue(value));
  }
  // Writes name_bucket{...,le="..."} for every bound and +Inf, then name_sum and name_count.
  // `labels` must not contain "le".
  void Histogram(std::string_view name, std::string_view help, const MetricLabels& labels,
                 const HistogramSnapshot& histogram);

  // The exposition text; every line ends with '\n'.
  [[nodiscard]] std::string Render() const;
  // Samples left out as programming errors (see the class comment).
  [[nodiscard]] std::size_t rejected() const { return rejected_; }

  // Prometheus' number syntax: integers as they are, doubles in the shortest form that reads
  // back exactly, +Inf, -Inf, NaN.
  static std::string FormatValue(double value);
  static std::string FormatValue(std::uint64_t value);
  template <typename T>
  requires std::is_integral_v<T>
  static std::string FormatValue(T value) {
    if constexpr (std::is_signed_v<T>) {
      return value < 0 ? "-" + FormatValue(static_cast<std::uint64_t>(0) -
                                           static_cast<std::uint64_t>(value))
                       : FormatValue(static_cast<std::uint64_t>(value));
    } else {
      return FormatValue(static_cast<std::uint64_t>(value));
    }
  }
  static std::string FormatValue(float value) { return FormatValue(static_cast<double>(value)); }

  static bool IsValidMetricName(std::string_view name);
  static bool IsValidLabelName(std::string_view name);
  // Label value escaping: backslash, double quote and newline.
  static std::string EscapeLabelValue(std::string_view value);

 private:
  enum class Type { kCounter, kGauge, kHistogram };
  struct Family {
    std::string name;
    std::string help;
    Type type;
    std::string samples;                    // rendered sample lines
    absl::flat_hash_set<std::string> seen;  // rendered label sets, to refuse duplicates
  };

  void Add(std::string_view name, std::string_view help, Type type, const MetricLabels& labels,
           const std::string& value);
  // The family to add a sample with `labels` to, or null (and the error logged) if it is
  // rejected. `reserved_label` is one the writer adds itself (a histogram's "le").
  Family* Admit(std::string_view name, std::string_view help, Type type, const MetricLabels& labels,
                std::string* rendered_labels, std::string_view reserved_label = {});
  void Reject(std::string_view name, std::string_view why);

  std::vector<Family> families_;
  absl::flat_hash_map<std::string, std::size_t> index_;
  std::size_t rejected_ = 0;
};

// Latency histogram with fixed bucket bounds, for publish latency. Observe() is lock-free
// (relaxed atomic increments), so it may be called from any number of threads; Snapshot()
// may run concurrently with it. A snapshot taken during concurrent Observe() calls is
// consistent per bucket and count equals the +Inf bucket, but sum may include an
// observation whose bucket the snapshot missed (or the reverse); Prometheus tolerates that.
class LatencyHistogram {
 public:
  // 0.5 ms to 10 s in roughly 1-2.5-5 steps: a loopback broker answers in well under a
  // millisecond; a Pub/Sub batch with its 100 ms delay and retries lands in the upper half.
  static std::vector<double> DefaultBounds();

  // Bounds in seconds: strictly ascending, finite, > 0 and at most 1e9 (may be empty: only
  // the +Inf bucket). InvalidArgument otherwise.
  static absl::StatusOr<std::unique_ptr<LatencyHistogram>> Create(
      std::vector<double> bounds_seconds);
  // With DefaultBounds().
  LatencyHistogram();

  LatencyHistogram(const LatencyHistogram&) = delete;
  LatencyHistogram& operator=(const LatencyHistogram&) = delete;

  // A negative latency (a clock that stepped back) counts as zero.
  void Observe(std::chrono::nanoseconds latency);
  [[nodiscard]] HistogramSnapshot Snapshot() const;
  [[nodiscard]] const std::vector<double>& bounds() const { return bounds_; }

 private:
  explicit LatencyHistogram(std::vector<double> bounds_seconds);

  std::vector<double> bounds_;
  std::vector<std::int64_t> bounds_ns_;  // the same bounds, compared without rounding doubles
  // Per-bucket (not cumulative) counts; the last one is the +Inf bucket.
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;
  std::atomic<std::uint64_t> sum_ns_{0};
};

// Collectors write into one PrometheusText per scrape. Thread-safe. Render() runs the
// collectors one scrape at a time, under the registry's lock, so once RemoveCollector()
// returns the collector is not running and never will again: a collector may point at a
// service that is destroyed after its removal. Collectors must not call the registry.
class MetricsRegistry {
 public:
  using Collector = std::function<void(PrometheusText&)>;
  using CollectorId = std::uint64_t;

  CollectorId AddCollector(Collector collector);
  void RemoveCollector(CollectorId id);
  // All collectors' samples in the order the collectors were added. A collector that throws
  // is logged and skipped; the others still render.
  [[nodiscard]] std::string Render() const;

 private:
  mutable std::mutex mu_;
  std::map<CollectorId, Collector> collectors_;  // ordered by id = insertion order
  CollectorId next_id_ = 1;
};

// The standard families. `service` is the service's name (ingestion, enrichment, bqstore,
// icestore...), the label that tells the pipeline's stages apart.

// dataflow_messages_{received,acked,processed,skipped,dead_lettered,nacked}_total,
// dataflow_{transform,processing}_errors_total, dataflow_batches_total and
// dataflow_batched_messages_total, all labelled {service}. acked is processed + skipped +
// dead_lettered: the outcomes the services settle with an ack (see docs/operations.md for
// the batching caveat).
void WriteServiceMetrics(PrometheusText& out, std::string_view service,
                         const messagepipeline::ServiceMetrics& metrics);

// dataflow_enrichment_{enriched,no_key,not_found,fetch_errors}_total{service}.
void WriteEnrichmentMetrics(PrometheusText& out, std::string_view service,
                            const enrichment::EnrichmentMetrics& metrics);

// dataflow_cache_{hits,misses,fallback_calls}_total{service,layer} for any layer, plus
// dataflow_cache_evictions_total and the dataflow_cache_entries gauge for an LRU layer, and
// dataflow_cache_{decode_errors,backend_errors,bypassed}_total for a Redis layer.
void WriteCacheStats(PrometheusText& out, std::string_view service, std::string_view layer,
                     const cache::LRUCacheStats& stats);
void WriteCacheStats(PrometheusText& out, std::string_view service, std::string_view layer,
                     const cache::RedisCacheStats& stats);

// dataflow_mqtt_{received,acked,nacked,redelivered,lost,unrouted,connects,left_with_broker,
// oversize_skipped}_total{service} and the dataflow_mqtt_outstanding_bytes gauge.
void WriteMqttConsumerStats(PrometheusText& out, std::string_view service,
                            const mqttconverter::MqttConsumerStats& stats);

#ifdef DATAFLOW_APP_HAS_PUBSUB
// dataflow_pubsub_{received,acks_sent,nacks_sent,extensions_sent,reconnects,stream_renewals,
// settle_retries,settles_expired,settles_failed}_total{service} and the
// dataflow_pubsub_outstanding_{messages,bytes} gauges.
void WritePubsubConsumerStats(PrometheusText& out, std::string_view service,
                              const pubsub::GooglePubsubConsumer::Stats& stats);
#endif

// dataflow_publish_latency_seconds{service}: from Publish() to the broker's result.
void WritePublishLatency(PrometheusText& out, std::string_view service,
                         const HistogramSnapshot& latency);

// dataflow_consumer_connected{service}: 1 while the service's consumer is connected.
void WriteConsumerConnected(PrometheusText& out, std::string_view service, bool connected);

// dataflow_build_info{version} 1.
void WriteBuildInfo(PrometheusText& out, std::string_view version);

}  // namespace dataflow::app

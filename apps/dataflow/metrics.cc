#include "metrics.h"

#include <absl/strings/str_cat.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <exception>

#include "dataflow/messagepipeline/logging.h"

namespace dataflow::app {
namespace {

bool IsNameStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

std::string EscapeHelp(std::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// {a="x",b="y"} with an optional last label the writer adds itself; empty for no labels.
std::string RenderLabels(const MetricLabels& labels, std::string_view extra_name = {},
                         std::string_view extra_value = {}) {
  if (labels.empty() && extra_name.empty()) return {};
  std::string out = "{";
  bool first = true;
  auto append = [&](std::string_view name, std::string_view value) {
    if (!first) out += ',';
    first = false;
    absl::StrAppend(&out, std::string(name), "=\"", PrometheusText::EscapeLabelValue(value), "\"");
  };
  for (const auto& [name, value] : labels) append(name, value);
  if (!extra_name.empty()) append(extra_name, extra_value);
  out += '}';
  return out;
}

const char* TypeName(int type) {
  switch (type) {
    case 0:
      return "counter";
    case 1:
      return "gauge";
    default:
      return "histogram";
  }
}

}  // namespace

// --- PrometheusText ---------------------------------------------------------------------------

bool PrometheusText::IsValidMetricName(std::string_view name) {
  // [a-zA-Z_:][a-zA-Z0-9_:]*
  if (name.empty() || !(IsNameStart(name[0]) || name[0] == ':')) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return IsNameStart(c) || IsDigit(c) || c == ':'; });
}

bool PrometheusText::IsValidLabelName(std::string_view name) {
  // [a-zA-Z_][a-zA-Z0-9_]*; names starting with "__" are reserved for Prometheus itself.
  if (name.empty() || !IsNameStart(name[0]) || name.starts_with("__")) return false;
  return std::all_of(name.begin(), name.end(), [](char c) { return IsNameStart(c) || IsDigit(c); });
}

std::string PrometheusText::EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string PrometheusText::FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == 0) return "0";
  // Shortest digits that read back exactly. Plain decimals for 1e-4 <= |v| < 1e21, so bucket
  // bounds read le="0.0005" rather than the shorter "5e-04"; an exponent outside that range.
  char buf[64];
  auto sci = std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::scientific);
  const std::string scientific(buf, sci.ptr);
  const int exponent = std::atoi(scientific.c_str() + scientific.find('e') + 1);
  if (exponent < -4 || exponent >= 21) return scientific;
  auto fixed = std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::fixed);
  if (fixed.ec != std::errc()) return scientific;
  return std::string(buf, fixed.ptr);
}

std::string PrometheusText::FormatValue(std::uint64_t value) { return absl::StrCat(value); }

void PrometheusText::Reject(std::string_view name, std::string_view why) {
  ++rejected_;
  static LogRateLimit limit;
  if (limit.Allow()) {
    Log()->error(
        "metrics: sample left out (a bug in its collector) name=\"{}\" reason=\"{}\" "
        "suppressed={}",
        std::string(name), std::string(why), limit.suppressed());
  }
}

PrometheusText::Family* PrometheusText::Admit(std::string_view name, std::string_view help,
                                              Type type, const MetricLabels& labels,
                                              std::string* rendered_labels,
                                              std::string_view reserved_label) {
  if (!IsValidMetricName(name)) {
    Reject(name, "invalid metric name");
    return nullptr;
  }
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const std::string& label = labels[i].first;
    if (!IsValidLabelName(label)) {
      Reject(name, absl::StrCat("invalid label name '", label, "'"));
      return nullptr;
    }
    if (!reserved_label.empty() && label == reserved_label) {
      Reject(name, absl::StrCat("label '", label, "' is reserved for this metric type"));
      return nullptr;
    }
    // Label sets are a handful of pairs: a linear scan beats hashing.
    const auto repeated = [&](const auto& earlier) { return earlier.first == label; };
    if (std::any_of(labels.begin(), labels.begin() + static_cast<std::ptrdiff_t>(i), repeated)) {
      Reject(name, absl::StrCat("label '", label, "' given twice"));
      return nullptr;
    }
  }
  const std::string key(name);
  auto [it, inserted] = index_.try_emplace(key, families_.size());
  if (inserted) {
    families_.push_back(Family{.name = key, .help = std::string(help), .type = type});
  }
  Family& family = families_[it->second];
  if (family.type != type) {
    Reject(name, absl::StrCat("family is a ", TypeName(static_cast<int>(family.type)), ", not a ",
                              TypeName(static_cast<int>(type))));
    return nullptr;
  }
  *rendered_labels = RenderLabels(labels);
  if (!family.seen.insert(*rendered_labels).second) {
    Reject(name, absl::StrCat("label set ", *rendered_labels, " added twice"));
    return nullptr;
  }
  return &family;
}

void PrometheusText::Add(std::string_view name, std::string_view help, Type type,
                         const MetricLabels& labels, const std::string& value) {
  std::string rendered;
  Family* family = Admit(name, help, type, labels, &rendered);
  if (family == nullptr) return;
  absl::StrAppend(&family->samples, family->name, rendered, " ", value, "\n");
}

void PrometheusText::Histogram(std::string_view name, std::string_view help,
                               const MetricLabels& labels, const HistogramSnapshot& histogram) {
  const auto& bounds = histogram.bounds;
  if (bounds.size() != histogram.cumulative.size()) {
    Reject(name, "histogram snapshot must have one cumulative count per bound");
    return;
  }
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1])) {
      Reject(name, "histogram bounds must be finite and strictly ascending");
      return;
    }
  }
  std::string rendered;
  Family* family = Admit(name, help, Type::kHistogram, labels, &rendered, "le");
  if (family == nullptr) return;
  std::string& out = family->samples;
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    absl::StrAppend(&out, family->name, "_bucket",
                    RenderLabels(labels, "le", FormatValue(bounds[i])), " ",
                    histogram.cumulative[i], "\n");
  }
  absl::StrAppend(&out, family->name, "_bucket", RenderLabels(labels, "le", "+Inf"), " ",
                  histogram.count, "\n");
  absl::StrAppend(&out, family->name, "_sum", rendered, " ", FormatValue(histogram.sum), "\n");
  absl::StrAppend(&out, family->name, "_count", rendered, " ", histogram.count, "\n");
}

std::string PrometheusText::Render() const {
  std::string out;
  for (const Family& family : families_) {
    absl::StrAppend(&out, "# HELP ", family.name, " ", EscapeHelp(family.help), "\n");
    absl::StrAppend(&out, "# TYPE ", family.name, " ", TypeName(static_cast<int>(family.type)),
                    "\n");
    out += family.samples;
  }
  return out;
}

// --- LatencyHistogram -------------------------------------------------------------------------

std::vector<double> LatencyHistogram::DefaultBounds() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

absl::StatusOr<std::unique_ptr<LatencyHistogram>> LatencyHistogram::Create(
    std::vector<double> bounds_seconds) {
  for (std::size_t i = 0; i < bounds_seconds.size(); ++i) {
    const double b = bounds_seconds[i];
    // The upper limit keeps b * 1e9 inside int64 nanoseconds.
    if (!std::isfinite(b) || b <= 0 || b > 1e9) {
      return absl::InvalidArgumentError(
          absl::StrCat("latency histogram: bound ", b, " must be finite, > 0 and <= 1e9 s"));
    }
    if (i > 0 && b <= bounds_seconds[i - 1]) {
      return absl::InvalidArgumentError(
          absl::StrCat("latency histogram: bounds must be strictly ascending, got ",
                       bounds_seconds[i - 1], " then ", b));
    }
  }
  return std::unique_ptr<LatencyHistogram>(new LatencyHistogram(std::move(bounds_seconds)));
}

LatencyHistogram::LatencyHistogram() : LatencyHistogram(DefaultBounds()) {}

LatencyHistogram::LatencyHistogram(std::vector<double> bounds_seconds)
    : bounds_(std::move(bounds_seconds)),
      buckets_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1)) {
  bounds_ns_.reserve(bounds_.size());
  for (double b : bounds_) bounds_ns_.push_back(std::llround(b * 1e9));
}

void LatencyHistogram::Observe(std::chrono::nanoseconds latency) {
  const std::int64_t ns = std::max<std::int64_t>(0, latency.count());
  // Bucket i holds observations in (bound[i-1], bound[i]]: the first bound >= ns.
  const auto idx = static_cast<std::size_t>(
      std::lower_bound(bounds_ns_.begin(), bounds_ns_.end(), ns) - bounds_ns_.begin());
  buckets_[idx].fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(static_cast<std::uint64_t>(ns), std::memory_order_relaxed);
}

HistogramSnapshot LatencyHistogram::Snapshot() const {
  HistogramSnapshot snapshot;
  snapshot.bounds = bounds_;
  snapshot.cumulative.reserve(bounds_.size());
  std::uint64_t running = 0;
  for (std::size_t i = 0; i < bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    snapshot.cumulative.push_back(running);
  }
  // Count is the sum of the buckets, so the +Inf bucket and _count always agree.
  snapshot.count = running + buckets_[bounds_.size()].load(std::memory_order_relaxed);
  snapshot.sum = static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9;
  return snapshot;
}

// --- MetricsRegistry --------------------------------------------------------------------------

MetricsRegistry::CollectorId MetricsRegistry::AddCollector(Collector collector) {
  std::lock_guard lock(mu_);
  const CollectorId id = next_id_++;
  collectors_.emplace(id, std::move(collector));
  return id;
}

void MetricsRegistry::RemoveCollector(CollectorId id) {
  std::lock_guard lock(mu_);
  collectors_.erase(id);
}

std::string MetricsRegistry::Render() const {
  PrometheusText text;
  std::lock_guard lock(mu_);
  for (const auto& [id, collector] : collectors_) {
    if (!collector) continue;
    try {
      collector(text);
    } catch (const std::exception& e) {
      Log()->error("metrics: collector threw; its samples may be partial collector={} what=\"{}\"",
                   id, e.what());
    } catch (...) {
      Log()->error("metrics: collector threw a non-standard exception collector={}", id);
    }
  }
  return text.Render();
}

// --- The standard families --------------------------------------------------------------------

void WriteServiceMetrics(PrometheusText& out, std::string_view service,
                         const messagepipeline::ServiceMetrics& m) {
  const MetricLabels labels = {{"service", std::string(service)}};
  out.Counter("dataflow_messages_received_total",
              "Messages the service took from its consumer's channel.", labels, m.received);
  out.Counter("dataflow_messages_acked_total",
              "Messages the service acked: processed + skipped + dead_lettered + dropped.", labels,
              m.processed + m.skipped + m.dead_lettered + m.dropped);
  out.Counter("dataflow_messages_processed_total",
              "Messages the sink confirmed and the service acked.", labels, m.processed);
  out.Counter("dataflow_messages_skipped_total",
              "Messages the transformer chose to drop (acked without processing).", labels,
              m.skipped);
  out.Counter("dataflow_messages_dead_lettered_total",
              "Messages parked in the dead-letter sink (and acked).", labels, m.dead_lettered);
  out.Counter("dataflow_messages_dropped_total",
              "Messages given up on without a dead-letter topic (logged and acked).", labels,
              m.dropped);
  out.Counter("dataflow_messages_nacked_total", "Messages the service nacked for redelivery.",
              labels, m.nacked);
  out.Counter("dataflow_transform_errors_total",
              "Transformer errors (the message was nacked or "
              "dead-lettered).",
              labels, m.transform_errors);
  out.Counter("dataflow_processing_errors_total",
              "Processor errors: failed messages, or failed batches for a batching service.",
              labels, m.processing_errors);
  out.Counter("dataflow_batches_total", "Batches handed to the batch processor.", labels,
              m.batches);
  out.Counter("dataflow_batched_messages_total",
              "Messages in those batches; divided by dataflow_batches_total: mean batch size.",
              labels, m.batched_messages);
}

void WriteEnrichmentMetrics(PrometheusText& out, std::string_view service,
                            const enrichment::EnrichmentMetrics& m) {
  const MetricLabels labels = {{"service", std::string(service)}};
  out.Counter("dataflow_enrichment_enriched_total", "Messages enriched with a fetched value.",
              labels, m.enriched);
  out.Counter("dataflow_enrichment_no_key_total",
              "Messages without a lookup key (passed on unenriched).", labels, m.no_key);
  out.Counter("dataflow_enrichment_not_found_total",
              "Lookups whose key exists nowhere in the cache chain.", labels, m.not_found);
  out.Counter("dataflow_enrichment_fetch_errors_total",
              "Lookups that failed in a backend (not a miss).", labels, m.fetch_errors);
}

void WriteMqttConsumerStats(PrometheusText& out, std::string_view service,
                            const mqttconverter::MqttConsumerStats& m) {
  const MetricLabels labels = {{"service", std::string(service)}};
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
void WritePubsubConsumerStats(PrometheusText& out, std::string_view service,
                              const pubsub::GooglePubsubConsumer::Stats& m) {
  const MetricLabels labels = {{"service", std::string(service)}};
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
}
#endif

namespace {
void WriteCommonCacheStats(PrometheusText& out, const MetricLabels& labels, std::uint64_t hits,
                           std::uint64_t misses, std::uint64_t fallback_calls) {
  out.Counter("dataflow_cache_hits_total", "Lookups answered by this cache layer.", labels, hits);
  out.Counter("dataflow_cache_misses_total", "Lookups this cache layer could not answer.", labels,
              misses);
  out.Counter("dataflow_cache_fallback_calls_total",
              "Lookups this layer passed to the next one down the chain.", labels, fallback_calls);
}
}  // namespace

void WriteCacheStats(PrometheusText& out, std::string_view service, std::string_view layer,
                     const cache::LRUCacheStats& s) {
  const MetricLabels labels = {{"service", std::string(service)}, {"layer", std::string(layer)}};
  WriteCommonCacheStats(out, labels, s.hits, s.misses, s.fallback_calls);
  out.Counter("dataflow_cache_evictions_total", "Entries evicted to stay within max_size.", labels,
              s.evictions);
  out.Gauge("dataflow_cache_entries", "Entries held by this in-memory cache layer.", labels,
            s.size);
}

void WriteCacheStats(PrometheusText& out, std::string_view service, std::string_view layer,
                     const cache::RedisCacheStats& s) {
  const MetricLabels labels = {{"service", std::string(service)}, {"layer", std::string(layer)}};
  WriteCommonCacheStats(out, labels, s.hits, s.misses, s.fallback_calls);
  out.Counter("dataflow_cache_decode_errors_total",
              "Values present in the cache whose bytes did not decode.", labels, s.decode_errors);
  out.Counter("dataflow_cache_backend_errors_total", "Cache server commands that failed.", labels,
              s.backend_errors);
  out.Counter("dataflow_cache_bypassed_total",
              "Lookups that skipped the cache server while it was marked down.", labels, s.skipped);
}

void WritePublishLatency(PrometheusText& out, std::string_view service,
                         const HistogramSnapshot& latency) {
  out.Histogram("dataflow_publish_latency_seconds",
                "Time from Publish() to the broker's result (message id or error).",
                {{"service", std::string(service)}}, latency);
}

void WriteConsumerConnected(PrometheusText& out, std::string_view service, bool connected) {
  out.Gauge("dataflow_consumer_connected",
            "1 while the service's consumer is connected to its transport.",
            {{"service", std::string(service)}}, connected ? 1 : 0);
}

void WriteBuildInfo(PrometheusText& out, std::string_view version) {
  out.Gauge("dataflow_build_info", "The running dataflow version; always 1.",
            {{"version", std::string(version)}}, 1);
}

}  // namespace dataflow::app

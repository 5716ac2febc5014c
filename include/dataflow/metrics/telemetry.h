// Telemetry: one metrics model for the library and the program, on prometheus-cpp's core
// (its registry, families, histograms and text serializer). A component registers its own
// families where it counts:
//
//   prometheus::Counter& rejected = telemetry.Counter(
//       "dataflow_ingestion_rejected_total", "Messages ... dropped.", {{"service", name}});
//   ...
//   rejected.Increment();
//
// A component that keeps its counters in a stats struct of its own instead writes them at
// scrape time from a callback it registers itself, and keeps the Registration so the
// callback goes with the component (registration.h):
//
//   metrics_ = telemetry.Register([this, labels](metrics::ScrapeWriter& out) {
//     out.Counter("dataflow_cache_hits_total", "Lookups answered.", labels, Stats().hits);
//   });
//
// Collect() merges both into one list, one MetricFamily per name whoever added to it, so
// TextSerializer writes one HELP/TYPE header per family (what `promtool check metrics`
// wants); Render() is that list in the text format.
//
// A bad metric or label name, a name reused with another type, or a label set written twice
// to a family is a programming error: it is logged (rate-limited), counted in rejected() and
// left out. We skip rather than throw because a scrape must never bring down the service it
// observes; tests check rejected() == 0. Thread-safe.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/labels.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "dataflow/metrics/registration.h"

namespace dataflow::metrics {

static_assert(std::is_same_v<Labels, prometheus::Labels>);

// Bucket bounds in seconds for a latency histogram: 0.5 ms to 10 s in roughly 1-2.5-5 steps.
// A loopback broker answers in well under a millisecond; a Pub/Sub batch with its 100 ms
// delay and retries lands in the upper half.
std::vector<double> LatencyBuckets();

class Telemetry;

// Values written at scrape time by a Telemetry callback. Only valid inside the callback.
class ScrapeWriter {
 public:
  // Any arithmetic value; Prometheus' sample values are doubles, so integers above 2^53 are
  // rounded (a counter would need 285 years at a million per second to get there).
  template <typename T>
  requires std::is_arithmetic_v<T>
  void Counter(const std::string& name, const std::string& help, const Labels& labels, T value) {
    Write(name, help, /*counter=*/true, labels, static_cast<double>(value));
  }
  template <typename T>
  requires std::is_arithmetic_v<T>
  void Gauge(const std::string& name, const std::string& help, const Labels& labels, T value) {
    Write(name, help, /*counter=*/false, labels, static_cast<double>(value));
  }

 private:
  friend class Telemetry;
  struct Families;
  explicit ScrapeWriter(Families* families) : families_(families) {}
  void Write(const std::string& name, const std::string& help, bool counter, const Labels& labels,
             double value);
  Families* families_;
};

class Telemetry final {
 public:
  using CallbackId = std::uint64_t;

  Telemetry();
  ~Telemetry();
  Telemetry(const Telemetry&) = delete;
  Telemetry& operator=(const Telemetry&) = delete;

  // The metric with these labels in the family `name`, created on first use (later calls
  // with the same name and labels return the same metric; `help` and `buckets` of the first
  // call hold). Thread-safe: counters and gauges are atomics, a histogram takes a short lock
  // per Observe (prometheus-cpp 1.0.1). The reference lives as long as the Telemetry.
  prometheus::Counter& Counter(const std::string& name, const std::string& help,
                               const Labels& labels);
  prometheus::Gauge& Gauge(const std::string& name, const std::string& help, const Labels& labels);
  // `buckets`: upper bounds, ascending (the +Inf bucket is implicit).
  prometheus::Histogram& Histogram(const std::string& name, const std::string& help,
                                   const Labels& labels, const std::vector<double>& buckets);

  // Runs `callback` on every scrape, one scrape at a time, in the order callbacks were
  // added, until the Registration goes (see registration.h): what a component calls from
  // its RegisterMetrics. A callback that throws is logged and skipped; the others still
  // write. Callbacks must not call the Telemetry.
  [[nodiscard]] Registration Register(std::function<void(ScrapeWriter&)> callback);
  // The same for a callback that lives as long as the Telemetry (it may own what it reads),
  // or until RemoveCallback(): once that returns the callback is not running and never will
  // again.
  CallbackId AddCallback(std::function<void(ScrapeWriter&)> callback);
  void RemoveCallback(CallbackId id);

  // Every family, the registry's and the callbacks', one entry per name in the order names
  // first appear (the registry's first).
  [[nodiscard]] std::vector<prometheus::MetricFamily> Collect() const;
  // Collect() in the Prometheus text format (0.0.4), by prometheus::TextSerializer.
  [[nodiscard]] std::string Render() const;

  // Registrations and samples left out as programming errors (see the file comment).
  [[nodiscard]] std::uint64_t rejected() const { return rejected_.load(); }

  // The underlying registry, for code that builds its own families with prometheus-cpp.
  [[nodiscard]] prometheus::Registry& registry() { return *registry_; }

 private:
  template <typename T, typename... Args>
  T& Instrument(const std::string& name, const std::string& help, const Labels& labels,
                Args&&... args);

  // Declared first so they are destroyed last: callbacks may own components holding
  // references to the registry's metrics.
  mutable std::atomic<std::uint64_t> rejected_{0};  // a scrape counts its rejections
  std::shared_ptr<prometheus::Registry> registry_;
  // Rejected registrations' metrics: updated by their caller, never exported.
  std::mutex discarded_mu_;
  std::vector<std::shared_ptr<void>> discarded_;
  // Shared with the Registrations, which may outlive the Telemetry.
  std::shared_ptr<internal::Callbacks> callbacks_;
};

}  // namespace dataflow::metrics

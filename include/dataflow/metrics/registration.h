// What a component needs in its own header to export metric families of its own: the label
// set it is given and the Registration it keeps. Light on purpose (no prometheus-cpp), since
// every header of a component that exports metrics includes it. The pattern:
//
//   class MyConsumer {
//    public:
//     // Exports stats() on every scrape of `telemetry` until this consumer is destroyed.
//     void RegisterMetrics(metrics::Telemetry& telemetry, const metrics::Labels& labels);
//    private:
//     ...
//     metrics::Registration metrics_;  // last: removed before the state it reads goes
//   };
//
//   // my_consumer_metrics.cc
//   void MyConsumer::RegisterMetrics(metrics::Telemetry& telemetry,
//                                    const metrics::Labels& labels) {
//     metrics_ = telemetry.Register([this, labels](metrics::ScrapeWriter& out) {
//       out.Counter("dataflow_my_received_total", "Messages received.", labels,
//                   stats().received);
//     });
//   }
//
// The program then only says which labels a component carries ({service="enrichment"}).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>

namespace dataflow::metrics {

// Label name -> value (prometheus::Labels); written in name order.
using Labels = std::map<std::string, std::string>;

class ScrapeWriter;
class Telemetry;
namespace internal {
struct Callbacks;  // a Telemetry's scrape callbacks (telemetry.cc)
}  // namespace internal

// A scrape callback added by Telemetry::Register, removed when the Registration is destroyed,
// reset or assigned. Once that returns the callback is not running and never runs again, so
// it may point at the component that owns the Registration. It may outlive its Telemetry
// (then there is nothing left to remove). Move-only; not thread-safe itself.
class Registration {
 public:
  Registration() = default;
  ~Registration() { Reset(); }
  Registration(Registration&& other) noexcept;
  Registration& operator=(Registration&& other) noexcept;
  Registration(const Registration&) = delete;
  Registration& operator=(const Registration&) = delete;

  void Reset();
  // True while the callback is registered with a Telemetry that still exists.
  [[nodiscard]] bool active() const;

 private:
  friend class Telemetry;
  Registration(std::weak_ptr<internal::Callbacks> callbacks, std::uint64_t id)
      : callbacks_(std::move(callbacks)), id_(id) {}

  std::weak_ptr<internal::Callbacks> callbacks_;
  std::uint64_t id_ = 0;
};

}  // namespace dataflow::metrics

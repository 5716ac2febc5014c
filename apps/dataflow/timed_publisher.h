// TimedPublisher: a MessagePublisher decorator that records each publish's latency, from
// PublishAsync() to the broker's result (message id or error), in seconds, in a Prometheus
// histogram (metrics::PublishLatency, dataflow/metrics/service_families.h), taken in the completion
// callback on whichever thread the broker completes on. Results are passed through unchanged; no
// thread is added. Thread-safe.
#pragma once

#include <absl/status/statusor.h>

#include <memory>
#include <string>

#include "dataflow/messagepipeline/publisher.h"
#include "prometheus/histogram.h"

namespace dataflow::app {

struct TimedPublisherOptions {
  std::shared_ptr<messagepipeline::MessagePublisher> publisher;  // required
  // Required; must outlive the publisher (a Telemetry's histograms live as long as it does).
  prometheus::Histogram* histogram = nullptr;
};

class TimedPublisher final : public messagepipeline::MessagePublisher {
 public:
  // InvalidArgument when the publisher or the histogram is missing.
  static absl::StatusOr<std::unique_ptr<TimedPublisher>> Create(TimedPublisherOptions options);

  void PublishAsync(const std::string& topic, messagepipeline::OutgoingMessage message,
                    messagepipeline::PublishCallback done) override;
  [[nodiscard]] bool TakesEnvelopes() const override {
    return options_.publisher->TakesEnvelopes();
  }
  absl::Status Stop(messagepipeline::Deadline deadline) override;

 private:
  explicit TimedPublisher(TimedPublisherOptions options) : options_(std::move(options)) {}

  const TimedPublisherOptions options_;
};

}  // namespace dataflow::app

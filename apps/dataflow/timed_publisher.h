// TimedPublisher: a MessagePublisher decorator that records each publish's latency, from
// Publish() to the broker's result (message id or error), in a LatencyHistogram. Results are
// passed through unchanged; no thread is added, per publish or otherwise.
//
// std::future has no completion callback, so how a publish is timed depends on what the
// wrapped publisher offers:
//   - a callback API (`publish_async`, e.g. GooglePubsubProducer::PublishAsync): the latency
//     is taken in the callback, on the broker's thread, and the caller gets an ordinary
//     promise-backed future: the same kind GooglePubsubProducer::Publish returns. Exact.
//   - a result that is ready when Publish() returns (the in-process broker, synchronous
//     publishers, errors raised at once): timed on the spot and the wrapped future itself
//     is returned. Exact.
//   - otherwise the caller gets a std::launch::deferred future that times the publish when
//     its result is collected (get() or wait()). Its wait_for()/wait_until() report
//     future_status::deferred rather than timeout/ready, which is fine for the services'
//     consumers: PublishEnvelope and the ingestion service already hand the settler a
//     deferred future, and InFlightSettler calls get() on a deferred one. The latency is an
//     upper bound, exact when results are collected in publish order as the settler does and
//     the broker answers in order; a result nobody collects is not recorded.
// Thread-safe.
#pragma once

#include <absl/status/statusor.h>

#include <functional>
#include <future>
#include <memory>
#include <string>

#include "dataflow/messagepipeline/publisher.h"
#include "metrics.h"

#ifdef DATAFLOW_APP_HAS_PUBSUB
#include "dataflow/pubsub/producer.h"
#endif

namespace dataflow::app {

// Publishes and calls `done` exactly once with the result, on any thread.
using AsyncPublishFn =
    std::function<void(const std::string& topic, messagepipeline::OutgoingMessage message,
                       std::function<void(const absl::StatusOr<std::string>&)> done)>;

struct TimedPublisherOptions {
  std::shared_ptr<messagepipeline::MessagePublisher> publisher;  // required; Stop() goes here
  std::shared_ptr<LatencyHistogram> histogram;                   // required
  // Optional: the same publisher's callback API, used for every publish when set.
  AsyncPublishFn publish_async;
};

class TimedPublisher final : public messagepipeline::MessagePublisher {
 public:
  // InvalidArgument when the publisher or the histogram is missing.
  static absl::StatusOr<std::unique_ptr<TimedPublisher>> Create(TimedPublisherOptions options);

  std::future<absl::StatusOr<std::string>> Publish(
      const std::string& topic, messagepipeline::OutgoingMessage message) override;
  absl::Status Stop(messagepipeline::Deadline deadline) override;

  [[nodiscard]] const std::shared_ptr<LatencyHistogram>& histogram() const {
    return options_.histogram;
  }

 private:
  explicit TimedPublisher(TimedPublisherOptions options) : options_(std::move(options)) {}

  const TimedPublisherOptions options_;
};

#ifdef DATAFLOW_APP_HAS_PUBSUB
// TimedPublisherOptions for a Pub/Sub producer: its Publish for Stop, its PublishAsync for
// the exact timing.
TimedPublisherOptions TimedPubsubOptions(std::shared_ptr<pubsub::GooglePubsubProducer> producer,
                                         std::shared_ptr<LatencyHistogram> histogram);
#endif

}  // namespace dataflow::app

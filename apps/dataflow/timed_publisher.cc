#include "timed_publisher.h"

#include <chrono>

namespace dataflow::app {

using messagepipeline::OutgoingMessage;
using Clock = std::chrono::steady_clock;
using Result = absl::StatusOr<std::string>;

absl::StatusOr<std::unique_ptr<TimedPublisher>> TimedPublisher::Create(
    TimedPublisherOptions options) {
  if (!options.publisher) return absl::InvalidArgumentError("timed publisher: publisher is null");
  if (!options.histogram) return absl::InvalidArgumentError("timed publisher: histogram is null");
  return std::unique_ptr<TimedPublisher>(new TimedPublisher(std::move(options)));
}

std::future<Result> TimedPublisher::Publish(const std::string& topic, OutgoingMessage message) {
  const Clock::time_point start = Clock::now();
  const std::shared_ptr<LatencyHistogram>& histogram = options_.histogram;

  if (options_.publish_async) {
    // shared_ptr: the callback is a std::function, which must be copyable.
    auto promise = std::make_shared<std::promise<Result>>();
    std::future<Result> future = promise->get_future();
    options_.publish_async(topic, std::move(message),
                           [histogram, start, promise](const Result& result) {
                             // Observe first: whoever waits on the future may read the
                             // histogram as soon as the value is set.
                             histogram->Observe(Clock::now() - start);
                             promise->set_value(result);
                           });
    return future;
  }

  std::future<Result> future = options_.publisher->Publish(topic, std::move(message));
  if (!future.valid()) return future;  // nothing to time; the caller sees what it would have
  if (future.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
    histogram->Observe(Clock::now() - start);
    return future;
  }
  // Not ready, and no callback to learn when it will be: time it when it is collected (see
  // the header for why a deferred future is right for how the services consume it).
  return std::async(std::launch::deferred,
                    [histogram, start, inner = std::move(future)]() mutable -> Result {
                      Result result = inner.get();  // an exception (broken promise) passes on
                      histogram->Observe(Clock::now() - start);
                      return result;
                    });
}

absl::Status TimedPublisher::Stop(messagepipeline::Deadline deadline) {
  return options_.publisher->Stop(deadline);
}

#ifdef DATAFLOW_APP_HAS_PUBSUB
TimedPublisherOptions TimedPubsubOptions(std::shared_ptr<pubsub::GooglePubsubProducer> producer,
                                         std::shared_ptr<LatencyHistogram> histogram) {
  AsyncPublishFn publish_async;
  if (producer) {
    publish_async = [producer](const std::string& topic, OutgoingMessage message,
                               std::function<void(const Result&)> done) {
      producer->PublishAsync(topic, std::move(message), std::move(done));
    };
  }
  return TimedPublisherOptions{.publisher = std::move(producer),
                               .histogram = std::move(histogram),
                               .publish_async = std::move(publish_async)};
}
#endif

}  // namespace dataflow::app

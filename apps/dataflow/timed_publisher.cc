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

void TimedPublisher::PublishAsync(const std::string& topic, OutgoingMessage message,
                                  messagepipeline::PublishCallback done) {
  options_.publisher->PublishAsync(
      topic, std::move(message),
      [histogram = options_.histogram, start = Clock::now(),
       done = std::move(done)](const Result& result) {
        // Observe first: whoever waits on the result may read the histogram at once.
        histogram->Observe(std::chrono::duration<double>(Clock::now() - start).count());
        done(result);
      });
}

absl::Status TimedPublisher::Stop(messagepipeline::Deadline deadline) {
  return options_.publisher->Stop(deadline);
}

}  // namespace dataflow::app

// The two thin types over GooglePubsubProducer: fire-and-forget publishing and the
// dead-letter sink.
#include "dataflow/messagepipeline/logging.h"
#include "dataflow/pubsub/producer.h"

namespace dataflow::pubsub {

using messagepipeline::Attributes;
using messagepipeline::OutgoingMessage;

absl::StatusOr<std::unique_ptr<GoogleSimplePublisher>> GoogleSimplePublisher::Create(
    std::shared_ptr<PublisherStub> stub, ProducerOptions options) {
  if (options.topic_id.empty()) {
    return absl::InvalidArgumentError("simple publisher: topic_id is required");
  }
  auto producer = GooglePubsubProducer::Create(std::move(stub), std::move(options));
  if (!producer.ok()) return producer.status();
  auto out = std::unique_ptr<GoogleSimplePublisher>(new GoogleSimplePublisher());
  out->topic_ = (*producer)->default_topic();
  out->producer_ = *std::move(producer);
  return out;
}

void GoogleSimplePublisher::Publish(std::string payload, Attributes attributes) {
  producer_->PublishAsync(
      topic_, OutgoingMessage{.payload = std::move(payload), .attributes = std::move(attributes)},
      [failures = failures_, topic = topic_](const GooglePubsubProducer::Result& r) {
        if (r.ok()) return;
        failures->fetch_add(1);
        static LogRateLimit limit;
        if (limit.Allow()) {
          Log()->error("pubsub fire-and-forget publish failed topic={} error={} suppressed={}",
                       topic, r.status().ToString(), limit.suppressed());
        }
      });
}

absl::Status PubsubDeadLetterSink::Send(const messagepipeline::Message& message,
                                        const absl::Status& reason, std::string_view source) {
  auto attributes = messagepipeline::DeadLetterAttributes(message, reason, source);
  auto result = producer_
                    ->Publish(topic_, OutgoingMessage{.payload = message.data.payload,
                                                      .attributes = std::move(attributes),
                                                      .ordering_key = message.ordering_key})
                    .get();
  return result.status();
}

}  // namespace dataflow::pubsub

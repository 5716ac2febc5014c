#include "dataflow/messagepipeline/publisher.h"

namespace dataflow::messagepipeline {

std::future<absl::StatusOr<std::string>> MessagePublisher::Publish(const std::string& topic,
                                                                   OutgoingMessage message) {
  auto promise = std::make_shared<std::promise<absl::StatusOr<std::string>>>();
  auto future = promise->get_future();
  PublishAsync(topic, std::move(message),
               [promise](const absl::StatusOr<std::string>& id) { promise->set_value(id); });
  return future;
}

OutgoingMessage EnvelopeMessage(const Message& message, const MessagePublisher& publisher) {
  return OutgoingMessage{
      .payload = EncodeMessageData(message.data),
      .attributes = message.attributes,
      .ordering_key = message.ordering_key,
      .envelope =
          publisher.TakesEnvelopes() ? std::make_shared<const MessageData>(message.data) : nullptr,
  };
}

AsyncMessageProcessor PublishEnvelope(std::shared_ptr<MessagePublisher> publisher,
                                      std::string topic) {
  return [publisher = std::move(publisher), topic = std::move(topic)](Message& message,
                                                                      Completion done) {
    publisher->PublishAsync(
        topic, EnvelopeMessage(message, *publisher),
        [done = std::move(done)](const absl::StatusOr<std::string>& id) { done(id.status()); });
  };
}

}  // namespace dataflow::messagepipeline

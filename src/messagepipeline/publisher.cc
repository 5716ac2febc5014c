#include "dataflow/messagepipeline/publisher.h"

namespace dataflow::messagepipeline {

std::future<absl::StatusOr<std::string>> ReadyFuture(absl::StatusOr<std::string> value) {
  std::promise<absl::StatusOr<std::string>> promise;
  promise.set_value(std::move(value));
  return promise.get_future();
}

std::function<std::future<absl::Status>(Message&)> PublishEnvelope(
    std::shared_ptr<MessagePublisher> publisher, std::string topic) {
  return [publisher = std::move(publisher), topic = std::move(topic)](Message& message) {
    auto published = publisher->Publish(topic, OutgoingMessage{
                                                   .payload = EncodeMessageData(message.data),
                                                   .attributes = message.attributes,
                                                   .ordering_key = message.ordering_key,
                                               });
    // Deferred: the settler runs it, turning the message id into a plain status.
    return std::async(std::launch::deferred,
                      [f = std::move(published)]() mutable { return f.get().status(); });
  };
}

}  // namespace dataflow::messagepipeline

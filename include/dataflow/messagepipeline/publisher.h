// MessagePublisher: the sink side of a broker, topic-routed.
//
// Publish() returns a future that resolves once the broker has the message durably (with
// its message id) or with the error that stopped it; at-least-once services ack their input
// only after that future resolved OK. Implementations: the in-process broker's publisher and
// the Google Pub/Sub producer. Thread-safe.
#pragma once

#include <absl/status/statusor.h>

#include <functional>
#include <future>
#include <memory>
#include <string>

#include "dataflow/messagepipeline/consumer.h"
#include "dataflow/messagepipeline/message.h"

namespace dataflow::messagepipeline {

struct OutgoingMessage {
  std::string payload;
  Attributes attributes;
  std::string ordering_key;
};

class MessagePublisher {
 public:
  virtual ~MessagePublisher() = default;
  virtual std::future<absl::StatusOr<std::string>> Publish(const std::string& topic,
                                                           OutgoingMessage message) = 0;
  // Sends whatever is batched and waits for it; publishes issued after Stop() fail.
  virtual absl::Status Stop(Deadline deadline) = 0;
};

// A processor that publishes the message's MessageData as the JSON envelope (with its
// enrichment data), keeping its attributes and ordering key, to `topic`; its future resolves
// with the publisher's result. For StreamingService::CreateAsync and the enrichment service.
std::function<std::future<absl::Status>(Message&)> PublishEnvelope(
    std::shared_ptr<MessagePublisher> publisher, std::string topic);

// A future that is already resolved; for synchronous publishers.
std::future<absl::StatusOr<std::string>> ReadyFuture(absl::StatusOr<std::string> value);

}  // namespace dataflow::messagepipeline

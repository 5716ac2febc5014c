// MessagePublisher: the sink side of a broker, topic-routed.
//
// PublishAsync() calls `done` exactly once, on any thread (possibly inline), with the message
// id once the broker has the message, or with the error that stopped it. "Has the message"
// is the broker's promise: Pub/Sub stored it; an in-process topic saw every subscription ack
// it downstream (end-to-end acknowledgement). At-least-once services ack their input only
// after `done` reported OK. Publish() is the same as a std::future, for callers that block.
// Implementations: the in-process broker's publisher and the Google Pub/Sub producer.
// Thread-safe.
#pragma once

#include <absl/status/statusor.h>

#include <functional>
#include <future>
#include <memory>
#include <string>

#include "dataflow/messagepipeline/consumer.h"
#include "dataflow/messagepipeline/message.h"
#include "dataflow/messagepipeline/processor.h"

namespace dataflow::messagepipeline {

struct OutgoingMessage {
  std::string payload;
  Attributes attributes;
  std::string ordering_key;
  // Optional: the MessageData `payload` is the envelope of (see Message::envelope). The
  // in-process publisher hands it to the receivers beside the payload; others ignore it.
  std::shared_ptr<const MessageData> envelope;
};

using PublishCallback = std::function<void(const absl::StatusOr<std::string>&)>;

class MessagePublisher {
 public:
  virtual ~MessagePublisher() = default;
  virtual void PublishAsync(const std::string& topic, OutgoingMessage message,
                            PublishCallback done) = 0;
  // PublishAsync as a future; implementations with a cheaper future of their own override it.
  virtual std::future<absl::StatusOr<std::string>> Publish(const std::string& topic,
                                                           OutgoingMessage message);
  // Whether PublishAsync uses OutgoingMessage::envelope (the in-process publisher does);
  // EnvelopeMessage attaches one only for a publisher that does.
  [[nodiscard]] virtual bool TakesEnvelopes() const { return false; }
  // Sends whatever is batched and waits for it; publishes issued after Stop() fail.
  virtual absl::Status Stop(Deadline deadline) = 0;
};

// `message`'s MessageData as the JSON envelope (with its enrichment data), with its attributes
// and ordering key; the decoded data rides along for a `publisher` that TakesEnvelopes().
OutgoingMessage EnvelopeMessage(const Message& message, const MessagePublisher& publisher);

// A processor that publishes the message's MessageData as the JSON envelope (with its
// enrichment data), keeping its attributes and ordering key, to `topic`, and completes with
// the publisher's result. For StreamingService::CreateAsync and the enrichment service.
AsyncMessageProcessor PublishEnvelope(std::shared_ptr<MessagePublisher> publisher,
                                      std::string topic);

}  // namespace dataflow::messagepipeline

// InProcessBroker: a Pub/Sub-like broker inside one process, with end-to-end
// acknowledgement.
//
// Named topics fan out to subscriptions; each subscription delivers every message to one of
// its consumers (competing consumers, like a Pub/Sub subscription shared by N copies of a
// service). PublishAsync() completes only once *every* subscription of the topic has acked
// the message downstream (the model: Vector's end-to-end acknowledgements), so a service that
// acks its input after the publish completed acks it only when the message is stored by every
// sink behind the topic; a crash at any moment leaves the message unacknowledged at the
// source (an MQTT broker, a Pub/Sub subscription), which delivers it again.
//
// Inside a subscription, a nacked message is redelivered after a backoff that doubles with
// its delivery attempt (counted, so the consuming service can dead-letter it after its
// max_delivery_attempts). A message a consumer holds is not redelivered while it is held
// (the lease is extended for as long as the process holds it, up to `max_lease`, after which
// a stuck handler's message is delivered again). Subscriptions are bounded in messages and
// bytes: a publish waits up to `max_publish_block` for room, then fails (ResourceExhausted,
// a transient error: the source redelivers), which is how backpressure reaches the source.
// Publishing to a topic without subscriptions is an error: the message would be lost.
// Messages live in memory only. Thread-safe.
#pragma once

#include <absl/status/statusor.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "dataflow/messagepipeline/consumer.h"
#include "dataflow/messagepipeline/dead_letter.h"
#include "dataflow/messagepipeline/publisher.h"

namespace dataflow::messagepipeline {

struct InProcessBrokerOptions {
  // A held message is redelivered only after this long (a handler that never settles).
  std::chrono::milliseconds max_lease = std::chrono::minutes(10);
  // Redelivery after a nack: the project's backoff (backoff.h) doubling from the minimum,
  // uniform over the upper half of min_redelivery_backoff * 2^(attempt-1), at most the maximum
  // (messages nacked together do not come back together). With the services' default of 5
  // attempts a message is given up on 8-15 s after its first failure: long enough for a blip,
  // short for a poison message to hold others back.
  std::chrono::milliseconds min_redelivery_backoff = std::chrono::seconds(1);
  std::chrono::milliseconds max_redelivery_backoff = std::chrono::seconds(60);
  // Per subscription: messages (and their payload bytes) published and not yet acked.
  std::size_t max_subscription_messages = 10000;
  std::size_t max_subscription_bytes = std::size_t{128} << 20;
  // How long a publish waits for room in a full subscription before it fails.
  std::chrono::milliseconds max_publish_block = std::chrono::seconds(1);
};

struct InProcessConsumerOptions {
  std::size_t channel_capacity = 1000;
};

struct SubscriptionStats {
  std::size_t pending = 0;      // waiting for delivery (including delayed redeliveries)
  std::size_t outstanding = 0;  // delivered, not yet acked
  std::uint64_t delivered = 0;
  std::uint64_t acked = 0;
  std::uint64_t nacked = 0;
  std::uint64_t expired = 0;
  std::size_t held_bytes = 0;  // payload bytes of pending + outstanding
};

// Called once with the message id when every subscription acked the message, or with the
// error that stopped the publish. May run on any thread, inline included.
using InProcessPublishCallback = std::function<void(const absl::StatusOr<std::string>&)>;

class InProcessSubscription;

class InProcessBroker : public std::enable_shared_from_this<InProcessBroker> {
 public:
  static std::shared_ptr<InProcessBroker> Create(InProcessBrokerOptions options = {});
  ~InProcessBroker();

  // AlreadyExists if the topic exists; InvalidArgument for an empty name.
  absl::Status CreateTopic(std::string_view topic);
  // NotFound for an unknown topic; AlreadyExists for a taken subscription name. A new
  // subscription receives messages published from now on.
  absl::Status CreateSubscription(std::string_view subscription, std::string_view topic);
  // Enqueues to every subscription and calls `done` once all of them acked it (see above).
  // Errors (passed to `done`): NotFound for an unknown topic, FailedPrecondition for a topic
  // without subscriptions, ResourceExhausted when a subscription stayed full. `envelope`
  // (optional): what data.payload is the envelope of, handed to every receiver as
  // Message::envelope.
  void PublishAsync(std::string_view topic, MessageData data, Attributes attributes,
                    std::string ordering_key, const InProcessPublishCallback& done,
                    std::shared_ptr<const MessageData> envelope = nullptr);
  // Enqueues and returns the message id (assigned when data.id is empty) without waiting for
  // the acks: for tests and tools that watch the subscriptions themselves.
  absl::StatusOr<std::string> Publish(std::string_view topic, MessageData data,
                                      Attributes attributes = {}, std::string ordering_key = {});
  absl::StatusOr<std::shared_ptr<MessageConsumer>> NewConsumer(
      std::string_view subscription, InProcessConsumerOptions options = {});
  // A MessagePublisher over this broker (a publish completes when every subscription acked).
  std::shared_ptr<MessagePublisher> NewPublisher();
  // A sink that publishes dead letters to `topic` (which must exist, with a subscription, when
  // Send is called); Send waits up to `timeout` for the topic's subscriptions to ack.
  std::shared_ptr<DeadLetterSink> NewDeadLetterSink(
      std::string topic, std::chrono::milliseconds timeout = std::chrono::seconds(60));
  // Topics that exist without any subscription (a publish to them fails).
  [[nodiscard]] std::vector<std::string> TopicsWithoutSubscriptions() const;
  absl::StatusOr<SubscriptionStats> Stats(std::string_view subscription) const;
  // Every subscription, sorted by name, with its topic and stats (for metrics and tools).
  struct SubscriptionInfo {
    std::string name;
    std::string topic;
    SubscriptionStats stats;
  };
  [[nodiscard]] std::vector<SubscriptionInfo> Subscriptions() const;

 private:
  explicit InProcessBroker(InProcessBrokerOptions options) : options_(options) {}
  // Enqueues to every subscription; `done` (may be null) then runs once all of them acked.
  // An error is returned, not passed to `done`.
  absl::StatusOr<std::string> Enqueue(std::string_view topic, MessageData data,
                                      Attributes attributes, std::string ordering_key,
                                      const InProcessPublishCallback& done,
                                      std::shared_ptr<const MessageData> envelope);

  const InProcessBrokerOptions options_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::vector<std::shared_ptr<InProcessSubscription>>> topics_;
  std::unordered_map<std::string, std::shared_ptr<InProcessSubscription>> subscriptions_;
  std::uint64_t next_id_ = 1;
};

}  // namespace dataflow::messagepipeline

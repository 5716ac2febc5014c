// InProcessBroker: a Pub/Sub-like broker inside one process.
//
// Named topics fan out to subscriptions; each subscription delivers every message to one
// of its consumers (competing consumers, like a Pub/Sub subscription shared by N copies of
// a service). A delivered message is leased for `ack_deadline`; an ack removes it, a nack
// or an expired lease makes it deliverable again (after `redelivery_delay`), with its
// delivery attempt counted. The lease starts when the message enters the consumer's
// channel, so backpressure does not cause spurious redelivery. Ordering keys are carried
// but not enforced. Messages live in memory only: this is the embedded default for
// single-process runs and tests, not a durable store. Thread-safe.
#pragma once

#include <absl/status/statusor.h>

#include <chrono>
#include <cstdint>
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
  std::chrono::milliseconds ack_deadline = std::chrono::seconds(10);  // Pub/Sub's default
  std::chrono::milliseconds redelivery_delay = std::chrono::milliseconds(0);
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
};

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
  // Returns the message id (assigned when data.id is empty). NotFound for an unknown topic.
  absl::StatusOr<std::string> Publish(std::string_view topic, MessageData data,
                                      Attributes attributes = {}, std::string ordering_key = {});
  absl::StatusOr<std::shared_ptr<MessageConsumer>> NewConsumer(
      std::string_view subscription, InProcessConsumerOptions options = {});
  // A MessagePublisher over this broker (publishes resolve at once).
  std::shared_ptr<MessagePublisher> NewPublisher();
  // A sink that publishes dead letters to `topic` (which must exist when Send is called).
  std::shared_ptr<DeadLetterSink> NewDeadLetterSink(std::string topic);
  absl::StatusOr<SubscriptionStats> Stats(std::string_view subscription) const;

 private:
  explicit InProcessBroker(InProcessBrokerOptions options) : options_(options) {}

  const InProcessBrokerOptions options_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::vector<std::shared_ptr<InProcessSubscription>>> topics_;
  std::unordered_map<std::string, std::shared_ptr<InProcessSubscription>> subscriptions_;
  std::uint64_t next_id_ = 1;
};

}  // namespace dataflow::messagepipeline

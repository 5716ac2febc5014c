// GooglePubsubConsumer: checks its options and forwards to the SubscriberSession, which
// composes the units (stream_reader, lease_manager, ack_batcher, flow_control,
// delivery_counter) under src/pubsub.
#include "dataflow/pubsub/consumer.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "dataflow/gcp/project.h"
#include "subscriber_session.h"

namespace dataflow::pubsub {

absl::StatusOr<std::unique_ptr<GooglePubsubConsumer>> GooglePubsubConsumer::Create(
    std::shared_ptr<SubscriberStub> stub, ConsumerOptions options) {
  if (stub == nullptr) return absl::InvalidArgumentError("consumer: stub is null");
  auto project = gcp::ResolveProjectId(options.project_id);
  if (!project.ok()) return project.status();
  options.project_id = *project;
  if (options.subscription_id.empty() || options.subscription_id.find('/') != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("consumer: subscription_id must be a non-empty id without '/', got \"",
                     options.subscription_id, "\""));
  }
  if (options.streams < 1 || options.streams > 64) {
    return absl::InvalidArgumentError("consumer: streams must be 1..64");
  }
  if (options.max_outstanding_messages == 0 || options.max_outstanding_bytes == 0 ||
      options.channel_capacity == 0) {
    return absl::InvalidArgumentError(
        "consumer: max_outstanding_messages, max_outstanding_bytes and channel_capacity must "
        "be positive");
  }
  if (options.ack_deadline < std::chrono::seconds(10) ||
      options.ack_deadline > std::chrono::seconds(600)) {
    return absl::InvalidArgumentError("consumer: ack_deadline must be 10..600 s");
  }
  if (options.ack_flush_interval.count() <= 0) {
    return absl::InvalidArgumentError("consumer: ack_flush_interval must be positive");
  }
  if (options.delivery_count_capacity > 10'000'000) {
    return absl::InvalidArgumentError("consumer: delivery_count_capacity must be 0..10000000");
  }
  if (options.max_stream_duration.count() != 0 &&
      options.max_stream_duration < std::chrono::seconds(1)) {
    return absl::InvalidArgumentError("consumer: max_stream_duration must be 0 (none) or >= 1 s");
  }
  if (auto b = messagepipeline::ExponentialBackoff::Create(options.reconnect_backoff); !b.ok()) {
    return b.status();
  }
  if (auto b = messagepipeline::ExponentialBackoff::Create(options.settle_backoff); !b.ok()) {
    return b.status();
  }
  return std::unique_ptr<GooglePubsubConsumer>(new GooglePubsubConsumer(
      std::make_unique<internal::SubscriberSession>(std::move(stub), std::move(options))));
}

GooglePubsubConsumer::GooglePubsubConsumer(std::unique_ptr<internal::SubscriberSession> session)
    : session_(std::move(session)) {}

GooglePubsubConsumer::~GooglePubsubConsumer() = default;

absl::Status GooglePubsubConsumer::Start() { return session_->Start(); }

absl::Status GooglePubsubConsumer::Stop(messagepipeline::Deadline deadline) {
  return session_->Stop(deadline);
}

messagepipeline::BoundedQueue<messagepipeline::Message>& GooglePubsubConsumer::Messages() {
  return session_->queue();
}

std::shared_future<absl::Status> GooglePubsubConsumer::Done() { return session_->done(); }

bool GooglePubsubConsumer::IsConnected() const { return session_->connected(); }

GooglePubsubConsumer::Stats GooglePubsubConsumer::stats() const { return session_->stats(); }

}  // namespace dataflow::pubsub

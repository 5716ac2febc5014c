#include "dataflow/messagepipeline/stream_core.h"

#include <string>

namespace dataflow::messagepipeline {

absl::Status StreamCore::Validate(const StreamCoreOptions& options,
                                  const MessageConsumer* consumer) {
  const std::string& name = options.common.name;
  if (consumer == nullptr) return absl::InvalidArgumentError(name + ": consumer is null");
  if (options.async && options.in_flight.max_messages == 0) {
    return absl::InvalidArgumentError(name + ": in_flight.max_messages must be > 0");
  }
  return ValidateServiceOptions(options.common);
}

StreamCore::StreamCore(StreamCoreOptions options, std::shared_ptr<MessageConsumer> consumer)
    : policy_(DeliveryPolicyOf(options.common), &counters_),
      pool_(options.common.name, std::move(consumer), options.common.num_workers, &policy_) {
  if (options.async) {
    settler_ = std::make_unique<InFlightSettler>(options.in_flight.max_messages,
                                                 options.in_flight.max_bytes, &policy_, &pool_);
  }
}

absl::Status StreamCore::Start(std::function<void(Message&)> handle) {
  // Held by the hooks, not a member: a second Start() (FailedPrecondition) must not replace
  // what running workers call.
  WorkerPool::Hooks hooks{
      .handle_batch = [this, handle = std::move(handle)](std::span<Message> batch) {
        pool_.ForEach(batch, handle);
      }};
  if (settler_) {
    hooks.tail = [this] { settler_->Run(); };
    hooks.on_workers_done = [this] { settler_->Close(); };
    hooks.on_abort = [this] { settler_->Abort(); };
  }
  return pool_.Start(std::move(hooks));
}

}  // namespace dataflow::messagepipeline

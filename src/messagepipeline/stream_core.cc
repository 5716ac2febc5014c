#include "dataflow/messagepipeline/stream_core.h"

#include <absl/strings/str_cat.h>

namespace dataflow::messagepipeline {
namespace {

DeliveryPolicyOptions PolicyOptions(const StreamCoreOptions& options) {
  return {.source = options.name,
          .dead_letter = options.dead_letter,
          .max_delivery_attempts = options.max_delivery_attempts};
}

}  // namespace

absl::Status StreamCore::Validate(const StreamCoreOptions& options,
                                  const MessageConsumer* consumer) {
  if (consumer == nullptr) return absl::InvalidArgumentError(options.name + ": consumer is null");
  if (options.num_workers <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(options.name, ": num_workers must be > 0, got ", options.num_workers));
  }
  if (options.async && options.max_in_flight == 0) {
    return absl::InvalidArgumentError(options.name + ": max_in_flight must be > 0");
  }
  return ValidateDeliveryPolicy(PolicyOptions(options));
}

StreamCore::StreamCore(StreamCoreOptions options, std::shared_ptr<MessageConsumer> consumer)
    : policy_(PolicyOptions(options), &counters_),
      pool_(options.name, std::move(consumer), options.num_workers, &policy_) {
  if (options.async) {
    settler_ = std::make_unique<InFlightSettler>(options.max_in_flight, options.max_in_flight_bytes,
                                                 &policy_, &pool_);
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

// StreamingService<T>: consumer → N workers (transform → process) → ack/nack.
//
// Each message is transformed and processed by one worker: a transform error nacks it (or
// dead-letters a permanent one), a skip acks it, a processor error or exception nacks it,
// success acks it. Stop(deadline) drains in-flight work; see WorkerPool for the rules.
// Thread-safe; Start/Stop may be called from any thread.
#pragma once

#include <absl/status/statusor.h>
#include <absl/strings/str_cat.h>

#include <memory>
#include <string>

#include "dataflow/messagepipeline/processor.h"
#include "dataflow/messagepipeline/service_core.h"
#include "dataflow/messagepipeline/transformer.h"

namespace dataflow::messagepipeline {

struct StreamingServiceOptions {
  std::string name = "streaming-service";
  int num_workers = 5;  // the Go library's default
  std::shared_ptr<DeadLetterSink> dead_letter;
  int max_delivery_attempts = 0;  // 0: unlimited; > 0 needs dead_letter
};

// Runs a transformer and returns its result, turning an exception into an Internal error.
template <typename T>
TransformResult<T> RunTransformer(const MessageTransformer<T>& transformer, const Message& m) {
  try {
    return transformer(m);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("transformer threw: ", e.what()));
  } catch (...) {
    return absl::InternalError("transformer threw a non-standard exception");
  }
}

// Calls `fn` and turns an exception into an Internal error naming `what`.
template <typename Fn>
absl::Status CallNoThrow(std::string_view what, Fn&& fn) {
  try {
    return fn();
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(std::string(what), " threw: ", e.what()));
  } catch (...) {
    return absl::InternalError(absl::StrCat(std::string(what), " threw a non-standard exception"));
  }
}

template <typename T>
class StreamingService {
 public:
  static absl::StatusOr<std::unique_ptr<StreamingService>> Create(
      StreamingServiceOptions options, std::shared_ptr<MessageConsumer> consumer,
      MessageTransformer<T> transformer, StreamProcessor<T> processor) {
    if (!consumer) return absl::InvalidArgumentError(options.name + ": consumer is null");
    if (!transformer) return absl::InvalidArgumentError(options.name + ": transformer is null");
    if (!processor) return absl::InvalidArgumentError(options.name + ": processor is null");
    if (options.num_workers <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(options.name, ": num_workers must be > 0, got ", options.num_workers));
    }
    DeliveryPolicyOptions policy{.source = options.name,
                                 .dead_letter = options.dead_letter,
                                 .max_delivery_attempts = options.max_delivery_attempts};
    if (auto s = ValidateDeliveryPolicy(policy); !s.ok()) return s;
    return std::unique_ptr<StreamingService>(
        new StreamingService(std::move(options), std::move(policy), std::move(consumer),
                             std::move(transformer), std::move(processor)));
  }

  ~StreamingService() = default;  // pool_ (declared last) stops first if still running

  absl::Status Start() {
    return pool_.Start({.handle_batch = [this](std::span<Message> batch) {
      pool_.ForEach(batch, [this](Message& m) { Handle(m); });
    }});
  }
  absl::Status Stop(Deadline deadline) { return pool_.Stop(deadline); }
  absl::Status Stop(std::chrono::steady_clock::duration timeout) {
    return Stop(std::chrono::steady_clock::now() + timeout);
  }
  // Blocks until the pipeline has drained (after Stop, or when the consumer ended).
  void Wait() { pool_.Wait(); }
  [[nodiscard]] ServiceMetrics metrics() const { return counters_.Snapshot(); }
  // True once a Stop() deadline expired and the remaining messages are being nacked.
  [[nodiscard]] bool draining_past_deadline() const { return pool_.aborting(); }

 private:
  StreamingService(StreamingServiceOptions options, DeliveryPolicyOptions policy,
                   std::shared_ptr<MessageConsumer> consumer, MessageTransformer<T> transformer,
                   StreamProcessor<T> processor)
      : options_(std::move(options)),
        transformer_(std::move(transformer)),
        processor_(std::move(processor)),
        policy_(std::move(policy), &counters_),
        pool_(options_.name, std::move(consumer), options_.num_workers) {}

  void Handle(Message& message) {
    counters_.received.fetch_add(1, std::memory_order_relaxed);
    if (policy_.SettleIfExhausted(message)) return;
    TransformResult<T> transformed = RunTransformer(transformer_, message);
    if (!transformed.ok()) {
      policy_.Fail(message, transformed.status(), FailureStage::kTransform);
      return;
    }
    if (!transformed->has_value()) {
      policy_.Skip(message);
      return;
    }
    absl::Status processed =
        CallNoThrow("processor", [&] { return processor_(message, **transformed); });
    if (processed.ok()) {
      policy_.Succeed(message);
    } else {
      policy_.Fail(message, processed, FailureStage::kProcess);
    }
  }

  StreamingServiceOptions options_;
  MessageTransformer<T> transformer_;
  StreamProcessor<T> processor_;
  ServiceCounters counters_;
  DeliveryPolicy policy_;
  WorkerPool pool_;  // last: its threads use everything above
};

}  // namespace dataflow::messagepipeline

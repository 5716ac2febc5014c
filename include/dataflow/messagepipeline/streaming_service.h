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
#include "dataflow/messagepipeline/service.h"
#include "dataflow/messagepipeline/service_core.h"
#include "dataflow/messagepipeline/transformer.h"

namespace dataflow::messagepipeline {

struct StreamingServiceOptions {
  std::string name = "streaming-service";
  int num_workers = 5;  // the Go library's default
  std::shared_ptr<DeadLetterSink> dead_letter;
  int max_delivery_attempts = kDefaultMaxDeliveryAttempts;  // 0: unlimited
  // With an async processor: messages, and their payload bytes, awaiting their sink's
  // confirmation at most (0 bytes: no byte limit).
  std::size_t max_in_flight = 1000;
  std::size_t max_in_flight_bytes = 64 << 20;
};

template <typename T>
class StreamingService final : public Service {
 public:
  static absl::StatusOr<std::unique_ptr<StreamingService>> Create(
      StreamingServiceOptions options, std::shared_ptr<MessageConsumer> consumer,
      MessageTransformer<T> transformer, StreamProcessor<T> processor) {
    if (!processor) return absl::InvalidArgumentError(options.name + ": processor is null");
    return Make(std::move(options), std::move(consumer), std::move(transformer),
                std::move(processor), nullptr);
  }

  // The processor calls its completion once the sink confirmed; the message is acked or
  // nacked then, with up to options.max_in_flight messages (max_in_flight_bytes) waiting at
  // once. For sinks that batch (publishers): workers are not blocked by the sink's latency.
  static absl::StatusOr<std::unique_ptr<StreamingService>> CreateAsync(
      StreamingServiceOptions options, std::shared_ptr<MessageConsumer> consumer,
      MessageTransformer<T> transformer, AsyncStreamProcessor<T> processor) {
    if (!processor) return absl::InvalidArgumentError(options.name + ": processor is null");
    if (options.max_in_flight == 0) {
      return absl::InvalidArgumentError(options.name + ": max_in_flight must be > 0");
    }
    return Make(std::move(options), std::move(consumer), std::move(transformer), nullptr,
                std::move(processor));
  }

  ~StreamingService() override = default;  // pool_ (declared last) stops first if still running

  absl::Status Start() override {
    WorkerPool::Hooks hooks{.handle_batch = [this](std::span<Message> batch) {
      pool_.ForEach(batch, [this](Message& m) { Handle(m); });
    }};
    if (settler_) {
      hooks.tail = [this] { settler_->Run(); };
      hooks.on_workers_done = [this] { settler_->Close(); };
      hooks.on_abort = [this] { settler_->Abort(); };
    }
    return pool_.Start(std::move(hooks));
  }
  absl::Status Stop(Deadline deadline) override { return pool_.Stop(deadline); }
  absl::Status Stop(std::chrono::steady_clock::duration timeout) {
    return Stop(std::chrono::steady_clock::now() + timeout);
  }
  // Blocks until the pipeline has drained (after Stop, or when the consumer ended).
  void Wait() { pool_.Wait(); }
  [[nodiscard]] ServiceMetrics metrics() const override { return counters_.Snapshot(); }
  // True once a Stop() deadline expired and the remaining messages are being nacked.
  [[nodiscard]] bool draining_past_deadline() const { return pool_.aborting(); }

 private:
  static absl::StatusOr<std::unique_ptr<StreamingService>> Make(
      StreamingServiceOptions options, std::shared_ptr<MessageConsumer> consumer,
      MessageTransformer<T> transformer, StreamProcessor<T> processor,
      AsyncStreamProcessor<T> async_processor) {
    if (!consumer) return absl::InvalidArgumentError(options.name + ": consumer is null");
    if (!transformer) return absl::InvalidArgumentError(options.name + ": transformer is null");
    if (options.num_workers <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(options.name, ": num_workers must be > 0, got ", options.num_workers));
    }
    DeliveryPolicyOptions policy{.source = options.name,
                                 .dead_letter = options.dead_letter,
                                 .max_delivery_attempts = options.max_delivery_attempts};
    if (auto s = ValidateDeliveryPolicy(policy); !s.ok()) return s;
    return std::unique_ptr<StreamingService>(new StreamingService(
        std::move(options), std::move(policy), std::move(consumer), std::move(transformer),
        std::move(processor), std::move(async_processor)));
  }

  StreamingService(StreamingServiceOptions options, DeliveryPolicyOptions policy,
                   std::shared_ptr<MessageConsumer> consumer, MessageTransformer<T> transformer,
                   StreamProcessor<T> processor, AsyncStreamProcessor<T> async_processor)
      : options_(std::move(options)),
        transformer_(std::move(transformer)),
        processor_(std::move(processor)),
        async_processor_(std::move(async_processor)),
        policy_(std::move(policy), &counters_),
        pool_(options_.name, std::move(consumer), options_.num_workers, &policy_) {
    if (async_processor_) {
      settler_ = std::make_unique<InFlightSettler>(options_.max_in_flight,
                                                   options_.max_in_flight_bytes, &policy_, &pool_);
    }
  }

  void Handle(Message& message) {
    std::optional<T> value = TransformOrSettle(message, transformer_, policy_, counters_);
    if (!value) return;
    if (async_processor_) {
      settler_->Track(std::move(message), [&](Message& m, Completion done) {
        async_processor_(m, *value, std::move(done));
      });
      return;
    }
    absl::Status processed = CallNoThrow("processor", [&] { return processor_(message, *value); });
    if (processed.ok()) {
      policy_.Succeed(message);
    } else {
      policy_.Fail(message, processed, FailureStage::kProcess);
    }
  }

  StreamingServiceOptions options_;
  MessageTransformer<T> transformer_;
  StreamProcessor<T> processor_;
  AsyncStreamProcessor<T> async_processor_;
  ServiceCounters counters_;
  DeliveryPolicy policy_;
  std::unique_ptr<InFlightSettler> settler_;
  WorkerPool pool_;  // last: its threads use everything above
};

}  // namespace dataflow::messagepipeline

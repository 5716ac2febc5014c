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
#include <string_view>

#include "dataflow/messagepipeline/processor.h"
#include "dataflow/messagepipeline/service.h"
#include "dataflow/messagepipeline/service_core.h"
#include "dataflow/messagepipeline/service_options.h"
#include "dataflow/messagepipeline/stream_core.h"
#include "dataflow/messagepipeline/transformer.h"

namespace dataflow::messagepipeline {

struct StreamingServiceOptions {
  static constexpr std::string_view kDefaultName = "streaming-service";
  ServiceOptions common;     // an empty name: kDefaultName
  InFlightLimits in_flight;  // with an async processor
};

template <typename T>
class StreamingService final : public Service {
 public:
  static absl::StatusOr<std::unique_ptr<StreamingService>> Create(
      StreamingServiceOptions options, std::shared_ptr<MessageConsumer> consumer,
      MessageTransformer<T> transformer, StreamProcessor<T> processor) {
    return Make(std::move(options), std::move(consumer), std::move(transformer),
                std::move(processor), nullptr);
  }

  // The processor calls its completion once the sink confirmed; the message is acked or
  // nacked then, with up to options.in_flight messages (and bytes) waiting at once. For sinks
  // that batch (publishers): workers are not blocked by the sink's latency.
  static absl::StatusOr<std::unique_ptr<StreamingService>> CreateAsync(
      StreamingServiceOptions options, std::shared_ptr<MessageConsumer> consumer,
      MessageTransformer<T> transformer, AsyncStreamProcessor<T> processor) {
    return Make(std::move(options), std::move(consumer), std::move(transformer), nullptr,
                std::move(processor));
  }

  ~StreamingService() override = default;  // core_ (declared last) stops first if still running

  absl::Status Start() override {
    return core_.Start([this](Message& m) { Handle(m); });
  }
  absl::Status Stop(Deadline deadline) override { return core_.Stop(deadline); }
  absl::Status Stop(std::chrono::steady_clock::duration timeout) {
    return Stop(std::chrono::steady_clock::now() + timeout);
  }
  // Blocks until the pipeline has drained (after Stop, or when the consumer ended).
  void Wait() { core_.Wait(); }
  [[nodiscard]] ServiceMetrics metrics() const override { return core_.metrics(); }
  // True once a Stop() deadline expired and the remaining messages are being nacked.
  [[nodiscard]] bool draining_past_deadline() const { return core_.aborting(); }

 private:
  static absl::StatusOr<std::unique_ptr<StreamingService>> Make(
      StreamingServiceOptions options, std::shared_ptr<MessageConsumer> consumer,
      MessageTransformer<T> transformer, StreamProcessor<T> processor,
      AsyncStreamProcessor<T> async_processor) {
    SetDefaultName(options.common, StreamingServiceOptions::kDefaultName);
    const std::string& name = options.common.name;
    if (!processor && !async_processor) {
      return absl::InvalidArgumentError(name + ": processor is null");
    }
    if (!transformer) return absl::InvalidArgumentError(name + ": transformer is null");
    StreamCoreOptions core{.common = std::move(options.common),
                           .async = async_processor != nullptr,
                           .in_flight = options.in_flight};
    if (auto s = StreamCore::Validate(core, consumer.get()); !s.ok()) return s;
    return std::unique_ptr<StreamingService>(
        new StreamingService(std::move(core), std::move(consumer), std::move(transformer),
                             std::move(processor), std::move(async_processor)));
  }

  StreamingService(StreamCoreOptions core, std::shared_ptr<MessageConsumer> consumer,
                   MessageTransformer<T> transformer, StreamProcessor<T> processor,
                   AsyncStreamProcessor<T> async_processor)
      : transformer_(std::move(transformer)),
        processor_(std::move(processor)),
        async_processor_(std::move(async_processor)),
        core_(std::move(core), std::move(consumer)) {}

  void Handle(Message& message) {
    DeliveryPolicy& policy = core_.policy();
    std::optional<T> value = TransformOrSettle(message, transformer_, policy, core_.counters());
    if (!value) return;
    if (async_processor_) {
      core_.settler()->Track(std::move(message), [&](Message& m, Completion done) {
        async_processor_(m, *value, std::move(done));
      });
      return;
    }
    absl::Status processed = CallNoThrow("processor", [&] { return processor_(message, *value); });
    if (processed.ok()) {
      policy.Succeed(message);
    } else {
      policy.Fail(message, processed, FailureStage::kProcess);
    }
  }

  MessageTransformer<T> transformer_;
  StreamProcessor<T> processor_;
  AsyncStreamProcessor<T> async_processor_;
  StreamCore core_;  // last: its workers call Handle, which uses everything above
};

}  // namespace dataflow::messagepipeline

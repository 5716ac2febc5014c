// StageService: consumer → N workers (stage → downstream) → ack/nack, for a stage that
// changes a message in place and passes it on (enrichment: look data up, add it, publish).
//
// The stage decides for each message:
//   - continue: the changed message goes downstream (usually a publish); it is acked once
//     downstream confirmed (processed), nacked on a downstream error (a permanent one
//     dead-letters it);
//   - skip:     acked and dropped on purpose, counted as skipped;
//   - an error: nacked for redelivery, dead-lettered if IsPermanent (counted as a transform
//     error: the stage is the step before the sink).
// A stage that replaced the message's data (e.g. unwrapped an envelope) returns what it
// received, and a message that then fails downstream is put back to it before it is nacked or
// dead-lettered, so it goes back as it was received. A stage that fails restores the data
// itself. Settling, dead letters, delivery attempts and Stop(deadline) are those of every
// service (DeliveryPolicy, WorkerPool, InFlightSettler). Thread-safe; the stage and the
// downstream processor are called concurrently from the workers.
#pragma once

#include <absl/status/statusor.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "dataflow/messagepipeline/message.h"
#include "dataflow/messagepipeline/processor.h"
#include "dataflow/messagepipeline/service.h"
#include "dataflow/messagepipeline/service_core.h"
#include "dataflow/messagepipeline/service_options.h"

namespace dataflow::messagepipeline {

enum class StageAction { kContinue, kSkip };

struct StageResult {
  StageAction action = StageAction::kContinue;
  // The data the message arrived with, if the stage replaced it; a downstream failure puts it
  // back before the message is settled.
  std::optional<MessageData> received;
};

// Changes `message` in place; returns whether it continues, or the error that stops it.
using MessageStage = std::function<absl::StatusOr<StageResult>(Message& message)>;

struct StageServiceOptions {
  static constexpr std::string_view kDefaultName = "stage";
  ServiceOptions common;     // an empty name: kDefaultName
  InFlightLimits in_flight;  // with an async downstream
};

class StageService final : public Service {
 public:
  // `downstream` returns once the message is stored or published.
  static absl::StatusOr<std::unique_ptr<StageService>> Create(
      StageServiceOptions options, std::shared_ptr<MessageConsumer> consumer, MessageStage stage,
      MessageProcessor downstream);
  // `downstream` calls its completion once the sink confirmed (a batching publisher, an
  // in-process topic); workers are not blocked by the sink's latency.
  static absl::StatusOr<std::unique_ptr<StageService>> CreateAsync(
      StageServiceOptions options, std::shared_ptr<MessageConsumer> consumer, MessageStage stage,
      AsyncMessageProcessor downstream);
  ~StageService() override;

  absl::Status Start() override;
  absl::Status Stop(Deadline deadline) override;
  absl::Status Stop(std::chrono::steady_clock::duration timeout) {
    return Stop(std::chrono::steady_clock::now() + timeout);
  }
  // Blocks until the pipeline has drained (after Stop, or when the consumer ended).
  void Wait();
  [[nodiscard]] ServiceMetrics metrics() const override;

 private:
  struct Impl;
  explicit StageService(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dataflow::messagepipeline

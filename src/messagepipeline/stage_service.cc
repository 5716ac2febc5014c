#include "dataflow/messagepipeline/stage_service.h"

#include <absl/strings/str_cat.h>

namespace dataflow::messagepipeline {

struct StageService::Impl {
  Impl(StageServiceOptions opts, DeliveryPolicyOptions policy_options,
       std::shared_ptr<MessageConsumer> consumer, MessageStage s, MessageProcessor sync,
       AsyncMessageProcessor async)
      : options(std::move(opts)),
        stage(std::move(s)),
        downstream(std::move(sync)),
        async_downstream(std::move(async)),
        policy(std::move(policy_options), &counters),
        pool(options.name, std::move(consumer), options.num_workers, &policy) {
    if (async_downstream) {
      settler = std::make_unique<InFlightSettler>(options.max_in_flight,
                                                  options.max_in_flight_bytes, &policy, &pool);
    }
  }

  void Handle(Message& message) {
    counters.received.fetch_add(1, std::memory_order_relaxed);
    if (policy.SettleIfExhausted(message)) return;
    absl::StatusOr<StageResult> staged = RunStage(message);
    if (!staged.ok()) {
      policy.Fail(message, staged.status(), FailureStage::kTransform);
      return;
    }
    if (staged->action == StageAction::kSkip) {
      policy.Skip(message);
      return;
    }
    if (async_downstream) {
      std::function<void(Message&)> restore;
      if (staged->received) {
        restore = [received = std::move(*staged->received)](Message& m) mutable {
          m.data = std::move(received);
        };
      }
      settler->Track(
          std::move(message),
          [this](Message& m, Completion done) { async_downstream(m, std::move(done)); },
          std::move(restore));
      return;
    }
    absl::Status done = CallNoThrow("processor", [&] { return downstream(message); });
    if (done.ok()) {
      policy.Succeed(message);
      return;
    }
    if (staged->received) message.data = std::move(*staged->received);
    policy.Fail(message, done, FailureStage::kProcess);
  }

  absl::StatusOr<StageResult> RunStage(Message& message) {
    try {
      return stage(message);
    } catch (const std::exception& e) {
      return absl::InternalError(absl::StrCat("stage threw: ", e.what()));
    } catch (...) {
      return absl::InternalError("stage threw a non-standard exception");
    }
  }

  StageServiceOptions options;
  MessageStage stage;
  MessageProcessor downstream;
  AsyncMessageProcessor async_downstream;
  ServiceCounters counters;
  DeliveryPolicy policy;
  std::unique_ptr<InFlightSettler> settler;
  WorkerPool pool;  // last: its threads use everything above
};

namespace {

absl::Status Validate(const StageServiceOptions& options, const MessageConsumer* consumer,
                      bool has_stage, bool has_downstream) {
  if (!consumer) return absl::InvalidArgumentError(options.name + ": consumer is null");
  if (!has_stage) return absl::InvalidArgumentError(options.name + ": stage is null");
  if (!has_downstream) return absl::InvalidArgumentError(options.name + ": processor is null");
  if (options.num_workers <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(options.name, ": num_workers must be > 0, got ", options.num_workers));
  }
  return absl::OkStatus();
}

DeliveryPolicyOptions PolicyOptions(const StageServiceOptions& options) {
  return {.source = options.name,
          .dead_letter = options.dead_letter,
          .max_delivery_attempts = options.max_delivery_attempts};
}

}  // namespace

absl::StatusOr<std::unique_ptr<StageService>> StageService::Create(
    StageServiceOptions options, std::shared_ptr<MessageConsumer> consumer, MessageStage stage,
    MessageProcessor downstream) {
  if (auto s = Validate(options, consumer.get(), bool(stage), bool(downstream)); !s.ok()) return s;
  DeliveryPolicyOptions policy = PolicyOptions(options);
  if (auto s = ValidateDeliveryPolicy(policy); !s.ok()) return s;
  return std::unique_ptr<StageService>(new StageService(
      std::make_unique<Impl>(std::move(options), std::move(policy), std::move(consumer),
                             std::move(stage), std::move(downstream), nullptr)));
}

absl::StatusOr<std::unique_ptr<StageService>> StageService::CreateAsync(
    StageServiceOptions options, std::shared_ptr<MessageConsumer> consumer, MessageStage stage,
    AsyncMessageProcessor downstream) {
  if (auto s = Validate(options, consumer.get(), bool(stage), bool(downstream)); !s.ok()) return s;
  if (options.max_in_flight == 0) {
    return absl::InvalidArgumentError(options.name + ": max_in_flight must be > 0");
  }
  DeliveryPolicyOptions policy = PolicyOptions(options);
  if (auto s = ValidateDeliveryPolicy(policy); !s.ok()) return s;
  return std::unique_ptr<StageService>(new StageService(
      std::make_unique<Impl>(std::move(options), std::move(policy), std::move(consumer),
                             std::move(stage), nullptr, std::move(downstream))));
}

StageService::StageService(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
StageService::~StageService() = default;  // the pool (last in Impl) stops first if running

absl::Status StageService::Start() {
  Impl* impl = impl_.get();
  WorkerPool::Hooks hooks{.handle_batch = [impl](std::span<Message> batch) {
    impl->pool.ForEach(batch, [impl](Message& m) { impl->Handle(m); });
  }};
  if (impl->settler) {
    hooks.tail = [impl] { impl->settler->Run(); };
    hooks.on_workers_done = [impl] { impl->settler->Close(); };
    hooks.on_abort = [impl] { impl->settler->Abort(); };
  }
  return impl->pool.Start(std::move(hooks));
}

absl::Status StageService::Stop(Deadline deadline) { return impl_->pool.Stop(deadline); }
void StageService::Wait() { impl_->pool.Wait(); }
ServiceMetrics StageService::metrics() const { return impl_->counters.Snapshot(); }

}  // namespace dataflow::messagepipeline

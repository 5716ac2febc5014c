#include "dataflow/messagepipeline/stage_service.h"

#include <absl/strings/str_cat.h>

#include "dataflow/messagepipeline/stream_core.h"

namespace dataflow::messagepipeline {

struct StageService::Impl {
  Impl(StreamCoreOptions core_options, std::shared_ptr<MessageConsumer> consumer, MessageStage s,
       MessageProcessor sync, AsyncMessageProcessor async)
      : stage(std::move(s)),
        downstream(std::move(sync)),
        async_downstream(std::move(async)),
        core(std::move(core_options), std::move(consumer)) {}

  void Handle(Message& message) {
    DeliveryPolicy& policy = core.policy();
    core.counters().received.fetch_add(1, std::memory_order_relaxed);
    if (policy.SettleIfExhausted(message)) return;
    absl::StatusOr<StageResult> staged = CallNoThrow("stage", [&] { return stage(message); });
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
      core.settler()->Track(
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

  MessageStage stage;
  MessageProcessor downstream;
  AsyncMessageProcessor async_downstream;
  StreamCore core;  // last: its workers call Handle, which uses everything above
};

namespace {

// The checks of Create and CreateAsync; the core's options when they pass.
absl::StatusOr<StreamCoreOptions> Check(StageServiceOptions options,
                                        const MessageConsumer* consumer, bool has_stage,
                                        bool has_downstream, bool async) {
  SetDefaultName(options.common, StageServiceOptions::kDefaultName);
  const std::string& name = options.common.name;
  if (!has_stage) return absl::InvalidArgumentError(name + ": stage is null");
  if (!has_downstream) return absl::InvalidArgumentError(name + ": processor is null");
  StreamCoreOptions core{
      .common = std::move(options.common), .async = async, .in_flight = options.in_flight};
  if (auto s = StreamCore::Validate(core, consumer); !s.ok()) return s;
  return core;
}

}  // namespace

absl::StatusOr<std::unique_ptr<StageService>> StageService::Create(
    StageServiceOptions options, std::shared_ptr<MessageConsumer> consumer, MessageStage stage,
    MessageProcessor downstream) {
  auto core =
      Check(std::move(options), consumer.get(), bool(stage), bool(downstream), /*async=*/false);
  if (!core.ok()) return core.status();
  return std::unique_ptr<StageService>(new StageService(std::make_unique<Impl>(
      *std::move(core), std::move(consumer), std::move(stage), std::move(downstream), nullptr)));
}

absl::StatusOr<std::unique_ptr<StageService>> StageService::CreateAsync(
    StageServiceOptions options, std::shared_ptr<MessageConsumer> consumer, MessageStage stage,
    AsyncMessageProcessor downstream) {
  auto core =
      Check(std::move(options), consumer.get(), bool(stage), bool(downstream), /*async=*/true);
  if (!core.ok()) return core.status();
  return std::unique_ptr<StageService>(new StageService(std::make_unique<Impl>(
      *std::move(core), std::move(consumer), std::move(stage), nullptr, std::move(downstream))));
}

StageService::StageService(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
StageService::~StageService() = default;  // the core (last in Impl) stops first if running

absl::Status StageService::Start() {
  return impl_->core.Start([impl = impl_.get()](Message& m) { impl->Handle(m); });
}

absl::Status StageService::Stop(Deadline deadline) { return impl_->core.Stop(deadline); }
void StageService::Wait() { impl_->core.Wait(); }
ServiceMetrics StageService::metrics() const { return impl_->core.metrics(); }

}  // namespace dataflow::messagepipeline

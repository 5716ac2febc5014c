// The in_process transport: topics of the pipeline's own broker (config `in_process:`).
#include "backends.h"

namespace dataflow::app {
namespace {
namespace mp = messagepipeline;

class InProcessTransport final : public Transport {
 public:
  explicit InProcessTransport(std::shared_ptr<mp::InProcessBroker> broker)
      : broker_(std::move(broker)) {}

  absl::Status Consume(const SourceConfig& source, ServiceParts& parts) override {
    auto consumer = broker_->NewConsumer(source.subscription);
    if (!consumer.ok()) return consumer.status();
    parts.member.consumer = *std::move(consumer);
    // Drained before the service stops, so what upstream published is processed.
    parts.member.in_process_input = source.subscription;
    return absl::OkStatus();
  }

  absl::StatusOr<std::shared_ptr<mp::MessagePublisher>> Publisher(
      const std::string& /*project*/, const std::vector<std::string>& /*topics*/,
      ServiceParts& /*parts*/) override {
    return broker_->NewPublisher();
  }

  absl::StatusOr<std::shared_ptr<mp::DeadLetterSink>> DeadLetters(
      const std::string& /*project*/, const std::string& topic, ServiceParts& /*parts*/) override {
    return broker_->NewDeadLetterSink(topic);
  }

 private:
  std::shared_ptr<mp::InProcessBroker> broker_;
};

}  // namespace

void RegisterInProcessBackends(Backends& backends) {
  backends.transports.Register(
      "in_process", [](const BuildContext& context) -> absl::StatusOr<std::shared_ptr<Transport>> {
        return std::make_shared<InProcessTransport>(context.broker);
      });
}

}  // namespace dataflow::app

// The pubsub transport: Google Cloud Pub/Sub (or its emulator), one connection per project.
// Compiled only when the pubsub package is built (apps/dataflow/CMakeLists.txt).
#include "backends.h"
#include "dataflow/metrics/service_families.h"
#include "dataflow/pubsub/admin.h"
#include "dataflow/pubsub/consumer.h"
#include "dataflow/pubsub/producer.h"

namespace dataflow::app {
namespace {
namespace mp = messagepipeline;

class PubsubTransport final : public Transport {
 public:
  explicit PubsubTransport(const BuildContext& context) : context_(context) {}

  absl::Status Consume(const SourceConfig& source, ServiceParts& parts) override {
    const std::string project = context_.Project(source.project);
    auto stub = Stub(project);
    if (!stub.ok()) return stub.status();
    if (context_.config.create_pubsub_resources) {
      if (auto s = pubsub::EnsureTopic(**stub, project, source.topic); !s.ok()) return s;
      if (auto s = pubsub::EnsureSubscription(**stub, project, source.subscription, source.topic,
                                              {.ack_deadline = source.ack_deadline});
          !s.ok()) {
        return s;
      }
    }
    auto consumer = pubsub::GooglePubsubConsumer::Create(
        *stub, {.project_id = project,
                .subscription_id = source.subscription,
                .streams = source.streams,
                .max_outstanding_messages = source.max_outstanding_messages,
                .ack_deadline = source.ack_deadline,
                .max_stream_duration = source.max_stream_duration});
    if (!consumer.ok()) return consumer.status();
    (*consumer)->RegisterMetrics(context_.telemetry, metrics::ServiceLabels(parts.member.name));
    parts.member.consumer = *std::move(consumer);
    return absl::OkStatus();
  }

  absl::StatusOr<std::shared_ptr<mp::MessagePublisher>> Publisher(
      const std::string& project, const std::vector<std::string>& topics,
      ServiceParts& parts) override {
    for (const auto& topic : topics) {
      if (auto s = MaybeCreateTopic(project, topic); !s.ok()) return s;
    }
    auto producer = Producer(project, parts);
    if (!producer.ok()) return producer.status();
    return std::shared_ptr<mp::MessagePublisher>(*std::move(producer));
  }

  absl::StatusOr<std::shared_ptr<mp::DeadLetterSink>> DeadLetters(const std::string& project,
                                                                  const std::string& topic,
                                                                  ServiceParts& parts) override {
    if (auto s = MaybeCreateTopic(project, topic); !s.ok()) return s;
    auto producer = Producer(project, parts);
    if (!producer.ok()) return producer.status();
    return std::shared_ptr<mp::DeadLetterSink>(
        std::make_shared<pubsub::PubsubDeadLetterSink>(*producer, topic));
  }

 private:
  absl::StatusOr<std::shared_ptr<pubsub::PubsubStub>> Stub(const std::string& project) {
    auto& stub = stubs_[project];
    if (!stub) {
      auto made = pubsub::MakePubsubStub();
      if (!made.ok()) return made.status();
      stub = *std::move(made);
    }
    return stub;
  }

  absl::Status MaybeCreateTopic(const std::string& project, const std::string& topic) {
    if (!context_.config.create_pubsub_resources || topic.empty()) return absl::OkStatus();
    auto stub = Stub(project);
    if (!stub.ok()) return stub.status();
    return pubsub::EnsureTopic(**stub, project, topic);
  }

  // A producer, stopped (flushed) after the service stopped.
  absl::StatusOr<std::shared_ptr<pubsub::GooglePubsubProducer>> Producer(const std::string& project,
                                                                         ServiceParts& parts) {
    auto stub = Stub(project);
    if (!stub.ok()) return stub.status();
    auto producer = pubsub::GooglePubsubProducer::Create(*stub, {.project_id = project});
    if (!producer.ok()) return producer.status();
    std::shared_ptr<pubsub::GooglePubsubProducer> made = *std::move(producer);
    parts.member.close_after_stop.push_back([made](mp::Deadline d) { return made->Stop(d); });
    return made;
  }

  const BuildContext& context_;
  std::map<std::string, std::shared_ptr<pubsub::PubsubStub>> stubs_;  // by project
};

}  // namespace

void RegisterPubsubBackends(Backends& backends) {
  backends.transports.Register(
      "pubsub", [](const BuildContext& context) -> absl::StatusOr<std::shared_ptr<Transport>> {
        return std::make_shared<PubsubTransport>(context);
      });
}

}  // namespace dataflow::app

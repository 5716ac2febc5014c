// IngestionService: MQTT → broker topics. The front door of the platform.
//
// Wires a MessageConsumer (normally an MqttConsumer) through a StreamingService to a
// MessagePublisher (the Pub/Sub producer, or the in-process broker's publisher): each message
// is published to the topic of its `route_name` attribute, with its attributes (route_name,
// mqtt_topic, ...) carried over, and is acked only once the publish future resolved OK; a
// failed publish nacks it. A route missing from `route_topics` (or a message without a
// route) goes to `default_topic`, or, with UnmappedRoutePolicy::kReject, is dead-lettered
// (with a dead-letter sink) or logged, counted and dropped (without one).
// Thread-safe; Start/Stop from any thread. Stop() stops the consumer and drains the pipeline;
// the publisher belongs to the caller, who stops it afterwards.
#pragma once

#include <absl/status/statusor.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "dataflow/messagepipeline/consumer.h"
#include "dataflow/messagepipeline/dead_letter.h"
#include "dataflow/messagepipeline/publisher.h"
#include "dataflow/messagepipeline/service.h"
#include "dataflow/messagepipeline/service_core.h"
#include "dataflow/messagepipeline/service_options.h"
#include "dataflow/messagepipeline/streaming_service.h"
#include "dataflow/metrics/registration.h"

namespace dataflow::mqttconverter {

enum class UnmappedRoutePolicy { kDefaultTopic, kReject };

// What the published message body is; the attributes (route_name, mqtt_topic, ...) are
// carried in both. The default is the envelope because that is what the Go library's
// ingestion publishes and its consumers expect (a Go enrichment reading raw bytes as an
// envelope finds nothing); every consuming service here reads both (input_format: auto).
enum class PayloadFormat {
  kRaw,       // the MQTT payload bytes as the message body
  kEnvelope,  // the MessageData JSON envelope (id, payload base64, publishTime), as Go's
};

struct IngestionServiceOptions {
  static constexpr std::string_view kDefaultName = "mqtt-ingestion";
  messagepipeline::ServiceOptions common;                        // an empty name: kDefaultName
  std::map<std::string, std::string, std::less<>> route_topics;  // route_name → topic
  UnmappedRoutePolicy unmapped = UnmappedRoutePolicy::kDefaultTopic;
  std::string default_topic;  // required with kDefaultTopic
  PayloadFormat payload_format = PayloadFormat::kEnvelope;
  // Publishes awaiting confirmation. Over in-process topics a publish is confirmed only once
  // every sink stored the message, so this is the pipeline's end-to-end window: throughput is
  // at most max_messages / latency, and the latency includes the sinks' fsyncs. 1000 held a
  // backlog drain to sink commits of ~100-300 rows (docs/operations.md, "Backlog drain").
  messagepipeline::InFlightLimits in_flight{.max_messages = 4000};
};

// What one message becomes: the topic and the outgoing message.
struct RoutedMessage {
  std::string topic;
  messagepipeline::OutgoingMessage message;
};

class IngestionService final : public messagepipeline::Service {
 public:
  static absl::StatusOr<std::unique_ptr<IngestionService>> Create(
      IngestionServiceOptions options, std::shared_ptr<messagepipeline::MessageConsumer> consumer,
      std::shared_ptr<messagepipeline::MessagePublisher> publisher);

  absl::Status Start() override;
  absl::Status Stop(messagepipeline::Deadline deadline) override;
  void Wait();

  [[nodiscard]] messagepipeline::ServiceMetrics metrics() const override;
  // Messages of unmapped routes dropped under kReject without a dead-letter sink.
  [[nodiscard]] std::uint64_t rejected() const { return rejected_.load(); }
  // Exports rejected() as dataflow_ingestion_rejected_total (mqtt_metrics.h), labelled
  // `labels`, on every scrape of `telemetry` until this service is destroyed; a second call
  // replaces the first. The families every service has are the runner's
  // (metrics/service_families.h).
  void RegisterMetrics(metrics::Telemetry& telemetry, const metrics::Labels& labels);

 private:
  IngestionService(IngestionServiceOptions options,
                   std::shared_ptr<messagepipeline::MessagePublisher> publisher)
      : options_(std::move(options)), publisher_(std::move(publisher)) {}
  messagepipeline::TransformResult<RoutedMessage> Route(const messagepipeline::Message& m);

  const IngestionServiceOptions options_;
  std::shared_ptr<messagepipeline::MessagePublisher> publisher_;
  std::atomic<std::uint64_t> rejected_{0};
  std::unique_ptr<messagepipeline::StreamingService<RoutedMessage>> service_;
  metrics::Registration metrics_;  // last: removed before what it reads goes
};

}  // namespace dataflow::mqttconverter

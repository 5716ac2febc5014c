#include "dataflow/mqttconverter/ingestion_service.h"

#include <absl/strings/str_cat.h>

#include "dataflow/messagepipeline/errors.h"
#include "dataflow/messagepipeline/logging.h"

namespace dataflow::mqttconverter {

using messagepipeline::Message;
using messagepipeline::TransformResult;

absl::StatusOr<std::unique_ptr<IngestionService>> IngestionService::Create(
    IngestionServiceOptions options, std::shared_ptr<messagepipeline::MessageConsumer> consumer,
    std::shared_ptr<messagepipeline::MessagePublisher> publisher) {
  messagepipeline::SetDefaultName(options.common, IngestionServiceOptions::kDefaultName);
  const std::string& name = options.common.name;
  if (!publisher) return absl::InvalidArgumentError(name + ": publisher is null");
  for (const auto& [route, topic] : options.route_topics) {
    if (route.empty())
      return absl::InvalidArgumentError(name + ": route_topics has an empty route");
    if (topic.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": route_topics[\"", route, "\"] is an empty topic"));
    }
  }
  if (options.unmapped == UnmappedRoutePolicy::kDefaultTopic && options.default_topic.empty()) {
    return absl::InvalidArgumentError(
        name + ": default_topic is required when unmapped routes go to the default topic");
  }
  if (options.unmapped == UnmappedRoutePolicy::kReject && options.route_topics.empty()) {
    return absl::InvalidArgumentError(
        name + ": route_topics is empty and unmapped routes are rejected: nothing would pass");
  }
  std::unique_ptr<IngestionService> self(new IngestionService(std::move(options), publisher));
  IngestionService* raw = self.get();
  auto service = messagepipeline::StreamingService<RoutedMessage>::CreateAsync(
      {.common = raw->options_.common, .in_flight = raw->options_.in_flight}, std::move(consumer),
      [raw](const Message& m) { return raw->Route(m); },
      [publisher](Message& /*original*/, RoutedMessage& routed, messagepipeline::Completion done) {
        // The message is settled by the publish outcome only.
        publisher->PublishAsync(
            routed.topic, std::move(routed.message),
            [done = std::move(done)](const absl::StatusOr<std::string>& id) { done(id.status()); });
      });
  if (!service.ok()) return service.status();
  self->service_ = std::move(*service);
  return self;
}

TransformResult<RoutedMessage> IngestionService::Route(const Message& m) {
  std::string route;
  if (auto it = m.attributes.find("route_name"); it != m.attributes.end()) route = it->second;
  RoutedMessage out;
  if (auto it = options_.route_topics.find(route); it != options_.route_topics.end()) {
    out.topic = it->second;
  } else if (options_.unmapped == UnmappedRoutePolicy::kDefaultTopic) {
    out.topic = options_.default_topic;
  } else {
    absl::Status error = messagepipeline::PermanentError(
        absl::StrCat("route '", route, "' has no topic and unmapped routes are rejected"));
    if (options_.common.dead_letter) return error;  // the service dead-letters permanent errors
    rejected_.fetch_add(1, std::memory_order_relaxed);
    static LogRateLimit limit;
    if (limit.Allow()) {
      Log()->error(
          "ingestion rejected a message; dropping it (no dead-letter sink) source={} "
          "id={} route={} error=\"{}\" suppressed={}",
          options_.common.name, m.data.id, route, std::string(error.message()), limit.suppressed());
    }
    return messagepipeline::Skip<RoutedMessage>();
  }
  if (options_.payload_format == PayloadFormat::kEnvelope) {
    // An in-process next hop takes the data as is instead of parsing the envelope back.
    out.message = messagepipeline::EnvelopeMessage(m, *publisher_);
  } else {
    out.message = {
        .payload = m.data.payload, .attributes = m.attributes, .ordering_key = m.ordering_key};
  }
  return std::optional<RoutedMessage>(std::move(out));
}

absl::Status IngestionService::Start() { return service_->Start(); }
absl::Status IngestionService::Stop(messagepipeline::Deadline deadline) {
  return service_->Stop(deadline);
}
void IngestionService::Wait() { service_->Wait(); }
messagepipeline::ServiceMetrics IngestionService::metrics() const { return service_->metrics(); }

}  // namespace dataflow::mqttconverter

#include "dataflow/metrics/service_families.h"

#include <string>

namespace dataflow::metrics {

Labels ServiceLabels(std::string_view service) { return {{"service", std::string(service)}}; }

void WriteServiceMetrics(ScrapeWriter& out, std::string_view service,
                         const messagepipeline::ServiceMetrics& m) {
  const Labels labels = {{"service", std::string(service)}};
  out.Counter("dataflow_messages_received_total",
              "Messages the service took from its consumer's channel.", labels, m.received);
  out.Counter("dataflow_messages_acked_total",
              "Messages the service acked: processed + skipped + dead_lettered + dropped.", labels,
              m.processed + m.skipped + m.dead_lettered + m.dropped);
  out.Counter("dataflow_messages_processed_total",
              "Messages the sink confirmed and the service acked.", labels, m.processed);
  out.Counter("dataflow_messages_skipped_total",
              "Messages the transformer chose to drop (acked without processing).", labels,
              m.skipped);
  out.Counter("dataflow_messages_dead_lettered_total",
              "Messages parked in the dead-letter sink (and acked).", labels, m.dead_lettered);
  out.Counter("dataflow_messages_dropped_total",
              "Messages given up on without a dead-letter topic (logged and acked).", labels,
              m.dropped);
  out.Counter("dataflow_messages_nacked_total", "Messages the service nacked for redelivery.",
              labels, m.nacked);
  out.Counter("dataflow_transform_errors_total",
              "Transformer errors (the message was nacked or "
              "dead-lettered).",
              labels, m.transform_errors);
  out.Counter("dataflow_processing_errors_total",
              "Processor errors: failed messages, or failed batches for a batching service.",
              labels, m.processing_errors);
  out.Counter("dataflow_batches_total", "Batches handed to the batch processor.", labels,
              m.batches);
  out.Counter("dataflow_batched_messages_total",
              "Messages in those batches; divided by dataflow_batches_total: mean batch size.",
              labels, m.batched_messages);
}

void AddServiceFamilies(Telemetry& telemetry, const messagepipeline::ServiceGroupMember& member) {
  telemetry.AddCallback([name = member.name, service = member.service,
                         consumer = member.consumer](ScrapeWriter& out) {
    WriteServiceMetrics(out, name, service->metrics());
    WriteConsumerConnected(out, name, consumer->IsConnected());
  });
}

prometheus::Histogram& PublishLatency(Telemetry& telemetry, std::string_view service) {
  return telemetry.Histogram("dataflow_publish_latency_seconds",
                             "Time from Publish() to the broker's result (message id or error).",
                             {{"service", std::string(service)}}, LatencyBuckets());
}

void WriteConsumerConnected(ScrapeWriter& out, std::string_view service, bool connected) {
  out.Gauge("dataflow_consumer_connected",
            "1 while the service's consumer is connected to its transport.",
            {{"service", std::string(service)}}, connected ? 1 : 0);
}

void RegisterBuildInfo(Telemetry& telemetry, std::string_view version) {
  telemetry
      .Gauge("dataflow_build_info", "The running dataflow version; always 1.",
             {{"version", std::string(version)}})
      .Set(1);
}

}  // namespace dataflow::metrics

// The package's families; a new counter is a line here and a line in docs/operations.md.
#include "dataflow/mqttconverter/mqtt_metrics.h"

#include "dataflow/metrics/telemetry.h"
#include "dataflow/mqttconverter/ingestion_service.h"

namespace dataflow::mqttconverter {

void WriteMqttConsumerMetrics(metrics::ScrapeWriter& out, const metrics::Labels& labels,
                              const MqttConsumerStats& m) {
  out.Counter("dataflow_mqtt_received_total", "MQTT PUBLISHes delivered to the pipeline.", labels,
              m.received);
  out.Counter("dataflow_mqtt_acked_total", "MQTT messages the pipeline acked.", labels, m.acked);
  out.Counter("dataflow_mqtt_nacked_total", "MQTT messages the pipeline nacked.", labels, m.nacked);
  out.Counter("dataflow_mqtt_redelivered_total",
              "Nacked MQTT messages handed to the pipeline again.", labels, m.redelivered);
  out.Counter("dataflow_mqtt_lost_total",
              "MQTT messages neither processed nor coming back (clean session, QoS 0 or "
              "ack_mode receipt).",
              labels, m.lost);
  out.Counter("dataflow_mqtt_unrouted_total", "MQTT messages that matched no topic mapping.",
              labels, m.unrouted);
  out.Counter("dataflow_mqtt_connects_total", "Successful MQTT connects, reconnects included.",
              labels, m.connects);
  out.Counter("dataflow_mqtt_left_with_broker_total",
              "Unacknowledged QoS 1/2 messages left for the broker to redeliver when a "
              "connection ended.",
              labels, m.left_with_broker);
  out.Counter("dataflow_mqtt_oversize_skipped_total",
              "PUBLISHes over max_packet_bytes, skipped unread.", labels, m.oversize_skipped);
  out.Gauge("dataflow_mqtt_outstanding_bytes",
            "Payload bytes received and not yet acked (bounded by max_outstanding_bytes).", labels,
            m.outstanding_bytes);
}

void WriteIngestionMetrics(metrics::ScrapeWriter& out, const metrics::Labels& labels,
                           std::uint64_t rejected) {
  out.Counter("dataflow_ingestion_rejected_total",
              "Messages of a route without a topic, dropped (no dead-letter topic).", labels,
              rejected);
}

void MqttConsumer::RegisterMetrics(metrics::Telemetry& telemetry, const metrics::Labels& labels) {
  metrics_ = telemetry.Register([this, labels](metrics::ScrapeWriter& out) {
    WriteMqttConsumerMetrics(out, labels, stats());
  });
}

void IngestionService::RegisterMetrics(metrics::Telemetry& telemetry,
                                       const metrics::Labels& labels) {
  metrics_ = telemetry.Register([this, labels](metrics::ScrapeWriter& out) {
    WriteIngestionMetrics(out, labels, rejected());
  });
}

}  // namespace dataflow::mqttconverter

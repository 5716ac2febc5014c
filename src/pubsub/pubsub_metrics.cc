// The package's families; a new counter is a line here and a line in docs/operations.md.
#include "dataflow/pubsub/pubsub_metrics.h"

#include "dataflow/metrics/telemetry.h"

namespace dataflow::pubsub {

void WritePubsubConsumerMetrics(metrics::ScrapeWriter& out, const metrics::Labels& labels,
                                const GooglePubsubConsumer::Stats& m) {
  out.Counter("dataflow_pubsub_received_total", "Messages received from StreamingPull.", labels,
              m.received);
  out.Counter("dataflow_pubsub_acks_sent_total", "Ack ids sent (first attempts).", labels,
              m.acks_sent);
  out.Counter("dataflow_pubsub_nacks_sent_total", "Nack ids sent (first attempts).", labels,
              m.nacks_sent);
  out.Counter("dataflow_pubsub_extensions_sent_total", "Lease extensions sent.", labels,
              m.extensions_sent);
  out.Counter("dataflow_pubsub_reconnects_total", "Streams reopened after an error.", labels,
              m.reconnects);
  out.Counter("dataflow_pubsub_stream_renewals_total",
              "Streams reopened at their max_stream_duration.", labels, m.stream_renewals);
  out.Counter("dataflow_pubsub_settle_retries_total",
              "Ack, nack and extension ids sent again after a failure.", labels, m.settle_retries);
  out.Counter("dataflow_pubsub_settles_expired_total",
              "Ack and nack ids given up because their lease ran out while retrying (the "
              "message is redelivered).",
              labels, m.settles_expired);
  out.Counter("dataflow_pubsub_settles_failed_total",
              "Ack, nack and extension ids dropped on a non-retryable error.", labels,
              m.settles_failed);
  out.Gauge("dataflow_pubsub_outstanding_messages",
            "Messages handed to the pipeline and not yet settled.", labels, m.outstanding_messages);
  out.Gauge("dataflow_pubsub_outstanding_bytes", "Bytes of those messages.", labels,
            m.outstanding_bytes);
  out.Gauge("dataflow_pubsub_streams_waiting_for_flow_control",
            "StreamingPull streams waiting for room under the flow-control limits.", labels,
            m.streams_waiting_for_flow_control);
  out.Gauge("dataflow_pubsub_delivery_counts",
            "Message ids whose deliveries the consumer counts itself now.", labels,
            m.delivery_counts);
  out.Counter("dataflow_pubsub_delivery_counts_evicted_total",
              "Delivery counts forgotten over delivery_count_capacity.", labels,
              m.delivery_counts_evicted);
}

void GooglePubsubConsumer::RegisterMetrics(metrics::Telemetry& telemetry,
                                           const metrics::Labels& labels) {
  metrics_ = telemetry.Register([this, labels](metrics::ScrapeWriter& out) {
    WritePubsubConsumerMetrics(out, labels, stats());
  });
}

}  // namespace dataflow::pubsub

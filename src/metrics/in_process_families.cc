#include "dataflow/metrics/in_process_families.h"

#include <utility>

namespace dataflow::metrics {

void WriteInProcessSubscriptionMetrics(ScrapeWriter& out, const Labels& labels,
                                       const messagepipeline::SubscriptionStats& stats) {
  out.Gauge("dataflow_in_process_pending_messages",
            "Messages waiting for delivery on the in-process subscription (delayed redeliveries "
            "included).",
            labels, stats.pending);
  out.Gauge("dataflow_in_process_outstanding_messages",
            "Messages delivered to the subscriber and not yet acked or nacked.", labels,
            stats.outstanding);
  out.Gauge("dataflow_in_process_held_bytes",
            "Payload bytes of the pending and outstanding messages (at most "
            "max_subscription_bytes; a publish waits for room).",
            labels, stats.held_bytes);
  out.Counter("dataflow_in_process_delivered_total",
              "Deliveries to the subscriber, redeliveries included.", labels, stats.delivered);
  out.Counter("dataflow_in_process_acked_total", "Messages the subscriber acked.", labels,
              stats.acked);
  out.Counter("dataflow_in_process_nacked_total",
              "Messages the subscriber nacked (redelivered after a backoff).", labels,
              stats.nacked);
  out.Counter("dataflow_in_process_expired_total",
              "Leases that ran out before the subscriber settled the message (redelivered).",
              labels, stats.expired);
}

void AddInProcessBrokerFamilies(Telemetry& telemetry,
                                std::shared_ptr<const messagepipeline::InProcessBroker> broker) {
  telemetry.AddCallback([broker = std::move(broker)](ScrapeWriter& out) {
    for (const auto& subscription : broker->Subscriptions()) {
      WriteInProcessSubscriptionMetrics(
          out, {{"subscription", subscription.name}, {"topic", subscription.topic}},
          subscription.stats);
    }
  });
}

}  // namespace dataflow::metrics

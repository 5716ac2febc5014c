// The in-process broker's subscriptions on /metrics (docs/operations.md "In-process
// subscriptions"), labelled {subscription, topic}: how much each stage of an embedded pipeline
// has waiting, in hand and bounded, the first place to look when a pipeline backs up.
//
//   metrics::AddInProcessBrokerFamilies(telemetry, broker);  // once, when the broker is made
#pragma once

#include <memory>

#include "dataflow/messagepipeline/in_process_broker.h"
#include "dataflow/metrics/telemetry.h"

namespace dataflow::metrics {

// dataflow_in_process_{pending_messages,outstanding_messages,held_bytes} (gauges) and
// dataflow_in_process_{delivered,acked,nacked,expired}_total (counters) of one subscription.
void WriteInProcessSubscriptionMetrics(ScrapeWriter& out, const Labels& labels,
                                       const messagepipeline::SubscriptionStats& stats);

// The above for every subscription of `broker` (those created later included) on every
// scrape, for as long as the Telemetry lives (the callback shares the broker).
void AddInProcessBrokerFamilies(Telemetry& telemetry,
                                std::shared_ptr<const messagepipeline::InProcessBroker> broker);

}  // namespace dataflow::metrics

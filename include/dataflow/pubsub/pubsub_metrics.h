// The Pub/Sub consumer's metric families (docs/operations.md "Consumers"), which
// GooglePubsubConsumer::RegisterMetrics exports on a Telemetry; the writer is here for a
// caller with stats of its own (and for the test that every stats field is exported).
#pragma once

#include "dataflow/metrics/registration.h"
#include "dataflow/pubsub/consumer.h"

namespace dataflow::pubsub {

// dataflow_pubsub_{received,acks_sent,nacks_sent,extensions_sent,reconnects,stream_renewals,
// settle_retries,settles_expired,settles_failed,delivery_counts_evicted}_total and the
// dataflow_pubsub_{outstanding_messages,outstanding_bytes,streams_waiting_for_flow_control,
// delivery_counts} gauges.
void WritePubsubConsumerMetrics(metrics::ScrapeWriter& out, const metrics::Labels& labels,
                                const GooglePubsubConsumer::Stats& stats);

}  // namespace dataflow::pubsub

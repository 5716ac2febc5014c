// The families every service exports (docs/operations.md "Message outcomes", "Consumers",
// "Publish latency"), labelled {service}: the name of the service, which tells a pipeline's
// stages apart. The families of a service's own parts (its consumer, cache layers, enricher)
// are registered by those parts (their RegisterMetrics). A runner registers these once per
// service it builds, e.g.
//
//   metrics::AddServiceFamilies(telemetry, member);  // a messagepipeline::ServiceGroupMember
//   consumer->RegisterMetrics(telemetry, metrics::ServiceLabels(member.name));
//   TimedPublisher's histogram: &metrics::PublishLatency(telemetry, name)
#pragma once

#include <string_view>

#include "dataflow/messagepipeline/service.h"
#include "dataflow/messagepipeline/service_core.h"
#include "dataflow/metrics/telemetry.h"

namespace dataflow::metrics {

// {service="<service>"}: the labels a runner hands a service's components (their
// RegisterMetrics), so that every family of one service carries the same label.
Labels ServiceLabels(std::string_view service);

// dataflow_messages_{received,acked,processed,skipped,dead_lettered,dropped,nacked}_total,
// dataflow_{transform,processing}_errors_total, dataflow_batches_total and
// dataflow_batched_messages_total. acked is processed + skipped + dead_lettered + dropped:
// the outcomes the services settle with an ack (see docs/operations.md for the batching
// caveat).
void WriteServiceMetrics(ScrapeWriter& out, std::string_view service,
                         const messagepipeline::ServiceMetrics& metrics);

// dataflow_consumer_connected: 1 while the service's consumer is connected.
void WriteConsumerConnected(ScrapeWriter& out, std::string_view service, bool connected);

// Both of the above for a group member, labelled with its name, on every scrape for as long
// as the Telemetry lives (the callback shares the member's service and consumer).
void AddServiceFamilies(Telemetry& telemetry, const messagepipeline::ServiceGroupMember& member);

// dataflow_publish_latency_seconds: from Publish() to the broker's result, in
// LatencyBuckets(). Registered on first use; the same histogram for the same service after.
prometheus::Histogram& PublishLatency(Telemetry& telemetry, std::string_view service);

// dataflow_build_info{version} 1: the running program's version (dataflow/version.h).
void RegisterBuildInfo(Telemetry& telemetry, std::string_view version);

}  // namespace dataflow::metrics

// The mqttconverter package's metric families (docs/operations.md "Consumers", "Ingestion").
// MqttConsumer::RegisterMetrics and IngestionService::RegisterMetrics export them on a
// Telemetry; the writers are here for a caller with stats of its own (and for the test that
// every stats field is exported).
#pragma once

#include <cstdint>

#include "dataflow/metrics/registration.h"
#include "dataflow/mqttconverter/mqtt_consumer.h"

namespace dataflow::mqttconverter {

// dataflow_mqtt_{received,acked,nacked,redelivered,lost,unrouted,connects,left_with_broker,
// oversize_skipped}_total and the dataflow_mqtt_outstanding_bytes gauge.
void WriteMqttConsumerMetrics(metrics::ScrapeWriter& out, const metrics::Labels& labels,
                              const MqttConsumerStats& stats);

// dataflow_ingestion_rejected_total: messages of a route without a topic, dropped.
void WriteIngestionMetrics(metrics::ScrapeWriter& out, const metrics::Labels& labels,
                           std::uint64_t rejected);

}  // namespace dataflow::mqttconverter

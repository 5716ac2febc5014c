// The package's families: every stats field exported, and a consumer's registration lasting
// as long as the consumer.
#include "dataflow/mqttconverter/mqtt_metrics.h"

#include <gtest/gtest.h>

#include <string>

#include "dataflow/metrics/telemetry.h"
#include "dataflow_testing/metrics_fields.h"

namespace dataflow::mqttconverter {
namespace {

// When MqttConsumerStats gains a field, the binding stops compiling: export the field
// (mqtt_metrics.cc, docs/operations.md) and add it here.
TEST(MqttMetrics, EveryStatsFieldIsExported) {
  MqttConsumerStats stats;
  auto& [m1, m2, m3, m4, m5, m6, m7, m8, m9, m10] = stats;
  const auto values = testing::DistinctValues(m1, m2, m3, m4, m5, m6, m7, m8, m9, m10);
  testing::ExpectEveryValueExported(values, [&](metrics::ScrapeWriter& out) {
    WriteMqttConsumerMetrics(out, {{"service", "s"}}, stats);
  });
  testing::ExpectEveryValueExported({1024}, [](metrics::ScrapeWriter& out) {
    WriteIngestionMetrics(out, {{"service", "s"}}, 1024);
  });
}

TEST(MqttMetrics, TheNamesHelpAndLabelsDashboardsRelyOn) {
  metrics::Telemetry telemetry;
  telemetry.AddCallback([](metrics::ScrapeWriter& out) {
    WriteMqttConsumerMetrics(out, {{"service", "ingestion"}},
                             {.received = 11, .lost = 2, .left_with_broker = 3});
    WriteIngestionMetrics(out, {{"service", "ingestion"}}, 4);
  });
  const std::string text = telemetry.Render();
  for (const char* line : {
           "# HELP dataflow_mqtt_lost_total MQTT messages neither processed nor coming back "
           "(clean session, QoS 0 or ack_mode receipt).",
           R"(dataflow_mqtt_received_total{service="ingestion"} 11)",
           R"(dataflow_mqtt_lost_total{service="ingestion"} 2)",
           R"(dataflow_mqtt_left_with_broker_total{service="ingestion"} 3)",
           "# TYPE dataflow_mqtt_outstanding_bytes gauge",
           R"(dataflow_ingestion_rejected_total{service="ingestion"} 4)",
       }) {
    EXPECT_NE(text.find(std::string(line) + "\n"), std::string::npos) << line << "\n" << text;
  }
}

TEST(MqttMetrics, AConsumerExportsItsStatsUntilItIsDestroyed) {
  metrics::Telemetry telemetry;
  // Never started: Create does not connect.
  auto consumer = MqttConsumer::Create(
      {.broker_url = "tcp://127.0.0.1:1", .topic_mappings = {{.name = "t", .topic = "a/#"}}});
  ASSERT_TRUE(consumer.ok()) << consumer.status();
  (*consumer)->RegisterMetrics(telemetry, {{"service", "ingestion"}});
  EXPECT_NE(telemetry.Render().find("dataflow_mqtt_connects_total{service=\"ingestion\"} 0\n"),
            std::string::npos)
      << telemetry.Render();
  // Registering again replaces the first registration rather than adding a second.
  (*consumer)->RegisterMetrics(telemetry, {{"service", "ingestion"}});
  EXPECT_EQ(telemetry.rejected(), 0u);
  consumer->reset();
  EXPECT_EQ(telemetry.Render().find("dataflow_mqtt_"), std::string::npos) << telemetry.Render();
  EXPECT_EQ(telemetry.rejected(), 0u);
}

}  // namespace
}  // namespace dataflow::mqttconverter

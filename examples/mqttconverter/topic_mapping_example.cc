// MQTT ingestion with topic mappings: device telemetry and alerts arrive on different MQTT
// topics, get route names from the mappings, and are published to one broker topic per
// route (here the in-process broker; the Pub/Sub producer plugs in the same way).
//
//   topic_mapping_example [tcp://127.0.0.1:1883]
//
// Then, from another shell:  mosquitto_pub -t devices/dev-1/telemetry -m '{"t":21.5}'
// It stops after 3 messages or 60 seconds.
#include <cstdio>

#include "dataflow/messagepipeline/in_process_broker.h"
#include "dataflow/mqttconverter/ingestion_service.h"
#include "dataflow/mqttconverter/mqtt_consumer.h"

namespace mp = dataflow::messagepipeline;
namespace mc = dataflow::mqttconverter;

int main(int argc, char** argv) {
  // The first mapping whose filter matches a message's topic names its route.
  mc::MqttClientOptions mqtt{
      .broker_url = argc > 1 ? argv[1] : "tcp://127.0.0.1:1883",
      .topic_mappings = {
          {.name = "alerts", .topic = "devices/+/alerts", .qos = 1},
          {.name = "telemetry", .topic = "devices/+/telemetry", .qos = 1},
          {.name = "other", .topic = "devices/#", .qos = 0},  // everything else
      }};
  auto consumer = mc::MqttConsumer::Create(mqtt);
  if (!consumer.ok()) {
    std::fprintf(stderr, "%s\n", consumer.status().ToString().c_str());
    return 1;
  }

  auto broker = mp::InProcessBroker::Create();
  for (const char* topic : {"raw-alerts", "raw-telemetry", "raw-unrouted"}) {
    (void)broker->CreateTopic(topic);
    (void)broker->CreateSubscription(std::string(topic) + "-sub", topic);
  }
  auto service = mc::IngestionService::Create(
      {.route_topics = {{"alerts", "raw-alerts"}, {"telemetry", "raw-telemetry"}},
       .unmapped = mc::UnmappedRoutePolicy::kDefaultTopic,
       .default_topic = "raw-unrouted"},
      std::shared_ptr<mc::MqttConsumer>(std::move(*consumer)), broker->NewPublisher());
  if (!service.ok()) {
    std::fprintf(stderr, "%s\n", service.status().ToString().c_str());
    return 1;
  }
  if (auto s = (*service)->Start(); !s.ok()) {
    std::fprintf(stderr, "cannot start: %s\n", s.ToString().c_str());
    return 1;
  }

  // Read back what was published, from all three topics.
  std::vector<std::shared_ptr<mp::MessageConsumer>> readers;
  for (const char* sub : {"raw-alerts-sub", "raw-telemetry-sub", "raw-unrouted-sub"}) {
    readers.push_back(*broker->NewConsumer(sub));
    (void)readers.back()->Start();
  }
  int seen = 0;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (seen < 3 && std::chrono::steady_clock::now() < give_up) {
    for (std::size_t i = 0; i < readers.size(); ++i) {
      std::vector<mp::Message> got;
      readers[i]->Messages().PopBatchUntil(
          got, 10, std::chrono::steady_clock::now() + std::chrono::milliseconds(100));
      for (mp::Message& m : got) {
        std::printf("route=%s mqtt_topic=%s payload=%s\n", m.attributes["route_name"].c_str(),
                    m.attributes["mqtt_topic"].c_str(), m.data.payload.c_str());
        m.Ack();
        ++seen;
      }
    }
  }
  (void)(*service)->Stop(std::chrono::steady_clock::now() + std::chrono::seconds(10));
  for (auto& r : readers) (void)r->Stop(std::chrono::steady_clock::now() + std::chrono::seconds(5));
  return 0;
}

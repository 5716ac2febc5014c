// The original library's device-metadata example, in C++: messages carry a deviceId
// attribute; the enrichment service looks the device up and publishes the message with the
// device's metadata in `enrichmentData`. Here the device registry is an in-memory map and
// the topics are in-process; swap in a cache chain (LRU → Redis → Firestore) and Pub/Sub
// for production (docs/enrichment.md).
#include <cstdio>
#include <map>

#include "dataflow/enrichment/enrichment_service.h"
#include "dataflow/messagepipeline/in_process_broker.h"
#include "dataflow/messagepipeline/publisher.h"

namespace mp = dataflow::messagepipeline;
namespace en = dataflow::enrichment;

struct DeviceInfo {
  std::string name;
  std::string location;
};
void to_json(nlohmann::json& j, const DeviceInfo& d) {
  j = {{"name", d.name}, {"location", d.location}};
}

// Anything with `absl::StatusOr<V> Fetch(const K&)` is a fetcher; NotFound means "no such key".
struct DeviceRegistry {
  std::map<std::string, DeviceInfo> devices;
  absl::StatusOr<DeviceInfo> Fetch(const std::string& id) const {
    auto it = devices.find(id);
    if (it == devices.end()) return absl::NotFoundError("unknown device " + id);
    return it->second;
  }
};

int main() {
  auto broker = mp::InProcessBroker::Create();
  for (const char* t : {"raw", "enriched"}) (void)broker->CreateTopic(t);
  (void)broker->CreateSubscription("raw-sub", "raw");
  (void)broker->CreateSubscription("enriched-sub", "enriched");

  auto registry = std::make_shared<DeviceRegistry>();
  registry->devices["dev-1"] = {"Boiler", "basement"};

  auto enricher = en::MakeEnricher<std::string, DeviceInfo>(
      registry, en::AttributeKey("deviceId"), en::JsonApplier<DeviceInfo>(),
      {.on_not_found = en::FailurePolicy::kPassUnenriched, .on_error = en::FailurePolicy::kNack});
  auto service = en::EnrichmentService::CreateAsync(
      {.common = {.name = "device-enrichment"}}, *broker->NewConsumer("raw-sub"), *enricher,
      mp::PublishEnvelope(broker->NewPublisher(), "enriched"));  // ack after publish
  if (!service.ok()) return std::fprintf(stderr, "%s\n", service.status().ToString().c_str()), 1;
  if (!(*service)->Start().ok()) return 1;

  (void)broker->Publish("raw", {.payload = R"({"temp":71.5})"}, {{"deviceId", "dev-1"}});
  (void)broker->Publish("raw", {.payload = R"({"temp":20.0})"}, {{"deviceId", "dev-404"}});

  auto out = *broker->NewConsumer("enriched-sub");
  (void)out->Start();
  int shown = 0;
  while (shown < 2) {
    auto m = out->Messages().Pop();
    if (!m) break;
    std::printf("%s\n", m->data.payload.c_str());  // the JSON envelope with enrichmentData
    m->Ack();
    ++shown;
  }
  (void)out->Stop(std::chrono::steady_clock::now());
  (void)(*service)->Stop(std::chrono::seconds(5));
  const auto metrics = (*service)->enrichment_metrics();
  std::printf("enriched=%llu not_found=%llu\n", static_cast<unsigned long long>(metrics.enriched),
              static_cast<unsigned long long>(metrics.not_found));
  return shown == 2 && metrics.enriched == 1 && metrics.not_found == 1 ? 0 : 1;
}

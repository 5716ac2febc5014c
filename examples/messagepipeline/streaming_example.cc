// A streaming pipeline on the in-process broker: sensor readings are published as JSON,
// parsed by a transformer, and handled one at a time by a processor. Bad payloads are
// dead-lettered instead of being redelivered forever.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "dataflow/messagepipeline/errors.h"
#include "dataflow/messagepipeline/in_process_broker.h"
#include "dataflow/messagepipeline/streaming_service.h"

namespace mp = dataflow::messagepipeline;

struct Reading {
  std::string device;
  double celsius = 0;
};

mp::TransformResult<Reading> ParseReading(const mp::Message& m) {
  auto j = nlohmann::json::parse(m.data.payload, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("device") || !j.contains("celsius")) {
    return mp::PermanentError("not a reading: " + m.data.payload);
  }
  if (j["device"] == "test-rig") return mp::Skip<Reading>();  // ack and drop
  return Reading{j["device"].get<std::string>(), j["celsius"].get<double>()};
}

int main() {
  auto broker = mp::InProcessBroker::Create();
  (void)broker->CreateTopic("readings");
  (void)broker->CreateSubscription("readings-sub", "readings");
  (void)broker->CreateTopic("dead-letters");
  // A dead letter counts as stored once a subscriber of the dead-letter topic acked it; here a
  // second service prints them (in production: an archive, a table, a Pub/Sub topic).
  (void)broker->CreateSubscription("dead-letters-sub", "dead-letters");
  auto parked = mp::StreamingService<std::string>::Create(
      {.common = {.name = "dead-letters", .num_workers = 1}},
      *broker->NewConsumer("dead-letters-sub"), mp::RawPayloadTransformer,
      [](mp::Message& m, std::string& payload) {
        std::printf("dead letter: %s (%s)\n", payload.c_str(),
                    m.attributes["dataflow_error"].c_str());
        return absl::OkStatus();
      });
  if (!parked.ok() || !(*parked)->Start().ok()) return 1;

  auto service = mp::StreamingService<Reading>::Create(
      {.common = {.name = "thermometer",
                  .num_workers = 2,
                  .dead_letter = broker->NewDeadLetterSink("dead-letters")}},
      *broker->NewConsumer("readings-sub"), ParseReading, [](mp::Message& m, Reading& r) {
        std::printf("%s: %s reads %.1f C\n", m.data.id.c_str(), r.device.c_str(), r.celsius);
        return absl::OkStatus();  // the service acks on OK, nacks on an error
      });
  if (!service.ok()) return std::fprintf(stderr, "%s\n", service.status().ToString().c_str()), 1;
  if (auto s = (*service)->Start(); !s.ok()) return 1;

  for (const char* p : {R"({"device":"d1","celsius":21.5})", R"({"device":"test-rig","celsius":0})",
                        "garbage", R"({"device":"d2","celsius":19})"}) {
    (void)broker->Publish("readings", {.payload = p});
  }
  // Stop drains what was delivered, then settles everything; wait until all are acked first.
  while (broker->Stats("readings-sub")->acked < 4) std::this_thread::yield();
  auto stopped = (*service)->Stop(std::chrono::seconds(10));
  (void)(*parked)->Stop(std::chrono::seconds(10));
  const auto m = (*service)->metrics();
  std::printf("processed=%llu skipped=%llu dead_lettered=%llu nacked=%llu stop=%s\n",
              static_cast<unsigned long long>(m.processed),
              static_cast<unsigned long long>(m.skipped),
              static_cast<unsigned long long>(m.dead_lettered),
              static_cast<unsigned long long>(m.nacked), stopped.ToString().c_str());
  return stopped.ok() && m.processed == 2 && m.dead_lettered == 1 ? 0 : 1;
}

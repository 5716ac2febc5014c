// Publish a few envelopes and consume them through a StreamingService, against the Pub/Sub
// emulator (or Google Cloud with credentials):
//   export PUBSUB_EMULATOR_HOST=127.0.0.1:8085 GOOGLE_CLOUD_PROJECT=demo
//   ./pubsub_example
// Creates topic "example-topic" and subscription "example-sub" if they do not exist.
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <set>

#include "dataflow/messagepipeline/streaming_service.h"
#include "dataflow/pubsub/admin.h"
#include "dataflow/pubsub/consumer.h"
#include "dataflow/pubsub/producer.h"

namespace mp = dataflow::messagepipeline;
namespace ps = dataflow::pubsub;

int main() {
  if (std::getenv("PUBSUB_EMULATOR_HOST") == nullptr) {
    std::fprintf(stderr, "set PUBSUB_EMULATOR_HOST (and GOOGLE_CLOUD_PROJECT) first\n");
    return 2;
  }
  auto stub = ps::MakePubsubStub();
  if (!stub.ok()) return std::fprintf(stderr, "%s\n", stub.status().ToString().c_str()), 1;
  const char* env_project = std::getenv("GOOGLE_CLOUD_PROJECT");
  std::string project = env_project != nullptr ? env_project : "demo";
  // ALREADY_EXISTS is fine on a second run.
  (void)ps::CreateTopic(**stub, project, "example-topic");
  (void)ps::CreateSubscription(**stub, project, "example-sub", "example-topic");

  auto producer =
      ps::GooglePubsubProducer::Create(*stub, {.project_id = project, .topic_id = "example-topic"});
  if (!producer.ok()) return std::fprintf(stderr, "%s\n", producer.status().ToString().c_str()), 1;
  for (int i = 0; i < 10; ++i) {
    auto id = (*producer)->Publish(mp::MessageData{.payload = "reading " + std::to_string(i)},
                                   {{"device", "d" + std::to_string(i % 3)}});
    if (auto r = id.get(); !r.ok())
      return std::fprintf(stderr, "%s\n", r.status().ToString().c_str()), 1;
  }

  std::shared_ptr<ps::GooglePubsubConsumer> consumer = *ps::GooglePubsubConsumer::Create(
      *stub, {.project_id = project, .subscription_id = "example-sub"});
  std::mutex mu;
  std::set<std::string> seen;
  auto service = mp::StreamingService<mp::MessageData>::Create(
      {.common = {.name = "example"}}, consumer, mp::EnvelopeTransformer,
      [&](mp::Message& m, mp::MessageData& data) {
        std::lock_guard lock(mu);
        std::printf("%s device=%s\n", data.payload.c_str(), m.attributes["device"].c_str());
        seen.insert(data.payload);
        return absl::OkStatus();
      });
  if (!service.ok() || !(*service)->Start().ok()) return 1;
  for (int i = 0; i < 300; ++i) {
    {
      std::lock_guard lock(mu);
      if (seen.size() >= 10) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  (void)(*service)->Stop(std::chrono::seconds(10));
  return seen.size() >= 10 ? 0 : 1;
}

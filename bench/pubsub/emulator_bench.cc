// Publish and consume rate (1 KiB messages) of our client against the emulator in
// PUBSUB_EMULATOR_HOST; run by bench/pubsub/compare_with_node.sh beside the Node.js client.
//   emulator_bench <messages> <streams>   prints "cpp publish_msgs_per_s=.. consume_msgs_per_s=.."
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "dataflow/pubsub/admin.h"
#include "dataflow/pubsub/consumer.h"
#include "dataflow/pubsub/producer.h"

namespace ps = dataflow::pubsub;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  if (argc != 3 || std::getenv("PUBSUB_EMULATOR_HOST") == nullptr) {
    std::fprintf(stderr, "usage: PUBSUB_EMULATOR_HOST=h:p emulator_bench <messages> <streams>\n");
    return 2;
  }
  const int n = std::atoi(argv[1]);
  const int streams = std::atoi(argv[2]);
  auto stub = *ps::MakePubsubStub();
  const std::string project = "bench";
  const std::string id = "cpp-" + std::to_string(streams) + "-" +
                         std::to_string(Clock::now().time_since_epoch().count());
  if (!ps::CreateTopic(*stub, project, id).ok() ||
      !ps::CreateSubscription(*stub, project, id, id).ok()) {
    std::fprintf(stderr, "cannot create topic/subscription\n");
    return 1;
  }
  const std::string payload(1024, 'x');
  auto producer = *ps::GooglePubsubProducer::Create(stub, {.project_id = project, .topic_id = id});
  auto t0 = Clock::now();
  std::vector<std::future<ps::GooglePubsubProducer::Result>> fs;
  fs.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) fs.push_back(producer->PublishRaw(payload));
  for (auto& f : fs) {
    if (!f.get().ok()) return 1;
  }
  const double publish_s = std::chrono::duration<double>(Clock::now() - t0).count();

  auto consumer = *ps::GooglePubsubConsumer::Create(
      stub, {.project_id = project, .subscription_id = id, .streams = streams});
  t0 = Clock::now();
  if (!consumer->Start().ok()) return 1;
  for (int got = 0; got < n; ++got) {
    auto m = consumer->Messages().Pop();
    if (!m) return 1;
    m->Ack();
  }
  const double consume_s = std::chrono::duration<double>(Clock::now() - t0).count();
  (void)consumer->Stop(Clock::now() + std::chrono::seconds(5));
  while (auto m = consumer->Messages().Pop()) m->Nack();
  std::printf("cpp streams=%d publish_msgs_per_s=%.0f consume_msgs_per_s=%.0f\n", streams,
              n / publish_s, n / consume_s);
  return 0;
}

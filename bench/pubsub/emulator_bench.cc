// Publish and consume rate (1 KiB messages) of our client against the emulator in
// PUBSUB_EMULATOR_HOST; run by bench/pubsub/compare_with_node.sh beside the Node.js client.
//   emulator_bench <messages> <streams>
// prints one line of key=value fields: the rates, our process's CPU per message, and, when
// DATAFLOW_BENCH_EMULATOR_PIDS lists the emulator's processes, the CPU cores the emulator
// used in each phase (which side saturates).
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "dataflow/pubsub/admin.h"
#include "dataflow/pubsub/consumer.h"
#include "dataflow/pubsub/producer.h"

namespace ps = dataflow::pubsub;
using Clock = std::chrono::steady_clock;

namespace {

double OwnCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// utime + stime of the listed processes (fields 14 and 15 of /proc/PID/stat), in seconds.
double EmulatorCpuSeconds() {
  const char* pids = std::getenv("DATAFLOW_BENCH_EMULATOR_PIDS");
  if (pids == nullptr) return 0;
  std::istringstream list(pids);
  double ticks = 0;
  for (std::string pid; list >> pid;) {
    std::ifstream stat("/proc/" + pid + "/stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    // The command name (field 2) may hold spaces: count fields after its closing ')'.
    std::istringstream rest(line.substr(line.rfind(')') + 2));
    std::string field;
    for (int i = 3; i <= 13; ++i) rest >> field;
    double utime = 0;
    double stime = 0;
    rest >> utime >> stime;
    ticks += utime + stime;
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Wall time, our CPU and the emulator's CPU over one phase.
struct Phase {
  Clock::time_point wall0 = Clock::now();
  double cpu0 = OwnCpuSeconds();
  double emulator0 = EmulatorCpuSeconds();
  double wall = 0, cpu = 0, emulator = 0;
  void End() {
    wall = std::chrono::duration<double>(Clock::now() - wall0).count();
    cpu = OwnCpuSeconds() - cpu0;
    emulator = EmulatorCpuSeconds() - emulator0;
  }
};

}  // namespace

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
  Phase publish;
  std::vector<std::future<ps::GooglePubsubProducer::Result>> fs;
  fs.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) fs.push_back(producer->PublishRaw(payload));
  for (auto& f : fs) {
    if (!f.get().ok()) return 1;
  }
  publish.End();

  auto consumer = *ps::GooglePubsubConsumer::Create(
      stub, {.project_id = project, .subscription_id = id, .streams = streams});
  Phase consume;
  if (!consumer->Start().ok()) return 1;
  for (int got = 0; got < n; ++got) {
    auto m = consumer->Messages().Pop();
    if (!m) return 1;
    m->Ack();
  }
  consume.End();
  (void)consumer->Stop(Clock::now() + std::chrono::seconds(5));
  while (auto m = consumer->Messages().Pop()) m->Nack();
  std::printf(
      "cpp streams=%d publish_msgs_per_s=%.0f consume_msgs_per_s=%.0f "
      "publish_cpu_us_per_msg=%.1f consume_cpu_us_per_msg=%.1f "
      "emulator_cores_publish=%.2f emulator_cores_consume=%.2f\n",
      streams, n / publish.wall, n / consume.wall, publish.cpu * 1e6 / n, consume.cpu * 1e6 / n,
      publish.emulator / publish.wall, consume.emulator / consume.wall);
  return 0;
}

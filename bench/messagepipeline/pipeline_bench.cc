// Messages/s through StreamingService and BatchingService with trivial stages, beside the
// baseline of a raw bounded-queue hand-off of the same messages (producer thread → queue →
// N worker threads that ack), measured in the same run. Prints the ratio service/baseline
// per worker count at the end. Also measures the in-process broker end to end.
//
//   build/release/bench/messagepipeline/pipeline_bench [--benchmark_repetitions=5]
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <atomic>
#include <cstdio>
#include <future>
#include <map>
#include <thread>

#include "dataflow/messagepipeline/batching_service.h"
#include "dataflow/messagepipeline/in_process_broker.h"
#include "dataflow/messagepipeline/publisher.h"
#include "dataflow/messagepipeline/streaming_service.h"

namespace dataflow::messagepipeline {
namespace {

constexpr std::size_t kMessages = 200'000;
constexpr std::size_t kChannelCapacity = 1000;

class CountingHandler final : public AckHandler {
 public:
  explicit CountingHandler(std::atomic<std::uint64_t>* acks) : acks_(acks) {}
  void OnAck() override { acks_->fetch_add(1, std::memory_order_relaxed); }
  void OnNack() override {}

 private:
  std::atomic<std::uint64_t>* acks_;
};

std::vector<Message> MakeMessages(std::atomic<std::uint64_t>* acks) {
  std::vector<Message> out;
  out.reserve(kMessages);
  for (std::size_t i = 0; i < kMessages; ++i) {
    out.emplace_back(MessageData{.id = std::to_string(i), .payload = std::string(64, 'x')},
                     Attributes{}, std::make_unique<CountingHandler>(acks));
  }
  return out;
}

// The pipeline's input: a channel a producer thread fills, like a real consumer's.
class ChannelConsumer final : public MessageConsumer {
 public:
  ChannelConsumer() : channel_(kChannelCapacity) {}
  absl::Status Start() override { return absl::OkStatus(); }
  absl::Status Stop(Deadline) override {
    channel_.Close();
    return absl::OkStatus();
  }
  BoundedQueue<Message>& Messages() override { return channel_; }
  std::shared_future<absl::Status> Done() override { return {}; }

 private:
  BoundedQueue<Message> channel_;
};

void Produce(BoundedQueue<Message>& channel, std::vector<Message>& messages) {
  // Chunks like a real consumer's pulls (the in-process consumer takes 64 at a time).
  constexpr std::size_t kChunk = 64;
  std::vector<Message> chunk;
  for (std::size_t i = 0; i < messages.size(); i += kChunk) {
    for (std::size_t j = i; j < std::min(i + kChunk, messages.size()); ++j) {
      chunk.push_back(std::move(messages[j]));
    }
    channel.PushAll(chunk);
    chunk.clear();
  }
}

TransformResult<int> TrivialTransform(const Message& m) {
  return std::optional<int>(static_cast<int>(m.data.payload.size()));
}

void BM_RawQueueHandoff(benchmark::State& state) {
  const int workers = static_cast<int>(state.range(0));
  for (auto _ : state) {
    state.PauseTiming();
    std::atomic<std::uint64_t> acks{0};
    auto messages = MakeMessages(&acks);
    BoundedQueue<Message> queue(kChannelCapacity);
    state.ResumeTiming();
    {
      std::vector<std::jthread> threads;
      for (int w = 0; w < workers; ++w) {
        threads.emplace_back([&] {
          std::vector<Message> batch;
          while (queue.PopBatch(batch, 32, static_cast<std::size_t>(workers)) > 0) {
            for (auto& m : batch) m.Ack();
            batch.clear();
          }
        });
      }
      Produce(queue, messages);
      queue.Close();
    }
    state.PauseTiming();
    if (acks.load() != kMessages) state.SkipWithError("lost messages");
    messages.clear();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kMessages));
}

void BM_StreamingService(benchmark::State& state) {
  const int workers = static_cast<int>(state.range(0));
  for (auto _ : state) {
    state.PauseTiming();
    std::atomic<std::uint64_t> acks{0};
    auto messages = MakeMessages(&acks);
    auto consumer = std::make_shared<ChannelConsumer>();
    auto service = *StreamingService<int>::Create(
        {.common = {.num_workers = workers}}, consumer, TrivialTransform,
        [](Message&, int& v) { return v >= 0 ? absl::OkStatus() : absl::InternalError("x"); });
    state.ResumeTiming();
    (void)service->Start();
    Produce(consumer->Messages(), messages);
    (void)service->Stop(std::chrono::minutes(1));
    state.PauseTiming();
    if (acks.load() != kMessages) state.SkipWithError("lost messages");
    messages.clear();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kMessages));
}

void BM_BatchingService(benchmark::State& state) {
  const int workers = static_cast<int>(state.range(0));
  for (auto _ : state) {
    state.PauseTiming();
    std::atomic<std::uint64_t> acks{0};
    auto messages = MakeMessages(&acks);
    auto consumer = std::make_shared<ChannelConsumer>();
    auto service = *BatchingService<int>::Create(
        {.common = {.num_workers = workers},
         .batch_size = 100,
         .flush_interval = std::chrono::seconds(1)},
        consumer, TrivialTransform, [](std::span<ProcessableItem<int>> batch) {
          return batch.empty() ? absl::InternalError("x") : absl::OkStatus();
        });
    state.ResumeTiming();
    (void)service->Start();
    Produce(consumer->Messages(), messages);
    (void)service->Stop(std::chrono::minutes(1));
    state.PauseTiming();
    if (acks.load() != kMessages) state.SkipWithError("lost messages");
    messages.clear();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kMessages));
}

// End to end through the in-process broker: delivery, leases and acks included.
void BM_StreamingServiceOverInProcessBroker(benchmark::State& state) {
  const int workers = static_cast<int>(state.range(0));
  for (auto _ : state) {
    state.PauseTiming();
    // The whole backlog is queued before the service starts: the subscription must hold it
    // (by default a full one makes each further publish wait 1 s and fail).
    auto broker = InProcessBroker::Create({.max_subscription_messages = kMessages});
    (void)broker->CreateTopic("t");
    (void)broker->CreateSubscription("s", "t");
    for (std::size_t i = 0; i < kMessages; ++i) {
      if (auto id = broker->Publish("t", MessageData{.payload = std::string(64, 'x')}); !id.ok()) {
        state.SkipWithError(std::string(id.status().message()).c_str());
        return;
      }
    }
    auto consumer = *broker->NewConsumer("s", {.channel_capacity = kChannelCapacity});
    std::atomic<std::size_t> processed{0};
    std::promise<void> all_processed;
    auto service = *StreamingService<int>::Create(
        {.common = {.num_workers = workers}}, consumer, TrivialTransform, [&](Message&, int&) {
          if (processed.fetch_add(1, std::memory_order_relaxed) + 1 == kMessages) {
            all_processed.set_value();
          }
          return absl::OkStatus();
        });
    state.ResumeTiming();
    (void)service->Start();
    all_processed.get_future().wait();
    (void)service->Stop(std::chrono::minutes(1));  // includes settling the last acks
    state.PauseTiming();
    if (broker->Stats("s")->acked != kMessages) state.SkipWithError("lost messages");
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kMessages));
}

double ProcessCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// The shape of config/local.yaml without its I/O: a source publishes to topic "in" and waits
// for end-to-end acknowledgement; an async relay service (the enrichment's place) publishes
// each message's envelope to "out"; a sink service acks. A publish to "in" completes only once
// the sink acked the relayed copy. Reports the process's CPU per message beside the rate.
void BM_RelayChainOverInProcessBroker(benchmark::State& state) {
  constexpr std::size_t kChainMessages = 50'000;
  const int workers = static_cast<int>(state.range(0));
  double cpu_seconds = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto broker = InProcessBroker::Create();
    (void)broker->CreateTopic("in");
    (void)broker->CreateTopic("out");
    (void)broker->CreateSubscription("in-relay", "in");
    (void)broker->CreateSubscription("out-sink", "out");
    auto relay = *StreamingService<int>::CreateAsync(
        {.common = {.name = "relay", .num_workers = workers}, .in_flight = {.max_messages = 4000}},
        *broker->NewConsumer("in-relay"), TrivialTransform,
        [process = PublishEnvelope(broker->NewPublisher(), "out")](
            Message& m, int&, Completion done) { process(m, std::move(done)); });
    auto sink = *StreamingService<int>::Create({.common = {.name = "sink", .num_workers = workers}},
                                               *broker->NewConsumer("out-sink"), TrivialTransform,
                                               [](Message&, int&) { return absl::OkStatus(); });
    (void)sink->Start();
    (void)relay->Start();
    std::atomic<std::size_t> completed{0};
    std::promise<void> all_completed;
    const double cpu_before = ProcessCpuSeconds();
    state.ResumeTiming();
    for (std::size_t i = 0; i < kChainMessages; ++i) {
      broker->PublishAsync("in", MessageData{.payload = std::string(64, 'x')}, {}, {},
                           [&](const absl::StatusOr<std::string>&) {
                             if (completed.fetch_add(1) + 1 == kChainMessages) {
                               all_completed.set_value();
                             }
                           });
    }
    all_completed.get_future().wait();
    state.PauseTiming();
    cpu_seconds += ProcessCpuSeconds() - cpu_before;
    (void)relay->Stop(std::chrono::minutes(1));
    (void)sink->Stop(std::chrono::minutes(1));
    state.ResumeTiming();
  }
  const auto messages = static_cast<double>(state.iterations() * kChainMessages);
  state.SetItemsProcessed(static_cast<int64_t>(messages));
  state.counters["cpu_us_per_msg"] = cpu_seconds * 1e6 / messages;
}

BENCHMARK(BM_RawQueueHandoff)->Arg(1)->Arg(2)->Arg(4)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_StreamingService)
    ->Arg(1)
    ->Arg(2)
    ->Arg(4)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_BatchingService)->Arg(1)->Arg(2)->Arg(4)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_StreamingServiceOverInProcessBroker)
    ->Arg(1)
    ->Arg(2)
    ->Arg(4)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_RelayChainOverInProcessBroker)
    ->Arg(1)
    ->Arg(5)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// Collects items/s per benchmark (median over repetitions when there are several).
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const auto& run : runs) {
      if (run.error_occurred) continue;
      const bool aggregate = run.run_type == Run::RT_Aggregate;
      if (aggregate && run.aggregate_name != "median") continue;
      auto it = run.counters.find("items_per_second");
      if (it == run.counters.end()) continue;
      // Individual repetitions are overwritten by the median when it comes.
      rates_[run.run_name.str()] = it->second.value;
    }
  }
  void Summarise() const {
    std::printf("\nmessages/s (median where repeated), ratio to the raw queue hand-off:\n");
    for (const char* name :
         {"BM_StreamingService", "BM_BatchingService", "BM_StreamingServiceOverInProcessBroker"}) {
      for (int workers : {1, 2, 4}) {
        const std::string suffix = "/" + std::to_string(workers) + "/real_time";
        auto base = rates_.find(std::string("BM_RawQueueHandoff") + suffix);
        auto svc = rates_.find(name + suffix);
        if (base == rates_.end() || svc == rates_.end()) continue;
        std::printf("  %-40s workers=%d  %12.0f msg/s  baseline %12.0f msg/s  ratio %.2f\n", name,
                    workers, svc->second, base->second, svc->second / base->second);
      }
    }
  }

 private:
  std::map<std::string, double> rates_;
};

}  // namespace
}  // namespace dataflow::messagepipeline

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  dataflow::messagepipeline::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.Summarise();
  benchmark::Shutdown();
  return 0;
}

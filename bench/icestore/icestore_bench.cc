// icestore throughput: the whole service (in-process broker → IceStorageService →
// LocalDirectoryUploader) with 1 KiB payloads, the gzip codecs at levels 1-6 on the same
// JSONL bytes, and the baseline: the system's `gzip -1` on those bytes, in the same run.
// bench/icestore/run.sh prints the ratios.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "dataflow/icestore/archival.h"
#include "dataflow/icestore/gzip.h"
#include "dataflow/icestore/ice_storage_service.h"
#include "dataflow/icestore/local_directory_uploader.h"
#include "dataflow/messagepipeline/in_process_broker.h"

namespace {

using dataflow::icestore::GzipCodec;
namespace mp = dataflow::messagepipeline;

constexpr int kPayloadBytes = 1024;

// A sensor-like JSON payload of exactly 1 KiB: realistic redundancy, not all-zero bytes.
std::string Payload(std::mt19937& rng, int i) {
  std::string p = "{\"device\":\"dev-" + std::to_string(i % 500) + "\",\"readings\":[";
  std::uniform_real_distribution<double> v(0, 100);
  while (p.size() < kPayloadBytes - 40) p += std::to_string(v(rng)).substr(0, 6) + ",";
  p += "0],\"pad\":\"";
  p.resize(kPayloadBytes - 2, 'x');
  return p + "\"}";
}

// The JSONL the service writes for n messages (payload base64 inside each line).
const std::string& Jsonl() {
  static const std::string jsonl = [] {
    std::mt19937 rng(42);
    std::string out;
    for (int i = 0; i < 8192; ++i) {
      out += dataflow::icestore::EncodeArchivalLine({.id = "msg-" + std::to_string(i),
                                                     .batch_key = "2025/06/15/loc-1",
                                                     .original_payload = Payload(rng, i),
                                                     .archived_at = mp::Clock::now()});
    }
    return out;
  }();
  return jsonl;
}

void BM_Gzip(benchmark::State& state) {
  const auto codec = static_cast<GzipCodec>(state.range(0));
  const int level = static_cast<int>(state.range(1));
  const std::string& data = Jsonl();
  std::size_t compressed = 0;
  for (auto _ : state) {
    auto z = dataflow::icestore::GzipCompress(data, {.codec = codec, .level = level});
    if (!z.ok()) state.SkipWithError(std::string(z.status().message()).c_str());
    compressed = z->size();
    benchmark::DoNotOptimize(z->data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
  state.counters["ratio"] = static_cast<double>(data.size()) / static_cast<double>(compressed);
  state.SetLabel(codec == GzipCodec::kZlib ? "zlib" : "libdeflate");
}
BENCHMARK(BM_Gzip)
    ->ArgsProduct({{static_cast<int>(GzipCodec::kZlib), static_cast<int>(GzipCodec::kLibdeflate)},
                   {1, 2, 3, 4, 5, 6}})
    ->Unit(benchmark::kMillisecond);

// The baseline: `gzip -1` over the same bytes, file to /dev/null (process start included,
// amortised over 8 MiB).
void BM_GzipCli1(benchmark::State& state) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("icestore-bench-" + std::to_string(::getpid()) + ".jsonl");
  std::ofstream(path, std::ios::binary) << Jsonl();
  const std::string cmd = "gzip -1 -c '" + path.string() + "' > /dev/null";
  for (auto _ : state) {
    if (std::system(cmd.c_str()) != 0) state.SkipWithError("gzip failed");
  }
  std::filesystem::remove(path);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * Jsonl().size()));
}
BENCHMARK(BM_GzipCli1)->Unit(benchmark::kMillisecond)->UseRealTime();

// The whole service: publish n messages, archive them all, wait for every ack. Bytes are the
// JSONL bytes archived (what gzip -1 is given above), items are messages.
void BM_ServiceToLocalDirectory(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const auto codec = static_cast<GzipCodec>(state.range(1));
  const auto root =
      std::filesystem::temp_directory_path() / ("icestore-bench-dir-" + std::to_string(::getpid()));
  std::mt19937 rng(7);
  std::vector<std::string> payloads;
  for (int i = 0; i < 1000; ++i) payloads.push_back(Payload(rng, i));
  std::size_t jsonl_bytes = 0;
  for (auto _ : state) {
    state.PauseTiming();
    std::filesystem::remove_all(root);
    // Everything is published before the service starts: the subscription must hold it all
    // (the default bound would block each publish beyond it for max_publish_block, then fail).
    auto broker =
        mp::InProcessBroker::Create({.max_subscription_messages = 2 * static_cast<std::size_t>(n),
                                     .max_subscription_bytes = std::size_t{1} << 30});
    (void)broker->CreateTopic("t");
    (void)broker->CreateSubscription("s", "t");
    for (int i = 0; i < n; ++i) {
      (void)broker->Publish(
          "t", mp::MessageData{.id = "m" + std::to_string(i), .payload = payloads[i % 1000]},
          {{"location", "loc-" + std::to_string(i % 4)}});
    }
    std::shared_ptr<dataflow::icestore::DataUploader> uploader =
        *dataflow::icestore::LocalDirectoryUploader::Create(
            {.root = root.string(), .prefix = "bench", .gzip = {.codec = codec, .level = 1}});
    auto service = *dataflow::icestore::IceStorageService::Create(
        {.common = {.num_workers = 2}, .batcher = {.batch_size = 1000}}, *broker->NewConsumer("s"),
        uploader);
    state.ResumeTiming();
    (void)service->Start();
    while (broker->Stats("s")->acked < static_cast<std::uint64_t>(n)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));  // a bench, not a test
    }
    (void)service->Stop(std::chrono::seconds(30));
    state.PauseTiming();
    jsonl_bytes = 0;
    for (auto& e : std::filesystem::recursive_directory_iterator(root)) {
      if (e.is_regular_file()) jsonl_bytes += e.file_size();
    }
    state.ResumeTiming();
  }
  std::filesystem::remove_all(root);
  // JSONL size per message is the same as in Jsonl(): ~1.45 KiB for a 1 KiB payload.
  const double line = static_cast<double>(Jsonl().size()) / 8192.0;
  state.SetItemsProcessed(state.iterations() * n);
  state.SetBytesProcessed(static_cast<int64_t>(static_cast<double>(state.iterations() * n) * line));
  state.counters["payload_MBps"] = benchmark::Counter(
      static_cast<double>(state.iterations() * n) * kPayloadBytes, benchmark::Counter::kIsRate);
  state.counters["gz_bytes"] = static_cast<double>(jsonl_bytes);
  state.SetLabel(codec == GzipCodec::kZlib ? "zlib-1" : "libdeflate-1");
}
BENCHMARK(BM_ServiceToLocalDirectory)
    ->Args({20000, static_cast<int>(GzipCodec::kZlib)})
    ->Args({20000, static_cast<int>(GzipCodec::kLibdeflate)})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();

// The envelope codec's parse cost: ParseJsonBounded (the depth/size-limited parser every
// decoder of outside data uses) against nlohmann::json::parse on the same bytes (the
// baseline: what DecodeMessageData called before the limits), and DecodeMessageData itself.
// A typical envelope: a ~120-byte reading as payload and device metadata as enrichmentData.
#include <benchmark/benchmark.h>

#include <nlohmann/json.hpp>
#include <string>

#include "dataflow/messagepipeline/json_limits.h"
#include "dataflow/messagepipeline/message.h"

namespace mp = dataflow::messagepipeline;

namespace {

std::string TypicalEnvelope() {
  mp::MessageData data{
      .id = "4f1c2a9e-7d3b-4c55-9a61-0b2e8f3d7c10",
      .payload = R"({"deviceId":"device-0042","temperature":21.37,"humidity":48.2,)"
                 R"("sentAt":"2026-11-29T23:57:10.123456Z","seq":123456})",
      .publish_time = mp::Clock::now(),
      .enrichment_data = {{"name", "Sensor 42"}, {"location", "building-2"}, {"floor", 3}}};
  return mp::EncodeMessageData(data);
}

void BM_NlohmannParse(benchmark::State& state) {
  const std::string text = TypicalEnvelope();
  for (auto _ : state) {
    nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    benchmark::DoNotOptimize(j);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_NlohmannParse);

void BM_ParseJsonBounded(benchmark::State& state) {
  const std::string text = TypicalEnvelope();
  for (auto _ : state) {
    auto j = mp::ParseJsonBounded(text);
    benchmark::DoNotOptimize(j);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_ParseJsonBounded);

void BM_DecodeMessageData(benchmark::State& state) {
  const std::string text = TypicalEnvelope();
  for (auto _ : state) {
    auto d = mp::DecodeMessageData(text);
    benchmark::DoNotOptimize(d);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_DecodeMessageData);

}  // namespace

BENCHMARK_MAIN();

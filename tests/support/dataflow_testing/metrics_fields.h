// Checks that every field of a stats struct reaches /metrics. Bind the struct's fields with a
// structured binding, so that a new field stops the test compiling until it is exported:
//
//   mqttconverter::MqttConsumerStats stats;
//   auto& [f1, f2, f3] = stats;                      // every field, in order
//   const auto values = DistinctValues(f1, f2, f3);  // 1024, 2048, 4096
//   ExpectEveryValueExported(values, [&](metrics::ScrapeWriter& out) {
//     WriteMqttConsumerMetrics(out, {{"service", "s"}}, stats);
//   });
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

#include "dataflow/metrics/telemetry.h"

namespace dataflow::testing {

// Sets each field to its own power of two (from 2^10), so every exported value, and any sum
// of them, is recognisable; returns them.
template <typename... Fields>
std::vector<std::uint64_t> DistinctValues(Fields&... fields) {
  std::vector<std::uint64_t> values;
  std::uint64_t next = 1024;
  ((fields = static_cast<std::remove_reference_t<Fields>>(next), values.push_back(next), next *= 2),
   ...);
  return values;
}

// Each of `values` is the value of a sample that `write` exports, and nothing is rejected.
inline void ExpectEveryValueExported(const std::vector<std::uint64_t>& values,
                                     std::function<void(metrics::ScrapeWriter&)> write) {
  metrics::Telemetry telemetry;
  telemetry.AddCallback(std::move(write));
  const std::string text = telemetry.Render();
  EXPECT_EQ(telemetry.rejected(), 0u) << text;
  for (std::uint64_t v : values) {
    EXPECT_NE(text.find(" " + std::to_string(v) + "\n"), std::string::npos)
        << "a stats field with value " << v << " is not exported:\n"
        << text;
  }
}

}  // namespace dataflow::testing

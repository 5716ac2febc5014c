// What the service tests share beyond the scripted consumer: the payloads that script what
// the code under test (a transformer, a stage) does with a message, and checks of how each
// message settled and of what the service counted, each stated as one table.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "dataflow/messagepipeline/errors.h"
#include "dataflow/messagepipeline/service_core.h"
#include "scripted_consumer.h"

namespace dataflow::messagepipeline::testing {

// The failure a scripted payload asks for: "bad" a permanent error, "err" a transient one,
// "throw" an exception (thrown here, as the code under test would); nullopt for any other.
inline std::optional<absl::Status> ScriptedFailure(const std::string& payload) {
  if (payload == "bad") return PermanentError("payload does not parse");
  if (payload == "err") return absl::UnavailableError("transient");
  if (payload == "throw") throw std::runtime_error("scripted exception");
  return std::nullopt;
}

// Expects each message id to have settled as given.
inline void ExpectOutcomes(const ScriptedConsumer& consumer,
                           const std::vector<std::pair<std::string, Outcome>>& expected) {
  for (const auto& [id, outcome] : expected) {
    EXPECT_EQ(consumer.outcome(id), outcome) << id;
  }
}

// Expects every counter of `actual` to equal `expected`'s, so a counter a test leaves out is
// expected to be 0 (nothing counted twice or in the wrong place).
inline void ExpectMetrics(const ServiceMetrics& actual, const ServiceMetrics& expected) {
  static constexpr std::pair<const char*, std::uint64_t ServiceMetrics::*> kCounters[] = {
      {"received", &ServiceMetrics::received},
      {"processed", &ServiceMetrics::processed},
      {"skipped", &ServiceMetrics::skipped},
      {"dead_lettered", &ServiceMetrics::dead_lettered},
      {"dropped", &ServiceMetrics::dropped},
      {"nacked", &ServiceMetrics::nacked},
      {"transform_errors", &ServiceMetrics::transform_errors},
      {"processing_errors", &ServiceMetrics::processing_errors},
      {"batches", &ServiceMetrics::batches},
      {"batched_messages", &ServiceMetrics::batched_messages},
  };
  for (const auto& [name, counter] : kCounters) {
    EXPECT_EQ(actual.*counter, expected.*counter) << name;
  }
}

}  // namespace dataflow::messagepipeline::testing

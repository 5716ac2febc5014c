// Time for the MQTT consumer's units (session, keep-alive, connection, redeliverer): read
// through an injected function so unit tests move it by hand instead of sleeping, and the one
// retry delay the reconnect loop and the local redelivery share.
#pragma once

#include <algorithm>
#include <chrono>
#include <functional>
#include <random>

#include "dataflow/messagepipeline/backoff.h"

namespace dataflow::mqttconverter::internal {

using SteadyTime = std::chrono::steady_clock::time_point;
using NowFn = std::function<SteadyTime()>;

inline SteadyTime RealNow() { return std::chrono::steady_clock::now(); }

inline std::int64_t Nanos(SteadyTime t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// Reconnects and local redeliveries: before the n-th retry (n >= 1) wait min * 2^(n-1),
// capped at max, jittered over its upper half so copies of a service (or messages nacked
// together) do not retry in step; never less than min (the documented bound).
inline std::chrono::milliseconds RetryDelay(std::chrono::milliseconds min,
                                            std::chrono::milliseconds max, int retry,
                                            std::minstd_rand& rng) {
  return std::max(min, messagepipeline::BackoffDelay(
                           {.initial = min, .maximum = max, .multiplier = 2}, retry, rng));
}

}  // namespace dataflow::mqttconverter::internal

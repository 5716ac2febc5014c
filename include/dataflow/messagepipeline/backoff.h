// The one retry backoff of the project, for retry loops, reconnects and redeliveries (Google
// APIs, MQTT, uploads): the n-th delay is uniform over the upper half of
// initial*multiplier^(n-1), capped at `maximum`, so many clients (or messages nacked
// together) restarting at once do not retry in lockstep. Dependency-free (no gRPC), so every
// package uses it.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

#include "absl/status/statusor.h"

namespace dataflow::messagepipeline {

struct BackoffOptions {
  std::chrono::milliseconds initial{100};
  std::chrono::milliseconds maximum{std::chrono::seconds(60)};
  double multiplier = 1.3;
};

// The delay before retry number `retry` (1 for the first retry) under `options`, jittered by
// `rng`: for callers that count attempts themselves (a message's delivery attempts).
// `options` must be valid (ExponentialBackoff::Create checks them).
std::chrono::milliseconds BackoffDelay(const BackoffOptions& options, int retry,
                                       std::minstd_rand& rng);

// A retry loop's backoff: Next() is BackoffDelay for the 1st, 2nd, ... retry since the last
// Reset(). Not thread-safe: one instance per retry loop.
class ExponentialBackoff {
 public:
  // Checks initial > 0, maximum >= initial, multiplier >= 1.
  static absl::StatusOr<ExponentialBackoff> Create(const BackoffOptions& options);

  // The delay before the next attempt; grows with each call until Reset().
  std::chrono::milliseconds Next();
  // Call after a success: the next failure waits `initial` again.
  void Reset() { retry_ = 0; }

 private:
  explicit ExponentialBackoff(const BackoffOptions& options);

  BackoffOptions options_;
  int retry_ = 0;
  std::minstd_rand rng_;
};

}  // namespace dataflow::messagepipeline

// Exponential backoff with full jitter for retry loops and reconnects to Google APIs: the
// n-th delay is uniform in [initial*multiplier^n / 2, initial*multiplier^n], capped at
// `maximum`, so many clients restarting together do not retry in lockstep.
// Not thread-safe: one instance per retry loop.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

#include "absl/status/statusor.h"

namespace dataflow::gcp {

struct BackoffOptions {
  std::chrono::milliseconds initial{100};
  std::chrono::milliseconds maximum{std::chrono::seconds(60)};
  double multiplier = 1.3;
};

class ExponentialBackoff {
 public:
  // Checks initial > 0, maximum >= initial, multiplier >= 1.
  static absl::StatusOr<ExponentialBackoff> Create(const BackoffOptions& options);

  // The delay before the next attempt; grows with each call until Reset().
  std::chrono::milliseconds Next();
  // Call after a success: the next failure waits `initial` again.
  void Reset() { current_ = static_cast<double>(options_.initial.count()); }

 private:
  explicit ExponentialBackoff(const BackoffOptions& options);

  BackoffOptions options_;
  double current_;
  std::minstd_rand rng_;
};

}  // namespace dataflow::gcp

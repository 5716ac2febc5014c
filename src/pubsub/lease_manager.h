// LeaseManager: the consumer's leases on delivered, unsettled messages, by ack id. It says
// which leases are due for an extension (half the ack deadline after the last one), drops
// those held longer than max_lease_extension (the server then redelivers them), and records
// what the server confirmed. Time comes from an injected clock, so expiry and extension are
// tested without sleeping. No RPCs here (the AckBatcher sends them). Thread-safe; its own lock.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace dataflow::pubsub {

using SteadyClock = std::chrono::steady_clock;
using ClockFn = std::function<SteadyClock::time_point()>;

// An ack id to settle or extend, and until when the server's lease on the message lasts
// (after that an ack can no longer be relied on, so it is not retried).
struct LeasedId {
  std::string id;
  SteadyClock::time_point expires;
};

// What the server said about one ModifyAckDeadline request: confirmed (the lease now lasts
// ack_deadline from `at`, when it was sent) or to be retried at `at`.
struct ExtensionResult {
  std::vector<std::string> ids;
  bool confirmed = false;
  SteadyClock::time_point at;
};

struct LeaseManagerOptions {
  std::chrono::seconds ack_deadline{30};
  std::chrono::milliseconds max_lease_extension{std::chrono::minutes(60)};
  ClockFn clock;  // empty: steady_clock::now
};

class LeaseManager {
 public:
  explicit LeaseManager(LeaseManagerOptions options) : options_(std::move(options)) {}

  struct Lease {
    SteadyClock::time_point received;
    SteadyClock::time_point next_extension;
    SteadyClock::time_point expires;  // the server's deadline as last confirmed
    std::size_t bytes = 0;
    bool handed_out = false;  // counted by flow control
  };

  // A delivery now: leased for ack_deadline, extended after half of it.
  void Add(const std::string& ack_id, std::size_t bytes);
  // Marks the lease as counted by flow control; false if it is no longer held.
  bool MarkHandedOut(const std::string& ack_id);
  // Settled: the lease as it was, or nothing if it was given up (expired or drained).
  std::optional<Lease> Remove(const std::string& ack_id);

  struct Due {
    std::vector<LeasedId> extend;  // next extension reached; rescheduled half a deadline on
    // Dropped past max_lease_extension while counted by flow control.
    std::size_t released_messages = 0;
    std::size_t released_bytes = 0;
  };
  Due Tick();
  // Every lease, removed: to nack them when the consumer is destroyed.
  std::vector<LeasedId> TakeAll();
  // Applies the server's answer to an extension of these ids.
  void Apply(const ExtensionResult& result);

  [[nodiscard]] std::size_t size() const;
  [[nodiscard]] std::optional<Lease> Find(const std::string& ack_id) const;
  [[nodiscard]] SteadyClock::time_point Now() const {
    return options_.clock ? options_.clock() : SteadyClock::now();
  }

 private:
  const LeaseManagerOptions options_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Lease> leases_;
};

}  // namespace dataflow::pubsub

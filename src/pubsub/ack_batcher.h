// AckBatcher: sends the consumer's acks, nacks and deadline extensions as Acknowledge /
// ModifyAckDeadline calls of at most 2500 ids. Acks and nacks are queued and sent by Flush()
// (every ack_flush_interval, and as a stream ends); one that fails with a retryable error is
// queued again and re-sent after a backoff for as long as its message's lease lasts, then
// given up (counted in settles_expired). Extensions go out at once and their result goes
// back to the LeaseManager. Never holds its lock during an RPC. Thread-safe; its own lock.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dataflow/messagepipeline/backoff.h"
#include "dataflow/pubsub/pubsub_stub.h"
#include "lease_manager.h"

namespace dataflow::pubsub {

struct AckBatcherOptions {
  std::string subscription;                 // "projects/p/subscriptions/s"
  std::chrono::seconds ack_deadline{30};    // requested by each extension
  messagepipeline::BackoffOptions backoff;  // valid (ExponentialBackoff::Create checks)
  ClockFn clock;                            // empty: steady_clock::now
};

class AckBatcher {
 public:
  AckBatcher(std::shared_ptr<SubscriberStub> stub, AckBatcherOptions options);

  void Ack(LeasedId id);
  void Nack(LeasedId id);
  // Sends the acks and nacks queued so far and, with `retries`, the failed ones due again
  // (those whose lease ran out meanwhile are given up).
  void Flush(bool retries);
  // Sends extensions now; one result per request, for LeaseManager::Apply. An id that failed
  // with a retryable error is retried at the result's time if its lease lasts until then.
  std::vector<ExtensionResult> Extend(std::vector<LeasedId> ids);

  // Until `deadline`, waits for nothing to be waiting for a retry or in an RPC.
  bool WaitIdle(SteadyClock::time_point deadline);
  // Ids not yet confirmed by the server: queued, waiting for a retry or in an RPC.
  [[nodiscard]] std::size_t Unsent() const;

  struct Stats {
    std::size_t acks_sent = 0;  // first attempts
    std::size_t nacks_sent = 0;
    std::size_t extensions_sent = 0;
    std::size_t settle_retries = 0;
    std::size_t settles_expired = 0;
    std::size_t settles_failed = 0;
  };
  [[nodiscard]] Stats stats() const;

 private:
  enum class Kind { kAck, kNack, kExtend };
  static const char* KindName(Kind kind);
  SteadyClock::time_point Now() const {
    return options_.clock ? options_.clock() : SteadyClock::now();
  }
  void LogExpired(Kind kind, std::size_t n);
  void Send(Kind kind, std::vector<LeasedId> ids, std::vector<ExtensionResult>* results);

  const std::shared_ptr<SubscriberStub> stub_;
  const AckBatcherOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<LeasedId> acks_;  // settled, not yet sent
  std::vector<LeasedId> nacks_;
  // Failed with a retryable error; sent again at next_retry_.
  std::vector<LeasedId> retry_acks_;
  std::vector<LeasedId> retry_nacks_;
  SteadyClock::time_point next_retry_;
  messagepipeline::ExponentialBackoff backoff_;
  std::size_t in_flight_ = 0;  // ids in an Acknowledge/ModifyAckDeadline call now
  Stats stats_;
};

}  // namespace dataflow::pubsub

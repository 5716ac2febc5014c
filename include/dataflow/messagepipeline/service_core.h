// The machinery every service shares: outcome counters, the delivery policy (ack, nack or
// dead-letter a message), and a worker pool that drains a consumer's channel with a
// graceful, deadline-bounded stop. StreamingService, BatchingService and the enrichment
// service are thin layers over it.
#pragma once

#include <absl/status/status.h>
#include <absl/strings/str_cat.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "dataflow/messagepipeline/consumer.h"
#include "dataflow/messagepipeline/dead_letter.h"
#include "dataflow/messagepipeline/processor.h"
#include "dataflow/messagepipeline/service_options.h"
#include "dataflow/messagepipeline/transformer.h"

namespace dataflow::messagepipeline {

// Calls `fn` and turns an exception into an Internal error naming `what`. `fn` returns a
// Status or a StatusOr.
template <typename Fn>
auto CallNoThrow(std::string_view what, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(std::string(what), " threw: ", e.what()));
  } catch (...) {
    return absl::InternalError(absl::StrCat(std::string(what), " threw a non-standard exception"));
  }
}

// Runs a transformer and returns its result, turning an exception into an Internal error.
template <typename T>
TransformResult<T> RunTransformer(const MessageTransformer<T>& transformer, const Message& m) {
  return CallNoThrow("transformer", [&] { return transformer(m); });
}

// A point-in-time copy of a service's counters. Every message received ends in exactly one
// of processed, skipped, dead_lettered, dropped or nacked (all but nacked are acks).
struct ServiceMetrics {
  std::uint64_t received = 0;
  std::uint64_t processed = 0;
  std::uint64_t skipped = 0;
  std::uint64_t dead_lettered = 0;
  // Gave up on without a dead-letter sink (permanent error or attempts used up): logged, acked.
  std::uint64_t dropped = 0;
  std::uint64_t nacked = 0;
  std::uint64_t transform_errors = 0;
  std::uint64_t processing_errors = 0;
  std::uint64_t batches = 0;
  std::uint64_t batched_messages = 0;
};

class ServiceCounters {
 public:
  std::atomic<std::uint64_t> received{0};
  std::atomic<std::uint64_t> processed{0};
  std::atomic<std::uint64_t> skipped{0};
  std::atomic<std::uint64_t> dead_lettered{0};
  std::atomic<std::uint64_t> dropped{0};
  std::atomic<std::uint64_t> nacked{0};
  std::atomic<std::uint64_t> transform_errors{0};
  std::atomic<std::uint64_t> processing_errors{0};
  std::atomic<std::uint64_t> batches{0};
  std::atomic<std::uint64_t> batched_messages{0};

  [[nodiscard]] ServiceMetrics Snapshot() const;
};

enum class FailureStage { kTransform, kProcess };

struct DeliveryPolicyOptions {
  std::string source = "dataflow";  // names the service in logs and dead-letter attributes
  std::shared_ptr<DeadLetterSink> dead_letter;  // optional
  // As ServiceOptions::max_delivery_attempts.
  int max_delivery_attempts = kDefaultMaxDeliveryAttempts;
};

// The delivery policy of a service's common options (source: its name); every service's
// policy is built by it.
DeliveryPolicyOptions DeliveryPolicyOf(const ServiceOptions& options);

// Decides how each message is settled and counts the outcome. A message that can never
// succeed (a permanent error, or its delivery attempts used up) is dead-lettered; without a
// dead-letter sink it is logged with its id, counted as dropped and acked, so it cannot stall
// the messages behind it. Thread-safe.
class DeliveryPolicy {
 public:
  DeliveryPolicy(DeliveryPolicyOptions options, ServiceCounters* counters);

  // If the message has used up its delivery attempts, gives it up (see above), returns true.
  bool SettleIfExhausted(Message& message);
  void Succeed(Message& message);
  void Skip(Message& message);
  // Nacks a transient error; gives up on a permanent one (see above).
  void Fail(Message& message, const absl::Status& error, FailureStage stage);
  // Nacks without counting an error (shutdown past its deadline, a failed batch).
  void Nack(Message& message);
  // Nacks a message no handler saw (the stop deadline passed first): counts it as received
  // too, so every received message ends in one outcome.
  void NackUnhandled(Message& message);

  [[nodiscard]] const std::string& source() const { return options_.source; }

 private:
  void GiveUp(Message& message, const absl::Status& reason);

  DeliveryPolicyOptions options_;
  ServiceCounters* counters_;
};

// The first steps every service takes with a message: count it, park it if its delivery
// attempts are used up, transform it. Returns the value to process, or nullopt when the
// message was settled here (dead-lettered, skipped, nacked).
template <typename T>
std::optional<T> TransformOrSettle(Message& message, const MessageTransformer<T>& transformer,
                                   DeliveryPolicy& policy, ServiceCounters& counters) {
  counters.received.fetch_add(1, std::memory_order_relaxed);
  if (policy.SettleIfExhausted(message)) return std::nullopt;
  TransformResult<T> transformed = RunTransformer(transformer, message);
  if (!transformed.ok()) {
    policy.Fail(message, transformed.status(), FailureStage::kTransform);
    return std::nullopt;
  }
  if (!transformed->has_value()) policy.Skip(message);
  return *std::move(transformed);
}

// Checks the options every service shares (num_workers, max_delivery_attempts);
// InvalidArgument naming the service.
absl::Status ValidateServiceOptions(const ServiceOptions& options);

// Runs `num_workers` threads that pop messages from the consumer's channel and hand them,
// a popped batch at a time, to `handle_batch`, plus an optional `tail` thread (a batcher) started
// alongside them and told to finish by `on_workers_done`, which runs once all workers have drained
// the channel.
//
// Stop(deadline): stops the consumer (which closes the channel), waits for the workers and
// the tail to drain; if the deadline passes first, sets aborting() so remaining messages
// are nacked rather than processed, waits for in-flight calls, and returns DeadlineExceeded
// naming how many messages were nacked. Start twice, Stop before Start and Stop twice are
// defined: FailedPrecondition, OK (and the runner can no longer start), the first result.
class WorkerPool {
 public:
  struct Hooks {
    // Settles or passes on every message of the span; see ForEach for the usual loop.
    std::function<void(std::span<Message>)> handle_batch;
    std::function<void()> tail;             // optional
    std::function<void()> on_workers_done;  // optional
    // Runs once when the stop deadline expires, after aborting() became true; optional.
    std::function<void()> on_abort;
  };

  // `policy` (the service's) settles and counts the messages ForEach nacks itself.
  WorkerPool(std::string name, std::shared_ptr<MessageConsumer> consumer, int num_workers,
             DeliveryPolicy* policy);
  ~WorkerPool();

  absl::Status Start(Hooks hooks);
  absl::Status Stop(Deadline deadline);
  // Blocks until the pipeline has drained (after Stop, or when the consumer ended by itself).
  void Wait();

  // Calls `fn` for each message, or nacks it once the stop deadline expired; a throwing `fn`
  // nacks its message. The loop every handle_batch needs.
  template <typename Fn>
  void ForEach(std::span<Message> batch, Fn&& fn) {
    for (Message& message : batch) {
      if (aborting()) {
        policy_->NackUnhandled(message);
        CountAbortNacks(1);
        continue;
      }
      try {
        fn(message);
      } catch (const std::exception& e) {
        LogHandlerException(message, e.what());
        if (!message.settled()) policy_->Nack(message);
      }
    }
  }

  [[nodiscard]] bool aborting() const { return aborting_.load(std::memory_order_acquire); }
  // Shutdown past the deadline nacked `n` messages; reported by Stop().
  void CountAbortNacks(std::uint64_t n) { abort_nacks_.fetch_add(n, std::memory_order_relaxed); }
  [[nodiscard]] bool running() const;

 private:
  void WorkerLoop();
  void LogHandlerException(const Message& message, const char* what) const;
  void ThreadFinished();

  const std::string name_;
  const std::shared_ptr<MessageConsumer> consumer_;
  const int num_workers_;
  DeliveryPolicy* const policy_;
  Hooks hooks_;

  mutable std::mutex mu_;
  std::condition_variable all_done_;
  enum class State { kIdle, kRunning, kStopped } state_ = State::kIdle;
  int live_threads_ = 0;
  int live_workers_ = 0;
  bool stop_called_ = false;
  absl::Status stop_result_;
  std::vector<std::jthread> threads_;
  std::atomic<bool> aborting_{false};
  std::atomic<std::uint64_t> abort_nacks_{0};
};

// Holds messages whose processing completes asynchronously and settles each when its
// completion reports (OK → ack, error → nack or give up), in whatever order results arrive,
// on the pool's tail thread (so a sink's callback thread never runs a dead-letter publish),
// all that completed since its last round at once.
// Track() blocks while `max_messages` messages or `max_bytes` payload bytes are in flight:
// backpressure. After the stop deadline (Abort()), messages still waiting are nacked (a later
// success then means a duplicate, never a loss). Thread-safe.
class InFlightSettler {
 public:
  InFlightSettler(std::size_t max_messages, std::size_t max_bytes, DeliveryPolicy* policy,
                  WorkerPool* pool);
  ~InFlightSettler();

  // Hands `message` to `start`, which must arrange for the completion it is given to be called
  // exactly once (later calls are ignored). Blocks while the in-flight limits are reached;
  // after Abort() nacks the message instead. `start` may throw: the message is then failed.
  // `before_failure` (optional) runs on the message before it is settled other than by an ack
  // (e.g. to put back the data it was received with).
  void Track(Message message, const std::function<void(Message&, Completion)>& start,
             std::function<void(Message&)> before_failure = {});
  // The tail loop: settles until Close() and everything tracked is settled, or Abort().
  void Run();
  // No more Track() calls (all workers are done).
  void Close();
  // The stop deadline expired: nack what is still waiting and end Run().
  void Abort();

 private:
  struct State;
  std::shared_ptr<State> state_;  // shared with completions, which may outlive the settler
  DeliveryPolicy* policy_;
  WorkerPool* pool_;
};

}  // namespace dataflow::messagepipeline

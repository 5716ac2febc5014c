// BatchCore<Item>: the batch loop every batching sink shares (BatchingService, and through it
// the BigQuery sink; IceStorageService), written once.
//
//   consumer → N workers (Prepare: Message → Item, or settle it) → a bounded queue →
//   one batcher thread → BatchAccumulator<Item> (cuts batches by its own size/bytes rules)
//
// The loop adds what the workers prepared to the accumulator, lets it flush every open batch
// on its interval, cuts what may be cut as soon as no input waits (flush_when_idle, or from
// FlushPromptly on: a stopping pipeline), and on stop drains the queue and closes the
// accumulator, which flushes the rest and returns once its sink settled every message.
// Sinks use Admit() at each flush (past the stop deadline the batch is nacked) and
// SettleBatch() to settle what they left unsettled by the batch's result. Stop(deadline)
// follows WorkerPool's rules. Thread-safe; the accumulator is only called from the batcher
// thread.
#pragma once

#include <absl/status/status.h>
#include <absl/strings/str_cat.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dataflow/messagepipeline/bounded_queue.h"
#include "dataflow/messagepipeline/errors.h"
#include "dataflow/messagepipeline/logging.h"
#include "dataflow/messagepipeline/processor.h"
#include "dataflow/messagepipeline/service_core.h"
#include "dataflow/messagepipeline/service_options.h"

namespace dataflow::messagepipeline {

// How a batching sink groups items. Called from the batcher thread only.
template <typename Item>
class BatchAccumulator {
 public:
  virtual ~BatchAccumulator() = default;
  // Adds an item; cuts (hands to the sink) whatever its size or bytes rules say is full.
  virtual void Add(Item item) = 0;
  // Items the loop takes from the queue at most before adding them (e.g. the batch's room).
  [[nodiscard]] virtual std::size_t MaxTake() const = 0;
  // When the interval flush is next due, and the flush itself (a no-op before then).
  [[nodiscard]] virtual std::chrono::steady_clock::time_point next_flush() const = 0;
  virtual void MaybeFlush(std::chrono::steady_clock::time_point now) = 0;
  // When the oldest batch CutIdle may cut was opened (its first item added);
  // time_point::max() when there is none.
  [[nodiscard]] virtual std::chrono::steady_clock::time_point OldestIdleCut() const = 0;
  // Cuts the batches it may cut while no input waits that were opened at or before
  // `opened_by`.
  virtual void CutIdle(std::chrono::steady_clock::time_point opened_by) = 0;
  // Cuts what is left; returns once the sink has settled every message.
  virtual void Close() = 0;
};

// The message an item carries (found by argument-dependent lookup for other item types).
template <typename T>
Message& MessageOf(ProcessableItem<T>& item) {
  return item.original;
}
inline Message& MessageOf(Message& message) { return message; }

struct BatchCoreOptions {
  ServiceOptions common;  // its name already set (SetDefaultName)
  // Prepared items waiting for the batcher at most (workers block beyond).
  std::size_t queue_capacity = 400;
  // Cut as soon as no input waits (see BatchingServiceOptions::flush_when_idle), once the
  // batch is idle_linger old.
  bool flush_when_idle = false;
  std::chrono::milliseconds idle_linger{0};
  // Runs once if a Stop() deadline expires before the pipeline drained (optional).
  std::function<void()> on_stop_deadline;
};

template <typename Item>
class BatchCore {
 public:
  // Worker side, called concurrently: appends the message's item to `out`, or settles the
  // message (TransformOrSettle, a permanent error for a bad key, ...).
  using Prepare = std::function<void(Message& message, std::vector<Item>& out)>;

  // Checks what the core needs; names the service in the error.
  static absl::Status Validate(const BatchCoreOptions& options) {
    if (options.idle_linger < std::chrono::milliseconds::zero()) {
      return absl::InvalidArgumentError(absl::StrCat(options.common.name,
                                                     ": idle_linger must be >= 0, got ",
                                                     options.idle_linger.count(), "ms"));
    }
    return ValidateServiceOptions(options.common);
  }

  BatchCore(BatchCoreOptions options, std::shared_ptr<MessageConsumer> consumer, Prepare prepare)
      : options_(std::move(options)),
        prepare_(std::move(prepare)),
        policy_(DeliveryPolicyOf(options_.common), &counters_),
        items_(options_.queue_capacity),
        prompt_(options_.flush_when_idle),
        linger_(options_.idle_linger),
        pool_(options_.common.name, std::move(consumer), options_.common.num_workers, &policy_) {}
  BatchCore(const BatchCore&) = delete;
  BatchCore& operator=(const BatchCore&) = delete;

  // `accumulator` must outlive the core's threads (declare it before the core).
  absl::Status Start(BatchAccumulator<Item>* accumulator) {
    accumulator_ = accumulator;
    return pool_.Start({.handle_batch = [this](std::span<Message> batch) { HandleBatch(batch); },
                        .tail = [this] { Loop(); },
                        .on_workers_done = [this] { items_.Close(); },
                        .on_abort = options_.on_stop_deadline});
  }
  absl::Status Stop(Deadline deadline) { return pool_.Stop(deadline); }
  void Wait() { pool_.Wait(); }
  // From now on cut as soon as no input waits, without lingering (a stopping pipeline calls
  // it).
  void FlushPromptly() {
    linger_.store(std::chrono::milliseconds::zero(), std::memory_order_release);
    prompt_.store(true, std::memory_order_release);
    items_.Interrupt();
  }
  // Wakes the loop if it cuts idle batches (e.g. a sink finished, so more may be cut).
  void WakeIfPrompt() {
    if (prompt_.load(std::memory_order_acquire)) items_.Interrupt();
  }
  [[nodiscard]] ServiceMetrics metrics() const { return counters_.Snapshot(); }
  [[nodiscard]] bool aborting() const { return pool_.aborting(); }
  [[nodiscard]] const std::string& name() const { return options_.common.name; }
  DeliveryPolicy& policy() { return policy_; }
  ServiceCounters& counters() { return counters_; }

  // At a flush: past the stop deadline nacks every message of `batch` and returns false;
  // otherwise counts the batch and returns true.
  template <typename Range>
  bool Admit(Range& batch) {
    if (pool_.aborting()) {
      for (auto& item : batch) policy_.Nack(MessageOf(item));
      pool_.CountAbortNacks(batch.size());
      return false;
    }
    counters_.batches.fetch_add(1, std::memory_order_relaxed);
    counters_.batched_messages.fetch_add(batch.size(), std::memory_order_relaxed);
    return true;
  }

  // Settles the messages of `batch` by the sink's result for all of them (those the sink
  // settled itself are left alone): OK acks; a transient error nacks them for redelivery (one
  // processing error); a permanent one gives each up (dead letter). `context` adds to the log.
  template <typename Range>
  void SettleBatch(Range& batch, const absl::Status& result, std::string_view context = {}) {
    if (result.ok()) {
      for (auto& item : batch) {
        if (!MessageOf(item).settled()) policy_.Succeed(MessageOf(item));
      }
      return;
    }
    LogFailure(batch.size(), result, context);
    const bool permanent = IsPermanent(result);
    if (!permanent) counters_.processing_errors.fetch_add(1, std::memory_order_relaxed);
    for (auto& item : batch) {
      Message& m = MessageOf(item);
      if (m.settled()) continue;
      if (permanent) {
        policy_.Fail(m, result, FailureStage::kProcess);
      } else {
        policy_.Nack(m);
      }
    }
  }

  void LogFailure(std::size_t size, const absl::Status& result, std::string_view context) {
    static dataflow::LogRateLimit limit;
    if (limit.Allow()) {
      dataflow::Log()->warn(
          "batch failed name={} size={} permanent={} {}error=\"{}\" suppressed={}",
          options_.common.name, size, IsPermanent(result), context, BoundedText(result.ToString()),
          limit.suppressed());
    }
  }

 private:
  // Prepares a popped batch and hands the items to the batcher in one go: one lock round trip
  // per batch instead of per message.
  void HandleBatch(std::span<Message> batch) {
    std::vector<Item> items;
    items.reserve(batch.size());
    pool_.ForEach(batch, [&](Message& message) { prepare_(message, items); });
    const std::size_t pushed = items_.PushAll(items);
    // Only after the batcher is gone, which happens once all workers are done: defensive.
    for (std::size_t i = pushed; i < items.size(); ++i) policy_.Nack(MessageOf(items[i]));
  }

  void Loop() {
    using SteadyClock = std::chrono::steady_clock;
    BatchAccumulator<Item>& acc = *accumulator_;
    std::vector<Item> taken;
    for (;;) {
      const bool prompt = prompt_.load(std::memory_order_acquire);
      const auto linger = linger_.load(std::memory_order_acquire);
      // Prompt: wait for more input no longer than until a batch that may be cut has lingered.
      auto until = acc.next_flush();
      if (prompt) {
        const auto oldest = acc.OldestIdleCut();
        if (oldest != SteadyClock::time_point::max()) {
          until = std::min(until, std::max(SteadyClock::now(), oldest + linger));
        }
      }
      const std::size_t n =
          items_.PopBatchUntil(taken, std::max<std::size_t>(acc.MaxTake(), 1), until);
      for (Item& item : taken) {
        if (pool_.aborting()) {
          policy_.Nack(MessageOf(item));
          pool_.CountAbortNacks(1);
          continue;
        }
        acc.Add(std::move(item));
      }
      taken.clear();
      if (n == 0 && items_.closed_and_empty()) break;
      if (prompt && n == 0) acc.CutIdle(SteadyClock::now() - linger);
      // Every round, idle or not: an interval flush that came due while no input arrived must
      // run (and move next_flush() on), or the wait above, bounded by a past next_flush(),
      // would return at once on every round (a busy loop, until the next item).
      acc.MaybeFlush(SteadyClock::now());
    }
    acc.Close();  // the rest, on stop
  }

  BatchCoreOptions options_;
  Prepare prepare_;
  ServiceCounters counters_;
  DeliveryPolicy policy_;
  BoundedQueue<Item> items_;
  std::atomic<bool> prompt_;
  std::atomic<std::chrono::milliseconds> linger_;
  BatchAccumulator<Item>* accumulator_ = nullptr;
  WorkerPool pool_;  // last: its threads use everything above
};

}  // namespace dataflow::messagepipeline

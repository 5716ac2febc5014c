// BatchingService<T>: consumer → N transform workers → one batcher → BatchProcessor<T>, the
// single-batch accumulator over BatchCore (batch_core.h), which runs the loop.
//
// The batcher flushes when a batch reaches batch_size, every flush_interval, when no more input
// is waiting (with flush_when_idle), and on stop.
// The batch processor may settle messages itself; those it leaves unsettled are acked if
// it returned OK and nacked if it returned an error or threw. Transform errors and skips
// are settled by the workers as in StreamingService. Thread-safe.
#pragma once

#include <absl/status/statusor.h>
#include <absl/strings/str_cat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dataflow/messagepipeline/batch_core.h"
#include "dataflow/messagepipeline/errors.h"
#include "dataflow/messagepipeline/logging.h"
#include "dataflow/messagepipeline/service.h"
#include "dataflow/messagepipeline/service_options.h"
#include "dataflow/messagepipeline/transformer.h"

namespace dataflow::messagepipeline {

struct BatchingServiceOptions {
  static constexpr std::string_view kDefaultName = "batching-service";
  ServiceOptions common;         // an empty name: kDefaultName; num_workers: transform workers
  std::size_t batch_size = 100;  // the Go library's default
  std::chrono::milliseconds flush_interval = std::chrono::minutes(1);  // likewise
  // Also flush a partial batch as soon as no more input is waiting (group commit: under load
  // batches still fill while the previous one is written). Turn it on when the source waits
  // for our acks with a bounded window (MQTT's in-flight limit, a Pub/Sub flow-control limit
  // smaller than the batch): a partial batch would otherwise hold that window until
  // flush_interval, and the source, unable to send more, stalls for as long.
  bool flush_when_idle = false;
  // With flush_when_idle: cut a partial batch only once its first item has waited this long
  // (and no input waits). Under a steady stream batches then grow to what arrives in that
  // time instead of to what arrived since the last one was written: fewer, larger writes
  // (each a commit or an object, with its fsyncs) for at most this much added latency.
  std::chrono::milliseconds idle_linger{0};
  // Optional: runs once if a Stop() deadline expires before the pipeline drained, so a sink
  // can abort the write it is blocked in (the batch it fails is nacked); e.g. BigQuery's.
  std::function<void()> on_stop_deadline;
};

template <typename T>
class BatchingService final : public Service {
 public:
  static absl::StatusOr<std::unique_ptr<BatchingService>> Create(
      BatchingServiceOptions options, std::shared_ptr<MessageConsumer> consumer,
      MessageTransformer<T> transformer, BatchProcessor<T> processor) {
    SetDefaultName(options.common, BatchingServiceOptions::kDefaultName);
    const std::string& name = options.common.name;
    if (!consumer) return absl::InvalidArgumentError(name + ": consumer is null");
    if (!transformer) return absl::InvalidArgumentError(name + ": transformer is null");
    if (!processor) return absl::InvalidArgumentError(name + ": processor is null");
    if (options.batch_size == 0) {
      return absl::InvalidArgumentError(name + ": batch_size must be > 0");
    }
    if (options.flush_interval <= std::chrono::milliseconds::zero()) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": flush_interval must be > 0, got ",
                                                     options.flush_interval.count(), "ms"));
    }
    BatchCoreOptions core = CoreOptions(options);
    if (auto s = Core::Validate(core); !s.ok()) return s;
    return std::unique_ptr<BatchingService>(
        new BatchingService(std::move(options), std::move(core), std::move(consumer),
                            std::move(transformer), std::move(processor)));
  }

  ~BatchingService() override = default;  // core_ (declared last) stops first if still running

  absl::Status Start() override { return core_.Start(&batch_); }
  absl::Status Stop(Deadline deadline) override { return core_.Stop(deadline); }
  absl::Status Stop(std::chrono::steady_clock::duration timeout) {
    return Stop(std::chrono::steady_clock::now() + timeout);
  }
  void Wait() { core_.Wait(); }
  // From now on a partial batch is flushed as soon as no more input is waiting, instead of
  // at flush_interval. A pipeline that stops calls it first: the upstream services it is
  // stopping wait for these rows to be stored (end-to-end acknowledgement), and the flush
  // interval must not hold them until the shutdown deadline.
  void FlushPromptly() override { core_.FlushPromptly(); }
  [[nodiscard]] ServiceMetrics metrics() const override { return core_.metrics(); }
  // True once a Stop() deadline expired and the remaining messages are being nacked.
  [[nodiscard]] bool draining_past_deadline() const { return core_.aborting(); }

 private:
  using Item = ProcessableItem<T>;
  using Core = BatchCore<Item>;

  // One open batch, cut at batch_size, on the interval (restarted by every flush), when idle
  // and on stop; the processor runs on the batcher thread.
  class SingleBatch final : public BatchAccumulator<Item> {
   public:
    explicit SingleBatch(BatchingService* service) : service_(service) {
      batch_.reserve(service_->options_.batch_size);
    }
    void Add(Item item) override {
      if (batch_.empty()) opened_ = std::chrono::steady_clock::now();
      batch_.push_back(std::move(item));
      if (batch_.size() >= service_->options_.batch_size) Flush();
    }
    [[nodiscard]] std::size_t MaxTake() const override {
      return service_->options_.batch_size - batch_.size();
    }
    [[nodiscard]] std::chrono::steady_clock::time_point next_flush() const override {
      return next_flush_;
    }
    void MaybeFlush(std::chrono::steady_clock::time_point now) override {
      if (now >= next_flush_) Flush();
    }
    [[nodiscard]] std::chrono::steady_clock::time_point OldestIdleCut() const override {
      return batch_.empty() ? std::chrono::steady_clock::time_point::max() : opened_;
    }
    void CutIdle(std::chrono::steady_clock::time_point opened_by) override {
      if (!batch_.empty() && opened_ <= opened_by) Flush();
    }
    void Close() override { Flush(); }

   private:
    void Flush() {
      next_flush_ = std::chrono::steady_clock::now() + service_->options_.flush_interval;
      if (batch_.empty()) return;
      if (service_->core_.Admit(batch_)) service_->Process(std::span<Item>(batch_));
      batch_.clear();
    }

    BatchingService* const service_;
    std::vector<Item> batch_;
    std::chrono::steady_clock::time_point opened_;  // when batch_'s first item was added
    std::chrono::steady_clock::time_point next_flush_ =
        std::chrono::steady_clock::now() + service_->options_.flush_interval;
  };

  static BatchCoreOptions CoreOptions(const BatchingServiceOptions& o) {
    return {.common = o.common,
            // Room for a few batches, so workers keep transforming while the batcher runs the
            // processor (measured: 2x capacity left the service at 0.6 of the queue baseline).
            .queue_capacity = o.batch_size * 4,
            .flush_when_idle = o.flush_when_idle,
            .idle_linger = o.idle_linger,
            .on_stop_deadline = o.on_stop_deadline};
  }

  BatchingService(BatchingServiceOptions options, BatchCoreOptions core,
                  std::shared_ptr<MessageConsumer> consumer, MessageTransformer<T> transformer,
                  BatchProcessor<T> processor)
      : options_(std::move(options)),
        transformer_(std::move(transformer)),
        processor_(std::move(processor)),
        batch_(this),
        core_(std::move(core), std::move(consumer),
              [this](Message& message, std::vector<Item>& out) { Prepare(message, out); }) {}

  void Prepare(Message& message, std::vector<Item>& out) {
    std::optional<T> value =
        TransformOrSettle(message, transformer_, core_.policy(), core_.counters());
    if (value) out.push_back(Item{std::move(message), *std::move(value)});
  }

  // Runs the processor on `items` and settles what it left unsettled. A permanent error on
  // more than one item is isolated by halving: the good rows of a batch are stored and only
  // the row that can never succeed is given up on, instead of the whole batch being retried
  // until every row is dead-lettered.
  void Process(std::span<Item> items) {
    absl::Status result = CallNoThrow("batch processor", [&] { return processor_(items); });
    // Count what the processor settled itself (e.g. rejected rows it dead-lettered); the rest
    // go to the front, in their original order.
    auto unsettled = std::stable_partition(
        items.begin(), items.end(), [](const auto& item) { return !item.original.settled(); });
    ServiceCounters& counters = core_.counters();
    for (auto it = unsettled; it != items.end(); ++it) {
      (it->original.nacked() ? counters.nacked
       : it->dead_lettered   ? counters.dead_lettered
                             : counters.processed)
          .fetch_add(1, std::memory_order_relaxed);
    }
    auto left = items.first(static_cast<std::size_t>(unsettled - items.begin()));
    if (IsPermanent(result) && left.size() > 1) {
      core_.LogFailure(left.size(), result, "isolating ");
      counters.processing_errors.fetch_add(1, std::memory_order_relaxed);
      if (core_.aborting()) {
        // No time to isolate the row: every message goes back, to be isolated on redelivery.
        for (auto& item : left) core_.policy().Nack(item.original);
        return;
      }
      const std::size_t half = left.size() / 2;
      Process(left.first(half));
      Process(left.subspan(half));
      return;
    }
    core_.SettleBatch(left, result);
  }

  BatchingServiceOptions options_;
  MessageTransformer<T> transformer_;
  BatchProcessor<T> processor_;
  SingleBatch batch_;
  Core core_;  // last: its threads use everything above
};

}  // namespace dataflow::messagepipeline

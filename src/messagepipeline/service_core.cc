#include "dataflow/messagepipeline/service_core.h"

#include <absl/strings/str_cat.h>

#include <algorithm>
#include <deque>
#include <unordered_map>

#include "dataflow/messagepipeline/errors.h"
#include "dataflow/messagepipeline/logging.h"
#include "dataflow/messagepipeline/processor.h"

namespace dataflow::messagepipeline {

ServiceMetrics ServiceCounters::Snapshot() const {
  constexpr auto kRelaxed = std::memory_order_relaxed;
  return ServiceMetrics{
      .received = received.load(kRelaxed),
      .processed = processed.load(kRelaxed),
      .skipped = skipped.load(kRelaxed),
      .dead_lettered = dead_lettered.load(kRelaxed),
      .dropped = dropped.load(kRelaxed),
      .nacked = nacked.load(kRelaxed),
      .transform_errors = transform_errors.load(kRelaxed),
      .processing_errors = processing_errors.load(kRelaxed),
      .batches = batches.load(kRelaxed),
      .batched_messages = batched_messages.load(kRelaxed),
  };
}

DeliveryPolicyOptions DeliveryPolicyOf(const ServiceOptions& options) {
  return {.source = options.name,
          .dead_letter = options.dead_letter,
          .max_delivery_attempts = options.max_delivery_attempts};
}

absl::Status ValidateServiceOptions(const ServiceOptions& options) {
  if (options.num_workers <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(options.name, ": num_workers must be > 0, got ", options.num_workers));
  }
  if (options.max_delivery_attempts < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        options.name, ": max_delivery_attempts must be >= 0, got ", options.max_delivery_attempts));
  }
  return absl::OkStatus();
}

DeliveryPolicy::DeliveryPolicy(DeliveryPolicyOptions options, ServiceCounters* counters)
    : options_(std::move(options)), counters_(counters) {}

bool DeliveryPolicy::SettleIfExhausted(Message& message) {
  if (options_.max_delivery_attempts <= 0 ||
      message.delivery_attempt <= options_.max_delivery_attempts) {
    return false;
  }
  GiveUp(message, absl::ResourceExhaustedError(
                      absl::StrCat("delivery attempt ", message.delivery_attempt,
                                   " exceeds the maximum of ", options_.max_delivery_attempts)));
  return true;
}

void DeliveryPolicy::Succeed(Message& message) {
  message.Ack();
  counters_->processed.fetch_add(1, std::memory_order_relaxed);
}

void DeliveryPolicy::Skip(Message& message) {
  message.Ack();
  counters_->skipped.fetch_add(1, std::memory_order_relaxed);
}

void DeliveryPolicy::Fail(Message& message, const absl::Status& error, FailureStage stage) {
  auto& counter = stage == FailureStage::kTransform ? counters_->transform_errors
                                                    : counters_->processing_errors;
  counter.fetch_add(1, std::memory_order_relaxed);
  if (IsPermanent(error)) {
    GiveUp(message, error);
    return;
  }
  static LogRateLimit limit;
  if (limit.Allow()) {
    Log()->warn(
        "message failed; nacking it source={} stage={} id={} attempt={} error=\"{}\" "
        "suppressed={}",
        options_.source, stage == FailureStage::kTransform ? "transform" : "process",
        BoundedText(message.data.id), message.delivery_attempt, BoundedText(error.ToString()),
        limit.suppressed());
  }
  Nack(message);
}

void DeliveryPolicy::Nack(Message& message) {
  message.Nack();
  counters_->nacked.fetch_add(1, std::memory_order_relaxed);
}

void DeliveryPolicy::NackUnhandled(Message& message) {
  counters_->received.fetch_add(1, std::memory_order_relaxed);
  Nack(message);
}

void DeliveryPolicy::GiveUp(Message& message, const absl::Status& reason) {
  if (!options_.dead_letter) {
    // Acked so it cannot hold back the messages behind it; logged so it is not silent.
    static LogRateLimit limit;
    if (limit.Allow()) {
      Log()->error(
          "message dropped: it cannot succeed and the service has no dead-letter topic "
          "source={} id={} attempt={} reason=\"{}\" suppressed={}",
          options_.source, BoundedText(message.data.id), message.delivery_attempt,
          BoundedText(reason.ToString()), limit.suppressed());
    }
    message.Ack();
    counters_->dropped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  absl::Status sent = CallNoThrow("dead-letter sink", [&] {
    return options_.dead_letter->Send(message, reason, options_.source);
  });
  if (sent.ok()) {
    static LogRateLimit limit;
    if (limit.Allow()) {
      Log()->warn("message dead-lettered source={} id={} attempt={} reason=\"{}\" suppressed={}",
                  options_.source, BoundedText(message.data.id), message.delivery_attempt,
                  BoundedText(reason.ToString()), limit.suppressed());
    }
    message.Ack();
    counters_->dead_lettered.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  static LogRateLimit limit;
  if (limit.Allow()) {
    Log()->error(
        "dead-lettering failed; nacking instead source={} id={} error=\"{}\" suppressed={}",
        options_.source, BoundedText(message.data.id), BoundedText(sent.ToString()),
        limit.suppressed());
  }
  Nack(message);
}

WorkerPool::WorkerPool(std::string name, std::shared_ptr<MessageConsumer> consumer, int num_workers,
                       DeliveryPolicy* policy)
    : name_(std::move(name)),
      consumer_(std::move(consumer)),
      num_workers_(num_workers),
      policy_(policy) {}

WorkerPool::~WorkerPool() {
  if (running()) {
    // A service destroyed while running still settles every message it holds.
    (void)Stop(std::chrono::steady_clock::now() + std::chrono::seconds(30));
  }
}

bool WorkerPool::running() const {
  std::lock_guard lock(mu_);
  return state_ == State::kRunning;
}

absl::Status WorkerPool::Start(Hooks hooks) {
  std::lock_guard lock(mu_);
  if (state_ == State::kRunning) return absl::FailedPreconditionError(name_ + ": already started");
  if (state_ == State::kStopped) {
    return absl::FailedPreconditionError(name_ + ": stopped; a service cannot be restarted");
  }
  hooks_ = std::move(hooks);
  live_workers_ = num_workers_;
  live_threads_ = num_workers_ + (hooks_.tail ? 1 : 0);
  // Workers first, so the channel has readers before the consumer starts filling it.
  for (int i = 0; i < num_workers_; ++i) threads_.emplace_back([this] { WorkerLoop(); });
  if (hooks_.tail) {
    threads_.emplace_back([this] {
      hooks_.tail();
      ThreadFinished();
    });
  }
  if (absl::Status started = consumer_->Start(); !started.ok()) {
    // Close the channel so the workers end; nothing was delivered yet.
    consumer_->Messages().Close();
    state_ = State::kStopped;
    return started;
  }
  state_ = State::kRunning;
  Log()->info("service started name={} workers={}", name_, num_workers_);
  return absl::OkStatus();
}

void WorkerPool::WorkerLoop() {
  auto& channel = consumer_->Messages();
  std::vector<Message> batch;
  constexpr std::size_t kMaxTake = 32;
  batch.reserve(kMaxTake);
  while (channel.PopBatch(batch, kMaxTake, static_cast<std::size_t>(num_workers_)) > 0) {
    hooks_.handle_batch(std::span<Message>(batch));
    batch.clear();
  }
  bool last_worker = false;
  {
    std::lock_guard lock(mu_);
    last_worker = --live_workers_ == 0;
  }
  if (last_worker && hooks_.on_workers_done) hooks_.on_workers_done();
  ThreadFinished();
}

void WorkerPool::LogHandlerException(const Message& message, const char* what) const {
  Log()->error("service handler threw; nacking name={} id={} what=\"{}\"", name_, message.data.id,
               what);
}

void WorkerPool::ThreadFinished() {
  std::lock_guard lock(mu_);
  if (--live_threads_ == 0) all_done_.notify_all();
}

void WorkerPool::Wait() {
  std::unique_lock lock(mu_);
  if (state_ == State::kIdle) return;
  all_done_.wait(lock, [&] { return live_threads_ == 0; });
}

absl::Status WorkerPool::Stop(Deadline deadline) {
  std::unique_lock lock(mu_);
  if (stop_called_) {
    all_done_.wait(lock, [&] { return live_threads_ == 0 && state_ == State::kStopped; });
    return stop_result_;
  }
  stop_called_ = true;
  if (state_ != State::kRunning) {
    state_ = State::kStopped;
    return stop_result_;
  }
  lock.unlock();
  absl::Status consumer_stopped = consumer_->Stop(deadline);
  if (!consumer_stopped.ok()) {
    Log()->warn("consumer did not stop cleanly name={} error=\"{}\"", name_,
                consumer_stopped.ToString());
    // Make sure the workers can finish even if the consumer failed to close its channel.
    consumer_->Messages().Close();
  }
  lock.lock();
  bool drained = all_done_.wait_until(lock, deadline, [&] { return live_threads_ == 0; });
  if (!drained) {
    aborting_.store(true, std::memory_order_release);
    Log()->warn("stop deadline expired; nacking what is left name={}", name_);
    if (hooks_.on_abort) {
      lock.unlock();
      hooks_.on_abort();
      lock.lock();
    }
    all_done_.wait(lock, [&] { return live_threads_ == 0; });
  }
  auto threads = std::move(threads_);
  lock.unlock();
  threads.clear();  // joins; every thread has finished its work already
  lock.lock();
  const std::uint64_t nacked = abort_nacks_.load();
  if (nacked > 0) {
    stop_result_ = absl::DeadlineExceededError(
        absl::StrCat(name_, ": stop deadline expired before the pipeline drained; ", nacked,
                     " messages were nacked for redelivery"));
  } else {
    stop_result_ = consumer_stopped;
  }
  state_ = State::kStopped;
  all_done_.notify_all();
  Log()->info("service stopped name={} nacked_at_deadline={}", name_, nacked);
  return stop_result_;
}

}  // namespace dataflow::messagepipeline

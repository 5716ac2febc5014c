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

absl::Status ValidateDeliveryPolicy(const DeliveryPolicyOptions& options) {
  if (options.max_delivery_attempts < 0) {
    return absl::InvalidArgumentError(absl::StrCat(options.source,
                                                   ": max_delivery_attempts must be >= 0, got ",
                                                   options.max_delivery_attempts));
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

// A message waits in a slot from Track() until both it is registered (the processor has
// started) and its result is known; only then is it ready to settle. The result may arrive
// first (a completion called inline), so neither step assumes the other happened.
struct InFlightSettler::State {
  struct Slot {
    std::optional<Message> message;
    std::optional<absl::Status> result;
    std::size_t bytes = 0;
    std::function<void(Message&)> before_failure;
  };
  State(std::size_t max_messages, std::size_t max_bytes)
      : max_messages(max_messages), max_bytes(max_bytes) {}

  void Complete(std::uint64_t id, absl::Status result) {
    std::lock_guard lock(mu);
    auto it = slots.find(id);
    if (it == slots.end() || it->second.result) return;  // settled already, or a second call
    it->second.result = std::move(result);
    // Without the message, Track() is still starting it and settles it itself.
    if (it->second.message) {
      ready.push_back(id);
      if (ready.size() == 1) ready_cv.notify_one();
    }
  }

  // Frees a slot's room; `wake`: tell a Track() blocked on the limits.
  void ReleaseLocked(std::unordered_map<std::uint64_t, Slot>::iterator it, bool wake = true) {
    bytes_in_flight -= it->second.bytes;
    slots.erase(it);
    if (wake && blocked_trackers > 0) room_cv.notify_one();
  }

  [[nodiscard]] bool HasRoomLocked(std::size_t bytes) const {
    // One message always fits, however large, so an oversize one cannot block forever.
    return slots.empty() || (slots.size() < max_messages &&
                             (max_bytes == 0 || bytes_in_flight + bytes <= max_bytes));
  }

  const std::size_t max_messages;
  const std::size_t max_bytes;
  std::mutex mu;
  std::condition_variable ready_cv;  // Run(): a failure to settle, Close(), Abort()
  std::condition_variable room_cv;   // Track(): room below the limits, Abort()
  std::unordered_map<std::uint64_t, Slot> slots;
  std::deque<std::uint64_t> ready;
  std::size_t bytes_in_flight = 0;
  std::uint64_t next_id = 1;
  int blocked_trackers = 0;
  bool closed = false;
  bool aborted = false;
};

InFlightSettler::InFlightSettler(std::size_t max_messages, std::size_t max_bytes,
                                 DeliveryPolicy* policy, WorkerPool* pool)
    : state_(std::make_shared<State>(std::max<std::size_t>(max_messages, 1), max_bytes)),
      policy_(policy),
      pool_(pool) {}

InFlightSettler::~InFlightSettler() = default;

void InFlightSettler::Track(Message message, const std::function<void(Message&, Completion)>& start,
                            std::function<void(Message&)> before_failure) {
  const std::size_t bytes = message.data.payload.size();
  std::uint64_t id = 0;
  {
    std::unique_lock lock(state_->mu);
    if (!state_->aborted && !state_->HasRoomLocked(bytes)) {
      ++state_->blocked_trackers;
      state_->room_cv.wait(lock, [&] { return state_->aborted || state_->HasRoomLocked(bytes); });
      --state_->blocked_trackers;
      // Room left after this one is for the next blocked worker.
      if (state_->blocked_trackers > 0) state_->room_cv.notify_one();
    }
    if (state_->aborted) {
      lock.unlock();
      policy_->Nack(message);
      pool_->CountAbortNacks(1);
      return;
    }
    id = state_->next_id++;
    State::Slot& slot = state_->slots[id];
    slot.bytes = bytes;
    slot.before_failure = std::move(before_failure);
    state_->bytes_in_flight += bytes;
  }
  Completion done = [weak = std::weak_ptr<State>(state_), id](absl::Status result) {
    if (auto state = weak.lock()) state->Complete(id, std::move(result));
  };
  try {
    start(message, done);
  } catch (const std::exception& e) {
    done(absl::InternalError(absl::StrCat("processor threw: ", e.what())));
  } catch (...) {
    done(absl::InternalError("processor threw a non-standard exception"));
  }
  std::unique_lock lock(state_->mu);
  auto it = state_->slots.find(id);
  if (it->second.result || state_->aborted) {
    // Completed while starting (settled here, on the worker), or Run() has ended after the
    // stop deadline. A result that is already known still counts.
    std::optional<absl::Status> result = std::move(it->second.result);
    std::function<void(Message&)> restore = std::move(it->second.before_failure);
    state_->ReleaseLocked(it);
    lock.unlock();
    if (restore && !(result && result->ok())) restore(message);
    if (result && result->ok()) {
      policy_->Succeed(message);
    } else if (result) {
      policy_->Fail(message, *result, FailureStage::kProcess);
    } else {
      policy_->Nack(message);
      pool_->CountAbortNacks(1);
    }
    return;
  }
  it->second.message.emplace(std::move(message));
}

void InFlightSettler::Run() {
  State& s = *state_;
  struct Completed {
    Message message;
    absl::Status result;
    std::function<void(Message&)> restore;
  };
  std::vector<Completed> settling;
  std::unique_lock lock(s.mu);
  for (;;) {
    s.ready_cv.wait(lock,
                    [&] { return !s.ready.empty() || s.aborted || (s.closed && s.slots.empty()); });
    // Everything that completed since the last round at once: one wake-up of this thread and
    // of the blocked workers per round, not per message.
    for (const std::uint64_t id : s.ready) {
      auto it = s.slots.find(id);
      settling.push_back(Completed{*std::move(it->second.message), *std::move(it->second.result),
                                   std::move(it->second.before_failure)});
      s.ReleaseLocked(it, /*wake=*/false);
    }
    s.ready.clear();
    if (!settling.empty() && s.blocked_trackers > 0) s.room_cv.notify_all();
    lock.unlock();
    for (auto& [message, result, restore] : settling) {
      if (result.ok()) {
        policy_->Succeed(message);
      } else {
        if (restore) restore(message);
        policy_->Fail(message, result, FailureStage::kProcess);
      }
    }
    settling.clear();
    lock.lock();
    if (s.aborted) {
      // Nack what is registered and still waiting; slots still being started are settled by
      // their Track() call, which sees `aborted`.
      std::vector<Message> waiting;
      for (auto it = s.slots.begin(); it != s.slots.end();) {
        if (it->second.message) {
          if (it->second.before_failure) it->second.before_failure(*it->second.message);
          waiting.push_back(*std::move(it->second.message));
          s.bytes_in_flight -= it->second.bytes;
          it = s.slots.erase(it);
        } else {
          ++it;
        }
      }
      lock.unlock();
      for (Message& m : waiting) policy_->Nack(m);
      pool_->CountAbortNacks(waiting.size());
      return;
    }
    if (s.closed && s.slots.empty() && s.ready.empty()) return;
  }
}

void InFlightSettler::Close() {
  std::lock_guard lock(state_->mu);
  state_->closed = true;
  state_->ready_cv.notify_all();
}

void InFlightSettler::Abort() {
  std::lock_guard lock(state_->mu);
  state_->aborted = true;
  state_->ready_cv.notify_all();
  state_->room_cv.notify_all();
}

}  // namespace dataflow::messagepipeline

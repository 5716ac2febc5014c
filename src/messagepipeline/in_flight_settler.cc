// InFlightSettler (declared in service_core.h): settles messages whose processing completes
// asynchronously.
#include <absl/strings/str_cat.h>

#include <algorithm>
#include <deque>
#include <unordered_map>

#include "dataflow/messagepipeline/service_core.h"

namespace dataflow::messagepipeline {

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

  // Frees a slot's room; `wake`: tell a Track() blocked on the limits. Returns the next slot.
  std::unordered_map<std::uint64_t, Slot>::iterator ReleaseLocked(
      std::unordered_map<std::uint64_t, Slot>::iterator it, bool wake = true) {
    bytes_in_flight -= it->second.bytes;
    it = slots.erase(it);
    if (wake && blocked_trackers > 0) room_cv.notify_one();
    return it;
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
          it = s.ReleaseLocked(it, /*wake=*/false);  // Abort() woke every blocked Track()
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

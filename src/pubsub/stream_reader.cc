#include "stream_reader.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "dataflow/messagepipeline/logging.h"

namespace dataflow::pubsub {
namespace {

// The subscription cannot be used as configured; retrying would only hide that.
bool IsPermanent(absl::StatusCode code) {
  return code == absl::StatusCode::kNotFound || code == absl::StatusCode::kPermissionDenied ||
         code == absl::StatusCode::kInvalidArgument ||
         code == absl::StatusCode::kFailedPrecondition ||
         code == absl::StatusCode::kUnauthenticated;
}

// A live client half-closes its stream this long before the stream's gRPC deadline (or a
// fifth of max_stream_duration if shorter), so the server ends it cleanly: ending it by the
// deadline made the emulator lose track of it (it fails on the RST_STREAM; docs/pubsub.md).
constexpr std::chrono::milliseconds kRenewEarly = std::chrono::seconds(2);

}  // namespace

const char* StreamReader::StateName(State state) {
  switch (state) {
    case State::kIdle:
      return "idle";
    case State::kConnecting:
      return "connecting";
    case State::kReading:
      return "reading";
    case State::kHandingOver:
      return "handing_over";
    case State::kRenewing:
      return "renewing";
    case State::kClosing:
      return "closing";
    case State::kBackoff:
      return "backoff";
    case State::kStopped:
      return "stopped";
  }
  return "?";
}

StreamReader::StreamReader(std::shared_ptr<SubscriberStub> stub, StreamReaderOptions options,
                           StreamReaderCallbacks callbacks)
    : stub_(std::move(stub)),
      options_(std::move(options)),
      callbacks_(std::move(callbacks)),
      backoff_(*messagepipeline::ExponentialBackoff::Create(options_.reconnect_backoff)) {}

void StreamReader::SetState(State state) {
  state_ = state;
  cv_.notify_all();
}

void StreamReader::CloseOutsideLock(std::unique_lock<std::mutex>& lock,
                                    std::shared_ptr<PullStream> stream, bool cancel) {
  ++closers_;
  lock.unlock();
  // A stream that cannot half-close (or whose half-close fails) is cancelled instead.
  if (cancel || !stream->WritesDone()) stream->Cancel();
  lock.lock();
  --closers_;
  cv_.notify_all();
}

void StreamReader::Run() {
  const auto max_duration = options_.max_stream_duration;
  const auto renew_early = std::min<std::chrono::milliseconds>(kRenewEarly, max_duration / 5);
  while (true) {
    const auto opened = Now();
    const auto planned_end = max_duration.count() > 0 ? opened + max_duration - renew_early
                                                      : SteadyClock::time_point::max();
    {
      std::lock_guard lock(mu_);
      if (stopping_) return SetState(State::kStopped);
      SetState(State::kConnecting);
    }
    std::shared_ptr<PullStream> stream = stub_->StreamingPull(max_duration);
    {
      std::lock_guard lock(mu_);
      if (stopping_) return SetState(State::kStopped);  // opened after Stop(): not used
      stream_ = stream;
      planned_end_ = planned_end;
    }
    bool renewing = false;
    absl::Status status = absl::UnavailableError("StreamingPull: no stream");
    if (stream != nullptr) status = ReadStream(stream, renewing);
    // Nack what this stream held now that it has ended (see kHalfCloseGrace in consumer.cc).
    if (callbacks_.on_stream_end) callbacks_.on_stream_end();
    {
      std::lock_guard lock(mu_);
      if (stopping_) return SetState(State::kStopped);
    }
    const bool deadline = status.code() == absl::StatusCode::kDeadlineExceeded;
    const bool ended_cleanly = status.ok() || status.code() == absl::StatusCode::kCancelled;
    if ((renewing && (ended_cleanly || deadline)) ||
        (deadline && max_duration.count() > 0 && Now() >= opened + max_duration)) {
      // The planned end of a healthy stream, not a failure: reopen at once, as Google's
      // clients renew long-lived streams.
      backoff_.Reset();
      std::lock_guard lock(mu_);
      ++stats_.stream_renewals;
      continue;
    }
    if (IsPermanent(status.code())) {
      Log()->error("pubsub consumer stopping subscription={} error={}", options_.subscription,
                   status.ToString());
      if (callbacks_.on_permanent_error) {
        callbacks_.on_permanent_error(absl::Status(
            status.code(), absl::StrCat("pubsub consumer: subscription ", options_.subscription,
                                        ": ", status.message())));
      }
      std::lock_guard lock(mu_);
      return SetState(State::kStopped);
    }
    const auto delay = backoff_.Next();
    static LogRateLimit limit;
    if (limit.Allow()) {
      Log()->warn(
          "pubsub stream ended, reconnecting subscription={} stream={} error={} delay_ms={}",
          options_.subscription, options_.index, status.ToString(), delay.count());
    }
    std::unique_lock lock(mu_);
    ++stats_.reconnects;
    SetState(State::kBackoff);
    if (cv_.wait_for(lock, delay, [&] { return stopping_; })) return SetState(State::kStopped);
  }
}

absl::Status StreamReader::ReadStream(const std::shared_ptr<PullStream>& stream, bool& renewing) {
  v1::StreamingPullRequest request;
  request.set_subscription(options_.subscription);
  request.set_stream_ack_deadline_seconds(static_cast<int>(options_.ack_deadline.count()));
  request.set_max_outstanding_messages(
      static_cast<std::int64_t>(options_.max_outstanding_messages));
  request.set_max_outstanding_bytes(static_cast<std::int64_t>(options_.max_outstanding_bytes));
  request.set_client_id(options_.client_id);
  if (stream->Write(request)) {
    AfterBusy(stream);  // in case Stop() came during the Write
    connected_ = true;
    v1::StreamingPullResponse response;
    // After a half-close the server still ends the stream with whatever it had in flight;
    // those messages are handed over (or, when stopping, nacked) like the rest.
    while (stream->Read(&response)) {
      backoff_.Reset();
      {
        std::lock_guard lock(mu_);
        if (state_ == State::kReading) SetState(State::kHandingOver);
      }
      callbacks_.on_response(response);
      AfterBusy(stream);
    }
    connected_ = false;
  }
  {
    std::unique_lock lock(mu_);
    // Nobody may be inside WritesDone()/Cancel() when the stream is finished and freed.
    cv_.wait(lock, [&] { return closers_ == 0; });
    renewing = state_ == State::kRenewing;
    stream_.reset();
    planned_end_ = SteadyClock::time_point::max();
  }
  return stream->Finish();
}

void StreamReader::AfterBusy(const std::shared_ptr<PullStream>& stream) {
  std::unique_lock lock(mu_);
  if (state_ == State::kRenewing || state_ == State::kClosing) return;  // half-closed once
  if (stopping_ || Now() >= planned_end_) {
    SetState(stopping_ ? State::kClosing : State::kRenewing);
    CloseOutsideLock(lock, stream, /*cancel=*/false);
    return;
  }
  SetState(State::kReading);
}

void StreamReader::Stop() {
  std::unique_lock lock(mu_);
  stopping_ = true;
  cv_.notify_all();
  if (state_ == State::kIdle) return SetState(State::kStopped);
  // A busy reader half-closes its stream itself once it is done (AfterBusy).
  if (state_ == State::kReading && stream_ != nullptr) {
    SetState(State::kClosing);
    // Half-close rather than cancel: the server then ends the stream cleanly, and the nacks
    // sent after it reach a server that no longer routes messages to this stream.
    CloseOutsideLock(lock, stream_, /*cancel=*/false);
  }
}

void StreamReader::HalfCloseIfDue() {
  std::unique_lock lock(mu_);
  if (state_ != State::kReading || stopping_ || stream_ == nullptr || Now() < planned_end_) {
    return;
  }
  SetState(State::kRenewing);
  CloseOutsideLock(lock, stream_, /*cancel=*/false);
}

void StreamReader::Cancel() {
  std::unique_lock lock(mu_);
  if (stream_ != nullptr) CloseOutsideLock(lock, stream_, /*cancel=*/true);
}

bool StreamReader::WaitFor(State state, SteadyClock::time_point deadline) {
  std::unique_lock lock(mu_);
  return cv_.wait_until(lock, deadline, [&] { return state_ == state; });
}

StreamReader::State StreamReader::state() const {
  std::lock_guard lock(mu_);
  return state_;
}

StreamReader::Stats StreamReader::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace dataflow::pubsub

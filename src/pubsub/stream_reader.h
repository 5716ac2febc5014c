// StreamReader: one StreamingPull stream of the consumer, reopened for as long as the
// consumer runs. Run() is the body of the reader's thread (the consumer owns and joins it):
//
//   kIdle -> kConnecting -> kReading <-> kHandingOver
//                               |  (planned end: max_stream_duration)   (Stop())
//                               +-> kRenewing -------------------+      +-> kClosing
//   stream ended: renewing (or its deadline at the planned end) -> kConnecting at once;
//   retryable error -> kBackoff (reconnect_backoff) -> kConnecting; permanent error
//   (NOT_FOUND, PERMISSION_DENIED, ...) -> on_permanent_error, kStopped; Stop() -> kStopped.
//
// kRenewing and kClosing are half-closed streams (WritesDone) that the server is ending; a
// response still arriving on one is handed over as usual. A stream is half-closed only while
// its reader waits in Read() (an idle reader, by HalfCloseIfDue() or Stop() from another
// thread) or by the reader itself after a handover, never twice, and never while it is
// being finished. A stream opened after Stop() is dropped unused. Thread-safe; its own lock.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "dataflow/messagepipeline/backoff.h"
#include "dataflow/pubsub/pubsub_stub.h"
#include "lease_manager.h"

namespace dataflow::pubsub {

struct StreamReaderOptions {
  std::string subscription;  // "projects/p/subscriptions/s"
  std::string client_id;
  int index = 0;  // for logs
  std::chrono::seconds ack_deadline{30};
  std::size_t max_outstanding_messages = 1000;  // the server-side limits on the stream
  std::size_t max_outstanding_bytes = 100 * 1024 * 1024;
  std::chrono::milliseconds max_stream_duration{std::chrono::seconds(60)};  // 0: none
  messagepipeline::BackoffOptions reconnect_backoff;                        // valid
  ClockFn clock;  // empty: steady_clock::now
};

struct StreamReaderCallbacks {
  // One response; may block (backpressure). Called by the reader's thread.
  std::function<void(v1::StreamingPullResponse&)> on_response;
  // After each stream ended (its pulled-but-not-handed-over messages were nacked).
  std::function<void()> on_stream_end;
  // The subscription cannot be used; the reader stops after this call.
  std::function<void(absl::Status)> on_permanent_error;
};

class StreamReader {
 public:
  enum class State {
    kIdle,         // Run() not called yet
    kConnecting,   // opening a stream and writing its first request
    kReading,      // waiting in Read()
    kHandingOver,  // passing a response to on_response
    kRenewing,     // half-closed at its planned end; the next opens when it has ended
    kClosing,      // half-closed by Stop(); the reader stops when it has ended
    kBackoff,      // waiting to reconnect after an error
    kStopped,
  };
  static const char* StateName(State state);

  StreamReader(std::shared_ptr<SubscriberStub> stub, StreamReaderOptions options,
               StreamReaderCallbacks callbacks);

  void Run();
  // Stops reading: half-closes an idle stream (the server then ends it), wakes a backoff.
  void Stop();
  // Half-closes the stream if it is idle past its planned end. Called periodically.
  void HalfCloseIfDue();
  // Ends the stream now (a blocked Read() returns): Stop()'s fallback for a server that does
  // not end a half-closed stream.
  void Cancel();
  // Until `deadline`, waits for the reader to be in `state` (kStopped: Run() is returning).
  bool WaitFor(State state, SteadyClock::time_point deadline);

  [[nodiscard]] State state() const;
  [[nodiscard]] bool connected() const { return connected_.load(); }
  struct Stats {
    std::size_t reconnects = 0;       // after an error, with backoff
    std::size_t stream_renewals = 0;  // reopened at the planned end
  };
  [[nodiscard]] Stats stats() const;

 private:
  SteadyClock::time_point Now() const {
    return options_.clock ? options_.clock() : SteadyClock::now();
  }
  // Reads one stream until it ends; its final status, and whether it ended by renewal.
  absl::Status ReadStream(const std::shared_ptr<PullStream>& stream, bool& renewing);
  // After a write or a handover: the reader half-closes its own stream if Stop() came or the
  // planned end passed meanwhile; else it goes (back) to kReading.
  void AfterBusy(const std::shared_ptr<PullStream>& stream);
  // Half-closes or cancels `stream` outside the lock (closers_ keeps Finish() waiting).
  void CloseOutsideLock(std::unique_lock<std::mutex>& lock, std::shared_ptr<PullStream> stream,
                        bool cancel);
  void SetState(State state);  // under mu_

  const std::shared_ptr<SubscriberStub> stub_;
  const StreamReaderOptions options_;
  const StreamReaderCallbacks callbacks_;

  messagepipeline::ExponentialBackoff backoff_;  // the reader thread's only

  mutable std::mutex mu_;
  std::condition_variable cv_;
  State state_ = State::kIdle;
  bool stopping_ = false;
  std::shared_ptr<PullStream> stream_;  // shared so Stop()/Cancel() reach it while in Read()
  SteadyClock::time_point planned_end_ = SteadyClock::time_point::max();
  int closers_ = 0;  // other threads inside WritesDone()/Cancel() on stream_
  std::atomic<bool> connected_{false};
  Stats stats_;
};

}  // namespace dataflow::pubsub

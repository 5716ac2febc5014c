#include "dataflow/pubsub/consumer.h"

#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <list>
#include <mutex>
#include <unordered_map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "dataflow/gcp/project.h"
#include "dataflow/gcp/status.h"
#include "dataflow/messagepipeline/logging.h"

namespace dataflow::pubsub {

using messagepipeline::Message;
using SteadyClock = std::chrono::steady_clock;

namespace {

// An ack, nack or extension waiting to be sent, and until when the server's lease on the
// message lasts (after that an ack can no longer be relied on, so it is not retried).
struct PendingId {
  std::string id;
  SteadyClock::time_point expires;
};

enum class Kind { kAck, kNack, kExtend };

}  // namespace

struct GooglePubsubConsumer::State {
  State(std::shared_ptr<PubsubStub> s, ConsumerOptions o)
      : stub(std::move(s)),
        options(std::move(o)),
        queue(options.channel_capacity),
        settle_backoff(*messagepipeline::ExponentialBackoff::Create(options.settle_backoff)) {
    done = done_promise.get_future().share();
  }
  struct Lease {
    SteadyClock::time_point received;
    SteadyClock::time_point next_extension;
    SteadyClock::time_point expires;  // the server's deadline as last confirmed
    std::size_t bytes = 0;
    bool handed_out = false;  // counted in handed_out_messages/bytes
  };
  // One per stream index. The stream is shared so Stop() can half-close it while its reader
  // is blocked in Read().
  struct Slot {
    std::shared_ptr<PullStream> stream;
    bool reading = false;      // the first request is written; no more writes but WritesDone
    bool pushing = false;      // the reader is handing a response to the channel
    bool half_closed = false;  // WritesDone() called (once per stream)
    bool renewing = false;     // half-closed at its planned end, not by Stop()
    int closers = 0;           // other threads inside WritesDone()/Cancel() on it
    SteadyClock::time_point planned_end = SteadyClock::time_point::max();
  };
  // Deliveries of one message to this consumer, for when the server does not count them.
  struct DeliveryCount {
    int count = 0;
    std::list<std::string>::iterator lru;  // its place in delivery_lru
  };

  SteadyClock::time_point Now() const {
    return options.clock ? options.clock() : SteadyClock::now();
  }

  std::shared_ptr<PubsubStub> stub;
  ConsumerOptions options;
  std::string subscription;
  messagepipeline::BoundedQueue<Message> queue;

  mutable std::mutex mu;
  std::condition_variable cv;
  std::unordered_map<std::string, Lease> leases;  // delivered, not yet settled
  std::vector<PendingId> acks;                    // settled, not yet sent
  std::vector<PendingId> nacks;
  // Failed with a retryable error; sent again at next_retry.
  std::vector<PendingId> retry_acks;
  std::vector<PendingId> retry_nacks;
  SteadyClock::time_point next_retry;
  messagepipeline::ExponentialBackoff settle_backoff;
  std::size_t ids_in_flight = 0;  // in an Acknowledge/ModifyAckDeadline call now
  std::vector<Slot> slots;
  // By message id; delivery_lru holds the ids, the most recently delivered first, so the
  // one delivered longest ago is forgotten when there are more than delivery_count_capacity.
  std::unordered_map<std::string, DeliveryCount> delivery_counts;
  std::list<std::string> delivery_lru;
  // Client-side flow control: messages in the channel or the pipeline, not yet settled.
  // (The emulator ignores the stream's server-side limits; Google's clients enforce both.)
  std::size_t handed_out_messages = 0;
  std::size_t handed_out_bytes = 0;
  std::size_t flow_waiting = 0;
  int live_readers = 0;
  bool lease_running = false;
  bool lease_stop = false;  // the destructor: last pass, then exit
  bool lease_done = false;
  std::uint64_t flush_requested = 0;  // Stop() asks for a pass now ...
  std::uint64_t flush_completed = 0;  // ... and waits for it
  bool started = false;
  bool stopping = false;
  bool done_set = false;
  std::atomic<int> connected{0};
  Stats stats;
  std::promise<absl::Status> done_promise;
  std::shared_future<absl::Status> done;
};

namespace {

using State = GooglePubsubConsumer::State;

// The subscription cannot be used as configured; retrying would only hide that.
bool IsPermanent(absl::StatusCode code) {
  return code == absl::StatusCode::kNotFound || code == absl::StatusCode::kPermissionDenied ||
         code == absl::StatusCode::kInvalidArgument ||
         code == absl::StatusCode::kFailedPrecondition ||
         code == absl::StatusCode::kUnauthenticated;
}

// The server accepts at most 2500 ack ids per request (and 512 KB).
constexpr std::size_t kMaxIdsPerRequest = 2500;

// How long Stop() lets a half-closed stream end by itself before cancelling it. Cancelling
// is the fallback only: Google's emulator does not notice a cancelled stream (its gRPC
// fails on the RST_STREAM) and keeps sending messages, nacked ones included, to it.
constexpr std::chrono::seconds kHalfCloseGrace(2);

const char* KindName(Kind kind) {
  switch (kind) {
    case Kind::kAck:
      return "ack";
    case Kind::kNack:
      return "nack";
    case Kind::kExtend:
      return "modack";
  }
  return "?";
}

messagepipeline::Clock::time_point FromProto(const google::protobuf::Timestamp& t) {
  return messagepipeline::Clock::time_point(
      std::chrono::duration_cast<messagepipeline::Clock::duration>(
          std::chrono::seconds(t.seconds()) + std::chrono::nanoseconds(t.nanos())));
}

void LogExpired(State& s, Kind kind, std::size_t n) {
  static LogRateLimit limit;
  if (limit.Allow()) {
    Log()->warn(
        "pubsub {} given up: the lease ran out while retrying; the message may be "
        "redelivered subscription={} ids={} suppressed={}",
        KindName(kind), s.subscription, n, limit.suppressed());
  }
}

// Sends `ids` in requests of at most kMaxIdsPerRequest. A retryable failure queues the ids
// (those whose lease still lasts) for another try after a backoff; extensions are retried
// by moving their next extension forward instead. Never holds s.mu during an RPC.
void SendIds(State& s, Kind kind, std::vector<PendingId> ids) {
  const int deadline_s =
      kind == Kind::kExtend ? static_cast<int>(s.options.ack_deadline.count()) : 0;
  for (std::size_t i = 0; i < ids.size(); i += kMaxIdsPerRequest) {
    const auto end = std::min(ids.size(), i + kMaxIdsPerRequest);
    const std::size_t n = end - i;
    {
      std::lock_guard lock(s.mu);
      s.ids_in_flight += n;
    }
    const auto sent_at = s.Now();
    absl::Status status;
    if (kind == Kind::kAck) {
      v1::AcknowledgeRequest r;
      r.set_subscription(s.subscription);
      for (auto j = i; j < end; ++j) r.add_ack_ids(ids[j].id);
      status = s.stub->Acknowledge(r);
    } else {
      v1::ModifyAckDeadlineRequest r;
      r.set_subscription(s.subscription);
      r.set_ack_deadline_seconds(deadline_s);
      for (auto j = i; j < end; ++j) r.add_ack_ids(ids[j].id);
      status = s.stub->ModifyAckDeadline(r);
    }
    std::unique_lock lock(s.mu);
    s.ids_in_flight -= n;
    if (status.ok()) {
      s.settle_backoff.Reset();
      if (kind == Kind::kExtend) {
        for (auto j = i; j < end; ++j) {
          auto it = s.leases.find(ids[j].id);
          if (it != s.leases.end()) it->second.expires = sent_at + s.options.ack_deadline;
        }
      }
      s.cv.notify_all();
      continue;
    }
    if (!gcp::IsRetryable(status.code())) {
      // A lost ack or extension means a redelivery, which at-least-once allows.
      s.stats.settles_failed += n;
      s.cv.notify_all();
      lock.unlock();
      static LogRateLimit limit;
      if (limit.Allow()) {
        Log()->warn("pubsub {} failed subscription={} ids={} error={}", KindName(kind),
                    s.subscription, n, status.ToString());
      }
      continue;
    }
    const auto now = s.Now();
    const auto delay = s.settle_backoff.Next();
    std::size_t retried = 0;
    for (auto j = i; j < end; ++j) {
      if (now + delay >= ids[j].expires) continue;
      ++retried;
      if (kind == Kind::kExtend) {
        auto it = s.leases.find(ids[j].id);
        if (it != s.leases.end()) it->second.next_extension = now + delay;
      } else {
        (kind == Kind::kAck ? s.retry_acks : s.retry_nacks).push_back(std::move(ids[j]));
      }
    }
    if (kind != Kind::kExtend) s.next_retry = now + delay;
    s.stats.settles_expired += n - retried;
    s.cv.notify_all();
    lock.unlock();
    if (retried < n) LogExpired(s, kind, n - retried);
    static LogRateLimit limit;
    if (retried > 0 && limit.Allow()) {
      Log()->warn("pubsub {} failed, retrying subscription={} ids={} delay_ms={} error={}",
                  KindName(kind), s.subscription, retried, delay.count(), status.ToString());
    }
  }
}

// Sends the acks and nacks settled so far (and, with `retries`, the failed ones that are due
// again). Called by the lease thread every flush interval and by a reader as its stream ends.
void SendSettlements(State& s, bool retries) {
  std::vector<PendingId> acks, nacks;
  std::size_t expired_acks = 0, expired_nacks = 0;
  {
    std::lock_guard lock(s.mu);
    acks.swap(s.acks);
    nacks.swap(s.nacks);
    s.stats.acks_sent += acks.size();
    s.stats.nacks_sent += nacks.size();
    const auto now = s.Now();
    if (retries && now >= s.next_retry) {
      auto take = [&](std::vector<PendingId>& from, std::vector<PendingId>& to,
                      std::size_t& expired) {
        for (auto& p : from) {
          if (p.expires <= now) {
            ++expired;
          } else {
            to.push_back(std::move(p));
          }
        }
        from.clear();
      };
      const std::size_t before = acks.size() + nacks.size();
      take(s.retry_acks, acks, expired_acks);
      take(s.retry_nacks, nacks, expired_nacks);
      s.stats.settle_retries += acks.size() + nacks.size() - before;
      s.stats.settles_expired += expired_acks + expired_nacks;
    }
  }
  if (expired_acks > 0) LogExpired(s, Kind::kAck, expired_acks);
  if (expired_nacks > 0) LogExpired(s, Kind::kNack, expired_nacks);
  if (!acks.empty()) SendIds(s, Kind::kAck, std::move(acks));
  if (!nacks.empty()) SendIds(s, Kind::kNack, std::move(nacks));
}

// A stream that cannot half-close (or whose half-close fails) is cancelled instead.
void HalfClose(PullStream& stream) {
  if (!stream.WritesDone()) stream.Cancel();
}

// Counts a delivery of `message_id` to this consumer and returns the count (1 the first
// time). Under s.mu.
int CountDelivery(State& s, const std::string& message_id) {
  if (s.options.delivery_count_capacity == 0 || message_id.empty()) return 0;
  auto [it, inserted] = s.delivery_counts.try_emplace(message_id);
  if (inserted) {
    s.delivery_lru.push_front(message_id);
  } else {
    s.delivery_lru.erase(it->second.lru);
    s.delivery_lru.push_front(message_id);
  }
  it->second.lru = s.delivery_lru.begin();
  const int count = ++it->second.count;
  if (s.delivery_counts.size() > s.options.delivery_count_capacity) {
    s.delivery_counts.erase(s.delivery_lru.back());
    s.delivery_lru.pop_back();
    ++s.stats.delivery_counts_evicted;
  }
  return count;
}

// An acked message is done with: its count is no longer needed. Under s.mu.
void ForgetDeliveries(State& s, const std::string& message_id) {
  auto it = s.delivery_counts.find(message_id);
  if (it == s.delivery_counts.end()) return;
  s.delivery_lru.erase(it->second.lru);
  s.delivery_counts.erase(it);
}

// Half-closes the streams past their planned end (max_stream_duration) whose reader is
// waiting in Read(): the server then ends them cleanly and the reader opens the next one. (A
// reader busy handing a response over does it itself when done.) Called by the lease thread.
void HalfCloseExpiredStreams(State& s) {
  std::vector<std::shared_ptr<PullStream>> to_close;
  {
    std::lock_guard lock(s.mu);
    const auto now = s.Now();
    for (auto& slot : s.slots) {
      if (slot.stream != nullptr && slot.reading && !slot.pushing && !slot.half_closed &&
          now >= slot.planned_end && !s.stopping) {
        slot.half_closed = true;
        slot.renewing = true;
        ++slot.closers;
        to_close.push_back(slot.stream);
      }
    }
  }
  if (to_close.empty()) return;
  for (auto& stream : to_close) HalfClose(*stream);
  std::lock_guard lock(s.mu);
  for (auto& slot : s.slots) {
    for (auto& stream : to_close) {
      if (slot.stream == stream) --slot.closers;
    }
  }
  s.cv.notify_all();
}

// Marks the consumer stopping, half-closes the streams of idle readers (a busy reader does
// its own once it has nacked what it holds), closes the channel and resolves Done().
void Finish(State& s, absl::Status status) {
  std::vector<std::shared_ptr<PullStream>> to_close;
  {
    std::lock_guard lock(s.mu);
    s.stopping = true;
    for (auto& slot : s.slots) {
      if (slot.stream != nullptr && slot.reading && !slot.pushing && !slot.half_closed) {
        slot.half_closed = true;
        ++slot.closers;
        to_close.push_back(slot.stream);
      }
    }
    s.cv.notify_all();
  }
  s.queue.Close();
  // Half-close rather than cancel: the server then ends the stream cleanly, and the nacks
  // sent after it reach a server that no longer routes messages to this stream.
  for (auto& stream : to_close) HalfClose(*stream);
  bool resolve = false;
  {
    std::lock_guard lock(s.mu);
    for (auto& slot : s.slots) {
      for (auto& stream : to_close) {
        if (slot.stream == stream) --slot.closers;
      }
    }
    resolve = !s.done_set;
    s.done_set = true;
    s.cv.notify_all();
  }
  if (resolve) s.done_promise.set_value(std::move(status));
}

// Hands one response's messages to the channel under the flow-control limits; nacks what it
// could not hand over (the consumer is stopping).
void HandOver(const std::shared_ptr<State>& sp, std::size_t index,
              v1::StreamingPullResponse& response) {
  State& s = *sp;
  const auto now = s.Now();
  std::vector<Message> batch;
  batch.reserve(static_cast<std::size_t>(response.received_messages_size()));
  {
    std::lock_guard lock(s.mu);
    s.stats.received += static_cast<std::size_t>(response.received_messages_size());
    for (auto& rm : *response.mutable_received_messages()) {
      s.leases[rm.ack_id()] = State::Lease{.received = now,
                                           .next_extension = now + s.options.ack_deadline / 2,
                                           .expires = now + s.options.ack_deadline,
                                           .bytes = rm.message().ByteSizeLong()};
      // Pub/Sub counts deliveries only for a subscription with a dead-letter policy (else
      // 0); without one, count them here so the service's max_delivery_attempts applies.
      if (rm.delivery_attempt() <= 0) {
        rm.set_delivery_attempt(CountDelivery(s, rm.message().message_id()));
      }
    }
  }
  std::weak_ptr<State> weak = sp;
  for (auto& rm : *response.mutable_received_messages()) {
    auto& m = *rm.mutable_message();
    messagepipeline::MessageData data{.id = m.message_id(),
                                      .payload = std::move(*m.mutable_data()),
                                      .publish_time = FromProto(m.publish_time())};
    messagepipeline::Attributes attributes(m.attributes().begin(), m.attributes().end());
    auto settle = [weak, id = rm.ack_id(), message_id = m.message_id()](bool ack) {
      auto st = weak.lock();
      if (!st) return;
      std::lock_guard lock(st->mu);
      if (ack) ForgetDeliveries(*st, message_id);
      // An unleased id was given up on (lease expired or consumer destroyed).
      auto it = st->leases.find(id);
      if (it == st->leases.end()) return;
      if (it->second.handed_out) {
        --st->handed_out_messages;
        st->handed_out_bytes -= it->second.bytes;
        st->cv.notify_all();
      }
      (ack ? st->acks : st->nacks).push_back(PendingId{id, it->second.expires});
      st->leases.erase(it);
    };
    Message msg(
        std::move(data), std::move(attributes),
        messagepipeline::MakeAckHandler([settle] { settle(true); }, [settle] { settle(false); }));
    msg.ordering_key = m.ordering_key();
    msg.delivery_attempt = rm.delivery_attempt();
    batch.push_back(std::move(msg));
  }
  {
    std::lock_guard lock(s.mu);
    s.slots[index].pushing = true;
  }
  // Blocks while the channel is full (backpressure); after Close() the rest is nacked.
  std::size_t pushed = 0;
  const auto& received = response.received_messages();
  for (; pushed < batch.size(); ++pushed) {
    const std::string& ack_id = received[static_cast<int>(pushed)].ack_id();
    {
      // Wait for room under the flow-control limits (one message always fits).
      std::unique_lock lock(s.mu);
      auto it = s.leases.find(ack_id);
      const std::size_t bytes = it == s.leases.end() ? 0 : it->second.bytes;
      auto room = [&] {
        return s.stopping || s.handed_out_messages == 0 ||
               (s.handed_out_messages < s.options.max_outstanding_messages &&
                s.handed_out_bytes + bytes <= s.options.max_outstanding_bytes);
      };
      if (!room()) {
        ++s.flow_waiting;
        s.cv.wait(lock, room);
        --s.flow_waiting;
      }
      if (s.stopping) break;
      it = s.leases.find(ack_id);
      if (it != s.leases.end()) {
        it->second.handed_out = true;
        ++s.handed_out_messages;
        s.handed_out_bytes += it->second.bytes;
      }
    }
    if (!s.queue.Push(std::move(batch[pushed]))) break;  // closed: not moved
  }
  for (std::size_t i = pushed; i < batch.size(); ++i) batch[i].Nack();
}

void ReadLoop(const std::shared_ptr<State>& sp, int index) {
  State& s = *sp;
  const auto slot_index = static_cast<std::size_t>(index);
  auto backoff = *messagepipeline::ExponentialBackoff::Create(s.options.reconnect_backoff);
  const std::string client_id = absl::StrCat("dataflow-", getpid(), "-", index);
  // Half-closes the stream unless someone already did.
  auto half_close = [&](const std::shared_ptr<PullStream>& stream) {
    {
      std::lock_guard lock(s.mu);
      auto& slot = s.slots[slot_index];
      if (slot.half_closed || (!s.stopping && s.Now() < slot.planned_end)) return;
      slot.half_closed = true;
      slot.renewing = !s.stopping;
    }
    HalfClose(*stream);
  };
  const auto max_duration = s.options.max_stream_duration;
  // A stream's gRPC deadline is max_stream_duration ahead: it ends the stream on the server
  // of a client that died. A live client half-closes it a little earlier (its planned end),
  // and the server ends it cleanly: ending it by the deadline made the emulator lose track
  // of it (it fails on the RST_STREAM; see docs/pubsub.md).
  const auto renew_early = std::min<std::chrono::milliseconds>(kHalfCloseGrace, max_duration / 5);
  while (true) {
    const auto opened = s.Now();
    const auto planned_end = max_duration.count() > 0 ? opened + max_duration - renew_early
                                                      : SteadyClock::time_point::max();
    std::shared_ptr<PullStream> stream = s.stub->StreamingPull(max_duration);
    {
      std::lock_guard lock(s.mu);
      if (s.stopping) return;
      s.slots[slot_index] = State::Slot{.stream = stream, .planned_end = planned_end};
    }
    bool renewing = false;
    absl::Status status = absl::UnavailableError("StreamingPull: no stream");
    if (stream != nullptr) {
      v1::StreamingPullRequest request;
      request.set_subscription(s.subscription);
      request.set_stream_ack_deadline_seconds(static_cast<int>(s.options.ack_deadline.count()));
      request.set_max_outstanding_messages(
          static_cast<std::int64_t>(s.options.max_outstanding_messages));
      request.set_max_outstanding_bytes(static_cast<std::int64_t>(s.options.max_outstanding_bytes));
      request.set_client_id(client_id);
      const bool open = stream->Write(request);
      {
        std::lock_guard lock(s.mu);
        s.slots[slot_index].reading = open;
      }
      if (open) {
        half_close(stream);  // in case Stop() came during the Write
        s.connected.fetch_add(1);
        v1::StreamingPullResponse response;
        // After a half-close the server still ends the stream with whatever it had in
        // flight; those messages are nacked like the rest (HandOver sees `stopping`).
        while (stream->Read(&response)) {
          backoff.Reset();
          HandOver(sp, slot_index, response);
          {
            std::lock_guard lock(s.mu);
            s.slots[slot_index].pushing = false;
          }
          half_close(stream);
        }
        s.connected.fetch_sub(1);
      }
      {
        std::unique_lock lock(s.mu);
        // Nobody may be inside WritesDone()/Cancel() when the stream is finished and freed.
        s.cv.wait(lock, [&] { return s.slots[slot_index].closers == 0; });
        renewing = s.slots[slot_index].renewing;
        s.slots[slot_index] = State::Slot{};
      }
      status = stream->Finish();
      stream.reset();
    }
    // Nack what this stream held now that it has ended (see kHalfCloseGrace).
    SendSettlements(s, /*retries=*/false);
    {
      std::lock_guard lock(s.mu);
      if (s.stopping) return;
    }
    const bool deadline = status.code() == absl::StatusCode::kDeadlineExceeded;
    const bool ended_cleanly = status.ok() || status.code() == absl::StatusCode::kCancelled;
    if ((renewing && (ended_cleanly || deadline)) ||
        (deadline && max_duration.count() > 0 && s.Now() >= opened + max_duration)) {
      // The planned end of a healthy stream, not a failure: reopen at once, as Google's
      // clients renew long-lived streams. Its messages keep their leases in `leases`.
      backoff.Reset();
      std::lock_guard lock(s.mu);
      ++s.stats.stream_renewals;
      continue;
    }
    if (IsPermanent(status.code())) {
      Log()->error("pubsub consumer stopping subscription={} error={}", s.subscription,
                   status.ToString());
      Finish(s, absl::Status(status.code(), absl::StrCat("pubsub consumer: subscription ",
                                                         s.subscription, ": ", status.message())));
      return;
    }
    auto delay = backoff.Next();
    static LogRateLimit limit;
    if (limit.Allow()) {
      Log()->warn(
          "pubsub stream ended, reconnecting subscription={} stream={} error={} "
          "delay_ms={}",
          s.subscription, index, status.ToString(), delay.count());
    }
    std::unique_lock lock(s.mu);
    ++s.stats.reconnects;
    if (s.cv.wait_for(lock, delay, [&] { return s.stopping; })) return;
  }
}

void LeaseLoop(State& s) {
  bool last = false;
  while (!last) {
    std::uint64_t flush = 0;
    {
      std::unique_lock lock(s.mu);
      s.cv.wait_for(lock, s.options.ack_flush_interval,
                    [&] { return s.lease_stop || s.flush_requested != s.flush_completed; });
      last = s.lease_stop;
      flush = s.flush_requested;
    }
    std::vector<PendingId> extend;
    {
      std::lock_guard lock(s.mu);
      const auto now = s.Now();
      for (auto it = s.leases.begin(); it != s.leases.end();) {
        if (last) {
          // Destroyed with messages unsettled: give them back to the server now.
          s.nacks.push_back(PendingId{it->first, it->second.expires});
          it = s.leases.erase(it);
        } else if (now - it->second.received > s.options.max_lease_extension) {
          // Let the server redeliver it; a later settle of this copy is ignored.
          if (it->second.handed_out) {
            --s.handed_out_messages;
            s.handed_out_bytes -= it->second.bytes;
            s.cv.notify_all();
          }
          it = s.leases.erase(it);
        } else {
          if (it->second.next_extension <= now) {
            extend.push_back(PendingId{it->first, it->second.expires});
            it->second.next_extension = now + s.options.ack_deadline / 2;
          }
          ++it;
        }
      }
      s.stats.extensions_sent += extend.size();
    }
    if (!last) HalfCloseExpiredStreams(s);
    SendSettlements(s, /*retries=*/!last);
    if (!extend.empty()) SendIds(s, Kind::kExtend, std::move(extend));
    std::lock_guard lock(s.mu);
    s.flush_completed = std::max(s.flush_completed, flush);
    s.cv.notify_all();
  }
  std::lock_guard lock(s.mu);
  s.lease_done = true;
  s.cv.notify_all();
}

}  // namespace

absl::StatusOr<std::unique_ptr<GooglePubsubConsumer>> GooglePubsubConsumer::Create(
    std::shared_ptr<PubsubStub> stub, ConsumerOptions options) {
  if (stub == nullptr) return absl::InvalidArgumentError("consumer: stub is null");
  auto project = gcp::ResolveProjectId(options.project_id);
  if (!project.ok()) return project.status();
  options.project_id = *project;
  if (options.subscription_id.empty() || options.subscription_id.find('/') != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("consumer: subscription_id must be a non-empty id without '/', got \"",
                     options.subscription_id, "\""));
  }
  if (options.streams < 1 || options.streams > 64) {
    return absl::InvalidArgumentError("consumer: streams must be 1..64");
  }
  if (options.max_outstanding_messages == 0 || options.max_outstanding_bytes == 0 ||
      options.channel_capacity == 0) {
    return absl::InvalidArgumentError(
        "consumer: max_outstanding_messages, max_outstanding_bytes and channel_capacity must "
        "be positive");
  }
  if (options.ack_deadline < std::chrono::seconds(10) ||
      options.ack_deadline > std::chrono::seconds(600)) {
    return absl::InvalidArgumentError("consumer: ack_deadline must be 10..600 s");
  }
  if (options.ack_flush_interval.count() <= 0) {
    return absl::InvalidArgumentError("consumer: ack_flush_interval must be positive");
  }
  if (options.delivery_count_capacity > 10'000'000) {
    return absl::InvalidArgumentError("consumer: delivery_count_capacity must be 0..10000000");
  }
  if (options.max_stream_duration.count() != 0 &&
      options.max_stream_duration < std::chrono::seconds(1)) {
    return absl::InvalidArgumentError("consumer: max_stream_duration must be 0 (none) or >= 1 s");
  }
  if (auto b = messagepipeline::ExponentialBackoff::Create(options.reconnect_backoff); !b.ok()) {
    return b.status();
  }
  if (auto b = messagepipeline::ExponentialBackoff::Create(options.settle_backoff); !b.ok()) {
    return b.status();
  }
  return std::unique_ptr<GooglePubsubConsumer>(
      new GooglePubsubConsumer(std::move(stub), std::move(options)));
}

GooglePubsubConsumer::GooglePubsubConsumer(std::shared_ptr<PubsubStub> stub,
                                           ConsumerOptions options)
    : state_(std::make_shared<State>(std::move(stub), std::move(options))) {
  state_->subscription =
      SubscriptionName(state_->options.project_id, state_->options.subscription_id);
  state_->slots.resize(static_cast<std::size_t>(state_->options.streams));
}

GooglePubsubConsumer::~GooglePubsubConsumer() {
  const auto deadline = SteadyClock::now() + std::chrono::seconds(5);
  (void)Stop(deadline);
  if (!lease_thread_.joinable()) return;
  auto& s = *state_;
  bool finished;
  {
    std::unique_lock lock(s.mu);
    s.lease_stop = true;
    s.cv.notify_all();
    finished = s.cv.wait_until(lock, deadline, [&] { return s.lease_done; });
  }
  if (finished) {
    lease_thread_.join();
  } else {
    // Stuck in an RPC: it owns the state and ends when the RPC does (unary calls time out).
    Log()->warn("pubsub consumer destroyed with its last nacks still being sent subscription={}",
                s.subscription);
    lease_thread_.detach();
  }
}

absl::Status GooglePubsubConsumer::Start() {
  auto& s = *state_;
  {
    std::lock_guard lock(s.mu);
    if (s.started || s.stopping) {
      return absl::FailedPreconditionError("consumer: Start() after Start() or Stop()");
    }
    s.started = true;
  }
  // Fail fast and clearly on a missing subscription, instead of a stream that keeps ending
  // with the same error. Reading a subscription's configuration needs more than consuming
  // from it (roles/pubsub.subscriber has no pubsub.subscriptions.get), so a denied check is
  // only a warning: a stream that is refused too ends the consumer with that error.
  auto sub = s.stub->GetSubscription(s.subscription);
  if (!sub.ok() && sub.status().code() == absl::StatusCode::kPermissionDenied) {
    Log()->warn(
        "pubsub consumer: cannot check subscription {} (permission denied: the role may lack "
        "pubsub.subscriptions.get); consuming anyway",
        s.subscription);
  } else if (!sub.ok()) {
    absl::Status status(sub.status().code(),
                        absl::StrCat("pubsub consumer: subscription ", s.subscription,
                                     " is not usable: ", sub.status().message()));
    Finish(s, status);
    return status;
  }
  {
    std::lock_guard lock(s.mu);
    s.lease_running = true;
    s.live_readers = s.options.streams;
  }
  lease_thread_ = std::thread([st = state_] { LeaseLoop(*st); });
  for (int i = 0; i < s.options.streams; ++i) {
    readers_.emplace_back([st = state_, i] {
      ReadLoop(st, i);
      std::lock_guard lock(st->mu);
      --st->live_readers;
      st->cv.notify_all();
    });
  }
  Log()->info("pubsub consumer started subscription={} streams={}", s.subscription,
              s.options.streams);
  return absl::OkStatus();
}

absl::Status GooglePubsubConsumer::Stop(messagepipeline::Deadline deadline) {
  auto& s = *state_;
  Finish(s, absl::OkStatus());
  std::unique_lock lock(s.mu);
  // The streams end once the server answers the half-close; cancel any that do not.
  if (!s.cv.wait_until(lock, std::min(deadline, SteadyClock::now() + kHalfCloseGrace),
                       [&] { return s.live_readers == 0; })) {
    std::vector<std::shared_ptr<PullStream>> to_cancel;
    for (auto& slot : s.slots) {
      if (slot.stream != nullptr) {
        ++slot.closers;
        to_cancel.push_back(slot.stream);
      }
    }
    lock.unlock();
    for (auto& stream : to_cancel) stream->Cancel();
    lock.lock();
    for (auto& slot : s.slots) {
      for (auto& stream : to_cancel) {
        if (slot.stream == stream) --slot.closers;
      }
    }
    s.cv.notify_all();
    s.cv.wait_until(lock, deadline, [&] { return s.live_readers == 0; });
  }
  const int open_streams = s.live_readers;
  // Then the acks and nacks settled so far, including the readers' final nacks.
  bool flushed = true;
  if (s.lease_running && !s.lease_done) {
    const std::uint64_t flush = ++s.flush_requested;
    s.cv.notify_all();
    flushed = s.cv.wait_until(lock, deadline, [&] {
      return s.flush_completed >= flush && s.retry_acks.empty() && s.retry_nacks.empty() &&
             s.ids_in_flight == 0;
    });
  }
  const std::size_t unsent =
      s.acks.size() + s.nacks.size() + s.retry_acks.size() + s.retry_nacks.size() + s.ids_in_flight;
  lock.unlock();
  // A reader past the deadline is stuck in the stub; it holds only the shared state.
  for (auto& t : readers_) {
    if (!t.joinable()) continue;
    if (open_streams == 0) {
      t.join();
    } else {
      t.detach();
    }
  }
  readers_.clear();
  if (open_streams == 0 && flushed) return absl::OkStatus();
  auto status = absl::DeadlineExceededError(absl::StrCat(
      "pubsub consumer stop: deadline passed with ", open_streams, " stream(s) still open and ",
      unsent, " ack/nack id(s) not yet confirmed by the server; subscription ", s.subscription));
  Log()->warn("{}", status.ToString());
  return status;
}

messagepipeline::BoundedQueue<Message>& GooglePubsubConsumer::Messages() { return state_->queue; }

std::shared_future<absl::Status> GooglePubsubConsumer::Done() { return state_->done; }

bool GooglePubsubConsumer::IsConnected() const { return state_->connected.load() > 0; }

GooglePubsubConsumer::Stats GooglePubsubConsumer::stats() const {
  std::lock_guard lock(state_->mu);
  Stats out = state_->stats;
  out.outstanding_messages = state_->handed_out_messages;
  out.outstanding_bytes = state_->handed_out_bytes;
  out.streams_waiting_for_flow_control = state_->flow_waiting;
  out.delivery_counts = state_->delivery_counts.size();
  return out;
}

}  // namespace dataflow::pubsub

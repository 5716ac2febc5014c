#include "subscriber_session.h"

#include <unistd.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "dataflow/messagepipeline/logging.h"

namespace dataflow::pubsub::internal {

using messagepipeline::Message;

namespace {

// How long Stop() lets a half-closed stream end by itself before cancelling it. Cancelling
// is the fallback only: Google's emulator does not notice a cancelled stream (its gRPC
// fails on the RST_STREAM) and keeps sending messages, nacked ones included, to it.
constexpr std::chrono::seconds kHalfCloseGrace(2);

messagepipeline::Clock::time_point FromProto(const google::protobuf::Timestamp& t) {
  return messagepipeline::Clock::time_point(
      std::chrono::duration_cast<messagepipeline::Clock::duration>(
          std::chrono::seconds(t.seconds()) + std::chrono::nanoseconds(t.nanos())));
}

}  // namespace

SubscriberSession::Settling::Settling(std::shared_ptr<SubscriberStub> stub,
                                      const ConsumerOptions& o, const std::string& subscription)
    : leases({.ack_deadline = o.ack_deadline,
              .max_lease_extension = o.max_lease_extension,
              .clock = o.clock}),
      batcher(std::move(stub), {.subscription = subscription,
                                .ack_deadline = o.ack_deadline,
                                .backoff = o.settle_backoff,
                                .clock = o.clock}),
      flow(o.max_outstanding_messages, o.max_outstanding_bytes),
      deliveries(o.delivery_count_capacity) {}

SubscriberSession::SubscriberSession(std::shared_ptr<SubscriberStub> stub, ConsumerOptions options)
    : stub_(std::move(stub)),
      options_(std::move(options)),
      subscription_(SubscriptionName(options_.project_id, options_.subscription_id)),
      queue_(options_.channel_capacity),
      settling_(std::make_shared<Settling>(stub_, options_, subscription_)) {
  done_ = done_promise_.get_future().share();
  for (int i = 0; i < options_.streams; ++i) {
    readers_.push_back(std::make_unique<StreamReader>(
        stub_,
        StreamReaderOptions{.subscription = subscription_,
                            .client_id = absl::StrCat("dataflow-", getpid(), "-", i),
                            .index = i,
                            .ack_deadline = options_.ack_deadline,
                            .max_outstanding_messages = options_.max_outstanding_messages,
                            .max_outstanding_bytes = options_.max_outstanding_bytes,
                            .max_stream_duration = options_.max_stream_duration,
                            .reconnect_backoff = options_.reconnect_backoff,
                            .clock = options_.clock},
        StreamReaderCallbacks{
            .on_response = [this](v1::StreamingPullResponse& r) { HandOver(r); },
            .on_stream_end = [this] { settling_->batcher.Flush(/*retries=*/false); },
            .on_permanent_error = [this](absl::Status s) { Finish(std::move(s)); }}));
  }
}

SubscriberSession::~SubscriberSession() {
  (void)Stop(std::chrono::steady_clock::now() + std::chrono::seconds(5));
  // Readers still in a stream that ignored the half-close: end them now. Joined, not
  // detached: a thread still in an RPC ends when the RPC does (the gRPC stub's unary calls
  // time out; a cancelled stream's Read() returns).
  for (auto& r : readers_) r->Cancel();
  JoinReaders(/*all=*/true);
  // Then the pump's last pass, which nacks every lease left (the readers add none now).
  {
    std::lock_guard lock(pump_mu_);
    pump_stop_ = true;
    pump_cv_.notify_all();
  }
  if (pump_thread_.joinable()) pump_thread_.join();
}

absl::Status SubscriberSession::Start() {
  {
    std::lock_guard lock(mu_);
    if (started_ || stopping_) {
      return absl::FailedPreconditionError("consumer: Start() after Start() or Stop()");
    }
    started_ = true;
  }
  // Fail fast and clearly on a missing subscription, instead of a stream that keeps ending
  // with the same error. Reading a subscription's configuration needs more than consuming
  // from it (roles/pubsub.subscriber has no pubsub.subscriptions.get), so a denied check is
  // only a warning: a stream that is refused too ends the consumer with that error.
  auto sub = stub_->GetSubscription(subscription_);
  if (!sub.ok() && sub.status().code() == absl::StatusCode::kPermissionDenied) {
    Log()->warn(
        "pubsub consumer: cannot check subscription {} (permission denied: the role may lack "
        "pubsub.subscriptions.get); consuming anyway",
        subscription_);
  } else if (!sub.ok()) {
    absl::Status status(sub.status().code(),
                        absl::StrCat("pubsub consumer: subscription ", subscription_,
                                     " is not usable: ", sub.status().message()));
    Finish(status);
    return status;
  }
  {
    // A Stop() meanwhile has stopped the readers: their threads return at once.
    std::lock_guard lock(mu_);
    pump_thread_ = std::thread([this] { Pump(); });
    for (auto& r : readers_) reader_threads_.emplace_back([reader = r.get()] { reader->Run(); });
  }
  Log()->info("pubsub consumer started subscription={} streams={}", subscription_,
              options_.streams);
  return absl::OkStatus();
}

void SubscriberSession::Finish(absl::Status status) {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  // Flow control first, so a reader handing a response over stops pushing at once.
  settling_->flow.Shutdown();
  for (auto& r : readers_) r->Stop();
  queue_.Close();
  bool resolve = false;
  {
    std::lock_guard lock(mu_);
    resolve = !done_set_;
    done_set_ = true;
  }
  if (resolve) done_promise_.set_value(std::move(status));
}

absl::Status SubscriberSession::Stop(messagepipeline::Deadline deadline) {
  Finish(absl::OkStatus());
  // The streams end once the server answers the half-close; cancel any that do not.
  const auto grace = std::min(deadline, std::chrono::steady_clock::now() + kHalfCloseGrace);
  bool all_stopped = true;
  for (auto& r : readers_) all_stopped &= r->WaitFor(StreamReader::State::kStopped, grace);
  if (!all_stopped) {
    for (auto& r : readers_) r->Cancel();
    for (auto& r : readers_) r->WaitFor(StreamReader::State::kStopped, deadline);
  }
  int open_streams = 0;
  for (auto& r : readers_) {
    const auto state = r->state();
    // Never started (Start() failed or was not called) counts as stopped.
    if (state != StreamReader::State::kStopped) ++open_streams;
  }
  // Then the acks and nacks settled so far, including the readers' final nacks.
  const bool flushed = Flush(deadline);
  const std::size_t unsent = settling_->batcher.Unsent();
  JoinReaders(/*all=*/false);
  if (open_streams == 0 && flushed) return absl::OkStatus();
  auto status = absl::DeadlineExceededError(absl::StrCat(
      "pubsub consumer stop: deadline passed with ", open_streams, " stream(s) still open and ",
      unsent, " ack/nack id(s) not yet confirmed by the server; subscription ", subscription_));
  Log()->warn("{}", status.ToString());
  return status;
}

bool SubscriberSession::Flush(messagepipeline::Deadline deadline) {
  {
    std::lock_guard lock(mu_);
    if (!pump_thread_.joinable()) return true;  // not started: nothing was delivered
  }
  std::unique_lock lock(pump_mu_);
  if (pump_stop_) return true;
  const std::uint64_t flush = ++flush_requested_;
  pump_cv_.notify_all();
  if (!pump_cv_.wait_until(lock, deadline, [&] { return flush_completed_ >= flush; })) {
    return false;
  }
  lock.unlock();
  return settling_->batcher.WaitIdle(deadline);
}

void SubscriberSession::JoinReaders(bool all) {
  std::vector<std::thread> done;
  {
    std::lock_guard lock(mu_);
    for (std::size_t i = 0; i < reader_threads_.size(); ++i) {
      auto& t = reader_threads_[i];
      if (!t.joinable()) continue;
      // A stopped reader's thread is returning from Run(): the join is immediate. One stuck
      // in the stub past Stop()'s deadline is joined by the destructor.
      if (all || readers_[i]->state() == StreamReader::State::kStopped) {
        done.push_back(std::move(t));
      }
    }
  }
  for (auto& t : done) t.join();
}

void SubscriberSession::Settle(const std::weak_ptr<Settling>& weak, const std::string& ack_id,
                               const std::string& message_id, bool ack) {
  auto s = weak.lock();
  if (!s) return;
  if (ack) s->deliveries.Forget(message_id);
  // An unleased id was given up on (lease expired or consumer destroyed).
  auto lease = s->leases.Remove(ack_id);
  if (!lease) return;
  if (lease->handed_out) s->flow.Release(lease->bytes);
  LeasedId id{ack_id, lease->expires};
  if (ack) {
    s->batcher.Ack(std::move(id));
  } else {
    s->batcher.Nack(std::move(id));
  }
}

void SubscriberSession::HandOver(v1::StreamingPullResponse& response) {
  Settling& s = *settling_;
  const auto n = static_cast<std::size_t>(response.received_messages_size());
  s.received += n;
  std::vector<Message> batch;
  std::vector<std::size_t> sizes;
  batch.reserve(n);
  sizes.reserve(n);
  std::weak_ptr<Settling> weak = settling_;
  for (auto& rm : *response.mutable_received_messages()) {
    sizes.push_back(rm.message().ByteSizeLong());
    s.leases.Add(rm.ack_id(), sizes.back());
    // Pub/Sub counts deliveries only for a subscription with a dead-letter policy (else
    // 0); without one, count them here so the service's max_delivery_attempts applies.
    if (rm.delivery_attempt() <= 0) {
      rm.set_delivery_attempt(s.deliveries.Count(rm.message().message_id()));
    }
  }
  for (auto& rm : *response.mutable_received_messages()) {
    auto& m = *rm.mutable_message();
    messagepipeline::MessageData data{.id = m.message_id(),
                                      .payload = std::move(*m.mutable_data()),
                                      .publish_time = FromProto(m.publish_time())};
    messagepipeline::Attributes attributes(m.attributes().begin(), m.attributes().end());
    auto settle = [weak, id = rm.ack_id(), message_id = m.message_id()](bool ack) {
      Settle(weak, id, message_id, ack);
    };
    Message msg(
        std::move(data), std::move(attributes),
        messagepipeline::MakeAckHandler([settle] { settle(true); }, [settle] { settle(false); }));
    msg.ordering_key = m.ordering_key();
    msg.delivery_attempt = rm.delivery_attempt();
    batch.push_back(std::move(msg));
  }
  // Blocks while the limits or the channel are full (backpressure); once stopping, the rest
  // is nacked.
  std::size_t pushed = 0;
  for (; pushed < batch.size(); ++pushed) {
    if (!s.flow.Acquire(sizes[pushed])) break;
    // Given up meanwhile (past max_lease_extension): not counted, as before it was leased.
    if (!s.leases.MarkHandedOut(response.received_messages(static_cast<int>(pushed)).ack_id())) {
      s.flow.Release(sizes[pushed]);
    }
    if (!queue_.Push(std::move(batch[pushed]))) break;  // closed: not moved
  }
  for (std::size_t i = pushed; i < batch.size(); ++i) batch[i].Nack();
}

void SubscriberSession::Pump() {
  Settling& s = *settling_;
  bool last = false;
  while (!last) {
    std::uint64_t flush = 0;
    {
      std::unique_lock lock(pump_mu_);
      pump_cv_.wait_for(lock, options_.ack_flush_interval,
                        [&] { return pump_stop_ || flush_requested_ != flush_completed_; });
      last = pump_stop_;
      flush = flush_requested_;
    }
    LeaseManager::Due due;
    if (last) {
      // Destroyed with messages unsettled: give them back to the server now.
      for (auto& id : s.leases.TakeAll()) s.batcher.Nack(std::move(id));
    } else {
      due = s.leases.Tick();
      if (due.released_messages > 0) s.flow.Release(due.released_bytes, due.released_messages);
      for (auto& r : readers_) r->HalfCloseIfDue();
    }
    s.batcher.Flush(/*retries=*/!last);
    if (!due.extend.empty()) {
      for (const auto& result : s.batcher.Extend(std::move(due.extend))) s.leases.Apply(result);
    }
    std::lock_guard lock(pump_mu_);
    flush_completed_ = std::max(flush_completed_, flush);
    pump_cv_.notify_all();
  }
}

bool SubscriberSession::connected() const {
  return std::any_of(readers_.begin(), readers_.end(),
                     [](const auto& r) { return r->connected(); });
}

GooglePubsubConsumer::Stats SubscriberSession::stats() const {
  const Settling& s = *settling_;
  GooglePubsubConsumer::Stats out;
  out.received = s.received.load();
  const auto b = s.batcher.stats();
  out.acks_sent = b.acks_sent;
  out.nacks_sent = b.nacks_sent;
  out.extensions_sent = b.extensions_sent;
  out.settle_retries = b.settle_retries;
  out.settles_expired = b.settles_expired;
  out.settles_failed = b.settles_failed;
  for (const auto& r : readers_) {
    const auto rs = r->stats();
    out.reconnects += rs.reconnects;
    out.stream_renewals += rs.stream_renewals;
  }
  const auto f = s.flow.stats();
  out.outstanding_messages = f.messages;
  out.outstanding_bytes = f.bytes;
  out.streams_waiting_for_flow_control = f.waiting;
  out.delivery_counts = s.deliveries.size();
  out.delivery_counts_evicted = s.deliveries.evicted();
  return out;
}

}  // namespace dataflow::pubsub::internal

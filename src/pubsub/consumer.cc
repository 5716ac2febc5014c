#include "dataflow/pubsub/consumer.h"

#include <unistd.h>

#include <condition_variable>
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

struct GooglePubsubConsumer::State {
  State(std::shared_ptr<PubsubStub> s, ConsumerOptions o)
      : stub(std::move(s)), options(std::move(o)), queue(options.channel_capacity) {
    done = done_promise.get_future().share();
  }
  struct Lease {
    SteadyClock::time_point received;
    SteadyClock::time_point next_extension;
    std::size_t bytes = 0;
    bool handed_out = false;  // counted in handed_out_messages/bytes
  };

  std::shared_ptr<PubsubStub> stub;
  ConsumerOptions options;
  std::string subscription;
  messagepipeline::BoundedQueue<Message> queue;

  mutable std::mutex mu;
  std::condition_variable cv;
  std::unordered_map<std::string, Lease> leases;  // delivered, not yet settled
  std::vector<std::string> acks;                  // settled, not yet sent
  std::vector<std::string> nacks;
  std::vector<PullStream*> streams;
  std::vector<char> pushing;
  // Client-side flow control: messages in the channel or the pipeline, not yet settled.
  // (The emulator ignores the stream's server-side limits; Google's clients enforce both.)
  std::size_t handed_out_messages = 0;
  std::size_t handed_out_bytes = 0;  // reader i is handing a response to the channel
  bool started = false;
  bool stopping = false;
  bool done_set = false;
  std::atomic<int> connected{0};
  Stats stats;
  std::promise<absl::Status> done_promise;
  std::shared_future<absl::Status> done;
};

namespace {

// The subscription cannot be used as configured; retrying would only hide that.
bool IsPermanent(absl::StatusCode code) {
  return code == absl::StatusCode::kNotFound || code == absl::StatusCode::kPermissionDenied ||
         code == absl::StatusCode::kInvalidArgument ||
         code == absl::StatusCode::kFailedPrecondition ||
         code == absl::StatusCode::kUnauthenticated;
}

// The server accepts at most 2500 ack ids per request (and 512 KB).
constexpr std::size_t kMaxIdsPerRequest = 2500;

messagepipeline::Clock::time_point FromProto(const google::protobuf::Timestamp& t) {
  return messagepipeline::Clock::time_point(
      std::chrono::duration_cast<messagepipeline::Clock::duration>(
          std::chrono::seconds(t.seconds()) + std::chrono::nanoseconds(t.nanos())));
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
  if (auto b = gcp::ExponentialBackoff::Create(options.reconnect_backoff); !b.ok()) {
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
  state_->streams.assign(static_cast<std::size_t>(state_->options.streams), nullptr);
  state_->pushing.assign(static_cast<std::size_t>(state_->options.streams), 0);
}

GooglePubsubConsumer::~GooglePubsubConsumer() {
  (void)Stop(SteadyClock::now() + std::chrono::seconds(5));
  lease_thread_.request_stop();
  if (lease_thread_.joinable()) lease_thread_.join();
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
  // Fail fast and clearly on a missing subscription or missing rights, instead of a stream
  // that keeps ending with the same error.
  auto sub = s.stub->GetSubscription(s.subscription);
  if (!sub.ok()) {
    absl::Status status(sub.status().code(),
                        absl::StrCat("pubsub consumer: subscription ", s.subscription,
                                     " is not usable: ", sub.status().message()));
    Finish(status);
    return status;
  }
  lease_thread_ = std::jthread([this](std::stop_token st) { LeaseLoop(st); });
  for (int i = 0; i < s.options.streams; ++i) readers_.emplace_back([this, i] { ReadLoop(i); });
  Log()->info("pubsub consumer started subscription={} streams={}", s.subscription,
              s.options.streams);
  return absl::OkStatus();
}

void GooglePubsubConsumer::ReadLoop(int index) {
  auto& s = *state_;
  auto backoff = *gcp::ExponentialBackoff::Create(s.options.reconnect_backoff);
  std::weak_ptr<State> weak = state_;
  const std::string client_id = absl::StrCat("dataflow-", getpid(), "-", index);
  while (true) {
    auto stream = s.stub->StreamingPull();
    {
      std::lock_guard lock(s.mu);
      if (s.stopping) return;
      s.streams[static_cast<std::size_t>(index)] = stream.get();
    }
    v1::StreamingPullRequest request;
    request.set_subscription(s.subscription);
    request.set_stream_ack_deadline_seconds(static_cast<int>(s.options.ack_deadline.count()));
    request.set_max_outstanding_messages(
        static_cast<std::int64_t>(s.options.max_outstanding_messages));
    request.set_max_outstanding_bytes(static_cast<std::int64_t>(s.options.max_outstanding_bytes));
    request.set_client_id(client_id);
    if (stream->Write(request)) {
      s.connected.fetch_add(1);
      v1::StreamingPullResponse response;
      while (stream->Read(&response)) {
        backoff.Reset();
        const auto now = SteadyClock::now();
        std::vector<Message> batch;
        batch.reserve(static_cast<std::size_t>(response.received_messages_size()));
        {
          std::lock_guard lock(s.mu);
          s.stats.received += static_cast<std::size_t>(response.received_messages_size());
          for (const auto& rm : response.received_messages()) {
            s.leases[rm.ack_id()] = State::Lease{.received = now,
                                                 .next_extension = now + s.options.ack_deadline / 2,
                                                 .bytes = rm.message().ByteSizeLong()};
          }
        }
        for (auto& rm : *response.mutable_received_messages()) {
          auto& m = *rm.mutable_message();
          messagepipeline::MessageData data{.id = m.message_id(),
                                            .payload = std::move(*m.mutable_data()),
                                            .publish_time = FromProto(m.publish_time())};
          messagepipeline::Attributes attributes(m.attributes().begin(), m.attributes().end());
          auto settle = [weak, id = rm.ack_id()](bool ack) {
            auto st = weak.lock();
            if (!st) return;
            std::lock_guard lock(st->mu);
            // An unleased id was given up on (lease expired or consumer destroyed).
            auto it = st->leases.find(id);
            if (it == st->leases.end()) return;
            if (it->second.handed_out) {
              --st->handed_out_messages;
              st->handed_out_bytes -= it->second.bytes;
              st->cv.notify_all();
            }
            st->leases.erase(it);
            (ack ? st->acks : st->nacks).push_back(id);
          };
          Message msg(std::move(data), std::move(attributes),
                      messagepipeline::MakeAckHandler([settle] { settle(true); },
                                                      [settle] { settle(false); }));
          msg.ordering_key = m.ordering_key();
          msg.delivery_attempt = rm.delivery_attempt();
          batch.push_back(std::move(msg));
        }
        {
          std::lock_guard lock(s.mu);
          s.pushing[static_cast<std::size_t>(index)] = 1;
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
            s.cv.wait(lock, [&] {
              return s.stopping || s.handed_out_messages == 0 ||
                     (s.handed_out_messages < s.options.max_outstanding_messages &&
                      s.handed_out_bytes + bytes <= s.options.max_outstanding_bytes);
            });
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
        bool stopping;
        {
          std::lock_guard lock(s.mu);
          s.pushing[static_cast<std::size_t>(index)] = 0;
          stopping = s.stopping;
        }
        if (stopping) {
          // Send the nacks while this stream is still open: the emulator ignores nacks for
          // messages of a closed stream (they wait out their deadline instead).
          SendSettlements();
          stream->Cancel();
          break;
        }
      }
      s.connected.fetch_sub(1);
    }
    {
      std::lock_guard lock(s.mu);
      s.streams[static_cast<std::size_t>(index)] = nullptr;
    }
    absl::Status status = stream->Finish();
    {
      std::lock_guard lock(s.mu);
      if (s.stopping) return;
    }
    if (IsPermanent(status.code())) {
      Log()->error("pubsub consumer stopping subscription={} error={}", s.subscription,
                   status.ToString());
      Finish(absl::Status(status.code(), absl::StrCat("pubsub consumer: subscription ",
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

void GooglePubsubConsumer::LeaseLoop(std::stop_token stop) {
  auto& s = *state_;
  const int deadline_s = static_cast<int>(s.options.ack_deadline.count());
  bool last = false;
  while (!last) {
    {
      std::unique_lock lock(s.mu);
      s.cv.wait_for(lock, s.options.ack_flush_interval, [&] { return stop.stop_requested(); });
    }
    last = stop.stop_requested();
    std::vector<std::string> acks, nacks, extend;
    {
      std::lock_guard lock(s.mu);
      acks.swap(s.acks);
      nacks.swap(s.nacks);
      const auto now = SteadyClock::now();
      for (auto it = s.leases.begin(); it != s.leases.end();) {
        if (last) {
          // Destroyed with messages unsettled: give them back to the server now.
          nacks.push_back(it->first);
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
            extend.push_back(it->first);
            it->second.next_extension = now + s.options.ack_deadline / 2;
          }
          ++it;
        }
      }
      s.stats.acks_sent += acks.size();
      s.stats.nacks_sent += nacks.size();
      s.stats.extensions_sent += extend.size();
    }
    SendIds(acks, 0, true);
    SendIds(nacks, 0, false);
    SendIds(extend, deadline_s, false);
  }
}

void GooglePubsubConsumer::SendSettlements() {
  auto& s = *state_;
  std::vector<std::string> acks, nacks;
  {
    std::lock_guard lock(s.mu);
    acks.swap(s.acks);
    nacks.swap(s.nacks);
    s.stats.acks_sent += acks.size();
    s.stats.nacks_sent += nacks.size();
  }
  SendIds(acks, 0, true);
  SendIds(nacks, 0, false);
}

void GooglePubsubConsumer::SendIds(const std::vector<std::string>& ids, int deadline, bool ack) {
  auto& s = *state_;
  for (std::size_t i = 0; i < ids.size(); i += kMaxIdsPerRequest) {
    auto end = std::min(ids.size(), i + kMaxIdsPerRequest);
    absl::Status status;
    if (ack) {
      v1::AcknowledgeRequest r;
      r.set_subscription(s.subscription);
      for (auto j = i; j < end; ++j) r.add_ack_ids(ids[j]);
      status = s.stub->Acknowledge(r);
    } else {
      v1::ModifyAckDeadlineRequest r;
      r.set_subscription(s.subscription);
      r.set_ack_deadline_seconds(deadline);
      for (auto j = i; j < end; ++j) r.add_ack_ids(ids[j]);
      status = s.stub->ModifyAckDeadline(r);
    }
    // A lost ack or extension means a redelivery, which at-least-once allows.
    if (!status.ok()) {
      static LogRateLimit limit;
      if (limit.Allow()) {
        Log()->warn("pubsub {} failed subscription={} ids={} error={}", ack ? "ack" : "modack",
                    s.subscription, end - i, status.ToString());
      }
    }
  }
}

void GooglePubsubConsumer::Finish(absl::Status status) {
  auto& s = *state_;
  {
    std::lock_guard lock(s.mu);
    s.stopping = true;
    // A reader busy handing over a response cancels its own stream once it has nacked the
    // rest (see ReadLoop); the others are idle in Read() and hold nothing.
    for (std::size_t i = 0; i < s.streams.size(); ++i) {
      if (s.streams[i] != nullptr && s.pushing[i] == 0) s.streams[i]->Cancel();
    }
    s.cv.notify_all();
    if (s.done_set) {
      s.queue.Close();
      return;
    }
    s.done_set = true;
  }
  s.queue.Close();
  s.done_promise.set_value(std::move(status));
}

absl::Status GooglePubsubConsumer::Stop(messagepipeline::Deadline deadline) {
  Finish(absl::OkStatus());
  for (auto& t : readers_) {
    if (t.joinable()) t.join();
  }
  readers_.clear();
  (void)deadline;  // readers stop at once: their streams are cancelled and the queue closed
  return absl::OkStatus();
}

messagepipeline::BoundedQueue<Message>& GooglePubsubConsumer::Messages() { return state_->queue; }

std::shared_future<absl::Status> GooglePubsubConsumer::Done() { return state_->done; }

bool GooglePubsubConsumer::IsConnected() const { return state_->connected.load() > 0; }

GooglePubsubConsumer::Stats GooglePubsubConsumer::stats() const {
  std::lock_guard lock(state_->mu);
  return state_->stats;
}

}  // namespace dataflow::pubsub

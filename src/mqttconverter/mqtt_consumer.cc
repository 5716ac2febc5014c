#include "dataflow/mqttconverter/mqtt_consumer.h"

#include <absl/strings/escaping.h>
#include <absl/strings/str_cat.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <stop_token>
#include <thread>

#include "dataflow/messagepipeline/backoff.h"
#include "dataflow/messagepipeline/logging.h"
#include "mqtt_codec.h"
#include "mqtt_transport.h"

namespace dataflow::mqttconverter {

using messagepipeline::AckHandler;
using messagepipeline::Attributes;
using messagepipeline::BoundedQueue;
using messagepipeline::Deadline;
using messagepipeline::Message;
using messagepipeline::MessageData;
namespace mi = internal;

namespace {

using SteadyClock = std::chrono::steady_clock;

std::string RandomHex(std::mt19937_64& rng, int words) {
  std::string out;
  for (int i = 0; i < words; ++i) absl::StrAppend(&out, absl::Hex(rng(), absl::kZeroPad16));
  return out;
}

std::int64_t NowNanos() { return SteadyClock::now().time_since_epoch().count(); }

// Reconnects and local redeliveries: before the n-th retry (n >= 1) wait min * 2^(n-1),
// capped at max, jittered over its upper half so copies of a service (or messages nacked
// together) do not retry in step; never less than min (the documented bound).
std::chrono::milliseconds RetryDelay(std::chrono::milliseconds min, std::chrono::milliseconds max,
                                     int retry, std::minstd_rand& rng) {
  return std::max(min, messagepipeline::BackoffDelay(
                           {.initial = min, .maximum = max, .multiplier = 2}, retry, rng));
}

// One broker connection: the transport, a writer thread that owns every socket write, and
// the QoS 1/2 messages received on it whose PUBACK/PUBREC has not been sent yet, in arrival
// order ([MQTT-4.6.0-2]: acknowledgements go out in the order the PUBLISHes came in, so an
// acked message waits for earlier ones). Write() only queues, so Ack()/Nack() never wait for
// the socket; a write the broker does not take within write_timeout fails the connection.
class Connection {
 public:
  Connection(std::unique_ptr<mi::Transport> transport, std::chrono::milliseconds write_timeout)
      : transport_(std::move(transport)),
        write_timeout_(write_timeout),
        writer_([this] { WriteLoop(); }) {}
  ~Connection() { Close(); }

  enum class State : std::uint8_t { kPending, kAcked, kAbandoned };

  // Queues whole packets for the writer; `acks` is how many PUBACK/PUBREC they carry.
  void Write(std::string bytes, std::size_t acks = 0) {
    std::lock_guard lock(mu_);
    EnqueueLocked(std::move(bytes), acks);
  }

  // Registers a received QoS 1/2 message; returns its sequence number for Settle.
  std::uint64_t Track(std::uint16_t packet_id, int qos) {
    std::lock_guard lock(mu_);
    inflight_.push_back({packet_id, static_cast<std::uint8_t>(qos), State::kPending});
    ++unsettled_;
    return first_seq_ + inflight_.size() - 1;
  }

  // kAcked: queues the acknowledgements of the acked prefix. kAbandoned (nacked while
  // stopping): never acknowledged; the broker keeps it. Idempotent per message.
  void Settle(std::uint64_t seq, State state) {
    std::lock_guard lock(mu_);
    if (!open_ || seq < first_seq_) return;
    Entry& e = inflight_[seq - first_seq_];
    if (e.state != State::kPending) return;
    e.state = state;
    --unsettled_;
    std::string acks;
    std::size_t count = 0;
    while (!inflight_.empty() && inflight_.front().state == State::kAcked) {
      const Entry& f = inflight_.front();
      mi::AppendAck(f.qos == 2 ? mi::PacketType::kPubrec : mi::PacketType::kPuback, f.packet_id,
                    acks);
      ++count;
      inflight_.pop_front();
      ++first_seq_;
    }
    // Queued under the lock so that two threads releasing prefixes keep their order.
    if (!acks.empty()) EnqueueLocked(std::move(acks), count);
    if (unsettled_ == 0) cv_.notify_all();
  }

  // Waits until every tracked message is settled, the connection closed, or `deadline`.
  void WaitSettled(Deadline deadline) {
    std::unique_lock lock(mu_);
    cv_.wait_until(lock, deadline, [&] { return unsettled_ == 0 || !open_; });
  }

  // Waits until the writer has sent everything queued, failed, or `deadline`.
  void Flush(Deadline deadline) {
    std::unique_lock lock(mu_);
    cv_.wait_until(lock, deadline,
                   [&] { return (outbox_.empty() && !writing_) || !write_error_.ok() || !open_; });
  }

  bool IsOpen() {
    std::lock_guard lock(mu_);
    return open_;
  }

  // True when the writer has nothing queued or in progress (keep-alive pings wait for that).
  bool WriterIdle() {
    std::lock_guard lock(mu_);
    return outbox_.empty() && !writing_;
  }

  // Ends the connection (idempotent) and joins the writer.
  void Close() {
    {
      std::lock_guard lock(mu_);
      open_ = false;
      cv_.notify_all();
    }
    transport_->Shutdown();  // wakes a blocked Read or Write
    if (writer_.joinable() && writer_.get_id() != std::this_thread::get_id()) writer_.join();
  }

  // After Close: QoS 1/2 messages the pipeline had not acked, and acknowledgements of acked
  // ones that never reached the socket. Both stay with the broker.
  std::size_t NotAckedByPipeline() {
    std::lock_guard lock(mu_);
    return inflight_.size();
  }
  std::size_t UnwrittenAcks() {
    std::lock_guard lock(mu_);
    return unwritten_acks_;
  }
  // Why the writer gave up (OK if it did not).
  absl::Status WriteError() {
    std::lock_guard lock(mu_);
    return write_error_;
  }

  mi::Transport& transport() { return *transport_; }
  std::atomic<std::int64_t> last_write_ns{NowNanos()};
  std::atomic<std::int64_t> last_read_ns{NowNanos()};
  std::atomic<bool> reader_blocked{false};  // waiting for room in the channel
  std::atomic<bool> handshaken{false};      // CONNACK accepted: keep-alive applies
  bool subscribe_pending = false;           // SUBSCRIBE sent, SUBACK not seen (runner only)

 private:
  struct Entry {
    std::uint16_t packet_id;
    std::uint8_t qos;
    State state;
  };
  struct Chunk {
    std::string bytes;
    std::size_t acks;
  };

  void EnqueueLocked(std::string bytes, std::size_t acks) {
    unwritten_acks_ += acks;
    if (!open_ || !write_error_.ok()) return;
    outbox_.push_back({std::move(bytes), acks});
    cv_.notify_all();
  }

  void WriteLoop() {
    std::unique_lock lock(mu_);
    while (true) {
      cv_.wait(lock, [&] { return !outbox_.empty() || !open_; });
      if (!open_) return;
      Chunk chunk = std::move(outbox_.front());
      outbox_.pop_front();
      while (!outbox_.empty()) {  // one syscall for what piled up
        chunk.bytes += outbox_.front().bytes;
        chunk.acks += outbox_.front().acks;
        outbox_.pop_front();
      }
      writing_ = true;
      lock.unlock();
      absl::Status s = transport_->Write(chunk.bytes, SteadyClock::now() + write_timeout_);
      lock.lock();
      writing_ = false;
      if (!s.ok()) {
        if (!open_) return;  // Close() shut the transport: not the broker's failure
        // Part of the chunk may be on the wire: the stream is unusable. The reader sees the
        // shut-down transport and the connection is re-made.
        write_error_ = s.code() == absl::StatusCode::kDeadlineExceeded
                           ? absl::DeadlineExceededError(
                                 absl::StrCat("the broker took no bytes for write_timeout (",
                                              write_timeout_.count(), " ms)"))
                           : s;
        outbox_.clear();
        cv_.notify_all();
        lock.unlock();
        transport_->Shutdown();
        return;
      }
      unwritten_acks_ -= chunk.acks;
      last_write_ns.store(NowNanos(), std::memory_order_relaxed);
      cv_.notify_all();
    }
  }

  std::unique_ptr<mi::Transport> transport_;
  const std::chrono::milliseconds write_timeout_;
  std::mutex mu_;
  std::condition_variable cv_;  // outbox, settled, flushed, closed
  bool open_ = true;
  std::deque<Entry> inflight_;
  std::uint64_t first_seq_ = 0;  // sequence number of inflight_.front()
  std::size_t unsettled_ = 0;
  std::deque<Chunk> outbox_;
  bool writing_ = false;
  std::size_t unwritten_acks_ = 0;  // queued or being written, or dropped after a failure
  absl::Status write_error_;
  std::thread writer_;  // last: starts once the members above exist
};

// Payload bytes of the messages a consumer holds (channel, pipeline, waiting for a
// redelivery): max_outstanding_bytes. Shared with the Deliveries, which may outlive the
// consumer. Thread-safe.
class ByteBudget {
 public:
  explicit ByteBudget(std::size_t limit) : limit_(limit) {}

  // Waits until `n` more bytes fit, or nothing is held (a message larger than the budget
  // still passes alone), or Close(); false once closed.
  bool Acquire(std::size_t n) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return closed_ || held_ == 0 || held_ + n <= limit_; });
    if (closed_) return false;
    held_ += n;
    return true;
  }
  void Release(std::size_t n) {
    {
      std::lock_guard lock(mu_);
      held_ -= n;
    }
    cv_.notify_all();
  }
  // Wakes a blocked Acquire for good (the consumer stops).
  void Close() {
    {
      std::lock_guard lock(mu_);
      closed_ = true;
    }
    cv_.notify_all();
  }
  std::size_t held() const {
    std::lock_guard lock(mu_);
    return held_;
  }

 private:
  const std::size_t limit_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::size_t held_ = 0;
  bool closed_ = false;
};

// What a local redelivery needs: the message as it first reached the channel, and where
// its acknowledgement goes (conn is null for QoS 0 and in kOnReceipt mode). Its payload
// counts against the byte budget until the message is settled for good: acked, or given
// up (a nack only sends it round again).
struct Delivery {
  Delivery() = default;
  Delivery(const Delivery&) = delete;
  Delivery& operator=(const Delivery&) = delete;
  ~Delivery() { ReleaseBudget(); }
  void ReleaseBudget() {
    if (budget) budget->Release(charged);
    budget.reset();
  }

  MessageData data;
  Attributes attributes;
  int attempt = 1;
  std::shared_ptr<Connection> conn;
  std::uint64_t seq = 0;
  std::shared_ptr<ByteBudget> budget;  // set once `charged` bytes were acquired from it
  std::size_t charged = 0;
};

bool AnyQosAbove0(const std::vector<TopicMapping>& mappings) {
  return std::any_of(mappings.begin(), mappings.end(),
                     [](const TopicMapping& m) { return m.qos > 0; });
}

}  // namespace

class MqttConsumer::Impl : public std::enable_shared_from_this<Impl> {
 public:
  Impl(MQTTClientConfig config, std::string client_id)
      : config_(std::move(config)),
        client_id_(std::move(client_id)),
        channel_(config_.channel_capacity),
        budget_(std::make_shared<ByteBudget>(config_.max_outstanding_bytes)),
        done_(done_promise_.get_future().share()),
        rng_(std::random_device{}()) {
    for (const TopicMapping& m : config_.topic_mappings) {
      filters_.push_back({.filter = m.topic, .qos = m.qos});
    }
  }

  ~Impl() { StopNow(SteadyClock::now() + std::chrono::seconds(5)).IgnoreError(); }

  absl::Status Start() {
    {
      std::lock_guard lock(mu_);
      if (state_ != State::kIdle) {
        return absl::FailedPreconditionError("mqtt consumer: Start() called twice or after Stop()");
      }
      state_ = State::kStarting;
    }
    if (config_.ack_mode == AckMode::kAfterPipelineAck && config_.clean_session &&
        AnyQosAbove0(config_.topic_mappings)) {
      Log()->warn(
          "mqtt consumer: clean_session=true, so QoS 1/2 messages not yet acked by the pipeline "
          "when the connection ends are dropped by the broker (lost); set clean_session=false and "
          "a fixed client_id to have them redelivered client_id={} broker={}",
          client_id_, config_.broker_url);
    }
    runner_ = std::jthread([this](std::stop_token st) { RunLoop(st); });
    const auto wait = config_.connect_timeout + std::chrono::seconds(1);
    std::unique_lock lock(mu_);
    if (!first_cv_.wait_for(lock, wait, [&] { return first_result_.has_value(); })) {
      lock.unlock();
      return Fail(absl::UnavailableError(absl::StrCat(
          "mqtt: no CONNACK/SUBACK from ", config_.broker_url, " within ", wait.count(), "s")));
    }
    absl::Status result = *first_result_;
    if (!result.ok()) {
      lock.unlock();
      return Fail(result);
    }
    state_ = State::kRunning;
    lock.unlock();
    redeliverer_ = std::jthread([this](std::stop_token st) { RedeliverLoop(st); });
    keepalive_ = std::jthread([this](std::stop_token st) { KeepAliveLoop(st); });
    Log()->info("mqtt consumer started client_id={} broker={} subscriptions={} ack_mode={}",
                client_id_, config_.broker_url, filters_.size(), AckModeName(config_.ack_mode));
    return absl::OkStatus();
  }

  absl::Status StopNow(Deadline deadline) {
    {
      std::lock_guard lock(mu_);
      if (state_ == State::kStopped) return absl::OkStatus();
      state_ = State::kStopped;
    }
    stopping_.store(true);
    std::shared_ptr<Connection> conn = CurrentConnection();
    // A connection that already ended reported what it left behind when it did.
    const bool live = conn && conn->IsOpen();
    if (live && conn->handshaken.load() && config_.clean_session) {
      // Ask the broker to stop sending; a persistent session keeps its subscriptions so
      // that messages published while we are away are queued.
      conn->Write(mi::EncodeUnsubscribe(kUnsubscribeId, filters_));
    }
    // No new messages from here on (a reader blocked on a full channel returns); the
    // pipeline drains what is in the channel and its acks still reach the broker below.
    CloseChannel();
    if (live) {
      conn->WaitSettled(deadline);
      conn->Write(mi::EncodeDisconnect());
      // Bounded by the deadline, not write_timeout: a broker that stopped reading must not
      // hold up Stop; what was not written is reported below. The reader keeps the connection
      // open meanwhile (stopping it first let it close the socket under acks still queued).
      conn->Flush(deadline);
    }
    StopThreads();  // closes the connection
    std::multimap<SteadyClock::time_point, std::shared_ptr<Delivery>> left_over;
    {
      std::lock_guard lock(redeliver_mu_);
      left_over.swap(redeliver_);
    }
    for (const auto& [due, d] : left_over) Undeliverable(*d, "nacked during shutdown");
    Resolve(absl::OkStatus());
    const MqttConsumerStats s = Stats();
    Log()->info(
        "mqtt consumer stopped client_id={} received={} acked={} nacked={} left_with_broker={} "
        "lost={}",
        client_id_, s.received, s.acked, s.nacked, s.left_with_broker, s.lost);
    const std::size_t unwritten = live ? conn->UnwrittenAcks() : 0;
    if (unwritten > 0) {
      return absl::DeadlineExceededError(absl::StrCat(
          "mqtt consumer stopped with ", unwritten,
          " acknowledgements (PUBACK/PUBREC) of pipeline-acked messages not written to ",
          config_.broker_url, " (",
          conn->WriteError().ok() ? "deadline reached" : conn->WriteError().message(), "); ",
          config_.clean_session ? "with clean_session=true the broker drops them"
                                : "the persistent session redelivers them, as duplicates of "
                                  "processed messages"));
    }
    return absl::OkStatus();
  }

  // Called from a worker thread by a nacked message: back into the channel after a backoff that
  // grows with the attempt that failed.
  void Redeliver(std::shared_ptr<Delivery> d) {
    nacked_.fetch_add(1, std::memory_order_relaxed);
    {
      std::unique_lock lock(redeliver_mu_);
      // Checked under the lock Stop() takes to empty redeliver_ (after setting stopping_):
      // checked before it, a nack racing Stop() could queue a message after the queue was
      // emptied, where it held its byte budget and was never settled.
      if (stopping_.load()) {
        lock.unlock();
        Undeliverable(*d, "nacked after Stop()");
        return;
      }
      const auto delay = RetryDelay(config_.redelivery_min_backoff, config_.redelivery_max_backoff,
                                    d->attempt, redeliver_rng_);
      redeliver_.emplace(SteadyClock::now() + delay, std::move(d));
    }
    redeliver_cv_.notify_one();
  }

  // A message the pipeline did not process and this consumer cannot hand out again. If
  // the broker still holds it (QoS 1/2, PUBACK withheld, persistent session) it comes back
  // on the next connection; otherwise it is lost.
  void Undeliverable(Delivery& d, const char* why) {
    d.ReleaseBudget();
    if (d.conn) d.conn->Settle(d.seq, Connection::State::kAbandoned);
    if (d.conn && !config_.clean_session) {
      Log()->debug("mqtt message left with the broker for redelivery: {} id={}", why, d.data.id);
      return;
    }
    lost_.fetch_add(1, std::memory_order_relaxed);
    Log()->error("mqtt message lost: {}; the broker will not redeliver it ({}) id={} mqtt_topic={}",
                 why, d.conn ? "clean session" : "QoS 0 or ack_mode=receipt", d.data.id,
                 d.attributes.contains("mqtt_topic") ? d.attributes.at("mqtt_topic") : "");
  }

  MqttConsumerStats Stats() const {
    return MqttConsumerStats{.received = received_.load(),
                             .acked = acked_.load(),
                             .nacked = nacked_.load(),
                             .redelivered = redelivered_.load(),
                             .lost = lost_.load(),
                             .unrouted = unrouted_.load(),
                             .connects = connects_.load(),
                             .left_with_broker = left_with_broker_.load(),
                             .oversize_skipped = oversize_skipped_.load(),
                             .outstanding_bytes = budget_->held()};
  }

  const MQTTClientConfig config_;
  const std::string client_id_;
  std::promise<absl::Status> done_promise_;
  BoundedQueue<Message> channel_;
  const std::shared_ptr<ByteBudget> budget_;
  std::atomic<bool> connected_{false};
  std::atomic<std::uint64_t> acked_{0};
  std::shared_future<absl::Status> done_;

 private:
  enum class State { kIdle, kStarting, kRunning, kStopped };
  static constexpr std::uint16_t kSubscribeId = 1;
  static constexpr std::uint16_t kUnsubscribeId = 2;

  class Handler : public AckHandler {
   public:
    Handler(std::weak_ptr<Impl> impl, std::shared_ptr<Delivery> d)
        : impl_(std::move(impl)), delivery_(std::move(d)) {}
    void OnAck() override {
      if (lost_) return;  // already accounted for by Undeliverable
      if (auto impl = impl_.lock()) impl->acked_.fetch_add(1, std::memory_order_relaxed);
      delivery_->ReleaseBudget();
      if (delivery_->conn) delivery_->conn->Settle(delivery_->seq, Connection::State::kAcked);
    }
    void OnNack() override {
      if (lost_) return;
      if (auto impl = impl_.lock()) {
        impl->Redeliver(std::move(delivery_));
      } else {
        Log()->error("mqtt message nacked after its consumer was destroyed id={}",
                     delivery_->data.id);
      }
    }
    bool lost_ = false;

   private:
    std::weak_ptr<Impl> impl_;
    std::shared_ptr<Delivery> delivery_;
  };

  absl::Status Fail(absl::Status status) {
    {
      std::lock_guard lock(mu_);
      state_ = State::kStopped;
    }
    stopping_.store(true);
    CloseChannel();  // first: a reader blocked on the full channel must return to be joined
    StopThreads();
    Resolve(status);
    return status;
  }

  // Ends the consumer from the runner thread, which Fail() would join: no new messages,
  // Done() reports why. Stop() still joins the threads and settles what is left.
  void GiveUp(const absl::Status& status) {
    Log()->error("mqtt consumer gave up client_id={} error={}", client_id_, status.ToString());
    stopping_.store(true);
    connected_.store(false);
    CloseChannel();
    Resolve(status);
  }

  // Also wakes a reader waiting for the byte budget.
  void CloseChannel() {
    channel_.Close();
    budget_->Close();
  }

  void Resolve(absl::Status status) {
    std::call_once(done_once_, [&] { done_promise_.set_value(std::move(status)); });
  }

  void StopThreads() {
    runner_.request_stop();
    if (auto conn = CurrentConnection()) conn->transport().Shutdown();  // wakes the reader
    if (runner_.joinable()) runner_.join();
    for (std::jthread* t : {&redeliverer_, &keepalive_}) {
      if (t->joinable()) {
        t->request_stop();
        t->join();
      }
    }
    connected_.store(false);
  }

  std::shared_ptr<Connection> CurrentConnection() {
    std::lock_guard lock(conn_mu_);
    return conn_;
  }

  void ReportFirst(absl::Status s) {
    {
      std::lock_guard lock(mu_);
      if (first_result_.has_value()) return;
      if (s.ok()) subscribed_.store(true);
      first_result_ = std::move(s);
    }
    first_cv_.notify_all();
  }

  bool Subscribed() const { return subscribed_.load(std::memory_order_relaxed); }

  // How one connection ended, beyond its status.
  struct ConnectionEnd {
    bool granted = false;  // its SUBACK granted every filter
    bool refused = false;  // its SUBACK refused one (status names it)
  };

  // Connects, reads until the connection ends, reconnects with backoff; until Stop. A
  // failure before the first SUBACK ends it (Start reports the error), and so do
  // max_subscribe_refusals refused SUBACKs in a row (Done() reports it).
  void RunLoop(std::stop_token st) {
    int failures = 0;  // connections in a row that did not get their subscriptions granted
    int refusals = 0;  // of which refused SUBACKs, in a row
    std::mutex sleep_mu;
    std::condition_variable_any sleep_cv;
    while (!st.stop_requested()) {
      ConnectionEnd end;
      absl::Status s = RunConnection(st, end);
      if (!Subscribed()) {
        ReportFirst(s.ok() ? absl::UnavailableError("mqtt: connection ended before SUBACK") : s);
        return;
      }
      // The broker closing the socket after our DISCONNECT is expected, not a lost connection.
      if (st.stop_requested() || stopping_.load()) return;
      if (end.granted) failures = refusals = 0;
      refusals = end.refused ? refusals + 1 : 0;
      if (refusals >= config_.max_subscribe_refusals) {
        GiveUp(absl::Status(s.code(), absl::StrCat(s.message(), " (", refusals,
                                                   " times in a row; max_subscribe_refusals=",
                                                   config_.max_subscribe_refusals, ")")));
        return;
      }
      Log()->warn("mqtt connection {}; reconnecting client_id={} broker={} error=\"{}\"",
                  end.granted ? "lost" : "failed", client_id_, config_.broker_url, s.ToString());
      const auto delay = RetryDelay(config_.reconnect_min_backoff, config_.reconnect_max_backoff,
                                    ++failures, reconnect_rng_);
      std::unique_lock lock(sleep_mu);
      sleep_cv.wait_for(lock, st, delay, [] { return false; });
    }
  }

  absl::Status RunConnection(std::stop_token st, ConnectionEnd& end) {
    const Deadline deadline = SteadyClock::now() + config_.connect_timeout;
    auto transport = mi::Dial(config_.broker_url,
                              {.ca_cert_file = config_.ca_cert_file,
                               .client_cert_file = config_.client_cert_file,
                               .client_key_file = config_.client_key_file,
                               .insecure_skip_verify = config_.insecure_skip_verify},
                              deadline, ws_limits_);
    if (!transport.ok()) {
      return absl::Status(transport.status().code(),
                          absl::StrCat("mqtt: ", transport.status().message()));
    }
    auto conn = std::make_shared<Connection>(std::move(*transport), config_.write_timeout);
    {
      std::lock_guard lock(conn_mu_);
      conn_ = conn;
    }
    if (st.stop_requested()) conn->transport().Shutdown();
    ReadBuffer buf;
    absl::Status s = Handshake(*conn, buf, deadline);
    if (s.ok()) {
      conn->handshaken.store(true);
      if (connects_.fetch_add(1) > 0) {
        Log()->info("mqtt reconnected; renewing subscriptions client_id={}", client_id_);
      }
      conn->subscribe_pending = true;
      conn->Write(mi::EncodeSubscribe(kSubscribeId, filters_));
      s = ReadLoop(st, conn, buf, end);
      connected_.store(false);
    }
    conn->Close();
    // A stalled write is the cause; the reader only saw the shut-down socket.
    if (absl::Status w = conn->WriteError(); !w.ok() && !end.refused) {
      s = absl::UnavailableError(
          absl::StrCat("mqtt: write to ", config_.broker_url, " failed: ", w.message()));
    }
    const std::size_t unacked = conn->NotAckedByPipeline() + conn->UnwrittenAcks();
    if (unacked > 0) {
      if (!config_.clean_session) {
        left_with_broker_.fetch_add(unacked, std::memory_order_relaxed);
        Log()->info(
            "mqtt connection ended with {} messages not acknowledged to the broker ({} of them "
            "acked by the pipeline, acknowledgement not written); the persistent session "
            "redelivers them client_id={}",
            unacked, conn->UnwrittenAcks(), client_id_);
      } else {
        Log()->warn(
            "mqtt connection ended with {} messages not acknowledged to the broker ({} of them "
            "acked by the pipeline, acknowledgement not written); with clean_session=true the "
            "broker will not redeliver them client_id={}",
            unacked, conn->UnwrittenAcks(), client_id_);
      }
    }
    return s;
  }

  // Bytes read from the broker; [start, end) not yet parsed. It holds at most one packet
  // (up to max_packet_bytes) beyond its usual 64 KiB, and only while that packet is read.
  struct ReadBuffer {
    static constexpr std::size_t kUsualSize = 64 * 1024;
    std::string data = std::string(kUsualSize, '\0');
    std::size_t start = 0;
    std::size_t end = 0;
    [[nodiscard]] std::string_view unparsed() const {
      return std::string_view(data).substr(start, end - start);
    }
  };

  // Makes room for at least one more read, for a packet of `need` bytes in all (0: not known
  // yet). Grows to the packet being read only; a buffer grown for an earlier packet goes
  // back to the usual size, so a large packet does not keep its memory.
  static void Prepare(ReadBuffer& b, std::size_t need) {
    const std::size_t avail = b.end - b.start;
    const std::size_t size = std::max({ReadBuffer::kUsualSize, need, avail + 1});
    if (b.data.size() != size) {
      std::string fresh(size, '\0');
      std::memcpy(fresh.data(), b.data.data() + b.start, avail);
      b.data.swap(fresh);
      b.start = 0;
      b.end = avail;
    } else if (b.start == b.end) {
      b.start = b.end = 0;
    } else if (b.start > 0 && b.data.size() - b.end <
                                  std::max<std::size_t>(16 * 1024, need - std::min(need, avail))) {
      std::memmove(b.data.data(), b.data.data() + b.start, avail);
      b.end = avail;
      b.start = 0;
    }
  }

  static absl::Status ReadMore(Connection& conn, ReadBuffer& b, std::size_t need,
                               Deadline deadline) {
    Prepare(b, need);
    auto n = conn.transport().Read(b.data.data() + b.end, b.data.size() - b.end, deadline);
    if (!n.ok()) return n.status();
    b.end += *n;
    conn.last_read_ns.store(NowNanos(), std::memory_order_relaxed);
    return absl::OkStatus();
  }

  // What the next bytes hold: a complete packet (in `packet`, consumed from `buf`), an
  // oversize PUBLISH (its fixed header in `header`, nothing consumed), or not enough yet
  // (`need`: the size of the packet being read, 0 if its header is incomplete). Any other
  // packet over max_packet_bytes is an error.
  enum class Next : std::uint8_t { kNeedMore, kPacket, kOversizePublish };
  absl::StatusOr<Next> NextPacket(ReadBuffer& buf, mi::RawPacket& packet, mi::FixedHeader& header,
                                  std::size_t& need) const {
    need = 0;
    const std::string_view avail = buf.unparsed();
    auto complete = mi::ParseFixedHeader(avail, header);
    if (!complete.ok()) return BrokerError(complete.status());
    if (!*complete) return Next::kNeedMore;
    if (header.packet_size() > config_.max_packet_bytes) {
      if (header.type == mi::PacketType::kPublish) return Next::kOversizePublish;
      return BrokerError(absl::InvalidArgumentError(
          absl::StrCat("packet type ", static_cast<int>(header.type), " of ", header.packet_size(),
                       " bytes is over max_packet_bytes (", config_.max_packet_bytes, ")")));
    }
    if (avail.size() < header.packet_size()) {
      need = header.packet_size();
      return Next::kNeedMore;
    }
    packet = {.type = header.type,
              .flags = header.flags,
              .body = avail.substr(header.header_size, header.remaining_length)};
    buf.start += header.packet_size();
    return Next::kPacket;
  }

  // Reads past a PUBLISH over max_packet_bytes without buffering it: its topic and packet
  // id (at most 65 KiB in), then the rest in chunks of the buffer's usual size. It is
  // counted, logged once, and at QoS 1/2 acknowledged in its place among the others' acks,
  // so the broker does not resend it forever; the connection carries on.
  absl::Status SkipOversizePublish(const std::shared_ptr<Connection>& conn, ReadBuffer& buf,
                                   const mi::FixedHeader& header) {
    mi::Publish head;
    while (true) {
      const std::string_view body = buf.unparsed().substr(header.header_size);
      auto n = mi::ParsePublishHead(header.flags, body, header.remaining_length, head);
      if (!n.ok()) return BrokerError(n.status());
      if (*n > 0) break;
      // 2 + 65535 + 2 bytes of head at most, so this stays near the usual size.
      const std::size_t need =
          header.header_size + std::min<std::size_t>(header.remaining_length, 2 + 65535 + 2);
      if (auto s = ReadMore(*conn, buf, need, Deadline::max()); !s.ok()) return s;
    }
    // Outside data: bounded, and escaped so that it cannot forge log lines.
    const std::string topic = absl::CHexEscape(BoundedText(head.topic, 256));
    const int qos = head.qos;
    const std::uint16_t packet_id = head.packet_id;  // head's views die with the buffer below
    std::size_t left = header.packet_size();
    const std::size_t buffered = std::min(left, buf.end - buf.start);
    buf.start += buffered;
    left -= buffered;
    Prepare(buf, 0);
    while (left > 0) {
      // Never past this packet: the bytes after it belong to the next one.
      auto n =
          conn->transport().Read(buf.data.data(), std::min(left, buf.data.size()), Deadline::max());
      if (!n.ok()) return n.status();
      left -= *n;
      conn->last_read_ns.store(NowNanos(), std::memory_order_relaxed);
    }
    oversize_skipped_.fetch_add(1, std::memory_order_relaxed);
    Log()->warn(
        "mqtt message over max_packet_bytes skipped{} mqtt_topic={} bytes={} max_packet_bytes={} "
        "qos={} client_id={}",
        qos > 0 ? " and acknowledged" : "", topic, header.packet_size(), config_.max_packet_bytes,
        qos, client_id_);
    if (qos > 0) {
      if (config_.ack_mode == AckMode::kAfterPipelineAck) {
        // Behind the acknowledgements of earlier messages still in the pipeline.
        conn->Settle(conn->Track(packet_id, qos), Connection::State::kAcked);
      } else {
        std::string ack;
        mi::AppendAck(qos == 2 ? mi::PacketType::kPubrec : mi::PacketType::kPuback, packet_id, ack);
        conn->Write(std::move(ack));
      }
    }
    return absl::OkStatus();
  }

  absl::Status Handshake(Connection& conn, ReadBuffer& buf, Deadline deadline) {
    conn.Write(mi::EncodeConnect(
        {.client_id = client_id_,
         .clean_session = config_.clean_session,
         .keep_alive_seconds = static_cast<std::uint16_t>(config_.keep_alive.count()),
         .username = config_.username,
         .password = config_.password}));
    mi::RawPacket packet;
    while (true) {
      mi::FixedHeader header;
      std::size_t need = 0;
      auto next = NextPacket(buf, packet, header, need);
      if (!next.ok()) return next.status();
      if (*next == Next::kPacket) break;
      if (*next == Next::kOversizePublish) {
        return BrokerError(absl::InvalidArgumentError("PUBLISH before CONNACK"));
      }
      if (auto s = ReadMore(conn, buf, need, deadline); !s.ok()) {
        return absl::UnavailableError(absl::StrCat(
            "mqtt: no CONNACK from ", config_.broker_url, ": ",
            s.code() == absl::StatusCode::kDeadlineExceeded ? "timed out" : s.message()));
      }
    }
    auto connack = mi::ParseConnack(packet);
    if (!connack.ok()) return BrokerError(connack.status());
    if (connack->return_code != 0) {
      return absl::UnavailableError(
          absl::StrCat("MQTT broker ", config_.broker_url,
                       " refused the connection: ", mi::ConnackReason(connack->return_code)));
    }
    return absl::OkStatus();
  }

  absl::Status BrokerError(const absl::Status& s) const {
    return absl::UnavailableError(
        absl::StrCat("mqtt: from ", config_.broker_url, ": ", s.message()));
  }

  absl::Status ReadLoop(std::stop_token st, const std::shared_ptr<Connection>& conn,
                        ReadBuffer& buf, ConnectionEnd& end) {
    while (!st.stop_requested()) {
      std::size_t need = 0;
      while (true) {
        mi::RawPacket packet;
        mi::FixedHeader header;
        auto next = NextPacket(buf, packet, header, need);
        if (!next.ok()) return next.status();
        if (*next == Next::kNeedMore) break;
        absl::Status s = *next == Next::kPacket ? HandlePacket(conn, packet, end)
                                                : SkipOversizePublish(conn, buf, header);
        if (!s.ok()) return s;
      }
      if (auto s = ReadMore(*conn, buf, need, Deadline::max()); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  absl::Status HandlePacket(const std::shared_ptr<Connection>& conn, const mi::RawPacket& p,
                            ConnectionEnd& end) {
    switch (p.type) {
      case mi::PacketType::kPublish: {
        auto publish = mi::ParsePublish(p);
        if (!publish.ok()) return BrokerError(publish.status());
        OnPublish(conn, *publish);
        return absl::OkStatus();
      }
      case mi::PacketType::kPubrel: {
        auto id = mi::ParsePacketId(p);
        if (!id.ok()) return BrokerError(id.status());
        std::string pubcomp;
        mi::AppendAck(mi::PacketType::kPubcomp, *id, pubcomp);
        conn->Write(std::move(pubcomp));
        return absl::OkStatus();
      }
      case mi::PacketType::kSuback:
        return OnSuback(*conn, p, end);
      case mi::PacketType::kPingresp:
      case mi::PacketType::kUnsuback:
        return absl::OkStatus();
      default:
        return BrokerError(absl::InvalidArgumentError(
            absl::StrCat("unexpected packet type ", static_cast<int>(p.type))));
    }
  }

  // A SUBACK must answer our SUBSCRIBE (same packet id, one return code per filter, each a
  // granted QoS or 0x80); anything else is a protocol error. A refused filter fails the
  // connection: staying connected would look ready with nothing flowing.
  absl::Status OnSuback(Connection& conn, const mi::RawPacket& p, ConnectionEnd& end) {
    auto suback = mi::ParseSuback(p);
    if (!suback.ok()) return BrokerError(suback.status());
    if (!conn.subscribe_pending) {
      return BrokerError(absl::InvalidArgumentError("SUBACK without a pending SUBSCRIBE"));
    }
    if (suback->packet_id != kSubscribeId) {
      return BrokerError(absl::InvalidArgumentError(absl::StrCat(
          "SUBACK for packet id ", suback->packet_id, ", the SUBSCRIBE had ", kSubscribeId)));
    }
    if (suback->return_codes.size() != filters_.size()) {
      return BrokerError(absl::InvalidArgumentError(
          absl::StrCat("SUBACK carries ", suback->return_codes.size(), " return codes for ",
                       filters_.size(), " topic filters")));
    }
    conn.subscribe_pending = false;
    for (std::size_t i = 0; i < filters_.size(); ++i) {
      const std::uint8_t code = suback->return_codes[i];
      if (code == 0x80) {
        end.refused = true;
        absl::Status s = absl::PermissionDeniedError(
            absl::StrCat("mqtt: broker ", config_.broker_url, " refused subscription to '",
                         filters_[i].filter, "'"));
        Log()->error("mqtt subscribe refused client_id={} error={}", client_id_, s.ToString());
        return s;  // before the first SUBACK: Start fails with it
      }
      if (code > 2) {
        return BrokerError(absl::InvalidArgumentError(
            absl::StrCat("SUBACK return code ", code, " for '", filters_[i].filter, "'")));
      }
    }
    end.granted = true;
    connected_.store(true);
    ReportFirst(absl::OkStatus());
    return absl::OkStatus();
  }

  void OnPublish(const std::shared_ptr<Connection>& conn, const mi::Publish& publish) {
    // A persistent session may stream its queue before the SUBACK; Start() must not wait for
    // a SUBACK stuck behind a full channel that only the started pipeline drains.
    if (!Subscribed()) ReportFirst(absl::OkStatus());
    if (conn->subscribe_pending) connected_.store(true);  // a resumed session is delivering
    auto d = std::make_shared<Delivery>();
    d->data.id = RandomHex(rng_, 2);
    d->data.payload.assign(publish.payload);
    d->data.publish_time = messagepipeline::Clock::now();
    // A broker resend (DUP) may already have been seen by an earlier connection.
    d->attempt = publish.dup ? 2 : 1;
    if (const TopicMapping* route = FindRoute(config_.topic_mappings, publish.topic)) {
      d->attributes.emplace("route_name", route->name);
    } else {
      unrouted_.fetch_add(1, std::memory_order_relaxed);
      if (unrouted_log_.Allow()) {
        Log()->warn(
            "mqtt message matches no topic mapping; delivered without route_name "
            "mqtt_topic={} suppressed={}",
            publish.topic, unrouted_log_.suppressed());
      }
    }
    d->attributes.emplace("mqtt_topic", publish.topic);
    d->attributes.emplace("mqtt_qos", std::to_string(publish.qos));
    if (publish.qos > 0) {
      if (config_.ack_mode == AckMode::kAfterPipelineAck) {
        d->conn = conn;
        d->seq = conn->Track(publish.packet_id, publish.qos);
      } else {
        std::string ack;
        mi::AppendAck(publish.qos == 2 ? mi::PacketType::kPubrec : mi::PacketType::kPuback,
                      publish.packet_id, ack);
        conn->Write(std::move(ack));
      }
    }
    conn->reader_blocked.store(true, std::memory_order_relaxed);
    Deliver(std::move(d), /*first=*/true);
    conn->last_read_ns.store(NowNanos(), std::memory_order_relaxed);
    conn->reader_blocked.store(false, std::memory_order_relaxed);
  }

  // Blocks while the channel is full or the byte budget spent: that is the backpressure.
  void Deliver(std::shared_ptr<Delivery> d, bool first) {
    if (first) {
      received_.fetch_add(1, std::memory_order_relaxed);
      const std::size_t bytes = d->data.payload.size();
      if (!budget_->Acquire(bytes)) {
        Undeliverable(*d, "the consumer stopped before the pipeline took it");
        return;
      }
      d->budget = budget_;
      d->charged = bytes;
    }
    auto handler = std::make_unique<Handler>(weak_from_this(), d);
    Handler* h = handler.get();
    Message m(d->data, d->attributes, std::move(handler));
    m.delivery_attempt = d->attempt;
    if (!channel_.Push(std::move(m))) {
      h->lost_ = true;
      Undeliverable(*d, "the consumer stopped before the pipeline took it");
      m.Ack();  // settled here; keeps the destructor from nacking it again
    }
  }

  // Hands nacked messages back to the channel when their backoff is over.
  void RedeliverLoop(std::stop_token st) {
    while (true) {
      std::shared_ptr<Delivery> d;
      {
        std::unique_lock lock(redeliver_mu_);
        while (d == nullptr) {
          if (!redeliver_cv_.wait(lock, st, [&] { return !redeliver_.empty(); })) return;
          const auto due = redeliver_.begin()->first;
          if (SteadyClock::now() < due) {
            // Until it is due, or an earlier one is queued.
            redeliver_cv_.wait_until(lock, st, due, [&] {
              return redeliver_.empty() || redeliver_.begin()->first < due;
            });
            if (st.stop_requested()) return;
            continue;
          }
          d = std::move(redeliver_.begin()->second);
          redeliver_.erase(redeliver_.begin());
        }
      }
      // Its connection ended: a persistent session has the broker resend it (DUP), so a
      // local copy too would only be a duplicate.
      if (d->conn && !config_.clean_session && !d->conn->IsOpen()) {
        Undeliverable(*d, "nacked, and its connection ended");
        continue;
      }
      d->attempt += 1;
      redelivered_.fetch_add(1, std::memory_order_relaxed);
      Deliver(std::move(d), /*first=*/false);
    }
  }

  // Sends PINGREQ when nothing was written for half the keep-alive (so pings go out while
  // the reader waits on a full channel), and drops a connection the broker has been silent
  // on for 1.5 x keep-alive (a half-open TCP connection would otherwise hang the reader).
  void KeepAliveLoop(std::stop_token st) {
    if (config_.keep_alive.count() == 0) return;
    const std::int64_t keep_alive_ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(config_.keep_alive).count();
    const auto tick = std::clamp<std::chrono::milliseconds>(
        std::chrono::duration_cast<std::chrono::milliseconds>(config_.keep_alive) / 4,
        std::chrono::milliseconds(50), std::chrono::milliseconds(1000));
    std::mutex mu;
    std::condition_variable_any cv;
    std::unique_lock lock(mu);
    while (!st.stop_requested()) {
      cv.wait_for(lock, st, tick, [] { return false; });
      auto conn = CurrentConnection();
      if (!conn || !conn->handshaken.load()) continue;
      const std::int64_t now = NowNanos();
      // Not while a write is pending: that write counts, and a stalled one fails on its own.
      if (now - conn->last_write_ns.load(std::memory_order_relaxed) >= keep_alive_ns / 2 &&
          conn->WriterIdle()) {
        conn->Write(mi::EncodePingreq());
      }
      if (!conn->reader_blocked.load(std::memory_order_relaxed) &&
          now - conn->last_read_ns.load(std::memory_order_relaxed) > keep_alive_ns * 3 / 2) {
        Log()->warn("mqtt broker silent for 1.5 x keep_alive; reconnecting client_id={}",
                    client_id_);
        conn->transport().Shutdown();
      }
    }
  }

  std::mutex mu_;
  std::condition_variable first_cv_;
  State state_ = State::kIdle;
  std::optional<absl::Status> first_result_;  // the first SUBACK, or why there was none
  std::atomic<bool> subscribed_{false};       // first_result_ is OK
  std::atomic<bool> stopping_{false};
  std::vector<mi::TopicFilter> filters_;
  // Not derived from max_packet_bytes: see WebSocketLimits.
  const mi::WebSocketLimits ws_limits_{};
  std::mt19937_64 rng_;                                     // runner thread only
  std::minstd_rand reconnect_rng_{std::random_device{}()};  // runner thread only
  LogRateLimit unrouted_log_;
  std::atomic<std::uint64_t> received_{0}, nacked_{0}, redelivered_{0}, lost_{0}, unrouted_{0},
      connects_{0}, left_with_broker_{0}, oversize_skipped_{0};
  std::mutex conn_mu_;
  std::shared_ptr<Connection> conn_;  // the current (or last) connection
  std::mutex redeliver_mu_;
  std::condition_variable_any redeliver_cv_;
  // Nacked messages by the time they go back into the channel.
  std::multimap<SteadyClock::time_point, std::shared_ptr<Delivery>> redeliver_;
  std::minstd_rand redeliver_rng_{std::random_device{}()};  // under redeliver_mu_
  std::once_flag done_once_;
  std::jthread runner_;
  std::jthread redeliverer_;
  std::jthread keepalive_;
};

absl::StatusOr<std::unique_ptr<MqttConsumer>> MqttConsumer::Create(MQTTClientConfig config) {
  if (auto s = ValidateMQTTClientConfig(config); !s.ok()) return s;
  if (auto address = mi::ParseBrokerUrl(config.broker_url); !address.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("mqtt config: broker_url: ", address.status().message()));
  }
  std::string client_id = config.client_id;
  if (client_id.empty()) {
    std::mt19937_64 rng(std::random_device{}());
    client_id = config.client_id_prefix + RandomHex(rng, 1);
  }
  auto impl = std::make_shared<Impl>(std::move(config), std::move(client_id));
  return std::unique_ptr<MqttConsumer>(new MqttConsumer(std::move(impl)));
}

MqttConsumer::~MqttConsumer() {
  if (impl_) impl_->StopNow(SteadyClock::now() + std::chrono::seconds(5)).IgnoreError();
}

absl::Status MqttConsumer::Start() { return impl_->Start(); }
absl::Status MqttConsumer::Stop(Deadline deadline) { return impl_->StopNow(deadline); }
BoundedQueue<Message>& MqttConsumer::Messages() { return impl_->channel_; }
std::shared_future<absl::Status> MqttConsumer::Done() { return impl_->done_; }
bool MqttConsumer::IsConnected() const { return impl_->connected_.load(); }
MqttConsumerStats MqttConsumer::stats() const { return impl_->Stats(); }
const std::string& MqttConsumer::client_id() const { return impl_->client_id_; }

}  // namespace dataflow::mqttconverter

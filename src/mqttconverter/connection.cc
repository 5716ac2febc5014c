#include "connection.h"

#include <absl/strings/str_cat.h>

namespace dataflow::mqttconverter::internal {

Connection::Connection(std::unique_ptr<Transport> transport,
                       std::chrono::milliseconds write_timeout, NowFn now)
    : last_write_ns(Nanos(now())),
      last_read_ns(Nanos(now())),
      now_(std::move(now)),
      transport_(std::move(transport)),
      write_timeout_(write_timeout),
      writer_([this] { WriteLoop(); }) {}

void Connection::Write(std::string bytes, std::size_t acks) {
  std::lock_guard lock(mu_);
  EnqueueLocked(std::move(bytes), acks);
}

std::uint64_t Connection::Track(std::uint16_t packet_id, int qos) {
  std::lock_guard lock(mu_);
  return sequencer_.Track(packet_id, qos);
}

void Connection::Settle(std::uint64_t seq, State state) {
  std::lock_guard lock(mu_);
  if (!open_) return;
  AckSequencer::Released acks = sequencer_.Settle(seq, state);
  // Queued under the lock so that two threads releasing prefixes keep their order.
  if (acks.count > 0) EnqueueLocked(std::move(acks.bytes), acks.count);
  if (sequencer_.unsettled() == 0) cv_.notify_all();
}

void Connection::WaitSettled(Deadline deadline) {
  std::unique_lock lock(mu_);
  cv_.wait_until(lock, deadline, [&] { return sequencer_.unsettled() == 0 || !open_; });
}

void Connection::Flush(Deadline deadline) {
  std::unique_lock lock(mu_);
  cv_.wait_until(lock, deadline,
                 [&] { return (outbox_.empty() && !writing_) || !write_error_.ok() || !open_; });
}

bool Connection::IsOpen() {
  std::lock_guard lock(mu_);
  return open_;
}

bool Connection::WriterIdle() {
  std::lock_guard lock(mu_);
  return outbox_.empty() && !writing_;
}

void Connection::Close() {
  {
    std::lock_guard lock(mu_);
    open_ = false;
    cv_.notify_all();
  }
  transport_->Shutdown();  // wakes a blocked Read or Write
  if (writer_.joinable() && writer_.get_id() != std::this_thread::get_id()) writer_.join();
}

std::size_t Connection::NotAckedByPipeline() {
  std::lock_guard lock(mu_);
  return sequencer_.unreleased();
}

std::size_t Connection::UnwrittenAcks() {
  std::lock_guard lock(mu_);
  return unwritten_acks_;
}

absl::Status Connection::WriteError() {
  std::lock_guard lock(mu_);
  return write_error_;
}

void Connection::EnqueueLocked(std::string bytes, std::size_t acks) {
  unwritten_acks_ += acks;
  if (!open_ || !write_error_.ok()) return;
  outbox_.push_back({std::move(bytes), acks});
  cv_.notify_all();
}

void Connection::WriteLoop() {
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
    // The real clock: the transport waits on it (now_ only stamps times for keep-alive).
    absl::Status s = transport_->Write(chunk.bytes, RealNow() + write_timeout_);
    lock.lock();
    writing_ = false;
    if (!s.ok()) {
      if (!open_) return;  // Close() shut the transport: not the broker's failure
      // Part of the chunk may be on the wire: the stream is unusable. The reader sees the
      // shut-down transport and the connection is re-made.
      write_error_ =
          s.code() == absl::StatusCode::kDeadlineExceeded
              ? absl::DeadlineExceededError(absl::StrCat(
                    "the broker took no bytes for write_timeout (", write_timeout_.count(), " ms)"))
              : s;
      outbox_.clear();
      cv_.notify_all();
      lock.unlock();
      transport_->Shutdown();
      return;
    }
    unwritten_acks_ -= chunk.acks;
    last_write_ns.store(Nanos(now_()), std::memory_order_relaxed);
    cv_.notify_all();
  }
}

}  // namespace dataflow::mqttconverter::internal

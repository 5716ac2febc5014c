// Connection: one broker connection of the MQTT session. It owns the transport, a writer
// thread that makes every socket write, and the AckSequencer of the QoS 1/2 messages received
// on it. Write() only queues, so Ack()/Nack() never wait for the socket; a write the broker
// does not take within write_timeout fails the connection (the reader then sees the shut-down
// transport and the session reconnects). Thread-safe; the writer is joined by Close().
#pragma once

#include <absl/status/status.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "ack_sequencer.h"
#include "mqtt_transport.h"
#include "timing.h"

namespace dataflow::mqttconverter::internal {

class Connection {
 public:
  using State = AckSequencer::State;

  Connection(std::unique_ptr<Transport> transport, std::chrono::milliseconds write_timeout,
             NowFn now = RealNow);
  ~Connection() { Close(); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Queues whole packets for the writer; `acks` is how many PUBACK/PUBREC they carry.
  void Write(std::string bytes, std::size_t acks = 0);

  // Registers a received QoS 1/2 message; returns its sequence number for Settle.
  std::uint64_t Track(std::uint16_t packet_id, int qos);
  // kAcked: queues the acknowledgements of the acked prefix. kAbandoned (nacked while
  // stopping): never acknowledged; the broker keeps it. Idempotent; ignored once closed.
  void Settle(std::uint64_t seq, State state);

  // Waits until every tracked message is settled, the connection closed, or `deadline`.
  void WaitSettled(Deadline deadline);
  // Waits until the writer has sent everything queued, failed, or `deadline`.
  void Flush(Deadline deadline);

  bool IsOpen();
  // True when the writer has nothing queued or in progress (keep-alive pings wait for that).
  bool WriterIdle();
  // Ends the connection (idempotent) and joins the writer.
  void Close();

  // After Close: QoS 1/2 messages the pipeline had not acked, and acknowledgements of acked
  // ones that never reached the socket. Both stay with the broker.
  std::size_t NotAckedByPipeline();
  std::size_t UnwrittenAcks();
  // Why the writer gave up (OK if it did not).
  absl::Status WriteError();

  Transport& transport() { return *transport_; }
  // Stamps the time of a read from the broker (keep-alive: the broker is alive).
  void MarkRead() { last_read_ns.store(Nanos(now_()), std::memory_order_relaxed); }
  SteadyTime Now() const { return now_(); }

  std::atomic<std::int64_t> last_write_ns;
  std::atomic<std::int64_t> last_read_ns;
  std::atomic<bool> reader_blocked{false};  // waiting for room in the channel
  std::atomic<bool> handshaken{false};      // CONNACK accepted: keep-alive applies
  bool subscribe_pending = false;           // SUBSCRIBE sent, SUBACK not seen (reader only)

 private:
  struct Chunk {
    std::string bytes;
    std::size_t acks;
  };

  void EnqueueLocked(std::string bytes, std::size_t acks);
  void WriteLoop();

  const NowFn now_;
  std::unique_ptr<Transport> transport_;
  const std::chrono::milliseconds write_timeout_;
  std::mutex mu_;
  std::condition_variable cv_;  // outbox, settled, flushed, closed
  bool open_ = true;
  AckSequencer sequencer_;
  std::deque<Chunk> outbox_;
  bool writing_ = false;
  std::size_t unwritten_acks_ = 0;  // queued or being written, or dropped after a failure
  absl::Status write_error_;
  std::thread writer_;  // last: starts once the members above exist
};

}  // namespace dataflow::mqttconverter::internal

// AckSequencer: the QoS 1/2 messages of one connection whose PUBACK/PUBREC has not been sent,
// in arrival order. [MQTT-4.6.0-2]: acknowledgements go out in the order the PUBLISHes came
// in, so an acked message waits for the earlier ones; Settle releases the acked prefix.
//
// A message nacked by the pipeline stays pending (it is redelivered locally) and holds back
// the acknowledgements behind it until the pipeline settles it for good: acked when it
// succeeds, or when the service gives up on it after max_delivery_attempts (dead-lettered,
// or dropped and logged: DeliveryPolicy), so a poison message holds the others back for its
// attempts only. kAbandoned (nacked while the consumer stops) is never acknowledged: the
// broker keeps it, and the prefix stops there.
//
// Not thread-safe: Connection calls it under its lock, so that the acks two threads release
// are queued for the writer in order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>

namespace dataflow::mqttconverter::internal {

class AckSequencer {
 public:
  enum class State : std::uint8_t { kPending, kAcked, kAbandoned };

  // Registers a received QoS 1/2 message; returns its sequence number for Settle.
  std::uint64_t Track(std::uint16_t packet_id, int qos);

  // The encoded PUBACK/PUBREC packets a Settle released, and how many.
  struct Released {
    std::string bytes;
    std::size_t count = 0;
  };
  // Marks message `seq` kAcked or kAbandoned and returns the acknowledgements of the acked
  // prefix it released (none if it is not first in line). Idempotent per message: a sequence
  // number already settled or released is ignored.
  Released Settle(std::uint64_t seq, State state);

  // Tracked messages not yet settled.
  [[nodiscard]] std::size_t unsettled() const { return unsettled_; }
  // Tracked messages whose acknowledgement was not released (pending, abandoned, or acked
  // behind one of those): they stay with the broker when the connection ends.
  [[nodiscard]] std::size_t unreleased() const { return inflight_.size(); }

 private:
  struct Entry {
    std::uint16_t packet_id;
    std::uint8_t qos;
    State state;
  };
  std::deque<Entry> inflight_;
  std::uint64_t first_seq_ = 0;  // sequence number of inflight_.front()
  std::size_t unsettled_ = 0;
};

}  // namespace dataflow::mqttconverter::internal

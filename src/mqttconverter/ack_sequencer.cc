#include "ack_sequencer.h"

#include "mqtt_codec.h"

namespace dataflow::mqttconverter::internal {

std::uint64_t AckSequencer::Track(std::uint16_t packet_id, int qos) {
  inflight_.push_back({packet_id, static_cast<std::uint8_t>(qos), State::kPending});
  ++unsettled_;
  return first_seq_ + inflight_.size() - 1;
}

AckSequencer::Released AckSequencer::Settle(std::uint64_t seq, State state) {
  Released out;
  if (seq < first_seq_ || seq - first_seq_ >= inflight_.size()) return out;
  Entry& e = inflight_[seq - first_seq_];
  if (e.state != State::kPending || state == State::kPending) return out;
  e.state = state;
  --unsettled_;
  while (!inflight_.empty() && inflight_.front().state == State::kAcked) {
    const Entry& f = inflight_.front();
    AppendAck(f.qos == 2 ? PacketType::kPubrec : PacketType::kPuback, f.packet_id, out.bytes);
    ++out.count;
    inflight_.pop_front();
    ++first_seq_;
  }
  return out;
}

}  // namespace dataflow::mqttconverter::internal

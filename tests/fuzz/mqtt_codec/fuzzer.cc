// libFuzzer target for the MQTT 3.1.1 packet decoder (src/mqttconverter/mqtt_codec.h): the
// input is a stream of packets of any type. Every packet either decodes or gives an
// InvalidArgument error, never a crash; what decodes agrees with itself (the fixed header
// with ParsePacket, a PUBLISH's head read from a prefix with the whole packet) and re-encodes
// to the same bytes where an encoder exists (fixed header, PUBACK/PUBREC/PUBREL/PUBCOMP).
// The encoders the client sends with (CONNECT, SUBSCRIBE, UNSUBSCRIBE) are fed fields cut
// from the input, and their output must parse back as one whole packet.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "mqtt_codec.h"

namespace mi = dataflow::mqttconverter::internal;

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

void CheckError(const absl::Status& s) { Check(s.code() == absl::StatusCode::kInvalidArgument); }

// One encoded packet parses back as exactly one packet of `type`, all of it.
void CheckEncoded(const std::string& bytes, mi::PacketType type) {
  mi::RawPacket p;
  auto n = mi::ParsePacket(bytes, p);
  Check(n.ok() && *n == bytes.size() && p.type == type);
}

void CheckPacket(const mi::RawPacket& p, std::string_view whole, std::size_t prefix_hint) {
  // The fixed header re-encodes as it came (4-byte lengths may be non-minimal in the input:
  // compare the decoded values rather than the bytes).
  mi::FixedHeader h;
  auto complete = mi::ParseFixedHeader(whole, h);
  Check(complete.ok() && *complete && h.type == p.type && h.flags == p.flags &&
        h.remaining_length == p.body.size() && h.packet_size() == whole.size());
  std::string header;
  mi::AppendFixedHeader(static_cast<std::uint8_t>(static_cast<int>(p.type) << 4 | p.flags),
                        p.body.size(), header);
  mi::FixedHeader again;
  Check(*mi::ParseFixedHeader(header, again) && again.remaining_length == h.remaining_length &&
        again.header_size <= h.header_size);

  switch (p.type) {
    case mi::PacketType::kConnack: {
      auto c = mi::ParseConnack(p);
      if (!c.ok()) return CheckError(c.status());
      Check(!mi::ConnackReason(c->return_code).empty());
      return;
    }
    case mi::PacketType::kPublish: {
      auto pub = mi::ParsePublish(p);
      // The head from a prefix: "need more" or the same answer as the whole packet.
      mi::Publish head;
      const std::size_t cut = prefix_hint % (p.body.size() + 1);
      auto h2 = mi::ParsePublishHead(p.flags, p.body.substr(0, cut), p.body.size(), head);
      if (!pub.ok()) {
        CheckError(pub.status());
        Check(!h2.ok() || *h2 == 0);
        if (!h2.ok()) CheckError(h2.status());
        return;
      }
      Check(pub->topic.size() + pub->payload.size() + (pub->qos > 0 ? 4 : 2) == p.body.size());
      Check(pub->qos >= 0 && pub->qos <= 2 && (pub->qos == 0) == (pub->packet_id == 0));
      Check(h2.ok());
      if (*h2 != 0) {
        Check(head.topic == pub->topic && head.packet_id == pub->packet_id &&
              head.qos == pub->qos && head.dup == pub->dup && head.retain == pub->retain &&
              *h2 == p.body.size() - pub->payload.size());
      }
      return;
    }
    case mi::PacketType::kSuback: {
      auto s = mi::ParseSuback(p);
      if (!s.ok()) return CheckError(s.status());
      Check(s->return_codes.size() + 2 == p.body.size());
      return;
    }
    case mi::PacketType::kPuback:
    case mi::PacketType::kPubrec:
    case mi::PacketType::kPubrel:
    case mi::PacketType::kPubcomp:
    case mi::PacketType::kUnsuback: {
      auto id = mi::ParsePacketId(p);
      if (!id.ok()) return CheckError(id.status());
      if (p.type == mi::PacketType::kUnsuback) return;
      std::string ack;
      mi::AppendAck(p.type, *id, ack);
      // Same bytes, unless the input's reserved flags differ from the ones we send.
      const std::uint8_t flags = p.type == mi::PacketType::kPubrel ? 0x2 : 0x0;
      if (p.flags == flags && whole.size() == 4) Check(ack == whole);
      CheckEncoded(ack, p.type);
      return;
    }
    default:
      // Types only a client sends (CONNECT, SUBSCRIBE...) or without a body: the consumer
      // treats them as protocol errors; nothing to decode.
      return;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const std::size_t hint = size > 0 ? data[0] * 257u + size : 0;

  // The packet stream.
  std::string_view rest = in;
  while (!rest.empty()) {
    mi::RawPacket p;
    auto n = mi::ParsePacket(rest, p);
    if (!n.ok()) {
      CheckError(n.status());
      break;
    }
    if (*n == 0) {
      // Incomplete: the fixed header alone must agree (complete or not yet).
      mi::FixedHeader h;
      auto complete = mi::ParseFixedHeader(rest, h);
      Check(complete.ok() && (!*complete || h.packet_size() > rest.size()));
      break;
    }
    Check(*n <= rest.size());
    CheckPacket(p, rest.substr(0, *n), hint);
    rest.remove_prefix(*n);
  }

  // The encoders, with fields cut from the input.
  const std::size_t third = in.size() / 3;
  mi::ConnectOptions connect{.client_id = std::string(in.substr(0, third)),
                             .clean_session = size % 2 == 0,
                             .keep_alive_seconds = static_cast<std::uint16_t>(size * 7),
                             .username = std::string(in.substr(third, third)),
                             .password = std::string(in.substr(2 * third))};
  CheckEncoded(mi::EncodeConnect(connect), mi::PacketType::kConnect);
  std::vector<mi::TopicFilter> filters;
  for (std::size_t i = 0; i < in.size() && filters.size() < 8; i += 16) {
    filters.push_back({.filter = std::string(in.substr(i, 16)), .qos = static_cast<int>(i % 3)});
  }
  CheckEncoded(mi::EncodeSubscribe(static_cast<std::uint16_t>(hint), filters),
               mi::PacketType::kSubscribe);
  CheckEncoded(mi::EncodeUnsubscribe(static_cast<std::uint16_t>(hint), filters),
               mi::PacketType::kUnsubscribe);
  return 0;
}

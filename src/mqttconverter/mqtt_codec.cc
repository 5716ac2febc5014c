#include "mqtt_codec.h"

#include <absl/strings/escaping.h>
#include <absl/strings/str_cat.h>
#include <openssl/sha.h>

namespace dataflow::mqttconverter::internal {
namespace {

absl::Status Malformed(std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("malformed MQTT packet: ", Av(what)));
}

void AppendU16(std::uint16_t v, std::string& out) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xff));
}

void AppendString(std::string_view s, std::string& out) {
  AppendU16(static_cast<std::uint16_t>(s.size()), out);
  out.append(s);
}

std::uint16_t ReadU16(std::string_view data, std::size_t at) {
  return static_cast<std::uint16_t>((static_cast<std::uint8_t>(data[at]) << 8) |
                                    static_cast<std::uint8_t>(data[at + 1]));
}

// SUBSCRIBE and UNSUBSCRIBE differ only in the type and the QoS byte after each filter.
std::string EncodeFilterList(PacketType type, std::uint16_t packet_id,
                             const std::vector<TopicFilter>& filters, bool with_qos) {
  std::string body;
  AppendU16(packet_id, body);
  for (const TopicFilter& f : filters) {
    AppendString(f.filter, body);
    if (with_qos) body.push_back(static_cast<char>(f.qos));
  }
  std::string out;
  // Bits 3..0 of SUBSCRIBE/UNSUBSCRIBE are reserved as 0010 [MQTT-3.8.1-1].
  AppendFixedHeader(static_cast<std::uint8_t>(static_cast<int>(type) << 4 | 0x2), body.size(), out);
  out += body;
  return out;
}

}  // namespace

void AppendFixedHeader(std::uint8_t first_byte, std::size_t remaining_length, std::string& out) {
  out.push_back(static_cast<char>(first_byte));
  do {
    auto digit = static_cast<std::uint8_t>(remaining_length % 128);
    remaining_length /= 128;
    if (remaining_length > 0) digit |= 0x80;
    out.push_back(static_cast<char>(digit));
  } while (remaining_length > 0);
}

std::string EncodeConnect(const ConnectOptions& options) {
  std::string body;
  AppendString("MQTT", body);
  body.push_back(4);  // protocol level 4 = 3.1.1
  std::uint8_t flags = 0;
  if (options.clean_session) flags |= 0x02;
  if (!options.username.empty()) flags |= 0x80;
  if (!options.password.empty()) flags |= 0x40;
  body.push_back(static_cast<char>(flags));
  AppendU16(options.keep_alive_seconds, body);
  AppendString(options.client_id, body);
  if (!options.username.empty()) AppendString(options.username, body);
  if (!options.password.empty()) AppendString(options.password, body);
  std::string out;
  AppendFixedHeader(static_cast<int>(PacketType::kConnect) << 4, body.size(), out);
  out += body;
  return out;
}

std::string EncodeSubscribe(std::uint16_t packet_id, const std::vector<TopicFilter>& filters) {
  return EncodeFilterList(PacketType::kSubscribe, packet_id, filters, /*with_qos=*/true);
}

std::string EncodeUnsubscribe(std::uint16_t packet_id, const std::vector<TopicFilter>& filters) {
  return EncodeFilterList(PacketType::kUnsubscribe, packet_id, filters, /*with_qos=*/false);
}

void AppendAck(PacketType type, std::uint16_t packet_id, std::string& out) {
  // PUBREL's reserved flags are 0010 [MQTT-3.6.1-1]; the others' are 0000.
  const std::uint8_t flags = type == PacketType::kPubrel ? 0x2 : 0x0;
  out.push_back(static_cast<char>(static_cast<int>(type) << 4 | flags));
  out.push_back(2);
  AppendU16(packet_id, out);
}

std::string EncodePingreq() { return std::string("\xc0\x00", 2); }
std::string EncodeDisconnect() { return std::string("\xe0\x00", 2); }

absl::StatusOr<bool> ParseFixedHeader(std::string_view data, FixedHeader& out) {
  if (data.size() < 2) return false;
  const auto first = static_cast<std::uint8_t>(data[0]);
  const int type = first >> 4;
  if (type == 0 || type == 15) return Malformed(absl::StrCat("reserved packet type ", type));
  std::size_t length = 0;
  std::size_t multiplier = 1;
  std::size_t pos = 1;
  while (true) {
    if (pos > 4) return Malformed("Remaining Length longer than four bytes");
    if (pos >= data.size()) return false;
    const auto digit = static_cast<std::uint8_t>(data[pos++]);
    length += (digit & 0x7f) * multiplier;
    if ((digit & 0x80) == 0) break;
    multiplier *= 128;
  }
  out.type = static_cast<PacketType>(type);
  out.flags = first & 0x0f;
  out.remaining_length = length;
  out.header_size = pos;
  return true;
}

absl::StatusOr<std::size_t> ParsePacket(std::string_view data, RawPacket& out) {
  FixedHeader h;
  auto complete = ParseFixedHeader(data, h);
  if (!complete.ok()) return complete.status();
  if (!*complete || data.size() - h.header_size < h.remaining_length) return 0;
  out.type = h.type;
  out.flags = h.flags;
  out.body = data.substr(h.header_size, h.remaining_length);
  return h.packet_size();
}

absl::StatusOr<Connack> ParseConnack(const RawPacket& packet) {
  if (packet.type != PacketType::kConnack) {
    return Malformed(
        absl::StrCat("expected CONNACK, got packet type ", static_cast<int>(packet.type)));
  }
  if (packet.body.size() != 2) return Malformed("CONNACK must be 2 bytes long");
  const auto ack_flags = static_cast<std::uint8_t>(packet.body[0]);
  if ((ack_flags & 0xfe) != 0) return Malformed("CONNACK has reserved flags set");
  return Connack{.session_present = (ack_flags & 1) != 0,
                 .return_code = static_cast<std::uint8_t>(packet.body[1])};
}

std::string ConnackReason(std::uint8_t return_code) {
  switch (return_code) {
    case 0:
      return "accepted";
    case 1:
      return "unacceptable protocol version";
    case 2:
      return "client identifier rejected";
    case 3:
      return "server unavailable";
    case 4:
      return "bad user name or password";
    case 5:
      return "not authorized";
    default:
      return absl::StrCat("unknown return code ", return_code);
  }
}

absl::StatusOr<std::size_t> ParsePublishHead(std::uint8_t flags, std::string_view head,
                                             std::size_t remaining_length, Publish& out) {
  out = Publish{};
  out.qos = (flags >> 1) & 0x3;
  out.dup = (flags & 0x8) != 0;
  out.retain = (flags & 0x1) != 0;
  if (out.qos == 3) return Malformed("PUBLISH with QoS 3");
  head = head.substr(0, remaining_length);
  if (remaining_length < 2) return Malformed("PUBLISH too short for its topic length");
  if (head.size() < 2) return 0;
  const std::size_t topic_len = ReadU16(head, 0);
  if (remaining_length < 2 + topic_len) return Malformed("PUBLISH topic runs past the packet");
  const std::size_t id_len = out.qos > 0 ? 2 : 0;
  if (out.qos > 0 && remaining_length < 2 + topic_len + 2) {
    return Malformed("PUBLISH too short for its packet id");
  }
  if (head.size() < 2 + topic_len + id_len) return 0;
  out.topic = head.substr(2, topic_len);
  if (out.topic.empty()) return Malformed("PUBLISH with an empty topic");
  if (out.topic.find_first_of(std::string_view("+#\0", 3)) != std::string_view::npos) {
    return Malformed("PUBLISH topic contains a wildcard or NUL");
  }
  if (out.qos > 0) {
    out.packet_id = ReadU16(head, 2 + topic_len);
    if (out.packet_id == 0) return Malformed("PUBLISH with packet id 0");
  }
  return 2 + topic_len + id_len;
}

absl::StatusOr<Publish> ParsePublish(const RawPacket& packet) {
  Publish p;
  auto head = ParsePublishHead(packet.flags, packet.body, packet.body.size(), p);
  if (!head.ok()) return head.status();
  p.payload = packet.body.substr(*head);
  return p;
}

absl::StatusOr<Suback> ParseSuback(const RawPacket& packet) {
  if (packet.body.size() < 3) return Malformed("SUBACK too short");
  Suback s{.packet_id = ReadU16(packet.body, 0)};
  for (std::size_t i = 2; i < packet.body.size(); ++i) {
    const auto code = static_cast<std::uint8_t>(packet.body[i]);
    if (code > 2 && code != 0x80) {
      return Malformed(absl::StrCat("SUBACK return code ", code));
    }
    s.return_codes.push_back(code);
  }
  return s;
}

absl::StatusOr<std::uint16_t> ParsePacketId(const RawPacket& packet) {
  if (packet.body.size() != 2) {
    return Malformed(absl::StrCat("packet type ", static_cast<int>(packet.type),
                                  " must carry exactly a packet id"));
  }
  // Packet ids are nonzero [MQTT-2.3.1-1]; an ack of id 0 answers nothing we could have sent
  // (found by the mqtt_session fuzzer: a PUBREL 0 was answered with a PUBCOMP 0).
  const std::uint16_t id = ReadU16(packet.body, 0);
  if (id == 0) {
    return Malformed(
        absl::StrCat("packet type ", static_cast<int>(packet.type), " with packet id 0"));
  }
  return id;
}

std::string EncodeWsFrame(WsOpcode opcode, std::string_view payload, std::uint32_t mask) {
  std::string out;
  out.reserve(payload.size() + 14);
  out.push_back(static_cast<char>(0x80 | static_cast<int>(opcode)));
  if (payload.size() < 126) {
    out.push_back(static_cast<char>(0x80 | payload.size()));
  } else if (payload.size() <= 0xffff) {
    out.push_back(static_cast<char>(0x80 | 126));
    AppendU16(static_cast<std::uint16_t>(payload.size()), out);
  } else {
    out.push_back(static_cast<char>(0x80 | 127));
    for (int shift = 56; shift >= 0; shift -= 8) {
      out.push_back(
          static_cast<char>((static_cast<std::uint64_t>(payload.size()) >> shift) & 0xff));
    }
  }
  const char key[4] = {static_cast<char>(mask >> 24), static_cast<char>(mask >> 16),
                       static_cast<char>(mask >> 8), static_cast<char>(mask)};
  out.append(key, 4);
  const std::size_t start = out.size();
  out.append(payload);
  for (std::size_t i = 0; i < payload.size(); ++i) out[start + i] ^= key[i & 3];
  return out;
}

absl::StatusOr<bool> ParseWsFrameHeader(std::string_view data, WsFrameHeader& out) {
  if (data.size() < 2) return false;
  const auto b0 = static_cast<std::uint8_t>(data[0]);
  const auto b1 = static_cast<std::uint8_t>(data[1]);
  if ((b0 & 0x70) != 0) return absl::InvalidArgumentError("WebSocket frame with reserved bits set");
  const int opcode = b0 & 0x0f;
  if (opcode > 2 && opcode < 8) return absl::InvalidArgumentError("WebSocket reserved opcode");
  if (opcode > 10) return absl::InvalidArgumentError("WebSocket reserved opcode");
  out.fin = (b0 & 0x80) != 0;
  out.opcode = static_cast<WsOpcode>(opcode);
  out.masked = (b1 & 0x80) != 0;
  std::size_t pos = 2;
  std::uint64_t len = b1 & 0x7f;
  if (len == 126) {
    if (data.size() < 4) return false;
    len = ReadU16(data, 2);
    pos = 4;
  } else if (len == 127) {
    if (data.size() < 10) return false;
    len = 0;
    for (int i = 0; i < 8; ++i) len = len << 8 | static_cast<std::uint8_t>(data[2 + i]);
    pos = 10;
  }
  if (opcode >= 8 && (len > 125 || !out.fin)) {
    return absl::InvalidArgumentError("WebSocket control frame longer than 125 bytes or split");
  }
  if (out.masked) {
    if (data.size() < pos + 4) return false;
    out.mask = static_cast<std::uint32_t>(ReadU16(data, pos)) << 16 | ReadU16(data, pos + 2);
    pos += 4;
  }
  out.payload_length = len;
  out.header_size = pos;
  return true;
}

std::string WebSocketAccept(std::string_view key) {
  const std::string input = absl::StrCat(Av(key), "258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  return absl::Base64Escape(
      absl::string_view(reinterpret_cast<const char*>(digest), SHA_DIGEST_LENGTH));
}

}  // namespace dataflow::mqttconverter::internal

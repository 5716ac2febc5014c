// MQTT 3.1.1 (protocol level 4) packet encoding and decoding for MqttConsumer's own client,
// plus the small WebSocket (RFC 6455) framing the ws:// transports need.
//
// Why hand-written: no MQTT library in Debian 12 (Paho C/C++, libmosquitto) lets the
// application decide when the QoS 1 PUBACK goes out; see docs/mqtt.md. Only the packets a
// subscriber needs are here. Decoders never trust the input: every length is checked and a
// malformed packet is an InvalidArgument error naming what is wrong. Pure functions,
// thread-safe.
#pragma once

#include <absl/status/status.h>
#include <absl/status/statusor.h>
#include <absl/strings/string_view.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dataflow::mqttconverter::internal {

// Debian's Abseil has its own string_view type, not std::string_view.
inline absl::string_view Av(std::string_view s) { return {s.data(), s.size()}; }

enum class PacketType : std::uint8_t {
  kConnect = 1,
  kConnack = 2,
  kPublish = 3,
  kPuback = 4,
  kPubrec = 5,
  kPubrel = 6,
  kPubcomp = 7,
  kSubscribe = 8,
  kSuback = 9,
  kUnsubscribe = 10,
  kUnsuback = 11,
  kPingreq = 12,
  kPingresp = 13,
  kDisconnect = 14,
};

// The largest Remaining Length MQTT can express (four bytes of 7 bits: 256 MiB - 1).
inline constexpr std::size_t kMaxRemainingLength = 268'435'455;

struct ConnectOptions {
  std::string client_id;
  bool clean_session = true;
  std::uint16_t keep_alive_seconds = 0;
  std::string username;  // empty: no user name flag
  std::string password;  // empty: no password flag
};

struct TopicFilter {
  std::string filter;
  int qos = 0;
};

std::string EncodeConnect(const ConnectOptions& options);
std::string EncodeSubscribe(std::uint16_t packet_id, const std::vector<TopicFilter>& filters);
std::string EncodeUnsubscribe(std::uint16_t packet_id, const std::vector<TopicFilter>& filters);
// PUBACK, PUBREC, PUBREL or PUBCOMP for `packet_id`, appended to `out` (acks are batched).
void AppendAck(PacketType type, std::uint16_t packet_id, std::string& out);
std::string EncodePingreq();
std::string EncodeDisconnect();
// Fixed header + Remaining Length; exposed for the tests of the length encoding.
void AppendFixedHeader(std::uint8_t first_byte, std::size_t remaining_length, std::string& out);

// One complete packet found at the start of a buffer: type, the fixed header's low four
// flag bits, and the variable header + payload (a view into the buffer).
struct RawPacket {
  PacketType type{};
  std::uint8_t flags = 0;
  std::string_view body;
};

// A packet's fixed header: what is known before any of its body is read, so a size limit
// can be applied before the body is buffered.
struct FixedHeader {
  PacketType type{};
  std::uint8_t flags = 0;
  std::size_t remaining_length = 0;
  std::size_t header_size = 0;  // 2..5 bytes
  [[nodiscard]] std::size_t packet_size() const { return header_size + remaining_length; }
};
// Parses the fixed header at the start of `data`: true and `out` filled, false if `data`
// does not hold all of it yet, an error for a reserved type or a Remaining Length over
// four bytes.
absl::StatusOr<bool> ParseFixedHeader(std::string_view data, FixedHeader& out);

// Looks for one complete packet at the start of `data`. Returns its total size (fixed
// header included) and fills `out`; 0 if `data` does not hold a whole packet yet; an error
// if the fixed header is malformed (reserved type, Remaining Length over four bytes).
absl::StatusOr<std::size_t> ParsePacket(std::string_view data, RawPacket& out);

struct Connack {
  bool session_present = false;
  std::uint8_t return_code = 0;
};
absl::StatusOr<Connack> ParseConnack(const RawPacket& packet);
// "unacceptable protocol version", "bad user name or password", ... for a CONNACK code.
std::string ConnackReason(std::uint8_t return_code);

struct Publish {
  std::string_view topic;
  std::string_view payload;
  int qos = 0;
  bool dup = false;
  bool retain = false;
  std::uint16_t packet_id = 0;  // 0 for QoS 0
};
absl::StatusOr<Publish> ParsePublish(const RawPacket& packet);
// The topic, flags and packet id of a PUBLISH from the first bytes of its body (`head`,
// possibly fewer than `remaining_length`): what skipping an oversize PUBLISH needs to log and
// acknowledge it without buffering its payload. Returns how many body bytes the head takes
// (the payload starts there; `out.payload` stays empty), 0 if `head` is too short to tell
// (at most 2 + 65535 + 2 bytes are ever needed), or the error ParsePublish would give.
absl::StatusOr<std::size_t> ParsePublishHead(std::uint8_t flags, std::string_view head,
                                             std::size_t remaining_length, Publish& out);

struct Suback {
  std::uint16_t packet_id = 0;
  std::vector<std::uint8_t> return_codes;  // granted QoS, or 0x80 for a refused filter
};
absl::StatusOr<Suback> ParseSuback(const RawPacket& packet);

// The packet id of a PUBACK/PUBREC/PUBREL/PUBCOMP/UNSUBACK (exactly two bytes, not 0).
absl::StatusOr<std::uint16_t> ParsePacketId(const RawPacket& packet);

// ---- WebSocket (client side) ----

enum class WsOpcode : std::uint8_t {
  kContinuation = 0,
  kText = 1,
  kBinary = 2,
  kClose = 8,
  kPing = 9,
  kPong = 10,
};

// A client frame: FIN set, masked with `mask` (clients must mask every frame).
std::string EncodeWsFrame(WsOpcode opcode, std::string_view payload, std::uint32_t mask);

struct WsFrameHeader {
  bool fin = false;
  WsOpcode opcode{};
  bool masked = false;
  std::uint32_t mask = 0;
  std::uint64_t payload_length = 0;
  std::size_t header_size = 0;
};
// Parses a frame header at the start of `data`: true and `out` filled, false if incomplete,
// an error for reserved bits/opcodes or an oversized control frame.
absl::StatusOr<bool> ParseWsFrameHeader(std::string_view data, WsFrameHeader& out);

// base64(SHA-1(key + RFC 6455 GUID)): what the server must answer in Sec-WebSocket-Accept.
std::string WebSocketAccept(std::string_view key);

}  // namespace dataflow::mqttconverter::internal

// The hand-written MQTT 3.1.1 and WebSocket codec: exact bytes out, and malformed input in
// turned into errors, never a crash or an out-of-bounds read. Also broker URL parsing.
#include "mqtt_codec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <deque>
#include <string>

#include "mqtt_transport.h"

namespace dataflow::mqttconverter::internal {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string Bytes(std::initializer_list<int> b) {
  std::string s;
  for (int c : b) s.push_back(static_cast<char>(c));
  return s;
}

// The packet views into its bytes, so they are kept for the whole test binary.
absl::StatusOr<RawPacket> ParseAll(std::string bytes) {
  static std::deque<std::string> keep;
  const std::string& data = keep.emplace_back(std::move(bytes));
  RawPacket p;
  auto n = ParsePacket(data, p);
  if (!n.ok()) return n.status();
  if (*n != data.size()) return absl::InternalError("not exactly one packet");
  return p;
}

TEST(MqttCodecTest, RemainingLengthBoundaries) {
  struct Case {
    std::size_t length;
    std::string encoded;
  };
  for (const Case& c :
       {Case{0, Bytes({0})}, Case{127, Bytes({0x7f})}, Case{128, Bytes({0x80, 0x01})},
        Case{16383, Bytes({0xff, 0x7f})}, Case{16384, Bytes({0x80, 0x80, 0x01})},
        Case{2097151, Bytes({0xff, 0xff, 0x7f})}, Case{2097152, Bytes({0x80, 0x80, 0x80, 0x01})},
        Case{kMaxRemainingLength, Bytes({0xff, 0xff, 0xff, 0x7f})}}) {
    std::string out;
    AppendFixedHeader(0x30, c.length, out);
    EXPECT_EQ(out, "\x30" + c.encoded) << c.length;
  }
}

TEST(MqttCodecTest, ConnectBytes) {
  const std::string got = EncodeConnect({.client_id = "c1",
                                         .clean_session = false,
                                         .keep_alive_seconds = 10,
                                         .username = "u",
                                         .password = "p"});
  EXPECT_EQ(got, Bytes({0x10, 20, 0, 4,   'M', 'Q', 'T', 'T', 4, 0xc0, 0,
                        10,   0,  2, 'c', '1', 0,   1,   'u', 0, 1,    'p'}));
  const std::string clean = EncodeConnect({.client_id = "x", .keep_alive_seconds = 0});
  EXPECT_EQ(clean, Bytes({0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 0, 0, 1, 'x'}));
}

TEST(MqttCodecTest, SubscribeUnsubscribeAndAcks) {
  EXPECT_EQ(EncodeSubscribe(7, {{.filter = "a/#", .qos = 1}, {.filter = "b", .qos = 2}}),
            Bytes({0x82, 12, 0, 7, 0, 3, 'a', '/', '#', 1, 0, 1, 'b', 2}));
  EXPECT_EQ(EncodeUnsubscribe(8, {{.filter = "a/#"}}), Bytes({0xa2, 7, 0, 8, 0, 3, 'a', '/', '#'}));
  std::string acks;
  AppendAck(PacketType::kPuback, 0x1234, acks);
  AppendAck(PacketType::kPubrec, 1, acks);
  AppendAck(PacketType::kPubrel, 2, acks);
  AppendAck(PacketType::kPubcomp, 3, acks);
  EXPECT_EQ(acks, Bytes({0x40, 2, 0x12, 0x34, 0x50, 2, 0, 1, 0x62, 2, 0, 2, 0x70, 2, 0, 3}));
  EXPECT_EQ(EncodePingreq(), Bytes({0xc0, 0}));
  EXPECT_EQ(EncodeDisconnect(), Bytes({0xe0, 0}));
}

TEST(MqttCodecTest, ParsePacketWaitsForWholePacket) {
  const std::string publish = Bytes({0x32, 8, 0, 1, 't', 0, 5, 'a', 'b', 'c'});
  RawPacket p;
  for (std::size_t i = 0; i < publish.size(); ++i) {
    auto n = ParsePacket(publish.substr(0, i), p);
    ASSERT_TRUE(n.ok()) << n.status();
    EXPECT_EQ(*n, 0u) << i;
  }
  auto n = ParsePacket(publish + "extra", p);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, publish.size());
  EXPECT_EQ(p.type, PacketType::kPublish);
  EXPECT_EQ(p.flags, 2);
}

TEST(MqttCodecTest, MalformedFixedHeaders) {
  RawPacket p;
  auto five = ParsePacket(Bytes({0x30, 0x80, 0x80, 0x80, 0x80, 0x01}), p);
  ASSERT_FALSE(five.ok());
  EXPECT_THAT(std::string(five.status().message()), HasSubstr("Remaining Length"));
  // Known malformed as soon as the fifth length byte is there, not only once complete.
  EXPECT_FALSE(ParsePacket(Bytes({0x30, 0x80, 0x80, 0x80, 0x80}), p).ok());
  EXPECT_FALSE(ParsePacket(Bytes({0x00, 0x00}), p).ok());
  EXPECT_FALSE(ParsePacket(Bytes({0xf0, 0x00}), p).ok());
}

TEST(MqttCodecTest, PublishAtEachQos) {
  auto q0 = ParseAll(Bytes({0x30, 5, 0, 1, 't', 'h', 'i'}));
  ASSERT_TRUE(q0.ok());
  auto p0 = ParsePublish(*q0);
  ASSERT_TRUE(p0.ok()) << p0.status();
  EXPECT_EQ(p0->topic, "t");
  EXPECT_EQ(p0->payload, "hi");
  EXPECT_EQ(p0->qos, 0);
  EXPECT_EQ(p0->packet_id, 0);

  auto q2 = ParseAll(Bytes({0x3d, 7, 0, 1, 't', 0x01, 0x02, 'x', 'y'}));  // DUP, QoS 2, retain
  ASSERT_TRUE(q2.ok());
  auto p2 = ParsePublish(*q2);
  ASSERT_TRUE(p2.ok()) << p2.status();
  EXPECT_EQ(p2->qos, 2);
  EXPECT_TRUE(p2->dup);
  EXPECT_TRUE(p2->retain);
  EXPECT_EQ(p2->packet_id, 0x0102);
  EXPECT_EQ(p2->payload, "xy");

  auto empty = ParseAll(Bytes({0x32, 5, 0, 1, 't', 0, 9}));  // an empty payload is valid
  ASSERT_TRUE(empty.ok());
  auto pe = ParsePublish(*empty);
  ASSERT_TRUE(pe.ok());
  EXPECT_EQ(pe->payload, "");
}

TEST(MqttCodecTest, MalformedPublishes) {
  struct Case {
    std::string bytes;
    std::string error;
  };
  for (const Case& c : {
           Case{Bytes({0x36, 5, 0, 1, 't', 0, 1}), "QoS 3"},
           Case{Bytes({0x30, 1, 0}), "too short"},
           Case{Bytes({0x30, 3, 0, 9, 't'}), "runs past"},
           Case{Bytes({0x30, 2, 0, 0}), "empty topic"},
           Case{Bytes({0x32, 4, 0, 1, 't', 0}), "packet id"},
           Case{Bytes({0x32, 5, 0, 1, 't', 0, 0}), "packet id 0"},
           Case{Bytes({0x30, 4, 0, 2, 'a', '#'}), "wildcard"},
       }) {
    auto raw = ParseAll(c.bytes);
    ASSERT_TRUE(raw.ok()) << raw.status();
    auto p = ParsePublish(*raw);
    ASSERT_FALSE(p.ok()) << c.error;
    EXPECT_THAT(std::string(p.status().message()), HasSubstr(c.error));
  }
}

// The fixed header alone gives the packet's size, before any of its body is there: what
// lets the consumer refuse an oversize packet without buffering it.
TEST(MqttCodecTest, FixedHeaderKnownBeforeTheBody) {
  FixedHeader h;
  EXPECT_FALSE(*ParseFixedHeader(Bytes({0x30}), h));
  EXPECT_FALSE(*ParseFixedHeader(Bytes({0x30, 0xff, 0xff}), h));  // length continues
  ASSERT_TRUE(*ParseFixedHeader(Bytes({0x32, 0xff, 0xff, 0xff, 0x7f}), h));
  EXPECT_EQ(h.type, PacketType::kPublish);
  EXPECT_EQ(h.flags, 0x2);
  EXPECT_EQ(h.remaining_length, kMaxRemainingLength);
  EXPECT_EQ(h.header_size, 5u);
  EXPECT_EQ(h.packet_size(), kMaxRemainingLength + 5);
  EXPECT_FALSE(ParseFixedHeader(Bytes({0x30, 0x80, 0x80, 0x80, 0x80, 0x01}), h).ok());
  EXPECT_FALSE(ParseFixedHeader(Bytes({0xf0, 0x00}), h).ok());
}

// The head of a PUBLISH (topic, packet id) from its first bytes, as they trickle in.
TEST(MqttCodecTest, PublishHeadFromAPrefixOfTheBody) {
  // QoS 1, topic "a/b", packet id 0x0102, then a payload the head does not need.
  const std::string body = Bytes({0x00, 0x03, 'a', '/', 'b', 0x01, 0x02, 'x', 'y'});
  Publish p;
  for (std::size_t n = 0; n < 7; ++n) {
    auto got = ParsePublishHead(0x2, std::string_view(body).substr(0, n), 1'000'000, p);
    ASSERT_TRUE(got.ok()) << n << got.status();
    EXPECT_EQ(*got, 0u) << n;
  }
  auto got = ParsePublishHead(0x2 | 0x8, body, 1'000'000, p);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, 7u);
  EXPECT_EQ(p.topic, "a/b");
  EXPECT_EQ(p.packet_id, 0x0102);
  EXPECT_EQ(p.qos, 1);
  EXPECT_TRUE(p.dup);
  // Errors as soon as the announced length rules the head out, whatever has arrived.
  EXPECT_FALSE(ParsePublishHead(0x2, "", 1, p).ok());
  EXPECT_FALSE(ParsePublishHead(0x2, Bytes({0x00, 0x03}), 4, p).ok());  // topic past the end
  EXPECT_FALSE(ParsePublishHead(0x2, Bytes({0x00, 0x01}), 4, p).ok());  // no room for the id
  EXPECT_FALSE(ParsePublishHead(0x6, body, 1'000'000, p).ok());         // QoS 3
  EXPECT_FALSE(ParsePublishHead(0x2, Bytes({0x00, 0x01, '#', 0x00, 0x01}), 9, p).ok());
  EXPECT_FALSE(ParsePublishHead(0x2, Bytes({0x00, 0x01, 'a', 0x00, 0x00}), 9, p).ok());  // id 0
}

TEST(MqttCodecTest, ConnackAndSuback) {
  auto ok = ParseConnack(*ParseAll(Bytes({0x20, 2, 1, 0})));
  ASSERT_TRUE(ok.ok());
  EXPECT_TRUE(ok->session_present);
  EXPECT_EQ(ok->return_code, 0);
  auto refused = ParseConnack(*ParseAll(Bytes({0x20, 2, 0, 4})));
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(ConnackReason(refused->return_code), "bad user name or password");
  EXPECT_EQ(ConnackReason(5), "not authorized");
  EXPECT_THAT(ConnackReason(42), HasSubstr("42"));
  EXPECT_FALSE(ParseConnack(*ParseAll(Bytes({0x20, 3, 0, 0, 0}))).ok());
  EXPECT_FALSE(ParseConnack(*ParseAll(Bytes({0x20, 2, 2, 0}))).ok());  // reserved flag
  EXPECT_FALSE(ParseConnack(*ParseAll(Bytes({0x90, 2, 0, 0}))).ok());  // not a CONNACK

  auto suback = ParseSuback(*ParseAll(Bytes({0x90, 5, 0, 1, 0, 2, 0x80})));
  ASSERT_TRUE(suback.ok());
  EXPECT_EQ(suback->packet_id, 1);
  EXPECT_THAT(suback->return_codes, ElementsAre(0, 2, 0x80));
  EXPECT_FALSE(ParseSuback(*ParseAll(Bytes({0x90, 2, 0, 1}))).ok());
  EXPECT_FALSE(ParseSuback(*ParseAll(Bytes({0x90, 3, 0, 1, 7}))).ok());

  auto id = ParsePacketId(*ParseAll(Bytes({0x62, 2, 0xab, 0xcd})));
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(*id, 0xabcd);
  EXPECT_FALSE(ParsePacketId(*ParseAll(Bytes({0x62, 1, 0}))).ok());
  EXPECT_FALSE(ParsePacketId(*ParseAll(Bytes({0x62, 2, 0, 0}))).ok());  // ids are nonzero
}

TEST(MqttCodecTest, WebSocketAcceptMatchesRfc6455Example) {
  EXPECT_EQ(WebSocketAccept("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(MqttCodecTest, WebSocketFramesRoundTrip) {
  for (std::size_t size : {0u, 5u, 125u, 126u, 65535u, 65536u, 70000u}) {
    std::string payload(size, '\0');
    for (std::size_t i = 0; i < size; ++i) payload[i] = static_cast<char>(i * 7);
    const std::string frame = EncodeWsFrame(WsOpcode::kBinary, payload, 0xa1b2c3d4);
    WsFrameHeader h;
    auto complete = ParseWsFrameHeader(frame, h);
    ASSERT_TRUE(complete.ok()) << complete.status();
    ASSERT_TRUE(*complete);
    EXPECT_TRUE(h.fin);
    EXPECT_TRUE(h.masked);
    EXPECT_EQ(h.opcode, WsOpcode::kBinary);
    EXPECT_EQ(h.payload_length, size);
    ASSERT_EQ(frame.size(), h.header_size + size);
    const char key[4] = {'\xa1', '\xb2', '\xc3', '\xd4'};
    std::string unmasked = frame.substr(h.header_size);
    for (std::size_t i = 0; i < unmasked.size(); ++i) unmasked[i] ^= key[i & 3];
    EXPECT_TRUE(unmasked == payload) << size;
    // Every prefix of the header is "incomplete", never an error.
    for (std::size_t i = 0; i < h.header_size; ++i) {
      auto partial = ParseWsFrameHeader(frame.substr(0, i), h);
      ASSERT_TRUE(partial.ok());
      EXPECT_FALSE(*partial);
    }
  }
}

TEST(MqttCodecTest, MalformedWebSocketFrames) {
  WsFrameHeader h;
  EXPECT_FALSE(ParseWsFrameHeader(Bytes({0xc2, 0}), h).ok());            // RSV1
  EXPECT_FALSE(ParseWsFrameHeader(Bytes({0x83, 0}), h).ok());            // reserved opcode
  EXPECT_FALSE(ParseWsFrameHeader(Bytes({0x89, 126, 0, 200}), h).ok());  // long ping
  EXPECT_FALSE(ParseWsFrameHeader(Bytes({0x09, 0}), h).ok());            // fragmented ping
  auto pong = ParseWsFrameHeader(Bytes({0x8a, 0}), h);
  ASSERT_TRUE(pong.ok());
  EXPECT_TRUE(*pong);
  EXPECT_EQ(h.opcode, WsOpcode::kPong);
}

TEST(BrokerUrlTest, SchemesPortsAndPaths) {
  auto tcp = ParseBrokerUrl("tcp://broker");
  ASSERT_TRUE(tcp.ok()) << tcp.status();
  EXPECT_EQ(tcp->host, "broker");
  EXPECT_EQ(tcp->port, 1883);
  EXPECT_FALSE(tcp->tls);
  EXPECT_FALSE(tcp->websocket);
  auto mqtts = ParseBrokerUrl("mqtts://h:9999");
  ASSERT_TRUE(mqtts.ok());
  EXPECT_EQ(mqtts->port, 9999);
  EXPECT_TRUE(mqtts->tls);
  EXPECT_EQ(ParseBrokerUrl("ssl://h")->port, 8883);
  // Paho's (so the Go library's) name for it.
  auto tls = ParseBrokerUrl("tls://h");
  ASSERT_TRUE(tls.ok()) << tls.status();
  EXPECT_TRUE(tls->tls);
  EXPECT_FALSE(tls->websocket);
  EXPECT_EQ(tls->port, 8883);
  auto ws = ParseBrokerUrl("ws://h");
  ASSERT_TRUE(ws.ok());
  EXPECT_EQ(ws->port, 80);
  EXPECT_EQ(ws->path, "/mqtt");
  EXPECT_TRUE(ws->websocket);
  auto wss = ParseBrokerUrl("wss://[::1]:8443/custom/path");
  ASSERT_TRUE(wss.ok()) << wss.status();
  EXPECT_EQ(wss->host, "::1");
  EXPECT_EQ(wss->port, 8443);
  EXPECT_EQ(wss->path, "/custom/path");
  EXPECT_TRUE(wss->tls && wss->websocket);
  for (const char* bad : {"broker:1883", "http://h", "tcp://:1883", "tcp://h:0", "tcp://h:70000",
                          "tcp://h:x", "tcp://[::1", "tcp://[::1]x"}) {
    auto r = ParseBrokerUrl(bad);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace dataflow::mqttconverter::internal

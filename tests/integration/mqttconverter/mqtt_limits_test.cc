// Size limits on what the broker sends: max_packet_bytes and the WebSocket frame/message
// limits. Against ScriptedBroker, a loopback fake: Mosquitto's own tools read a whole payload
// into memory before sending it, and no real broker can be made to announce a packet it
// never sends, or a WebSocket frame of a terabyte. Its own binary, so that the memory
// figures (VmRSS, VmHWM of this process) are not disturbed by other tests.
#include <absl/strings/str_cat.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include "dataflow/mqttconverter/mqtt_consumer.h"
#include "dataflow_testing/server_process.h"
#include "mqtt_codec.h"
#include "mqtt_test_util.h"
#include "mqtt_transport.h"
#include "scripted_broker.h"

namespace dataflow::mqttconverter {
namespace {

using messagepipeline::Message;
using ::testing::HasSubstr;
using testing::PopN;
using testing::ScriptedBroker;
namespace mi = internal;

constexpr std::size_t kMiB = 1 << 20;

// A field of /proc/self/status ("VmRSS", "VmHWM") in bytes.
std::size_t ProcStatus(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stoul(line.substr(field.size() + 1)) * 1024;
  }
  ADD_FAILURE() << field << " not in /proc/self/status";
  return 0;
}

// Sets VmHWM back to the current VmRSS (Linux >= 4.0), so a later VmHWM is the peak since.
bool ResetPeakRss() {
  std::FILE* f = std::fopen("/proc/self/clear_refs", "w");
  if (f == nullptr) return false;
  const bool ok = std::fputs("5", f) >= 0;
  return std::fclose(f) == 0 && ok;
}

MqttClientOptions ScriptedConfig(const ScriptedBroker& broker) {
  return MqttClientOptions{.broker_url = broker.url(),
                           .keep_alive = std::chrono::seconds(0),
                           .connect_timeout = std::chrono::seconds(5),
                           .topic_mappings = {{.name = "t", .topic = "t/#", .qos = 1}}};
}

std::unique_ptr<MqttConsumer> StartAgainst(ScriptedBroker& broker,
                                           const MqttClientOptions& config) {
  auto consumer = MqttConsumer::Create(config);
  EXPECT_TRUE(consumer.ok()) << consumer.status();
  if (!consumer.ok()) return nullptr;
  bool handshake = false;
  std::thread broker_side([&] { handshake = broker.Handshake(); });
  const absl::Status started = (*consumer)->Start();
  broker_side.join();
  EXPECT_TRUE(handshake);
  EXPECT_TRUE(started.ok()) << started;
  if (!handshake || !started.ok()) return nullptr;
  return std::move(*consumer);
}

// The issue's proof: a 200 MiB QoS 1 PUBLISH, announced and streamed, is refused while
// the process grows by less than 16 MiB; it is acknowledged in its place (after the message
// before it, which the pipeline acks late), and the message after it still arrives.
TEST(MqttLimitsTest, OversizePublishIsSkippedUnbufferedAcknowledgedAndLaterMessagesFlow) {
  ScriptedBroker broker;
  auto consumer = StartAgainst(broker, ScriptedConfig(broker));  // max_packet_bytes 4 MiB
  ASSERT_NE(consumer, nullptr);
  ASSERT_TRUE(broker.SendPublish("t/before", "before", 1, 1));
  auto before = PopN(consumer->Messages(), 1);
  ASSERT_EQ(before.size(), 1u);

  ASSERT_TRUE(ResetPeakRss()) << "cannot reset VmHWM through /proc/self/clear_refs";
  const std::size_t rss_before = ProcStatus("VmRSS");
  std::atomic<bool> sent{false};
  std::thread broker_side([&] {
    sent = broker.SendLargePublish("t/huge", 200 * kMiB, 1, 2) &&
           broker.SendPublish("t/after", "after", 1, 3);
  });
  auto after = PopN(consumer->Messages(), 1, std::chrono::seconds(60));
  broker_side.join();
  const std::size_t peak = ProcStatus("VmHWM");
  ASSERT_TRUE(sent);
  ASSERT_EQ(after.size(), 1u);
  // Not EXPECT_EQ on the payload: a failure would print 200 MiB.
  EXPECT_EQ(after[0].attributes.at("mqtt_topic"), "t/after");
  EXPECT_TRUE(after[0].data.payload == "after");
  const std::size_t growth = peak > rss_before ? peak - rss_before : 0;
  std::printf(
      "RSS growth while a 200 MiB PUBLISH was refused: %.2f MiB (VmRSS %.1f MiB, "
      "VmHWM %.1f MiB)\n",
      static_cast<double>(growth) / kMiB, static_cast<double>(rss_before) / kMiB,
      static_cast<double>(peak) / kMiB);
  EXPECT_LT(growth, 16 * kMiB);
  EXPECT_EQ(consumer->stats().oversize_skipped, 1u);
  EXPECT_EQ(consumer->stats().received, 2u);
  EXPECT_TRUE(consumer->IsConnected());
  EXPECT_EQ(consumer->stats().connects, 1u);

  // PUBACKs in arrival order: the skipped message's waits for the one before it.
  after[0].Ack();
  before[0].Ack();
  EXPECT_THAT(broker.ReadPubacks(3), ::testing::ElementsAre(1, 2, 3));
  EXPECT_TRUE(consumer->Stop(std::chrono::steady_clock::now() + std::chrono::seconds(5)).ok());
}

// A QoS 2 oversize PUBLISH gets its PUBREC (then PUBCOMP for the broker's PUBREL), a QoS 0
// one nothing; both are counted and the connection carries on.
TEST(MqttLimitsTest, OversizeQos2AndQos0PublishesAreSkipped) {
  ScriptedBroker broker;
  MqttClientOptions config = ScriptedConfig(broker);
  config.max_packet_bytes = 1024;
  auto consumer = StartAgainst(broker, config);
  ASSERT_NE(consumer, nullptr);
  ASSERT_TRUE(broker.SendLargePublish("t/q0", 4096, 0, 0));
  ASSERT_TRUE(broker.SendLargePublish("t/q2", 4096, 2, 7));
  std::uint8_t type = 0;
  std::string body;
  ASSERT_TRUE(broker.ReadNext(type, body));
  EXPECT_EQ(type, 0x50);  // PUBREC
  EXPECT_EQ(body, std::string("\x00\x07", 2));
  ASSERT_TRUE(broker.SendRaw(std::string("\x62\x02\x00\x07", 4)));  // PUBREL
  ASSERT_TRUE(broker.ReadNext(type, body));
  EXPECT_EQ(type, 0x70);  // PUBCOMP
  ASSERT_TRUE(broker.SendPublish("t/ok", std::string(900, 'x'), 0));
  auto got = PopN(consumer->Messages(), 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].data.payload, std::string(900, 'x'));
  EXPECT_EQ(consumer->stats().oversize_skipped, 2u);
  EXPECT_EQ(consumer->stats().connects, 1u);
  got[0].Ack();
  EXPECT_TRUE(consumer->Stop(std::chrono::steady_clock::now() + std::chrono::seconds(5)).ok());
}

// A packet the consumer accepts still must not keep its read buffer: after a 48 MiB one
// (under a 64 MiB limit) is processed and acked, the process is back near where it was.
TEST(MqttLimitsTest, LargePacketWithinTheLimitDoesNotKeepItsReadBuffer) {
  ScriptedBroker broker;
  MqttClientOptions config = ScriptedConfig(broker);
  config.max_packet_bytes = 64 * kMiB;
  auto consumer = StartAgainst(broker, config);
  ASSERT_NE(consumer, nullptr);
  const std::size_t rss_before = ProcStatus("VmRSS");
  std::thread broker_side([&] {
    EXPECT_TRUE(broker.SendLargePublish("t/large", 48 * kMiB, 1, 1));
    EXPECT_TRUE(broker.SendPublish("t/small", "small", 1, 2));
  });
  {
    auto got = PopN(consumer->Messages(), 2, std::chrono::seconds(60));
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].data.payload.size(), 48 * kMiB);
    for (Message& m : got) m.Ack();
  }  // the messages, and the consumer's copies of their payloads, are gone
  broker_side.join();
  EXPECT_THAT(broker.ReadPubacks(2), ::testing::ElementsAre(1, 2));
  // The reader is past the small message: it has prepared its buffer for the next read.
  const std::size_t rss_after = ProcStatus("VmRSS");
  std::printf("VmRSS before a 48 MiB packet %.1f MiB, after %.1f MiB\n",
              static_cast<double>(rss_before) / kMiB, static_cast<double>(rss_after) / kMiB);
  EXPECT_LT(rss_after, rss_before + 16 * kMiB);
  EXPECT_EQ(consumer->stats().oversize_skipped, 0u);
  EXPECT_TRUE(consumer->Stop(std::chrono::steady_clock::now() + std::chrono::seconds(5)).ok());
}

// Only a PUBLISH can be skipped (its acknowledgement is known); any other packet over the
// limit is a protocol error: the consumer drops the connection, without reading the body,
// and reconnects.
TEST(MqttLimitsTest, OversizeNonPublishPacketIsAProtocolErrorAndTheConsumerReconnects) {
  ScriptedBroker broker;
  MqttClientOptions config = ScriptedConfig(broker);
  config.reconnect_max_backoff = config.reconnect_min_backoff;
  auto consumer = StartAgainst(broker, config);
  ASSERT_NE(consumer, nullptr);
  // A SUBACK announcing 100 MiB, and nothing after its header.
  ASSERT_TRUE(broker.SendRaw(std::string("\x90\x80\x80\x80\x32", 5)));
  EXPECT_TRUE(broker.WaitForClose(std::chrono::seconds(5)));
  EXPECT_TRUE(broker.Handshake());  // the reconnect, subscriptions renewed
  EXPECT_TRUE(dataflow::testing::WaitFor([&] { return consumer->stats().connects == 2; },
                                         std::chrono::seconds(5)));
  EXPECT_TRUE(consumer->Stop(std::chrono::steady_clock::now() + std::chrono::seconds(5)).ok());
}

// ---- WebSocket frame and message limits, on the transport itself ----

// Answers a WebSocket upgrade on `broker`'s accepted socket.
bool AcceptWebSocket(ScriptedBroker& broker) {
  if (!broker.Accept()) return false;
  std::string request;
  char c = 0;
  while (request.find("\r\n\r\n") == std::string::npos) {
    if (::recv(broker.client_fd(), &c, 1, 0) != 1) return false;
    request += c;
  }
  const std::string header = "Sec-WebSocket-Key: ";
  const auto at = request.find(header);
  if (at == std::string::npos) return false;
  const std::string key =
      request.substr(at + header.size(), request.find("\r\n", at) - at - header.size());
  return broker.SendRaw(absl::StrCat(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: ",
      mi::WebSocketAccept(key), "\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"));
}

// An unmasked server frame header announcing `length` payload bytes.
std::string FrameHeader(std::uint8_t first, std::uint64_t length) {
  std::string out(1, static_cast<char>(first));
  if (length < 126) {
    out += static_cast<char>(length);
  } else if (length <= 0xffff) {
    out += static_cast<char>(126);
    out += static_cast<char>(length >> 8);
    out += static_cast<char>(length & 0xff);
  } else {
    out += static_cast<char>(127);
    for (int shift = 56; shift >= 0; shift -= 8) out += static_cast<char>((length >> shift) & 0xff);
  }
  return out;
}

// The close code of the (masked) close frame the client sends; -1 if none comes.
int ReadCloseCode(ScriptedBroker& broker) {
  unsigned char frame[8];
  std::size_t got = 0;
  while (got < sizeof frame) {
    pollfd p{.fd = broker.client_fd(), .events = POLLIN, .revents = 0};
    if (::poll(&p, 1, 5000) != 1) return -1;
    const ssize_t n = ::recv(broker.client_fd(), frame + got, sizeof frame - got, 0);
    if (n <= 0) return -1;
    got += static_cast<std::size_t>(n);
  }
  if (frame[0] != 0x88 || frame[1] != 0x82) return -1;  // FIN + close, masked, 2 bytes
  return ((frame[6] ^ frame[2]) << 8) | (frame[7] ^ frame[3]);
}

struct WsDial {
  ScriptedBroker broker;
  std::unique_ptr<mi::Transport> transport;

  explicit WsDial(const mi::WebSocketLimits& limits = {}) {
    bool upgraded = false;
    std::thread server([&] { upgraded = AcceptWebSocket(broker); });
    const std::string url = "ws" + broker.url().substr(3) + "/mqtt";  // tcp://... -> ws://...
    auto t = mi::Dial(url, {}, std::chrono::steady_clock::now() + std::chrono::seconds(5), limits);
    server.join();
    EXPECT_TRUE(upgraded);
    EXPECT_TRUE(t.ok()) << t.status();
    if (t.ok()) transport = std::move(*t);
  }
  absl::StatusOr<std::size_t> Read(char* buf, std::size_t size) {
    return transport->Read(buf, size, std::chrono::steady_clock::now() + std::chrono::seconds(5));
  }
};

TEST(MqttLimitsTest, WebSocketFrameAnnouncingMoreThanTheLimitIsClosedWith1009) {
  WsDial ws;  // default limits: the largest MQTT packet
  ASSERT_NE(ws.transport, nullptr);
  // A binary frame announcing 1 TiB: refused from its header, nothing of it allocated.
  ASSERT_TRUE(ws.broker.SendRaw(FrameHeader(0x82, std::uint64_t{1} << 40)));
  char buf[4096];
  auto n = ws.Read(buf, sizeof buf);
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.status().code(), absl::StatusCode::kUnavailable) << n.status();
  EXPECT_THAT(std::string(n.status().message()),
              HasSubstr("WebSocket frame of 1099511627776 bytes is over the limit of 268435460"));
  EXPECT_THAT(std::string(n.status().message()), HasSubstr("closed with 1009"));
  EXPECT_EQ(ReadCloseCode(ws.broker), 1009);
}

TEST(MqttLimitsTest, WebSocketMessageOverTheLimitIsClosedWith1009) {
  WsDial ws({.max_frame_bytes = 1024, .max_message_bytes = 1536});
  ASSERT_NE(ws.transport, nullptr);
  // Two frames of one message, each under the frame limit, 2048 bytes together.
  ASSERT_TRUE(ws.broker.SendRaw(FrameHeader(0x02, 1024) + std::string(1024, 'a')));
  ASSERT_TRUE(ws.broker.SendRaw(FrameHeader(0x80, 1024)));
  std::string got;
  char buf[4096];
  absl::StatusOr<std::size_t> n;
  while ((n = ws.Read(buf, sizeof buf)).ok()) got.append(buf, *n);
  EXPECT_EQ(got, std::string(1024, 'a'));  // the first frame was within the limits
  EXPECT_THAT(std::string(n.status().message()),
              HasSubstr("WebSocket message of at least 2048 bytes is over the limit of 1536"));
  EXPECT_EQ(ReadCloseCode(ws.broker), 1009);
}

TEST(MqttLimitsTest, WebSocketFramesWithinTheLimitsPass) {
  WsDial ws({.max_frame_bytes = 1024, .max_message_bytes = 2048});
  ASSERT_NE(ws.transport, nullptr);
  ASSERT_TRUE(ws.broker.SendRaw(FrameHeader(0x02, 1024) + std::string(1024, 'a') +
                                FrameHeader(0x89, 0) +  // a ping between fragments
                                FrameHeader(0x80, 1024) + std::string(1024, 'b') +
                                FrameHeader(0x82, 1024) + std::string(1024, 'c')));
  std::string got;
  char buf[4096];
  while (got.size() < 3072) {
    auto n = ws.Read(buf, sizeof buf);
    ASSERT_TRUE(n.ok()) << n.status();
    got.append(buf, *n);
  }
  EXPECT_EQ(got, std::string(1024, 'a') + std::string(1024, 'b') + std::string(1024, 'c'));
}

TEST(MqttLimitsTest, WebSocketContinuationOutsideAMessageIsClosedWith1002) {
  WsDial ws;
  ASSERT_NE(ws.transport, nullptr);
  ASSERT_TRUE(ws.broker.SendRaw(FrameHeader(0x80, 4) + "abcd"));
  char buf[64];
  auto n = ws.Read(buf, sizeof buf);
  ASSERT_FALSE(n.ok());
  EXPECT_THAT(std::string(n.status().message()), HasSubstr("continuation frame outside a message"));
  EXPECT_EQ(ReadCloseCode(ws.broker), 1002);
}

}  // namespace
}  // namespace dataflow::mqttconverter

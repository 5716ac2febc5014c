// The WebSocket (RFC 6455) client transport: the upgrade handshake, then MQTT bytes as
// binary frames over a TCP or TLS transport (framing in mqtt_codec.h).
#include <absl/strings/ascii.h>
#include <absl/strings/escaping.h>
#include <absl/strings/match.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_split.h>
#include <absl/strings/strip.h>
#include <openssl/rand.h>

#include <cstring>

#include "mqtt_codec.h"
#include "mqtt_transport.h"

namespace dataflow::mqttconverter::internal {
namespace {

constexpr std::chrono::seconds kPongWriteTimeout{10};

std::uint32_t RandomMask() {
  std::uint32_t mask = 0;
  RAND_bytes(reinterpret_cast<unsigned char*>(&mask), sizeof mask);
  return mask;
}

// RFC 6455 client over another transport: MQTT bytes travel as binary frames.
class WebSocketTransport : public Transport {
 public:
  WebSocketTransport(std::unique_ptr<Transport> inner, const WebSocketLimits& limits)
      : inner_(std::move(inner)), limits_(limits) {}

  absl::Status Handshake(const BrokerAddress& address, Deadline deadline) {
    unsigned char nonce[16];
    RAND_bytes(nonce, sizeof nonce);
    const std::string key =
        absl::Base64Escape(absl::string_view(reinterpret_cast<const char*>(nonce), sizeof nonce));
    const bool default_port = address.port == (address.tls ? 443 : 80);
    const std::string host_header = absl::StrCat(
        address.host.find(':') != std::string::npos ? "[" + address.host + "]" : address.host,
        default_port ? "" : absl::StrCat(":", address.port));
    if (auto s =
            inner_->Write(absl::StrCat("GET ", address.path, " HTTP/1.1\r\nHost: ", host_header,
                                       "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                       "Sec-WebSocket-Key: ",
                                       key,
                                       "\r\nSec-WebSocket-Version: 13\r\n"
                                       "Sec-WebSocket-Protocol: mqtt\r\n\r\n"),
                          deadline);
        !s.ok()) {
      return s;
    }
    std::size_t end;
    while ((end = in_.find("\r\n\r\n")) == std::string::npos) {
      if (in_.size() > 16384) return absl::UnavailableError("WebSocket upgrade: response too long");
      char buf[4096];
      auto n = inner_->Read(buf, sizeof buf, deadline);
      if (!n.ok()) return absl::UnavailableError("WebSocket upgrade: " + n.status().ToString());
      in_.append(buf, *n);
    }
    const std::string head = in_.substr(0, end);
    in_.erase(0, end + 4);
    const absl::string_view status_line = absl::string_view(head).substr(0, head.find("\r\n"));
    if (!absl::StartsWith(status_line, "HTTP/1.1 101")) {
      return absl::UnavailableError(absl::StrCat("WebSocket upgrade refused: '", status_line, "'"));
    }
    std::string accept;
    std::string protocol;
    for (absl::string_view line : absl::StrSplit(head, "\r\n")) {
      const auto colon = line.find(':');
      if (colon == absl::string_view::npos) continue;
      const std::string name = absl::AsciiStrToLower(line.substr(0, colon));
      const std::string value(absl::StripAsciiWhitespace(line.substr(colon + 1)));
      if (name == "sec-websocket-accept") accept = value;
      if (name == "sec-websocket-protocol") protocol = value;
    }
    if (accept != WebSocketAccept(key)) {
      return absl::UnavailableError("WebSocket upgrade: wrong or missing Sec-WebSocket-Accept");
    }
    if (!protocol.empty() && protocol != "mqtt") {
      return absl::UnavailableError(
          absl::StrCat("WebSocket upgrade: server chose subprotocol '", protocol, "', not mqtt"));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::size_t> Read(char* buf, std::size_t size, Deadline deadline) override {
    while (true) {
      if (frame_left_ > 0 && in_pos_ < in_.size()) {
        const std::size_t n =
            std::min({size, static_cast<std::size_t>(frame_left_), in_.size() - in_pos_});
        std::memcpy(buf, in_.data() + in_pos_, n);
        in_pos_ += n;
        frame_left_ -= n;
        return n;
      }
      if (frame_left_ == 0) {
        WsFrameHeader h;
        const std::string_view avail = std::string_view(in_).substr(in_pos_);
        auto complete = ParseWsFrameHeader(avail, h);
        if (!complete.ok()) return absl::UnavailableError(complete.status().message());
        const bool control = static_cast<int>(h.opcode) >= 8;
        if (*complete && (!control || avail.size() >= h.header_size + h.payload_length)) {
          if (h.masked) return absl::UnavailableError("WebSocket: the server masked a frame");
          if (!control) {
            if (h.opcode == WsOpcode::kText) {
              return absl::UnavailableError("WebSocket: text frame; MQTT needs binary frames");
            }
            if (auto s = CheckDataFrame(h); !s.ok()) return s;
            in_pos_ += h.header_size;
            frame_left_ = h.payload_length;
            continue;
          }
          in_pos_ += h.header_size;
          const std::string payload = in_.substr(in_pos_, h.payload_length);
          in_pos_ += h.payload_length;
          if (h.opcode == WsOpcode::kClose) {
            return absl::UnavailableError("WebSocket closed by the server");
          }
          if (h.opcode == WsOpcode::kPing) {
            // Written by the reader, not the consumer's writer: a fixed bound stands in for
            // the consumer's write_timeout, which the transport does not know.
            if (auto s = inner_->Write(EncodeWsFrame(WsOpcode::kPong, payload, RandomMask()),
                                       std::chrono::steady_clock::now() + kPongWriteTimeout);
                !s.ok()) {
              return s;
            }
          }
          continue;
        }
      }
      // Need more bytes: drop what was consumed, then read.
      if (in_pos_ > 0) {
        in_.erase(0, in_pos_);
        in_pos_ = 0;
      }
      const std::size_t old = in_.size();
      in_.resize(old + 65536);
      auto n = inner_->Read(in_.data() + old, 65536, deadline);
      in_.resize(old + (n.ok() ? *n : 0));
      if (!n.ok()) return n.status();
    }
  }

  absl::Status Write(std::string_view data, Deadline deadline) override {
    return inner_->Write(EncodeWsFrame(WsOpcode::kBinary, data, RandomMask()), deadline);
  }

  void Shutdown() override { inner_->Shutdown(); }

 private:
  // Applies the frame and message limits to a data frame's header, and the fragmentation
  // rules (continuations only inside a message, no new message inside one).
  absl::Status CheckDataFrame(const WsFrameHeader& h) {
    const bool continuation = h.opcode == WsOpcode::kContinuation;
    if (continuation != in_message_) {
      return CloseWith(1002, continuation ? "WebSocket: continuation frame outside a message"
                                          : "WebSocket: new message inside a fragmented one");
    }
    if (h.payload_length > limits_.max_frame_bytes) {
      return CloseWith(
          1009, absl::StrCat("WebSocket frame of ", h.payload_length,
                             " bytes is over the limit of ", limits_.max_frame_bytes, " bytes"));
    }
    message_bytes_ += h.payload_length;  // both <= 2^64 / 2: no overflow past the check
    if (message_bytes_ > limits_.max_message_bytes) {
      return CloseWith(
          1009, absl::StrCat("WebSocket message of at least ", message_bytes_,
                             " bytes is over the limit of ", limits_.max_message_bytes, " bytes"));
    }
    in_message_ = !h.fin;
    if (h.fin) message_bytes_ = 0;
    return absl::OkStatus();
  }

  // Tells the server why (best effort, bounded like a pong) and fails the read.
  absl::Status CloseWith(std::uint16_t code, std::string why) {
    const char payload[2] = {static_cast<char>(code >> 8), static_cast<char>(code & 0xff)};
    inner_
        ->Write(EncodeWsFrame(WsOpcode::kClose, std::string_view(payload, 2), RandomMask()),
                std::chrono::steady_clock::now() + kPongWriteTimeout)
        .IgnoreError();
    return absl::UnavailableError(absl::StrCat(why, " (closed with ", code, ")"));
  }

  std::unique_ptr<Transport> inner_;
  const WebSocketLimits limits_;
  bool in_message_ = false;          // a data frame without FIN was seen: continuations follow
  std::uint64_t message_bytes_ = 0;  // announced payload of the current message so far
  std::string in_;                   // bytes read from inner_, from in_pos_ on not yet consumed
  std::size_t in_pos_ = 0;
  std::uint64_t frame_left_ = 0;  // payload bytes of the current data frame still to return
};

}  // namespace

absl::StatusOr<std::unique_ptr<Transport>> WebSocketOver(std::unique_ptr<Transport> inner,
                                                         const BrokerAddress& address,
                                                         const WebSocketLimits& limits,
                                                         Deadline deadline) {
  auto ws = std::make_unique<WebSocketTransport>(std::move(inner), limits);
  if (auto s = ws->Handshake(address, deadline); !s.ok()) return s;
  return std::unique_ptr<Transport>(std::move(ws));
}

}  // namespace dataflow::mqttconverter::internal

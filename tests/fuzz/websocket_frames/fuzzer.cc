// libFuzzer target for the WebSocket client (src/mqttconverter/mqtt_transport.cc): the
// frame header parser on raw bytes, encode/parse round trips, and the whole transport (the
// HTTP upgrade answer, then frames, pings, closes, fragmentation and the frame/message
// limits) over a scripted connection. The first byte picks how the upgrade is answered
// (a correct 101 computed from the client's key, or the input itself) and the limits. What
// the transport hands out must be a prefix of the data frames' payloads, in order.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "mqtt_codec.h"
#include "mqtt_transport.h"

namespace mi = dataflow::mqttconverter::internal;

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

// The server side: answers the upgrade request, then serves `frames`.
class ScriptedServer : public mi::Transport {
 public:
  ScriptedServer(std::string_view frames, bool answer_upgrade)
      : frames_(frames), answer_upgrade_(answer_upgrade) {}

  absl::StatusOr<std::size_t> Read(char* buf, std::size_t size, mi::Deadline) override {
    if (pos_ == pending_.size()) return absl::UnavailableError("connection closed");
    const std::size_t n = std::min(size, pending_.size() - pos_);
    std::memcpy(buf, pending_.data() + pos_, n);
    pos_ += n;
    return n;
  }

  absl::Status Write(std::string_view data, mi::Deadline) override {
    if (!upgraded_) {  // the client's upgrade request
      upgraded_ = true;
      const std::string_view header = "Sec-WebSocket-Key: ";
      const auto at = data.find(header);
      Check(at != std::string_view::npos);
      const auto end = data.find("\r\n", at);
      const std::string_view key = data.substr(at + header.size(), end - at - header.size());
      if (answer_upgrade_) {
        pending_ =
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            "Sec-WebSocket-Accept: " +
            mi::WebSocketAccept(key) + "\r\n\r\n";
      }
      pending_.append(frames_);
      return absl::OkStatus();
    }
    // Later writes are frames the client sends (pongs, closes): masked, well-formed.
    mi::WsFrameHeader h;
    auto complete = mi::ParseWsFrameHeader(data, h);
    Check(complete.ok() && *complete && h.masked && h.fin &&
          h.header_size + h.payload_length == data.size());
    return absl::OkStatus();
  }

  void Shutdown() override {}

 private:
  const std::string frames_;
  const bool answer_upgrade_;
  bool upgraded_ = false;
  std::string pending_;
  std::size_t pos_ = 0;
};

// Every data frame's payload, in order (the last one as far as it goes), ignoring the rules
// the transport enforces: what it hands out must be a prefix of this.
std::string DataPayloads(std::string_view frames) {
  std::string out;
  while (true) {
    mi::WsFrameHeader h;
    auto complete = mi::ParseWsFrameHeader(frames, h);
    if (!complete.ok() || !*complete) return out;
    const std::size_t avail = frames.size() - h.header_size;
    const std::size_t n = h.payload_length < avail ? h.payload_length : avail;
    if (static_cast<int>(h.opcode) < 8) out.append(frames.substr(h.header_size, n));
    if (h.payload_length > avail) return out;
    frames.remove_prefix(h.header_size + n);
  }
}

void RoundTrip(std::string_view payload, std::uint32_t mask) {
  for (mi::WsOpcode op : {mi::WsOpcode::kBinary, mi::WsOpcode::kContinuation}) {
    const std::string frame = mi::EncodeWsFrame(op, payload, mask);
    mi::WsFrameHeader h;
    auto complete = mi::ParseWsFrameHeader(frame, h);
    Check(complete.ok() && *complete && h.fin && h.opcode == op && h.masked && h.mask == mask &&
          h.payload_length == payload.size() && h.header_size + payload.size() == frame.size());
    const char key[4] = {static_cast<char>(mask >> 24), static_cast<char>(mask >> 16),
                         static_cast<char>(mask >> 8), static_cast<char>(mask)};
    for (std::size_t i = 0; i < payload.size(); ++i) {
      Check((frame[h.header_size + i] ^ key[i & 3]) == payload[i]);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::uint8_t knobs = data[0];
  const std::string_view frames(reinterpret_cast<const char*>(data) + 1, size - 1);

  // The header parser alone: never reads past the input, sizes consistent.
  mi::WsFrameHeader h;
  if (auto complete = mi::ParseWsFrameHeader(frames, h); complete.ok() && *complete) {
    Check(h.header_size <= frames.size() && h.header_size >= 2 && h.header_size <= 14);
  }
  RoundTrip(frames.substr(0, 70000), static_cast<std::uint32_t>(size * 2654435761u));

  // The transport.
  const mi::WebSocketLimits limits =
      (knobs & 2) != 0 ? mi::WebSocketLimits{.max_frame_bytes = 100, .max_message_bytes = 250}
                       : mi::WebSocketLimits{};
  auto ws = mi::WebSocketOver(
      std::make_unique<ScriptedServer>(frames, (knobs & 1) != 0),
      mi::BrokerAddress{.host = "fuzz", .port = 80, .path = "/mqtt", .websocket = true}, limits,
      mi::Deadline::max());
  if (!ws.ok()) return 0;
  const std::size_t read_size = 1 + (knobs >> 2) * 37;
  std::string got;
  std::string buf(read_size, '\0');
  while (true) {
    auto n = (*ws)->Read(buf.data(), buf.size(), mi::Deadline::max());
    if (!n.ok()) {
      Check(n.status().code() == absl::StatusCode::kUnavailable);
      break;
    }
    Check(*n >= 1 && *n <= buf.size());
    got.append(buf.data(), *n);
  }
  // With a correct upgrade answer the frames start right after it; otherwise they start
  // after whatever the input's own answer was, which only the transport knows.
  if ((knobs & 1) != 0) {
    const std::string all = DataPayloads(frames);
    Check(all.compare(0, got.size(), got) == 0 && got.size() <= all.size());
  }
  return 0;
}

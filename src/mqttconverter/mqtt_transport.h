// Byte streams to an MQTT broker for MqttConsumer's own client: plain TCP (tcp://, mqtt://),
// TLS over TCP with OpenSSL (ssl://, mqtts://) and WebSocket over either (ws://, wss://,
// framing hand-written: see mqtt_codec.h).
//
// Thread-safety: one thread reads (Read), any thread may write (Write is serialised, and
// the bytes of one call are never interleaved with another's), any thread may Shutdown.
// With TLS a single SSL object serves both directions, so reads and writes take turns on
// a mutex around non-blocking socket calls instead of blocking inside OpenSSL.
#pragma once

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace dataflow::mqttconverter::internal {

using Deadline = std::chrono::steady_clock::time_point;

struct BrokerAddress {
  std::string host;
  int port = 0;
  std::string path;  // WebSocket request path ("/mqtt" unless the URL names one)
  bool tls = false;
  bool websocket = false;
};
// tcp|mqtt|ssl|mqtts|ws|wss://host[:port][/path]; IPv6 hosts in brackets. Default ports
// 1883, 8883, 80 and 443.
absl::StatusOr<BrokerAddress> ParseBrokerUrl(std::string_view url);

struct TlsOptions {
  std::string ca_cert_file;  // empty: the system's default CA paths
  std::string client_cert_file;
  std::string client_key_file;
  bool insecure_skip_verify = false;  // no certificate or host name check
};

// What one WebSocket frame and one message (a frame and its continuations) may announce; a
// bigger one is answered with close code 1009 (message too big) and fails the read, before
// any of it is read. Data frames are streamed, never buffered, so these bound protocol
// sanity rather than memory. The default is the largest MQTT packet (256 MiB + 5 bytes):
// MqttConsumer passes that too, not its max_packet_bytes, so that an oversize PUBLISH still
// reaches the MQTT layer, which skips and acknowledges it (a 1009 would end the connection
// and the broker would resend it on the next, forever).
struct WebSocketLimits {
  std::uint64_t max_frame_bytes = 268'435'460;
  std::uint64_t max_message_bytes = 268'435'460;
};

class Transport {
 public:
  virtual ~Transport() = default;
  // Reads between 1 and `size` bytes, waiting until `deadline` (time_point::max(): no
  // limit). A closed connection is an error (Unavailable), never a 0-byte read.
  virtual absl::StatusOr<std::size_t> Read(char* buf, std::size_t size, Deadline deadline) = 0;
  // Writes all of `data`, waiting until `deadline` at most (DeadlineExceeded then: a broker
  // that stops reading must not hang the writer). Part of `data` may have been sent when it
  // fails, so the stream is unusable afterwards: the caller shuts the transport down.
  virtual absl::Status Write(std::string_view data, Deadline deadline) = 0;
  // Wakes a blocked Read or Write and makes every later call fail.
  virtual void Shutdown() = 0;
};

// The WebSocket client over an already connected `inner` (TCP or TLS): the upgrade
// handshake, then frames. What Dial does for ws:// and wss://; on its own for the fuzzer.
absl::StatusOr<std::unique_ptr<Transport>> WebSocketOver(std::unique_ptr<Transport> inner,
                                                         const BrokerAddress& address,
                                                         const WebSocketLimits& limits,
                                                         Deadline deadline);

// Replaces what Dial does, for every caller in the process, until called again with an
// empty function: the seam through which the session fuzzer feeds MqttConsumer a byte
// stream without a socket. Not for production code.
using Dialer = std::function<absl::StatusOr<std::unique_ptr<Transport>>(
    std::string_view url, const TlsOptions& tls, Deadline deadline,
    const WebSocketLimits& ws_limits)>;
void SetDialerForTesting(Dialer dialer);

// Connects, and for TLS/WebSocket completes the handshakes, all before `deadline`. Errors
// name the broker URL and what failed (refused, certificate verify failed, bad upgrade...).
absl::StatusOr<std::unique_ptr<Transport>> Dial(std::string_view url, const TlsOptions& tls,
                                                Deadline deadline,
                                                const WebSocketLimits& ws_limits = {});

// Makes the session's connections: the seam through which unit tests give the MQTT session
// a scripted broker instead of a socket. Thread-safe.
class TransportFactory {
 public:
  virtual ~TransportFactory() = default;
  // A connected (and for TLS/WebSocket handshaken) transport, before `deadline`.
  virtual absl::StatusOr<std::unique_ptr<Transport>> Connect(Deadline deadline) = 0;
};

// The real one: Dial(url, tls, deadline, ws_limits) (which SetDialerForTesting replaces).
class DialingTransportFactory : public TransportFactory {
 public:
  DialingTransportFactory(std::string url, TlsOptions tls, WebSocketLimits ws_limits = {})
      : url_(std::move(url)), tls_(std::move(tls)), ws_limits_(ws_limits) {}
  absl::StatusOr<std::unique_ptr<Transport>> Connect(Deadline deadline) override {
    return Dial(url_, tls_, deadline, ws_limits_);
  }

 private:
  const std::string url_;
  const TlsOptions tls_;
  const WebSocketLimits ws_limits_;
};

}  // namespace dataflow::mqttconverter::internal

// Broker URLs and Dial: which transport a URL needs (socket_transport.cc for TCP and TLS,
// websocket_transport.cc for the WebSocket framing over either), and the dialer seam.
#include "mqtt_transport.h"

#include <absl/strings/ascii.h>
#include <absl/strings/match.h>
#include <absl/strings/numbers.h>
#include <absl/strings/str_cat.h>

#include <mutex>

#include "mqtt_codec.h"
#include "socket_transport.h"

namespace dataflow::mqttconverter::internal {
namespace {

std::mutex& TestDialerMutex() {
  static std::mutex mu;
  return mu;
}
Dialer& TestDialer() {
  static Dialer dialer;
  return dialer;
}

}  // namespace

absl::StatusOr<BrokerAddress> ParseBrokerUrl(std::string_view url_text) {
  const absl::string_view url = Av(url_text);
  const auto sep = url.find("://");
  if (sep == absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("broker URL '", url, "' has no scheme"));
  }
  const std::string scheme = absl::AsciiStrToLower(url.substr(0, sep));
  BrokerAddress a;
  int default_port = 0;
  if (scheme == "tcp" || scheme == "mqtt") {
    default_port = 1883;
  } else if (scheme == "ssl" || scheme == "tls" || scheme == "mqtts") {
    a.tls = true;
    default_port = 8883;
  } else if (scheme == "ws") {
    a.websocket = true;
    default_port = 80;
  } else if (scheme == "wss") {
    a.websocket = a.tls = true;
    default_port = 443;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("broker URL '", url, "': unknown scheme"));
  }
  absl::string_view rest = url.substr(sep + 3);
  const auto slash = rest.find('/');
  a.path = slash == absl::string_view::npos ? "/mqtt" : std::string(rest.substr(slash));
  absl::string_view hostport = rest.substr(0, slash);
  absl::string_view port_text;
  if (absl::StartsWith(hostport, "[")) {
    const auto close = hostport.find(']');
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("broker URL '", url, "': unclosed '['"));
    }
    a.host = std::string(hostport.substr(1, close - 1));
    if (close + 1 < hostport.size()) {
      if (hostport[close + 1] != ':') {
        return absl::InvalidArgumentError(absl::StrCat("broker URL '", url, "': bad port"));
      }
      port_text = hostport.substr(close + 2);
    }
  } else if (const auto colon = hostport.rfind(':'); colon != absl::string_view::npos) {
    a.host = std::string(hostport.substr(0, colon));
    port_text = hostport.substr(colon + 1);
  } else {
    a.host = std::string(hostport);
  }
  if (a.host.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("broker URL '", url, "' has no host"));
  }
  a.port = default_port;
  if (!port_text.empty() &&
      (!absl::SimpleAtoi(port_text, &a.port) || a.port <= 0 || a.port > 65535)) {
    return absl::InvalidArgumentError(absl::StrCat("broker URL '", url, "': bad port"));
  }
  return a;
}

absl::StatusOr<std::unique_ptr<Transport>> Dial(std::string_view url, const TlsOptions& tls,
                                                Deadline deadline,
                                                const WebSocketLimits& ws_limits) {
  Dialer test_dialer;
  {
    std::lock_guard lock(TestDialerMutex());
    test_dialer = TestDialer();
  }
  if (test_dialer) return test_dialer(url, tls, deadline, ws_limits);
  auto address = ParseBrokerUrl(url);
  if (!address.ok()) return address.status();
  auto fail = [&](const absl::Status& s) {
    return absl::Status(
        s.code() == absl::StatusCode::kInvalidArgument ? s.code() : absl::StatusCode::kUnavailable,
        absl::StrCat("cannot connect to ", Av(url), ": ", s.message()));
  };
  auto socket = ConnectSocket(*address, tls, deadline);
  if (!socket.ok()) return fail(socket.status());
  if (!address->websocket) return socket;
  auto ws = WebSocketOver(std::move(*socket), *address, ws_limits, deadline);
  if (!ws.ok()) return fail(ws.status());
  return ws;
}

void SetDialerForTesting(Dialer dialer) {
  std::lock_guard lock(TestDialerMutex());
  TestDialer() = std::move(dialer);
}

}  // namespace dataflow::mqttconverter::internal

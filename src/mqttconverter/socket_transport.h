// The TCP (and TLS over TCP) transport under MqttConsumer's client; Dial (mqtt_transport.h)
// adds the WebSocket framing for ws:// and wss://. Internal to the package.
#pragma once

#include <absl/status/statusor.h>

#include <memory>

#include "mqtt_transport.h"

namespace dataflow::mqttconverter::internal {

// Connects to `address` and, if address.tls, completes the TLS handshake (certificate and
// host name checked unless tls.insecure_skip_verify), all before `deadline`. Errors say what
// failed (refused, timed out, certificate verify failed...); Dial adds the URL.
absl::StatusOr<std::unique_ptr<Transport>> ConnectSocket(const BrokerAddress& address,
                                                         const TlsOptions& tls, Deadline deadline);

}  // namespace dataflow::mqttconverter::internal

// MosquittoServer: a real Mosquitto broker for integration tests, on a free loopback port.
//
// Writes a config file (`listener P 127.0.0.1`, `allow_anonymous true`, optional on-disk
// persistence in a private temp directory) and runs `mosquitto -c FILE` under ServerProcess,
// ready once its port accepts connections. Optionally also a TLS listener (a CA and a server
// certificate for 127.0.0.1/localhost made with the openssl CLI at start), and WebSocket
// access through tests/support/ws_bridge.js (Node + the npm package ws), since Debian's
// Mosquitto has no websockets. Restart() reuses the port and the persistence
// directory, so a persistent session survives a graceful Stop()/Restart(). One per test
// binary; not thread-safe (drive it from the test thread).
#pragma once

#include <absl/status/statusor.h>

#include <memory>
#include <string>

#include "dataflow_testing/server_process.h"

namespace dataflow::testing {

struct MosquittoOptions {
  // Keep sessions and queued QoS 1 messages on disk across a graceful restart.
  bool persistence = false;
  std::string extra_config;  // appended to the generated config
  bool tls = false;          // a second listener with TLS (tls_url)
  bool websocket = false;    // ws_url (and wss_url with tls) via the Node bridge
};

class MosquittoServer {
 public:
  static absl::StatusOr<std::unique_ptr<MosquittoServer>> Start(MosquittoOptions options = {});
  ~MosquittoServer();

  [[nodiscard]] int port() const { return port_; }
  // "tcp://127.0.0.1:<port>"
  [[nodiscard]] std::string url() const;
  [[nodiscard]] const std::string& config_dir() const { return dir_; }
  // With options.tls: "ssl://127.0.0.1:<port>", the CA that signed the broker's certificate,
  // and a CA that did not (for wrong-CA tests).
  [[nodiscard]] int tls_port() const { return tls_port_; }
  [[nodiscard]] std::string tls_url() const;
  [[nodiscard]] std::string ca_file() const { return dir_ + "/ca.crt"; }
  [[nodiscard]] std::string other_ca_file() const { return dir_ + "/other-ca.crt"; }
  // With options.websocket: "ws://127.0.0.1:<port>/mqtt"; with tls too, "wss://...".
  [[nodiscard]] std::string ws_url() const;
  [[nodiscard]] std::string wss_url() const;
  ServerProcess& process() { return *process_; }

 private:
  MosquittoServer() = default;
  int port_ = -1;
  int tls_port_ = -1;
  int ws_port_ = -1;
  int wss_port_ = -1;
  std::string dir_;
  std::unique_ptr<ServerProcess> process_;
  std::unique_ptr<ServerProcess> bridge_;
};

}  // namespace dataflow::testing

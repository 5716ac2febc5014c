// MosquittoServer: a real Mosquitto broker for integration tests, on a free loopback port.
//
// Writes a config file (`listener P 127.0.0.1`, `allow_anonymous true`, optional on-disk
// persistence in a private temp directory) and runs `mosquitto -c FILE` under ServerProcess,
// ready once its port accepts connections. Restart() reuses the port and the persistence
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
};

class MosquittoServer {
 public:
  static absl::StatusOr<std::unique_ptr<MosquittoServer>> Start(MosquittoOptions options = {});
  ~MosquittoServer();

  [[nodiscard]] int port() const { return port_; }
  // "tcp://127.0.0.1:<port>"
  [[nodiscard]] std::string url() const;
  [[nodiscard]] const std::string& config_dir() const { return dir_; }
  ServerProcess& process() { return *process_; }

 private:
  MosquittoServer() = default;
  int port_ = -1;
  std::string dir_;
  std::unique_ptr<ServerProcess> process_;
};

}  // namespace dataflow::testing

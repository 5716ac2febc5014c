// RedisServer: a real redis-server for integration tests, on a free loopback port.
//
// Runs `redis-server --port P --bind 127.0.0.1 --save '' --appendonly no` under
// ServerProcess, ready once it answers PING. Stop()/Kill() and Restart() (same port, empty
// data) go through process(). One per test binary; drive it from the test thread.
#pragma once

#include <absl/status/statusor.h>

#include <memory>
#include <string>

#include "dataflow_testing/server_process.h"

namespace dataflow::testing {

class RedisServer {
 public:
  static absl::StatusOr<std::unique_ptr<RedisServer>> Start();
  ~RedisServer();

  [[nodiscard]] int port() const { return port_; }
  // "127.0.0.1:<port>"
  [[nodiscard]] std::string addr() const;
  ServerProcess& process() { return *process_; }

 private:
  RedisServer() = default;
  int port_ = -1;
  std::unique_ptr<ServerProcess> process_;
};

// True if a Redis server on 127.0.0.1:port answers PING with PONG.
bool RedisPings(int port);

}  // namespace dataflow::testing

// PubsubEmulator: Google's Pub/Sub emulator (from the machine's google-cloud-cli) on a free
// loopback port, for integration tests.
//
// Runs <sdk>/platform/pubsub-emulator/bin/cloud-pubsub-emulator --host=127.0.0.1 --port=P
// directly (not through `gcloud beta emulators`, whose wrapper leaves the Java child running
// on SIGTERM) under ServerProcess, ready once GET /v1/projects/p/topics answers. gRPC and
// REST share the port. State is in memory: Restart() (same port) starts empty.
// One per test binary; not thread-safe (drive it from the test thread).
#pragma once

#include <absl/status/statusor.h>

#include <memory>
#include <string>

#include "dataflow_testing/server_process.h"

namespace dataflow::testing {

// The emulator launcher, or empty when google-cloud-cli (or its emulator component) is
// missing; tests GTEST_SKIP with `PubsubEmulatorMissingReason()` then.
std::string FindPubsubEmulator();
std::string PubsubEmulatorMissingReason();

class PubsubEmulator {
 public:
  static absl::StatusOr<std::unique_ptr<PubsubEmulator>> Start();
  ~PubsubEmulator();

  [[nodiscard]] int port() const { return port_; }
  // "127.0.0.1:<port>", the value for PUBSUB_EMULATOR_HOST.
  [[nodiscard]] std::string host() const;
  ServerProcess& process() { return *process_; }

 private:
  PubsubEmulator() = default;
  int port_ = -1;
  std::unique_ptr<ServerProcess> process_;
};

}  // namespace dataflow::testing

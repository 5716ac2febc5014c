// The Cloud Storage emulator from npm firebase-tools, started offline through
// tests/support/storage_emulator.js on a free loopback port (see docs/icestore.md for what
// it covers). One per test binary; tests use unique object prefixes.
#pragma once

#include <absl/status/statusor.h>

#include <memory>
#include <string>
#include <vector>

#include "dataflow_testing/server_process.h"

namespace dataflow::testing {

class StorageEmulator {
 public:
  // Fails with a clear error when node or the npm package is missing.
  static absl::StatusOr<std::unique_ptr<StorageEmulator>> Start();

  [[nodiscard]] int port() const { return port_; }
  // "127.0.0.1:<port>", the form STORAGE_EMULATOR_HOST takes.
  [[nodiscard]] std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
  ServerProcess& process() { return *process_; }

  // Object names in `bucket` under `prefix` (JSON API list, all pages).
  absl::StatusOr<std::vector<std::string>> List(const std::string& bucket,
                                                const std::string& prefix);
  // An object's bytes (alt=media).
  absl::StatusOr<std::string> Download(const std::string& bucket, const std::string& name);

 private:
  int port_ = 0;
  std::unique_ptr<ServerProcess> process_;
};

}  // namespace dataflow::testing

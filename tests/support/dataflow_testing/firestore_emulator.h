// FirestoreEmulator: Google's Firestore emulator (Java, from google-cloud-cli) for
// integration tests, on a free loopback port in firestore-native mode.
//
// Started directly from its jar (the gcloud wrapper leaves the JVM behind on SIGTERM), in
// its own process group; ready when GET / answers "Ok". Reset() deletes every document of
// a project. The SDK root is $CLOUDSDK_ROOT_DIR or /usr/lib/google-cloud-sdk. One per test
// binary; drive it from the test thread.
#pragma once

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <memory>
#include <string>

#include "dataflow_testing/server_process.h"

namespace dataflow::testing {

class FirestoreEmulator {
 public:
  static absl::StatusOr<std::unique_ptr<FirestoreEmulator>> Start();
  ~FirestoreEmulator();

  [[nodiscard]] int port() const { return port_; }
  // "127.0.0.1:<port>", the value for FIRESTORE_EMULATOR_HOST.
  [[nodiscard]] std::string host() const;
  // Deletes all documents of `project` in the (default) database.
  absl::Status Reset(const std::string& project);
  ServerProcess& process() { return *process_; }

 private:
  FirestoreEmulator() = default;
  int port_ = -1;
  std::unique_ptr<ServerProcess> process_;
};

}  // namespace dataflow::testing

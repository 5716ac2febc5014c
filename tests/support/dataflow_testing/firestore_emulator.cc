#include "dataflow_testing/firestore_emulator.h"

#include <absl/strings/match.h>
#include <absl/strings/str_cat.h>
#include <httplib.h>
#include <stdlib.h>

#include <filesystem>

namespace dataflow::testing {

absl::StatusOr<std::unique_ptr<FirestoreEmulator>> FirestoreEmulator::Start() {
  const char* root_env = std::getenv("CLOUDSDK_ROOT_DIR");
  const std::string root = root_env != nullptr ? root_env : "/usr/lib/google-cloud-sdk";
  const std::string jar = root + "/platform/cloud-firestore-emulator/cloud-firestore-emulator.jar";
  if (!std::filesystem::exists(jar)) {
    return absl::NotFoundError(absl::StrCat("Firestore emulator not found at ", jar,
                                            " (install google-cloud-cli-firestore-emulator)"));
  }
  const std::string java = FindExecutable("java");
  if (java.empty()) return absl::NotFoundError("java is not installed");
  auto emulator = std::unique_ptr<FirestoreEmulator>(new FirestoreEmulator());
  emulator->port_ = FreeTcpPort();
  if (emulator->port_ <= 0) return absl::UnavailableError("no free TCP port");
  const int port = emulator->port_;
  auto process = ServerProcess::Start(
      {.name = "firestore-emulator",
       .argv = {java, "-cp", jar, "com.google.cloud.datastore.emulator.firestore.CloudFirestore",
                "start", "--host=127.0.0.1", absl::StrCat("--port=", port),
                "--database-mode=firestore-native"},
       .ready =
           [port] {
             std::string body;
             return HttpGetStatus(port, "/", &body) == 200 && absl::StrContains(body, "Ok");
           },
       .ready_timeout = std::chrono::seconds(60)});
  if (!process.ok()) return process.status();
  emulator->process_ = std::move(*process);
  return emulator;
}

FirestoreEmulator::~FirestoreEmulator() {
  if (process_) process_->Stop();
}

std::string FirestoreEmulator::host() const { return absl::StrCat("127.0.0.1:", port_); }

absl::Status FirestoreEmulator::Reset(const std::string& project) {
  httplib::Client client("127.0.0.1", port_);
  client.set_connection_timeout(5);
  client.set_read_timeout(10);
  auto res = client.Delete(
      absl::StrCat("/emulator/v1/projects/", project, "/databases/(default)/documents"));
  if (!res) return absl::UnavailableError("firestore emulator: reset request failed");
  if (res->status != 200) {
    return absl::InternalError(absl::StrCat("firestore emulator: reset answered ", res->status));
  }
  return absl::OkStatus();
}

}  // namespace dataflow::testing

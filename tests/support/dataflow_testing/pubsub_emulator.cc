#include "dataflow_testing/pubsub_emulator.h"

#include <absl/status/status.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <string>

namespace dataflow::testing {
namespace {

// `gcloud info` is slow (~1 s, Python); the Debian package's root is the usual answer.
std::string SdkRoot() {
  for (const char* root : {"/usr/lib/google-cloud-sdk", "/usr/share/google-cloud-sdk"}) {
    std::string probe = std::string(root) + "/platform/pubsub-emulator/bin/cloud-pubsub-emulator";
    if (access(probe.c_str(), X_OK) == 0) return root;
  }
  if (FindExecutable("gcloud").empty()) return "";
  FILE* p = popen("gcloud info --format='value(installation.sdk_root)' 2>/dev/null", "r");
  if (p == nullptr) return "";
  std::array<char, 512> buf{};
  std::string out;
  while (fgets(buf.data(), buf.size(), p) != nullptr) out += buf.data();
  pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

}  // namespace

std::string FindPubsubEmulator() {
  static const std::string path = [] {
    std::string root = SdkRoot();
    if (root.empty()) return std::string();
    std::string bin = root + "/platform/pubsub-emulator/bin/cloud-pubsub-emulator";
    return access(bin.c_str(), X_OK) == 0 ? bin : std::string();
  }();
  return path;
}

std::string PubsubEmulatorMissingReason() {
  return "Pub/Sub emulator not found: install google-cloud-cli and "
         "google-cloud-cli-pubsub-emulator (scripts/setup.sh does where apt has them)";
}

absl::StatusOr<std::unique_ptr<PubsubEmulator>> PubsubEmulator::Start() {
  std::string bin = FindPubsubEmulator();
  if (bin.empty()) return absl::NotFoundError(PubsubEmulatorMissingReason());
  std::unique_ptr<PubsubEmulator> e(new PubsubEmulator());
  e->port_ = FreeTcpPort();
  const int port = e->port_;
  auto process = ServerProcess::Start({
      .name = "pubsub-emulator",
      .argv = {bin, "--host=127.0.0.1", "--port=" + std::to_string(port)},
      .env = {},
      .ready = [port] { return HttpGetStatus(port, "/v1/projects/p/topics") == 200; },
      .ready_timeout = std::chrono::seconds(60),
  });
  if (!process.ok()) return process.status();
  e->process_ = std::move(*process);
  return e;
}

PubsubEmulator::~PubsubEmulator() {
  if (process_) process_->Stop();
}

std::string PubsubEmulator::host() const { return "127.0.0.1:" + std::to_string(port_); }

}  // namespace dataflow::testing

#include "dataflow_testing/storage_emulator.h"

#include <httplib.h>

#include <filesystem>
#include <nlohmann/json.hpp>

namespace dataflow::testing {
namespace {

std::string Escape(const std::string& s) {
  std::string out;
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out += {'%', kHex[c >> 4], kHex[c & 15]};
    }
  }
  return out;
}

// The repository root, given by the build (__FILE__ may be relative under ccache's basedir).
std::filesystem::path RepoRoot() { return std::filesystem::path(DATAFLOW_SOURCE_DIR); }

}  // namespace

absl::StatusOr<std::unique_ptr<StorageEmulator>> StorageEmulator::Start() {
  const std::string node = FindExecutable("node");
  if (node.empty()) return absl::FailedPreconditionError("node is not on PATH");
  const auto root = RepoRoot();
  const auto launcher = root / "tests/support/storage_emulator.js";
  if (!std::filesystem::exists(root / "node_modules/firebase-tools/lib/emulator/storage")) {
    return absl::FailedPreconditionError(
        "node_modules/firebase-tools is missing: run scripts/setup.sh");
  }
  auto emulator = std::unique_ptr<StorageEmulator>(new StorageEmulator());
  emulator->port_ = FreeTcpPort();
  const int port = emulator->port_;
  auto process = ServerProcess::Start(
      {.name = "storage-emulator",
       .argv = {node, launcher.string(), std::to_string(port)},
       .ready = [port] { return HttpGetStatus(port, "/storage/v1/b/probe/o") > 0; },
       .ready_timeout = std::chrono::seconds(30)});
  if (!process.ok()) return process.status();
  emulator->process_ = std::move(*process);
  return emulator;
}

absl::StatusOr<std::vector<std::string>> StorageEmulator::List(const std::string& bucket,
                                                               const std::string& prefix) {
  httplib::Client client("127.0.0.1", port_);
  std::vector<std::string> names;
  std::string page;
  do {
    std::string path = "/storage/v1/b/" + Escape(bucket) + "/o?prefix=" + Escape(prefix);
    if (!page.empty()) path += "&pageToken=" + Escape(page);
    auto res = client.Get(path, {{"Authorization", "Bearer owner"}});
    if (!res) return absl::UnavailableError("list: no answer from the storage emulator");
    if (res->status != 200) {
      return absl::InternalError("list: HTTP " + std::to_string(res->status) + " " + res->body);
    }
    auto j = nlohmann::json::parse(res->body, nullptr, false);
    if (j.is_discarded()) return absl::InternalError("list: reply is not JSON");
    for (const auto& item : j.value("items", nlohmann::json::array())) {
      names.push_back(item.value("name", ""));
    }
    page = j.value("nextPageToken", "");
  } while (!page.empty());
  return names;
}

absl::StatusOr<std::string> StorageEmulator::Download(const std::string& bucket,
                                                      const std::string& name) {
  httplib::Client client("127.0.0.1", port_);
  auto res = client.Get("/storage/v1/b/" + Escape(bucket) + "/o/" + Escape(name) + "?alt=media",
                        {{"Authorization", "Bearer owner"}});
  if (!res) return absl::UnavailableError("download: no answer from the storage emulator");
  if (res->status != 200) {
    return absl::InternalError("download " + name + ": HTTP " + std::to_string(res->status));
  }
  return res->body;
}

}  // namespace dataflow::testing

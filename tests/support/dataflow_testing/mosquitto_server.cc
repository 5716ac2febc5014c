#include "dataflow_testing/mosquitto_server.h"

#include <absl/status/status.h>
#include <absl/strings/str_cat.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

namespace dataflow::testing {

absl::StatusOr<std::unique_ptr<MosquittoServer>> MosquittoServer::Start(MosquittoOptions options) {
  if (FindExecutable("mosquitto").empty()) {
    // Debian installs the broker in /usr/sbin, which is not always on a user's PATH.
    if (!std::filesystem::exists("/usr/sbin/mosquitto")) {
      return absl::NotFoundError("mosquitto is not installed");
    }
  }
  std::string templ = (std::filesystem::temp_directory_path() / "dataflow-mosquitto-XXXXXX");
  if (::mkdtemp(templ.data()) == nullptr) return absl::InternalError("mkdtemp failed");
  auto server = std::unique_ptr<MosquittoServer>(new MosquittoServer());
  server->dir_ = templ;
  // Run as root, mosquitto drops to the `mosquitto` user before it saves its database, so
  // the persistence directory must be writable by that user.
  std::filesystem::permissions(templ, std::filesystem::perms::all);
  server->port_ = FreeTcpPort();
  if (server->port_ <= 0) return absl::UnavailableError("no free TCP port");
  const std::string conf_path = server->dir_ + "/mosquitto.conf";
  {
    std::ofstream conf(conf_path);
    conf << "listener " << server->port_ << " 127.0.0.1\n"
         << "allow_anonymous true\n"
         // Mosquitto drops QoS 1/2 messages beyond 1000 queued for a client by default;
         // tests count every message, so a burst must not be cut by the broker.
         << "max_queued_messages 0\n"
         << "log_dest stderr\n"
         << "log_type error\nlog_type warning\nlog_type notice\n";
    if (options.persistence) {
      conf << "persistence true\n"
           << "persistence_location " << server->dir_ << "/\n";
    } else {
      conf << "persistence false\n";
    }
    conf << options.extra_config << "\n";
    if (!conf) return absl::InternalError(absl::StrCat("cannot write ", conf_path));
  }
  std::string exe = FindExecutable("mosquitto");
  if (exe.empty()) exe = "/usr/sbin/mosquitto";
  const int port = server->port_;
  auto process = ServerProcess::Start({.name = "mosquitto",
                                       .argv = {exe, "-c", conf_path},
                                       .ready = [port] { return TcpConnects(port); },
                                       .ready_timeout = std::chrono::seconds(20)});
  if (!process.ok()) return process.status();
  server->process_ = std::move(*process);
  return server;
}

MosquittoServer::~MosquittoServer() {
  if (process_) process_->Stop();
  std::error_code ec;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
}

std::string MosquittoServer::url() const { return absl::StrCat("tcp://127.0.0.1:", port_); }

}  // namespace dataflow::testing

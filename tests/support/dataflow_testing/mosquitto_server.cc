#include "dataflow_testing/mosquitto_server.h"

#include <absl/status/status.h>
#include <absl/strings/str_cat.h>
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace dataflow::testing {
namespace {

// A test CA, a server certificate it signs for 127.0.0.1 and localhost, and an unrelated CA.
absl::Status MakeCertificates(const std::string& dir) {
  const std::string script = dir + "/make-certs.sh";
  {
    std::ofstream out(script);
    out << "set -e\ncd '" << dir << "'\n"
        << "ec='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'\n"
        << "openssl req -x509 $ec -keyout ca.key -out ca.crt -days 2 -subj /CN=dataflow-test-ca\n"
        << "openssl req -x509 $ec -keyout other-ca.key -out other-ca.crt -days 2 -subj /CN=other\n"
        << "openssl req $ec -keyout server.key -out server.csr -subj /CN=localhost\n"
        << "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nbasicConstraints=CA:FALSE\\n' "
           "> ext\n"
        << "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 "
           "-extfile ext -out server.crt\n"
        << "chmod 644 ./*.key ./*.crt\n";
  }
  const std::string cmd = "sh '" + script + "' > '" + dir + "/openssl.log' 2>&1";
  if (std::system(cmd.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("making test certificates failed: ", cmd));
  }
  return absl::OkStatus();
}

}  // namespace

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
  if (options.tls) {
    if (auto s = MakeCertificates(server->dir_); !s.ok()) return s;
    server->tls_port_ = FreeTcpPort();
  }
  const std::string conf_path = server->dir_ + "/mosquitto.conf";
  {
    std::ofstream conf(conf_path);
    conf << "listener " << server->port_ << " 127.0.0.1\n"
         << "allow_anonymous true\n"
         // Mosquitto drops QoS 1/2 messages beyond 1000 queued for a client by default;
         // tests count every message, so a burst must not be cut by the broker.
         << "max_queued_messages 0\n"
         // MqttConsumer withholds PUBACKs until the pipeline acks; the default window of 20
         // unacked QoS 1/2 messages per client would throttle it to 20 per pipeline latency.
         << "max_inflight_messages 0\n"
         << "log_dest stderr\n"
         << "log_type error\nlog_type warning\nlog_type notice\n";
    if (options.persistence) {
      conf << "persistence true\n"
           << "persistence_location " << server->dir_ << "/\n";
    } else {
      conf << "persistence false\n";
    }
    if (options.tls) {
      conf << "listener " << server->tls_port_ << " 127.0.0.1\n"
           << "cafile " << server->ca_file() << "\n"
           << "certfile " << server->dir_ << "/server.crt\n"
           << "keyfile " << server->dir_ << "/server.key\n";
    }
    conf << options.extra_config << "\n";
    if (!conf) return absl::InternalError(absl::StrCat("cannot write ", conf_path));
  }
  std::string exe = FindExecutable("mosquitto");
  if (exe.empty()) exe = "/usr/sbin/mosquitto";
  const int port = server->port_;
  const int tls_port = server->tls_port_;
  auto process = ServerProcess::Start(
      {.name = "mosquitto",
       .argv = {exe, "-c", conf_path},
       .ready = [port,
                 tls_port] { return TcpConnects(port) && (tls_port < 0 || TcpConnects(tls_port)); },
       .ready_timeout = std::chrono::seconds(20)});
  if (!process.ok()) return process.status();
  server->process_ = std::move(*process);
  if (options.websocket) {
    const std::string node = FindExecutable("node");
    if (node.empty()) return absl::FailedPreconditionError("node is not on PATH");
    const std::string script = std::string(DATAFLOW_SOURCE_DIR) + "/tests/support/ws_bridge.js";
    server->ws_port_ = FreeTcpPort();
    std::vector<std::string> argv = {node, script, std::to_string(server->ws_port_),
                                     std::to_string(port)};
    if (options.tls) {
      server->wss_port_ = FreeTcpPort();
      argv.insert(argv.end(), {std::to_string(server->wss_port_), server->dir_ + "/server.crt",
                               server->dir_ + "/server.key"});
    }
    const int ws = server->ws_port_;
    const int wss = server->wss_port_;
    auto bridge = ServerProcess::Start(
        {.name = "ws-bridge",
         .argv = std::move(argv),
         .ready = [ws, wss] { return TcpConnects(ws) && (wss < 0 || TcpConnects(wss)); },
         .ready_timeout = std::chrono::seconds(20)});
    if (!bridge.ok()) return bridge.status();
    server->bridge_ = std::move(*bridge);
  }
  return server;
}

MosquittoServer::~MosquittoServer() {
  if (bridge_) bridge_->Stop();
  if (process_) process_->Stop();
  std::error_code ec;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
}

std::string MosquittoServer::url() const { return absl::StrCat("tcp://127.0.0.1:", port_); }
std::string MosquittoServer::tls_url() const { return absl::StrCat("ssl://127.0.0.1:", tls_port_); }
std::string MosquittoServer::ws_url() const {
  return absl::StrCat("ws://127.0.0.1:", ws_port_, "/mqtt");
}
std::string MosquittoServer::wss_url() const {
  return absl::StrCat("wss://127.0.0.1:", wss_port_, "/mqtt");
}

}  // namespace dataflow::testing

#include "dataflow_testing/redis_server.h"

#include <absl/status/status.h>
#include <absl/strings/str_cat.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

namespace dataflow::testing {

bool RedisPings(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  timeval tv{.tv_sec = 1, .tv_usec = 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = false;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    static constexpr char kPing[] = "PING\r\n";
    if (::send(fd, kPing, sizeof(kPing) - 1, MSG_NOSIGNAL) == sizeof(kPing) - 1) {
      char buf[16] = {};
      const ssize_t n = ::recv(fd, buf, sizeof(buf) - 1, 0);
      // A server still loading answers -LOADING; only +PONG means ready.
      ok = n >= 5 && std::strncmp(buf, "+PONG", 5) == 0;
    }
  }
  ::close(fd);
  return ok;
}

absl::StatusOr<std::unique_ptr<RedisServer>> RedisServer::Start() {
  const std::string exe = FindExecutable("redis-server");
  if (exe.empty()) return absl::NotFoundError("redis-server is not installed");
  auto server = std::unique_ptr<RedisServer>(new RedisServer());
  server->port_ = FreeTcpPort();
  if (server->port_ <= 0) return absl::UnavailableError("no free TCP port");
  const int port = server->port_;
  auto process = ServerProcess::Start({.name = "redis-server",
                                       .argv = {exe, "--port", std::to_string(port), "--bind",
                                                "127.0.0.1", "--save", "", "--appendonly", "no"},
                                       .ready = [port] { return RedisPings(port); },
                                       .ready_timeout = std::chrono::seconds(20)});
  if (!process.ok()) return process.status();
  server->process_ = std::move(*process);
  return server;
}

RedisServer::~RedisServer() {
  if (process_) process_->Stop();
}

std::string RedisServer::addr() const { return absl::StrCat("127.0.0.1:", port_); }

}  // namespace dataflow::testing

// TCP sockets, optionally with TLS (OpenSSL) on them: the byte stream under MQTT for tcp://
// and ssl:// brokers, and under the WebSocket framing for ws:// and wss://.
#include "socket_transport.h"

#include <absl/strings/str_cat.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>

namespace dataflow::mqttconverter::internal {
namespace {

absl::Status Closed() { return absl::UnavailableError("connection closed by the broker"); }

std::string Errno(int err) { return std::strerror(err); }

std::string OpenSslError() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

// Waits for `events` on `fd` until `deadline`. POLLHUP/POLLERR count as ready: the next
// socket call reports what happened.
absl::Status WaitFd(int fd, short events, Deadline deadline) {
  while (true) {
    int timeout_ms = -1;
    if (deadline != Deadline::max()) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return absl::DeadlineExceededError("timed out");
      timeout_ms = static_cast<int>(std::min<std::int64_t>(left.count() + 1, 60'000));
    }
    pollfd p{.fd = fd, .events = events, .revents = 0};
    const int r = ::poll(&p, 1, timeout_ms);
    if (r > 0) return absl::OkStatus();
    if (r < 0 && errno != EINTR) return absl::UnavailableError("poll: " + Errno(errno));
  }
}

bool IsIpLiteral(const std::string& host) {
  in6_addr a6;
  in_addr a4;
  return ::inet_pton(AF_INET, host.c_str(), &a4) == 1 ||
         ::inet_pton(AF_INET6, host.c_str(), &a6) == 1;
}

absl::StatusOr<int> ConnectTcp(const BrokerAddress& address, Deadline deadline) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(address.port);
  if (int rc = ::getaddrinfo(address.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot resolve ", address.host, ": ", ::gai_strerror(rc)));
  }
  std::string last_error = "no address";
  int fd = -1;
  for (addrinfo* ai = found; ai != nullptr && fd < 0; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      last_error = Errno(errno);
      continue;
    }
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
      last_error = Errno(errno);
    } else if (auto s = WaitFd(fd, POLLOUT, deadline); !s.ok()) {
      last_error = s.code() == absl::StatusCode::kDeadlineExceeded ? "timed out connecting"
                                                                   : std::string(s.message());
    } else {
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err == 0) break;
      last_error = Errno(err);
    }
    ::close(fd);
    fd = -1;
  }
  ::freeaddrinfo(found);
  if (fd < 0) return absl::UnavailableError(last_error);
  int one = 1;
  // Acks and pings are a few bytes each: send them now, not after a Nagle delay.
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

// A TCP socket, optionally with TLS on it.
class SocketTransport : public Transport {
 public:
  explicit SocketTransport(int fd) : fd_(fd) {}
  ~SocketTransport() override {
    if (ssl_ != nullptr) SSL_free(ssl_);
    if (ctx_ != nullptr) SSL_CTX_free(ctx_);
    ::close(fd_);
  }

  absl::Status StartTls(const BrokerAddress& address, const TlsOptions& options,
                        Deadline deadline) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    if (ctx_ == nullptr) return absl::InternalError("SSL_CTX_new: " + OpenSslError());
    SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
    if (options.insecure_skip_verify) {
      SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);
    } else {
      SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
      const bool loaded =
          options.ca_cert_file.empty()
              ? SSL_CTX_set_default_verify_paths(ctx_) == 1
              : SSL_CTX_load_verify_locations(ctx_, options.ca_cert_file.c_str(), nullptr) == 1;
      if (!loaded) {
        return absl::InvalidArgumentError(absl::StrCat(
            "cannot load CA certificates '", options.ca_cert_file, "': ", OpenSslError()));
      }
    }
    if (!options.client_cert_file.empty()) {
      if (SSL_CTX_use_certificate_chain_file(ctx_, options.client_cert_file.c_str()) != 1 ||
          SSL_CTX_use_PrivateKey_file(ctx_, options.client_key_file.c_str(), SSL_FILETYPE_PEM) !=
              1 ||
          SSL_CTX_check_private_key(ctx_) != 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("cannot use client certificate '", options.client_cert_file, "' / key '",
                         options.client_key_file, "': ", OpenSslError()));
      }
    }
    ssl_ = SSL_new(ctx_);
    if (ssl_ == nullptr) return absl::InternalError("SSL_new: " + OpenSslError());
    SSL_set_fd(ssl_, fd_);
    const bool ip = IsIpLiteral(address.host);
    if (!ip) SSL_set_tlsext_host_name(ssl_, address.host.c_str());  // SNI takes names only
    if (!options.insecure_skip_verify) {
      X509_VERIFY_PARAM* param = SSL_get0_param(ssl_);
      const int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, address.host.c_str())
                        : X509_VERIFY_PARAM_set1_host(param, address.host.c_str(), 0);
      if (ok != 1) return absl::InternalError("cannot set the host name to verify");
    }
    while (true) {
      ERR_clear_error();
      const int r = SSL_connect(ssl_);
      if (r == 1) return absl::OkStatus();
      const int err = SSL_get_error(ssl_, r);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        if (auto s = WaitFd(fd_, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline);
            !s.ok()) {
          return absl::DeadlineExceededError("TLS handshake timed out");
        }
        continue;
      }
      if (const long v = SSL_get_verify_result(ssl_); v != X509_V_OK) {
        return absl::UnavailableError(
            absl::StrCat("TLS certificate verify failed: ", X509_verify_cert_error_string(v)));
      }
      return absl::UnavailableError("TLS handshake failed: " + OpenSslError());
    }
  }

  absl::StatusOr<std::size_t> Read(char* buf, std::size_t size, Deadline deadline) override {
    while (true) {
      if (shut_.load()) return Closed();
      short want = POLLIN;
      if (ssl_ == nullptr) {
        const ssize_t n = ::recv(fd_, buf, size, 0);
        if (n > 0) return static_cast<std::size_t>(n);
        if (n == 0) return Closed();
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
          return absl::UnavailableError("read: " + Errno(errno));
        }
      } else {
        std::unique_lock lock(mu_);
        ERR_clear_error();
        const int n = SSL_read(ssl_, buf, static_cast<int>(std::min<std::size_t>(size, 1 << 30)));
        if (n > 0) return static_cast<std::size_t>(n);
        const int err = SSL_get_error(ssl_, n);
        if (err == SSL_ERROR_ZERO_RETURN) return Closed();
        if (err == SSL_ERROR_WANT_WRITE) {
          want = POLLOUT;
        } else if (err != SSL_ERROR_WANT_READ) {
          if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) return Closed();
          return absl::UnavailableError("TLS read: " + OpenSslError());
        }
      }
      if (auto s = WaitFd(fd_, want, deadline); !s.ok()) return s;
    }
  }

  absl::Status Write(std::string_view data, Deadline deadline) override {
    // A plain lock: whoever holds it is itself bounded (a writer by its deadline, a TLS read
    // is non-blocking), and TSan cannot follow std::timed_mutex's pthread_mutex_clocklock.
    std::lock_guard lock(mu_);
    while (!data.empty()) {
      if (shut_.load()) return Closed();
      short want = POLLOUT;
      if (ssl_ == nullptr) {
        const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
        if (n > 0) {
          data.remove_prefix(static_cast<std::size_t>(n));
          continue;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
          return absl::UnavailableError("write: " + Errno(errno));
        }
      } else {
        ERR_clear_error();
        const int n = SSL_write(ssl_, data.data(),
                                static_cast<int>(std::min<std::size_t>(data.size(), 1 << 30)));
        if (n > 0) {
          data.remove_prefix(static_cast<std::size_t>(n));
          continue;
        }
        const int err = SSL_get_error(ssl_, n);
        if (err == SSL_ERROR_WANT_READ) {
          want = POLLIN;
        } else if (err != SSL_ERROR_WANT_WRITE) {
          return absl::UnavailableError("TLS write: " + OpenSslError());
        }
      }
      // The lock stays held: the bytes of one Write must not interleave with another's.
      if (auto s = WaitFd(fd_, want, deadline); !s.ok()) {
        return s.code() == absl::StatusCode::kDeadlineExceeded
                   ? absl::DeadlineExceededError("write timed out")
                   : s;
      }
    }
    return absl::OkStatus();
  }

  void Shutdown() override {
    shut_.store(true);
    ::shutdown(fd_, SHUT_RDWR);
  }

 private:
  const int fd_;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  // Plain TCP: serialises writers. TLS: also the reader, since an SSL object is not
  // thread-safe; every call under it is non-blocking.
  std::mutex mu_;
  std::atomic<bool> shut_{false};
};

}  // namespace

absl::StatusOr<std::unique_ptr<Transport>> ConnectSocket(const BrokerAddress& address,
                                                         const TlsOptions& tls, Deadline deadline) {
  auto fd = ConnectTcp(address, deadline);
  if (!fd.ok()) return fd.status();
  auto socket = std::make_unique<SocketTransport>(*fd);
  if (address.tls) {
    if (auto s = socket->StartTls(address, tls, deadline); !s.ok()) return s;
  }
  return std::unique_ptr<Transport>(std::move(socket));
}

}  // namespace dataflow::mqttconverter::internal

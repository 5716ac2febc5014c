#include "mqtt_transport.h"

#include <absl/strings/ascii.h>
#include <absl/strings/escaping.h>
#include <absl/strings/match.h>
#include <absl/strings/numbers.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_split.h>
#include <absl/strings/strip.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>

#include "mqtt_codec.h"

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

constexpr std::chrono::seconds kPongWriteTimeout{10};

std::uint32_t RandomMask() {
  std::uint32_t mask = 0;
  RAND_bytes(reinterpret_cast<unsigned char*>(&mask), sizeof mask);
  return mask;
}

// RFC 6455 client over another transport: MQTT bytes travel as binary frames.
class WebSocketTransport : public Transport {
 public:
  WebSocketTransport(std::unique_ptr<Transport> inner, const WebSocketLimits& limits)
      : inner_(std::move(inner)), limits_(limits) {}

  absl::Status Handshake(const BrokerAddress& address, Deadline deadline) {
    unsigned char nonce[16];
    RAND_bytes(nonce, sizeof nonce);
    const std::string key =
        absl::Base64Escape(absl::string_view(reinterpret_cast<const char*>(nonce), sizeof nonce));
    const bool default_port = address.port == (address.tls ? 443 : 80);
    const std::string host_header = absl::StrCat(
        address.host.find(':') != std::string::npos ? "[" + address.host + "]" : address.host,
        default_port ? "" : absl::StrCat(":", address.port));
    if (auto s =
            inner_->Write(absl::StrCat("GET ", address.path, " HTTP/1.1\r\nHost: ", host_header,
                                       "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                       "Sec-WebSocket-Key: ",
                                       key,
                                       "\r\nSec-WebSocket-Version: 13\r\n"
                                       "Sec-WebSocket-Protocol: mqtt\r\n\r\n"),
                          deadline);
        !s.ok()) {
      return s;
    }
    std::size_t end;
    while ((end = in_.find("\r\n\r\n")) == std::string::npos) {
      if (in_.size() > 16384) return absl::UnavailableError("WebSocket upgrade: response too long");
      char buf[4096];
      auto n = inner_->Read(buf, sizeof buf, deadline);
      if (!n.ok()) return absl::UnavailableError("WebSocket upgrade: " + n.status().ToString());
      in_.append(buf, *n);
    }
    const std::string head = in_.substr(0, end);
    in_.erase(0, end + 4);
    const absl::string_view status_line = absl::string_view(head).substr(0, head.find("\r\n"));
    if (!absl::StartsWith(status_line, "HTTP/1.1 101")) {
      return absl::UnavailableError(absl::StrCat("WebSocket upgrade refused: '", status_line, "'"));
    }
    std::string accept;
    std::string protocol;
    for (absl::string_view line : absl::StrSplit(head, "\r\n")) {
      const auto colon = line.find(':');
      if (colon == absl::string_view::npos) continue;
      const std::string name = absl::AsciiStrToLower(line.substr(0, colon));
      const std::string value(absl::StripAsciiWhitespace(line.substr(colon + 1)));
      if (name == "sec-websocket-accept") accept = value;
      if (name == "sec-websocket-protocol") protocol = value;
    }
    if (accept != WebSocketAccept(key)) {
      return absl::UnavailableError("WebSocket upgrade: wrong or missing Sec-WebSocket-Accept");
    }
    if (!protocol.empty() && protocol != "mqtt") {
      return absl::UnavailableError(
          absl::StrCat("WebSocket upgrade: server chose subprotocol '", protocol, "', not mqtt"));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::size_t> Read(char* buf, std::size_t size, Deadline deadline) override {
    while (true) {
      if (frame_left_ > 0 && in_pos_ < in_.size()) {
        const std::size_t n =
            std::min({size, static_cast<std::size_t>(frame_left_), in_.size() - in_pos_});
        std::memcpy(buf, in_.data() + in_pos_, n);
        in_pos_ += n;
        frame_left_ -= n;
        return n;
      }
      if (frame_left_ == 0) {
        WsFrameHeader h;
        const std::string_view avail = std::string_view(in_).substr(in_pos_);
        auto complete = ParseWsFrameHeader(avail, h);
        if (!complete.ok()) return absl::UnavailableError(complete.status().message());
        const bool control = static_cast<int>(h.opcode) >= 8;
        if (*complete && (!control || avail.size() >= h.header_size + h.payload_length)) {
          if (h.masked) return absl::UnavailableError("WebSocket: the server masked a frame");
          if (!control) {
            if (h.opcode == WsOpcode::kText) {
              return absl::UnavailableError("WebSocket: text frame; MQTT needs binary frames");
            }
            if (auto s = CheckDataFrame(h); !s.ok()) return s;
            in_pos_ += h.header_size;
            frame_left_ = h.payload_length;
            continue;
          }
          in_pos_ += h.header_size;
          const std::string payload = in_.substr(in_pos_, h.payload_length);
          in_pos_ += h.payload_length;
          if (h.opcode == WsOpcode::kClose) {
            return absl::UnavailableError("WebSocket closed by the server");
          }
          if (h.opcode == WsOpcode::kPing) {
            // Written by the reader, not the consumer's writer: a fixed bound stands in for
            // the consumer's write_timeout, which the transport does not know.
            if (auto s = inner_->Write(EncodeWsFrame(WsOpcode::kPong, payload, RandomMask()),
                                       std::chrono::steady_clock::now() + kPongWriteTimeout);
                !s.ok()) {
              return s;
            }
          }
          continue;
        }
      }
      // Need more bytes: drop what was consumed, then read.
      if (in_pos_ > 0) {
        in_.erase(0, in_pos_);
        in_pos_ = 0;
      }
      const std::size_t old = in_.size();
      in_.resize(old + 65536);
      auto n = inner_->Read(in_.data() + old, 65536, deadline);
      in_.resize(old + (n.ok() ? *n : 0));
      if (!n.ok()) return n.status();
    }
  }

  absl::Status Write(std::string_view data, Deadline deadline) override {
    return inner_->Write(EncodeWsFrame(WsOpcode::kBinary, data, RandomMask()), deadline);
  }

  void Shutdown() override { inner_->Shutdown(); }

 private:
  // Applies the frame and message limits to a data frame's header, and the fragmentation
  // rules (continuations only inside a message, no new message inside one).
  absl::Status CheckDataFrame(const WsFrameHeader& h) {
    const bool continuation = h.opcode == WsOpcode::kContinuation;
    if (continuation != in_message_) {
      return CloseWith(1002, continuation ? "WebSocket: continuation frame outside a message"
                                          : "WebSocket: new message inside a fragmented one");
    }
    if (h.payload_length > limits_.max_frame_bytes) {
      return CloseWith(
          1009, absl::StrCat("WebSocket frame of ", h.payload_length,
                             " bytes is over the limit of ", limits_.max_frame_bytes, " bytes"));
    }
    message_bytes_ += h.payload_length;  // both <= 2^64 / 2: no overflow past the check
    if (message_bytes_ > limits_.max_message_bytes) {
      return CloseWith(
          1009, absl::StrCat("WebSocket message of at least ", message_bytes_,
                             " bytes is over the limit of ", limits_.max_message_bytes, " bytes"));
    }
    in_message_ = !h.fin;
    if (h.fin) message_bytes_ = 0;
    return absl::OkStatus();
  }

  // Tells the server why (best effort, bounded like a pong) and fails the read.
  absl::Status CloseWith(std::uint16_t code, std::string why) {
    const char payload[2] = {static_cast<char>(code >> 8), static_cast<char>(code & 0xff)};
    inner_
        ->Write(EncodeWsFrame(WsOpcode::kClose, std::string_view(payload, 2), RandomMask()),
                std::chrono::steady_clock::now() + kPongWriteTimeout)
        .IgnoreError();
    return absl::UnavailableError(absl::StrCat(why, " (closed with ", code, ")"));
  }

  std::unique_ptr<Transport> inner_;
  const WebSocketLimits limits_;
  bool in_message_ = false;          // a data frame without FIN was seen: continuations follow
  std::uint64_t message_bytes_ = 0;  // announced payload of the current message so far
  std::string in_;                   // bytes read from inner_, from in_pos_ on not yet consumed
  std::size_t in_pos_ = 0;
  std::uint64_t frame_left_ = 0;  // payload bytes of the current data frame still to return
};

std::mutex& TestDialerMutex() {
  static std::mutex mu;
  return mu;
}
Dialer& TestDialer() {
  static Dialer dialer;
  return dialer;
}

}  // namespace

absl::StatusOr<BrokerAddress> ParseBrokerUrl(std::string_view url_text) {
  const absl::string_view url = Av(url_text);
  const auto sep = url.find("://");
  if (sep == absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("broker URL '", url, "' has no scheme"));
  }
  const std::string scheme = absl::AsciiStrToLower(url.substr(0, sep));
  BrokerAddress a;
  int default_port = 0;
  if (scheme == "tcp" || scheme == "mqtt") {
    default_port = 1883;
  } else if (scheme == "ssl" || scheme == "tls" || scheme == "mqtts") {
    a.tls = true;
    default_port = 8883;
  } else if (scheme == "ws") {
    a.websocket = true;
    default_port = 80;
  } else if (scheme == "wss") {
    a.websocket = a.tls = true;
    default_port = 443;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("broker URL '", url, "': unknown scheme"));
  }
  absl::string_view rest = url.substr(sep + 3);
  const auto slash = rest.find('/');
  a.path = slash == absl::string_view::npos ? "/mqtt" : std::string(rest.substr(slash));
  absl::string_view hostport = rest.substr(0, slash);
  absl::string_view port_text;
  if (absl::StartsWith(hostport, "[")) {
    const auto close = hostport.find(']');
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("broker URL '", url, "': unclosed '['"));
    }
    a.host = std::string(hostport.substr(1, close - 1));
    if (close + 1 < hostport.size()) {
      if (hostport[close + 1] != ':') {
        return absl::InvalidArgumentError(absl::StrCat("broker URL '", url, "': bad port"));
      }
      port_text = hostport.substr(close + 2);
    }
  } else if (const auto colon = hostport.rfind(':'); colon != absl::string_view::npos) {
    a.host = std::string(hostport.substr(0, colon));
    port_text = hostport.substr(colon + 1);
  } else {
    a.host = std::string(hostport);
  }
  if (a.host.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("broker URL '", url, "' has no host"));
  }
  a.port = default_port;
  if (!port_text.empty() &&
      (!absl::SimpleAtoi(port_text, &a.port) || a.port <= 0 || a.port > 65535)) {
    return absl::InvalidArgumentError(absl::StrCat("broker URL '", url, "': bad port"));
  }
  return a;
}

absl::StatusOr<std::unique_ptr<Transport>> Dial(std::string_view url, const TlsOptions& tls,
                                                Deadline deadline,
                                                const WebSocketLimits& ws_limits) {
  Dialer test_dialer;
  {
    std::lock_guard lock(TestDialerMutex());
    test_dialer = TestDialer();
  }
  if (test_dialer) return test_dialer(url, tls, deadline, ws_limits);
  auto address = ParseBrokerUrl(url);
  if (!address.ok()) return address.status();
  auto fail = [&](const absl::Status& s) {
    return absl::Status(
        s.code() == absl::StatusCode::kInvalidArgument ? s.code() : absl::StatusCode::kUnavailable,
        absl::StrCat("cannot connect to ", Av(url), ": ", s.message()));
  };
  auto fd = ConnectTcp(*address, deadline);
  if (!fd.ok()) return fail(fd.status());
  auto socket = std::make_unique<SocketTransport>(*fd);
  if (address->tls) {
    if (auto s = socket->StartTls(*address, tls, deadline); !s.ok()) return fail(s);
  }
  if (!address->websocket) return std::unique_ptr<Transport>(std::move(socket));
  auto ws = WebSocketOver(std::move(socket), *address, ws_limits, deadline);
  if (!ws.ok()) return fail(ws.status());
  return ws;
}

absl::StatusOr<std::unique_ptr<Transport>> WebSocketOver(std::unique_ptr<Transport> inner,
                                                         const BrokerAddress& address,
                                                         const WebSocketLimits& limits,
                                                         Deadline deadline) {
  auto ws = std::make_unique<WebSocketTransport>(std::move(inner), limits);
  if (auto s = ws->Handshake(address, deadline); !s.ok()) return s;
  return std::unique_ptr<Transport>(std::move(ws));
}

void SetDialerForTesting(Dialer dialer) {
  std::lock_guard lock(TestDialerMutex());
  TestDialer() = std::move(dialer);
}

}  // namespace dataflow::mqttconverter::internal

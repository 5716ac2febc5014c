// ScriptedBroker: a loopback fake MQTT broker for the tests real Mosquitto cannot drive.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dataflow::mqttconverter::testing {

// Speaks just enough MQTT, on a loopback socket, to accept a client, answer its CONNECT and
// SUBSCRIBE as a test scripts it, push messages and watch what the client sends back. Used where a
// real Mosquitto cannot show the behaviour: it tolerates a silent client far longer than 1.5 x
// keep-alive, always answers a SUBSCRIBE correctly, never refuses one after having granted it, and
// cannot be made to stop reading its socket, and cannot stream a PUBLISH bigger than the memory a
// test should take (mosquitto_pub reads the whole payload into memory first).
class ScriptedBroker {
 public:
  // `receive_buffer` > 0: a tiny SO_RCVBUF, so that a broker that stops reading soon blocks the
  // client's writes.
  explicit ScriptedBroker(int receive_buffer = 0) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (receive_buffer > 0) {
      ::setsockopt(listen_fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
        ::listen(listen_fd_, 1) == 0 &&
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port_ = ntohs(addr.sin_port);
    }
  }
  ~ScriptedBroker() {
    Drop();
    if (listen_fd_ >= 0) ::close(listen_fd_);
  }
  [[nodiscard]] std::string url() const { return "tcp://127.0.0.1:" + std::to_string(port_); }

  // Accepts the next connection (closing the previous one) and answers its CONNECT.
  bool AcceptAndConnack(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    Drop();
    pollfd p{.fd = listen_fd_, .events = POLLIN, .revents = 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return false;
    client_fd_ = ::accept(listen_fd_, nullptr, nullptr);
    if (client_fd_ < 0) return false;
    eof_ = false;
    std::uint8_t type = 0;
    std::string body;
    if (!ReadPacket(type, body, std::chrono::seconds(5)) || type >> 4 != 1) return false;
    return Send(std::string("\x20\x02\x00\x00", 4));
  }
  // Reads a SUBSCRIBE: its packet id and how many filters it carries.
  bool ReadSubscribe(std::uint16_t& packet_id, std::size_t& filters) {
    std::uint8_t type = 0;
    std::string body;
    if (!ReadPacket(type, body, std::chrono::seconds(5)) || type >> 4 != 8 || body.size() < 2) {
      return false;
    }
    packet_id = static_cast<std::uint16_t>((static_cast<std::uint8_t>(body[0]) << 8) |
                                           static_cast<std::uint8_t>(body[1]));
    filters = 0;
    for (std::size_t i = 2; i + 2 <= body.size(); ++filters) {
      const std::size_t n =
          (static_cast<std::uint8_t>(body[i]) << 8) | static_cast<std::uint8_t>(body[i + 1]);
      i += 2 + n + 1;  // length, filter, requested QoS
    }
    return true;
  }
  bool SendSuback(std::uint16_t packet_id, const std::vector<std::uint8_t>& codes) {
    std::string packet = "\x90";
    AppendLength(2 + codes.size(), packet);
    packet += static_cast<char>(packet_id >> 8);
    packet += static_cast<char>(packet_id & 0xff);
    for (std::uint8_t c : codes) packet += static_cast<char>(c);
    return Send(packet);
  }
  // CONNECT/CONNACK and SUBSCRIBE/SUBACK, every filter granted QoS 0.
  bool Handshake() {
    std::uint16_t id = 0;
    std::size_t filters = 0;
    return AcceptAndConnack() && ReadSubscribe(id, filters) &&
           SendSuback(id, std::vector<std::uint8_t>(filters, 0));
  }
  bool SendPublish(const std::string& topic, const std::string& payload, int qos = 0,
                   std::uint16_t packet_id = 0) {
    std::string packet(1, static_cast<char>(0x30 | (qos << 1)));
    AppendLength(2 + topic.size() + (qos > 0 ? 2 : 0) + payload.size(), packet);
    packet += static_cast<char>(topic.size() >> 8);
    packet += static_cast<char>(topic.size() & 0xff);
    packet += topic;
    if (qos > 0) {
      packet += static_cast<char>(packet_id >> 8);
      packet += static_cast<char>(packet_id & 0xff);
    }
    return Send(packet + payload);
  }
  // Reads what the client sends for `window`: the number of PINGREQs, or -1 if the client
  // sent anything else or closed the connection.
  int CountPingreqs(std::chrono::milliseconds window) {
    const auto end = std::chrono::steady_clock::now() + window;
    int pings = 0;
    while (std::chrono::steady_clock::now() < end) {
      std::uint8_t type = 0;
      std::string body;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          end - std::chrono::steady_clock::now());
      if (!ReadPacket(type, body, left)) return eof_ ? -1 : pings;
      if (type != 0xC0) return -1;
      ++pings;
    }
    return pings;
  }
  // Reads (and ignores) what the client sends until it closes the connection: false if it has not
  // within `timeout`.
  bool WaitForClose(std::chrono::milliseconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    std::uint8_t type = 0;
    std::string body;
    while (!eof_ && std::chrono::steady_clock::now() < end) {
      ReadPacket(type, body,
                 std::chrono::duration_cast<std::chrono::milliseconds>(
                     end - std::chrono::steady_clock::now()));
    }
    return eof_;
  }
  // Sends a PUBLISH announcing `payload_size` bytes of payload and streams them (zeros) in
  // 64 KiB chunks, so that the test process never holds the payload.
  bool SendLargePublish(const std::string& topic, std::size_t payload_size, int qos,
                        std::uint16_t packet_id) {
    std::string head(1, static_cast<char>(0x30 | (qos << 1)));
    AppendLength(2 + topic.size() + (qos > 0 ? 2 : 0) + payload_size, head);
    head += static_cast<char>(topic.size() >> 8);
    head += static_cast<char>(topic.size() & 0xff);
    head += topic;
    if (qos > 0) {
      head += static_cast<char>(packet_id >> 8);
      head += static_cast<char>(packet_id & 0xff);
    }
    if (!Send(head)) return false;
    static const std::string chunk(64 * 1024, '\0');
    for (std::size_t left = payload_size; left > 0;) {
      const std::size_t n = std::min(left, chunk.size());
      if (!Send(std::string_view(chunk).substr(0, n))) return false;
      left -= n;
    }
    return true;
  }
  // Sends bytes as they are (a packet the test builds, possibly malformed).
  bool SendRaw(std::string_view bytes) { return Send(bytes); }
  // Reads the next packet the client sends: its first byte and body.
  bool ReadNext(std::uint8_t& type, std::string& body,
                std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    return ReadPacket(type, body, timeout);
  }
  // Reads packets until `count` PUBACKs (first byte 0x40) arrived; their packet ids in order.
  // PINGREQs are skipped; anything else, a close or the timeout ends it early.
  std::vector<std::uint16_t> ReadPubacks(
      std::size_t count, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::vector<std::uint16_t> ids;
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (ids.size() < count) {
      std::uint8_t type = 0;
      std::string body;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          end - std::chrono::steady_clock::now());
      if (left.count() <= 0 || !ReadPacket(type, body, left)) break;
      if (type == 0xC0) continue;
      if (type != 0x40 || body.size() != 2) break;
      ids.push_back(static_cast<std::uint16_t>((static_cast<std::uint8_t>(body[0]) << 8) |
                                               static_cast<std::uint8_t>(body[1])));
    }
    return ids;
  }
  // The raw socket, for a test that speaks another protocol on it (WebSocket).
  [[nodiscard]] int client_fd() const { return client_fd_; }
  // Accepts the next connection without reading anything from it.
  bool Accept(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    Drop();
    pollfd p{.fd = listen_fd_, .events = POLLIN, .revents = 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return false;
    client_fd_ = ::accept(listen_fd_, nullptr, nullptr);
    eof_ = false;
    return client_fd_ >= 0;
  }
  void Drop() {
    if (client_fd_ >= 0) ::close(client_fd_);
    client_fd_ = -1;
  }

 private:
  static void AppendLength(std::size_t n, std::string& out) {
    do {
      std::uint8_t b = n % 128;
      n /= 128;
      if (n > 0) b |= 0x80;
      out += static_cast<char>(b);
    } while (n > 0);
  }
  bool Send(std::string_view bytes) {
    return ::send(client_fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(bytes.size());
  }
  bool ReadByte(std::uint8_t& b, std::chrono::steady_clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{.fd = client_fd_, .events = POLLIN, .revents = 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) != 1) return false;
    if (::recv(client_fd_, &b, 1, 0) != 1) {
      eof_ = true;
      return false;
    }
    return true;
  }
  bool ReadPacket(std::uint8_t& type, std::string& body, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    if (!ReadByte(type, deadline)) return false;
    std::size_t remaining = 0;
    for (int shift = 0;; shift += 7) {
      std::uint8_t b = 0;
      if (shift > 21 || !ReadByte(b, deadline)) return false;
      remaining |= static_cast<std::size_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) break;
    }
    body.clear();
    for (std::size_t i = 0; i < remaining; ++i) {
      std::uint8_t b = 0;
      if (!ReadByte(b, deadline)) return false;
      body.push_back(static_cast<char>(b));
    }
    return true;
  }

  int listen_fd_ = -1;
  int client_fd_ = -1;
  int port_ = 0;
  bool eof_ = false;
};

}  // namespace dataflow::mqttconverter::testing

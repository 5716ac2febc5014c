// Test doubles for the MQTT consumer's units, with no socket: a scripted in-memory broker
// behind the TransportFactory seam, a hand-moved clock, and a decoder for what the client
// wrote. The broker answers CONNECT with CONNACK and SUBSCRIBE with a SUBACK carrying the
// codes the test scripted for that connection, and PINGREQ with PINGRESP when told to.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "mqtt_codec.h"
#include "mqtt_transport.h"
#include "timing.h"

namespace dataflow::mqttconverter::internal::testing {

// A clock that moves only when the test says so.
class FakeClock {
 public:
  SteadyTime Now() const { return SteadyTime(std::chrono::nanoseconds(ns_.load())); }
  void Advance(std::chrono::nanoseconds d) { ns_.fetch_add(d.count()); }
  NowFn Fn() {
    return [this] { return Now(); };
  }

 private:
  std::atomic<std::int64_t> ns_{std::chrono::nanoseconds(std::chrono::hours(1)).count()};
};

// The packets in `bytes` as (type, packet id or 0); whole packets only.
inline std::vector<std::pair<PacketType, int>> Decode(std::string_view bytes) {
  std::vector<std::pair<PacketType, int>> out;
  while (!bytes.empty()) {
    RawPacket p;
    auto n = ParsePacket(bytes, p);
    if (!n.ok() || *n == 0) {
      out.emplace_back(PacketType{}, -1);  // malformed or partial: fails any expectation
      return out;
    }
    int id = 0;
    if (p.type == PacketType::kPuback || p.type == PacketType::kPubrec) id = *ParsePacketId(p);
    out.emplace_back(p.type, id);
    bytes.remove_prefix(*n);
  }
  return out;
}

inline std::string EncodePublish(std::string_view topic, std::string_view payload, int qos,
                                 std::uint16_t id) {
  std::string body;
  body.push_back(static_cast<char>(topic.size() >> 8));
  body.push_back(static_cast<char>(topic.size() & 0xff));
  body.append(topic);
  if (qos > 0) {
    body.push_back(static_cast<char>(id >> 8));
    body.push_back(static_cast<char>(id & 0xff));
  }
  body.append(payload);
  std::string out;
  AppendFixedHeader(static_cast<std::uint8_t>(0x30 | (qos << 1)), body.size(), out);
  return out + body;
}

// One connection as the broker sees it. Guarded by mu.
struct BrokerSide {
  std::mutex mu;
  std::condition_variable cv;
  std::string to_client;                // bytes the client has not read yet
  std::vector<PacketType> from_client;  // packets the client wrote, in order
  std::vector<std::uint8_t> suback_codes;
  bool answer_pings = true;
  bool closed = false;     // the broker closed it: reads fail
  bool shut_down = false;  // the client shut it down
  int readers_waiting = 0;

  template <typename Pred>
  bool Await(Pred pred, std::chrono::seconds timeout = std::chrono::seconds(10)) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, timeout, [&] { return pred(); });
  }
  int Count(PacketType t) {
    int n = 0;
    for (PacketType p : from_client) n += p == t ? 1 : 0;
    return n;
  }
  void Send(std::string bytes) {
    std::lock_guard lock(mu);
    to_client += bytes;
    cv.notify_all();
  }
  void Close() {
    std::lock_guard lock(mu);
    closed = true;
    cv.notify_all();
  }
};

class FakeTransport : public Transport {
 public:
  explicit FakeTransport(std::shared_ptr<BrokerSide> side) : side_(std::move(side)) {}

  absl::StatusOr<std::size_t> Read(char* buf, std::size_t size, Deadline deadline) override {
    std::unique_lock lock(side_->mu);
    ++side_->readers_waiting;
    side_->cv.notify_all();
    auto ready = [&] { return !side_->to_client.empty() || side_->closed || side_->shut_down; };
    bool ok = true;
    if (deadline == Deadline::max()) {
      side_->cv.wait(lock, ready);
    } else {
      ok = side_->cv.wait_until(lock, deadline, ready);
    }
    --side_->readers_waiting;
    if (!ok) return absl::DeadlineExceededError("timed out");
    if (side_->shut_down) return absl::UnavailableError("shut down");
    if (side_->to_client.empty()) return absl::UnavailableError("connection closed by the broker");
    const std::size_t n = std::min(size, side_->to_client.size());
    side_->to_client.copy(buf, n);
    side_->to_client.erase(0, n);
    side_->cv.notify_all();
    return n;
  }

  absl::Status Write(std::string_view data, Deadline) override {
    std::lock_guard lock(side_->mu);
    if (side_->shut_down || side_->closed) return absl::UnavailableError("closed");
    while (!data.empty()) {
      RawPacket p;
      auto n = ParsePacket(data, p);
      if (!n.ok() || *n == 0) return absl::InternalError("the client wrote a partial packet");
      side_->from_client.push_back(p.type);
      if (p.type == PacketType::kConnect) {
        side_->to_client += std::string("\x20\x02\x00\x00", 4);
      } else if (p.type == PacketType::kSubscribe) {
        std::string body = std::string(p.body.substr(0, 2));  // its packet id
        for (std::uint8_t c : side_->suback_codes) body.push_back(static_cast<char>(c));
        AppendFixedHeader(0x90, body.size(), side_->to_client);
        side_->to_client += body;
      } else if (p.type == PacketType::kPingreq && side_->answer_pings) {
        side_->to_client += std::string("\xd0\x00", 2);
      }
      data.remove_prefix(*n);
    }
    side_->cv.notify_all();
    return absl::OkStatus();
  }

  void Shutdown() override {
    std::lock_guard lock(side_->mu);
    side_->shut_down = true;
    side_->cv.notify_all();
  }

 private:
  std::shared_ptr<BrokerSide> side_;
};

// Hands out one scripted connection per Connect: the n-th gets suback_codes[n] (the last
// entry once they run out).
class FakeBroker : public TransportFactory {
 public:
  explicit FakeBroker(std::vector<std::vector<std::uint8_t>> suback_codes)
      : suback_codes_(std::move(suback_codes)) {}

  absl::StatusOr<std::unique_ptr<Transport>> Connect(Deadline) override {
    auto side = std::make_shared<BrokerSide>();
    std::lock_guard lock(mu_);
    side->suback_codes = suback_codes_[std::min(sides_.size(), suback_codes_.size() - 1)];
    sides_.push_back(side);
    cv_.notify_all();
    return std::unique_ptr<Transport>(std::make_unique<FakeTransport>(side));
  }

  // Waits for the n-th connection (0-based) to be made; null on timeout.
  std::shared_ptr<BrokerSide> Connection(std::size_t n,
                                         std::chrono::seconds timeout = std::chrono::seconds(10)) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return sides_.size() > n; })) return nullptr;
    return sides_[n];
  }
  std::size_t connections() {
    std::lock_guard lock(mu_);
    return sides_.size();
  }

 private:
  const std::vector<std::vector<std::uint8_t>> suback_codes_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::shared_ptr<BrokerSide>> sides_;
};

}  // namespace dataflow::mqttconverter::internal::testing

// Session: the MQTT protocol side of MqttConsumer, over an injected TransportFactory. One
// thread connects (CONNECT/CONNACK within connect_timeout), subscribes to every filter
// (SUBSCRIBE; the SUBACK must carry our packet id and one valid code per filter, and a
// refused filter fails the connection), reads packets and hands each PUBLISH to the
// listener, and on any loss reconnects with backoff, renewing the subscriptions. A failure
// before the first SUBACK ends it (WaitFirstResult reports it); max_subscribe_refusals refused
// SUBACKs in a row end it too (SessionListener::OnGiveUp). Another thread keeps the
// connection alive: a PINGREQ when nothing was written for half the keep-alive, and a broker
// silent for 1.5 x keep-alive (no PINGRESP, nothing else) has its connection dropped and
// re-made. Time comes from an injected clock, so tests move it by hand. Thread-safe.
#pragma once

#include <absl/status/status.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "connection.h"
#include "dataflow/mqttconverter/mqtt_config.h"
#include "mqtt_codec.h"
#include "mqtt_transport.h"
#include "packet_reader.h"
#include "timing.h"

namespace dataflow::mqttconverter::internal {

struct SessionOptions {
  std::string broker_url;  // names the broker in errors and logs
  std::string client_id;
  std::string username;
  std::string password;
  bool clean_session = true;
  std::chrono::seconds keep_alive{10};  // 0: no keep-alive
  std::chrono::seconds connect_timeout{10};
  std::vector<TopicFilter> filters;
  std::size_t max_packet_bytes = 4 << 20;
  std::chrono::milliseconds write_timeout{10'000};
  std::chrono::milliseconds reconnect_min_backoff{1000};
  std::chrono::milliseconds reconnect_max_backoff{30'000};
  int max_subscribe_refusals = 5;
  // kOnReceipt: an oversize PUBLISH is acknowledged at once rather than in line.
  AckMode ack_mode = AckMode::kAfterPipelineAck;

  static SessionOptions From(const MqttClientOptions& config, std::string client_id);
};

class SessionListener {
 public:
  virtual ~SessionListener() = default;
  // A PUBLISH, on the reader thread; blocking here is the backpressure (the socket is not
  // read meanwhile, and keep-alive does not count the broker as silent).
  virtual void OnPublish(const std::shared_ptr<Connection>& conn, const Publish& publish) = 0;
  // The session gave up for good (refused subscriptions); on the reader thread.
  virtual void OnGiveUp(const absl::Status& status) = 0;
};

class Session {
 public:
  Session(SessionOptions options, std::shared_ptr<TransportFactory> factory,
          SessionListener& listener, NowFn now = RealNow);
  ~Session() { Stop(); }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Starts the reader (connect, subscribe, read, reconnect) and keep-alive threads.
  void Start();
  // The first SUBACK granting every filter (or the first message of a resumed session, which
  // may come before it), or why there was none; nullopt if neither came within `timeout`.
  std::optional<absl::Status> WaitFirstResult(std::chrono::milliseconds timeout);
  // Connected with every subscription granted (or a resumed session delivering).
  [[nodiscard]] bool IsConnected() const { return connected_.load(); }
  // The current (or last) connection; null before the first.
  std::shared_ptr<Connection> CurrentConnection();
  // The consumer stops: the broker closing the socket from now on is expected, not a lost
  // connection. With a clean session asks the broker to stop sending (UNSUBSCRIBE; a
  // persistent session keeps its subscriptions so that messages are queued meanwhile).
  // Returns the connection if it is still open, else null.
  std::shared_ptr<Connection> BeginStop();
  // Ends the threads and closes the connection. Idempotent.
  void Stop();

  struct Stats {
    std::uint64_t connects = 0;
    std::uint64_t left_with_broker = 0;
    std::uint64_t oversize_skipped = 0;
  };
  [[nodiscard]] Stats stats() const;

  static constexpr std::uint16_t kSubscribeId = 1;
  static constexpr std::uint16_t kUnsubscribeId = 2;

 private:
  // How one connection ended, beyond its status.
  struct ConnectionEnd {
    bool granted = false;  // its SUBACK granted every filter
    bool refused = false;  // its SUBACK refused one (status names it)
  };

  void RunLoop(std::stop_token st);
  absl::Status RunConnection(std::stop_token st, ConnectionEnd& end);
  void ReportUnacked(Connection& conn);
  absl::Status Handshake(Connection& conn, PacketReader& reader, Deadline deadline);
  absl::Status ReadLoop(std::stop_token st, const std::shared_ptr<Connection>& conn,
                        PacketReader& reader, ConnectionEnd& end);
  absl::Status HandlePacket(const std::shared_ptr<Connection>& conn, const RawPacket& p,
                            const PacketReader& reader, ConnectionEnd& end);
  absl::Status OnSuback(Connection& conn, const RawPacket& p, const PacketReader& reader,
                        ConnectionEnd& end);
  void OnPublish(const std::shared_ptr<Connection>& conn, const Publish& publish);
  absl::Status SkipOversizePublish(Connection& conn, PacketReader& reader,
                                   const FixedHeader& header);
  void KeepAliveLoop(std::stop_token st);
  void ReportFirst(absl::Status s);
  [[nodiscard]] bool Subscribed() const { return subscribed_.load(std::memory_order_relaxed); }

  const SessionOptions options_;
  const std::shared_ptr<TransportFactory> factory_;
  SessionListener& listener_;
  const NowFn now_;
  std::mutex mu_;
  std::condition_variable first_cv_;
  std::optional<absl::Status> first_result_;  // the first SUBACK, or why there was none
  std::atomic<bool> subscribed_{false};       // first_result_ is OK
  std::atomic<bool> connected_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> connects_{0}, left_with_broker_{0}, oversize_skipped_{0};
  std::minstd_rand reconnect_rng_{std::random_device{}()};  // reader thread only
  std::mutex conn_mu_;
  std::shared_ptr<Connection> conn_;  // the current (or last) connection
  std::jthread reader_;
  std::jthread keepalive_;
};

}  // namespace dataflow::mqttconverter::internal

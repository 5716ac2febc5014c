#include "session.h"

#include <absl/strings/str_cat.h>

#include <algorithm>

#include "dataflow/messagepipeline/logging.h"
#include "keep_alive.h"

namespace dataflow::mqttconverter::internal {

SessionOptions SessionOptions::From(const MqttClientOptions& config, std::string client_id) {
  SessionOptions o{.broker_url = config.broker_url,
                   .client_id = std::move(client_id),
                   .username = config.username,
                   .password = config.password,
                   .clean_session = config.clean_session,
                   .keep_alive = config.keep_alive,
                   .connect_timeout = config.connect_timeout,
                   .max_packet_bytes = config.max_packet_bytes,
                   .write_timeout = config.write_timeout,
                   .reconnect_min_backoff = config.reconnect_min_backoff,
                   .reconnect_max_backoff = config.reconnect_max_backoff,
                   .max_subscribe_refusals = config.max_subscribe_refusals,
                   .ack_mode = config.ack_mode};
  for (const TopicMapping& m : config.topic_mappings) {
    o.filters.push_back({.filter = m.topic, .qos = m.qos});
  }
  return o;
}

Session::Session(SessionOptions options, std::shared_ptr<TransportFactory> factory,
                 SessionListener& listener, NowFn now)
    : options_(std::move(options)),
      factory_(std::move(factory)),
      listener_(listener),
      now_(std::move(now)) {}

void Session::Start() {
  reader_ = std::jthread([this](std::stop_token st) { RunLoop(st); });
  keepalive_ = std::jthread([this](std::stop_token st) { KeepAliveLoop(st); });
}

std::optional<absl::Status> Session::WaitFirstResult(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  if (!first_cv_.wait_for(lock, timeout, [&] { return first_result_.has_value(); })) {
    return std::nullopt;
  }
  return *first_result_;
}

std::shared_ptr<Connection> Session::CurrentConnection() {
  std::lock_guard lock(conn_mu_);
  return conn_;
}

std::shared_ptr<Connection> Session::BeginStop() {
  stopping_.store(true);
  std::shared_ptr<Connection> conn = CurrentConnection();
  // A connection that already ended reported what it left behind when it did.
  if (!conn || !conn->IsOpen()) return nullptr;
  if (conn->handshaken.load() && options_.clean_session) {
    conn->Write(EncodeUnsubscribe(kUnsubscribeId, options_.filters));
  }
  return conn;
}

void Session::Stop() {
  stopping_.store(true);
  reader_.request_stop();
  if (auto conn = CurrentConnection()) conn->transport().Shutdown();  // wakes the reader
  if (reader_.joinable()) reader_.join();
  if (keepalive_.joinable()) {
    keepalive_.request_stop();
    keepalive_.join();
  }
  connected_.store(false);
}

Session::Stats Session::stats() const {
  return {.connects = connects_.load(),
          .left_with_broker = left_with_broker_.load(),
          .oversize_skipped = oversize_skipped_.load()};
}

void Session::ReportFirst(absl::Status s) {
  {
    std::lock_guard lock(mu_);
    if (first_result_.has_value()) return;
    if (s.ok()) subscribed_.store(true);
    first_result_ = std::move(s);
  }
  first_cv_.notify_all();
}

void Session::RunLoop(std::stop_token st) {
  int failures = 0;  // connections in a row that did not get their subscriptions granted
  int refusals = 0;  // of which refused SUBACKs, in a row
  std::mutex sleep_mu;
  std::condition_variable_any sleep_cv;
  while (!st.stop_requested()) {
    ConnectionEnd end;
    absl::Status s = RunConnection(st, end);
    if (!Subscribed()) {
      ReportFirst(s.ok() ? absl::UnavailableError("mqtt: connection ended before SUBACK") : s);
      return;
    }
    // The broker closing the socket after our DISCONNECT is expected, not a lost connection.
    if (st.stop_requested() || stopping_.load()) return;
    if (end.granted) failures = refusals = 0;
    refusals = end.refused ? refusals + 1 : 0;
    if (refusals >= options_.max_subscribe_refusals) {
      const absl::Status why(s.code(), absl::StrCat(s.message(), " (", refusals,
                                                    " times in a row; max_subscribe_refusals=",
                                                    options_.max_subscribe_refusals, ")"));
      Log()->error("mqtt consumer gave up client_id={} error={}", options_.client_id,
                   why.ToString());
      stopping_.store(true);
      connected_.store(false);
      listener_.OnGiveUp(why);
      return;
    }
    Log()->warn("mqtt connection {}; reconnecting client_id={} broker={} error=\"{}\"",
                end.granted ? "lost" : "failed", options_.client_id, options_.broker_url,
                s.ToString());
    const auto delay = RetryDelay(options_.reconnect_min_backoff, options_.reconnect_max_backoff,
                                  ++failures, reconnect_rng_);
    std::unique_lock lock(sleep_mu);
    sleep_cv.wait_for(lock, st, delay, [] { return false; });
  }
}

absl::Status Session::RunConnection(std::stop_token st, ConnectionEnd& end) {
  // The transport waits on the real clock.
  const Deadline deadline = RealNow() + options_.connect_timeout;
  auto transport = factory_->Connect(deadline);
  if (!transport.ok()) {
    return absl::Status(transport.status().code(),
                        absl::StrCat("mqtt: ", transport.status().message()));
  }
  auto conn = std::make_shared<Connection>(std::move(*transport), options_.write_timeout, now_);
  {
    std::lock_guard lock(conn_mu_);
    conn_ = conn;
  }
  if (st.stop_requested()) conn->transport().Shutdown();
  PacketReader reader(*conn, options_.max_packet_bytes, options_.broker_url);
  absl::Status s = Handshake(*conn, reader, deadline);
  if (s.ok()) {
    conn->handshaken.store(true);
    if (connects_.fetch_add(1) > 0) {
      Log()->info("mqtt reconnected; renewing subscriptions client_id={}", options_.client_id);
    }
    conn->subscribe_pending = true;
    conn->Write(EncodeSubscribe(kSubscribeId, options_.filters));
    s = ReadLoop(st, conn, reader, end);
    connected_.store(false);
  }
  conn->Close();
  // A stalled write is the cause; the reader only saw the shut-down socket.
  if (absl::Status w = conn->WriteError(); !w.ok() && !end.refused) {
    s = absl::UnavailableError(
        absl::StrCat("mqtt: write to ", options_.broker_url, " failed: ", w.message()));
  }
  ReportUnacked(*conn);
  return s;
}

void Session::ReportUnacked(Connection& conn) {
  const std::size_t unacked = conn.NotAckedByPipeline() + conn.UnwrittenAcks();
  if (unacked == 0) return;
  if (!options_.clean_session) {
    left_with_broker_.fetch_add(unacked, std::memory_order_relaxed);
    Log()->info(
        "mqtt connection ended with {} messages not acknowledged to the broker ({} of them "
        "acked by the pipeline, acknowledgement not written); the persistent session "
        "redelivers them client_id={}",
        unacked, conn.UnwrittenAcks(), options_.client_id);
  } else {
    Log()->warn(
        "mqtt connection ended with {} messages not acknowledged to the broker ({} of them "
        "acked by the pipeline, acknowledgement not written); with clean_session=true the "
        "broker will not redeliver them client_id={}",
        unacked, conn.UnwrittenAcks(), options_.client_id);
  }
}

absl::Status Session::Handshake(Connection& conn, PacketReader& reader, Deadline deadline) {
  conn.Write(
      EncodeConnect({.client_id = options_.client_id,
                     .clean_session = options_.clean_session,
                     .keep_alive_seconds = static_cast<std::uint16_t>(options_.keep_alive.count()),
                     .username = options_.username,
                     .password = options_.password}));
  RawPacket packet;
  while (true) {
    FixedHeader header;
    auto next = reader.Parse(packet, header);
    if (!next.ok()) return next.status();
    if (*next == PacketReader::Next::kPacket) break;
    if (*next == PacketReader::Next::kOversizePublish) {
      return reader.BrokerError(absl::InvalidArgumentError("PUBLISH before CONNACK"));
    }
    if (auto s = reader.ReadMore(deadline); !s.ok()) {
      return absl::UnavailableError(absl::StrCat(
          "mqtt: no CONNACK from ", options_.broker_url, ": ",
          s.code() == absl::StatusCode::kDeadlineExceeded ? "timed out" : s.message()));
    }
  }
  auto connack = ParseConnack(packet);
  if (!connack.ok()) return reader.BrokerError(connack.status());
  if (connack->return_code != 0) {
    return absl::UnavailableError(
        absl::StrCat("MQTT broker ", options_.broker_url,
                     " refused the connection: ", ConnackReason(connack->return_code)));
  }
  return absl::OkStatus();
}

absl::Status Session::ReadLoop(std::stop_token st, const std::shared_ptr<Connection>& conn,
                               PacketReader& reader, ConnectionEnd& end) {
  while (!st.stop_requested()) {
    while (true) {
      RawPacket packet;
      FixedHeader header;
      auto next = reader.Parse(packet, header);
      if (!next.ok()) return next.status();
      if (*next == PacketReader::Next::kNeedMore) break;
      absl::Status s = *next == PacketReader::Next::kPacket
                           ? HandlePacket(conn, packet, reader, end)
                           : SkipOversizePublish(*conn, reader, header);
      if (!s.ok()) return s;
    }
    if (auto s = reader.ReadMore(Deadline::max()); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status Session::HandlePacket(const std::shared_ptr<Connection>& conn, const RawPacket& p,
                                   const PacketReader& reader, ConnectionEnd& end) {
  switch (p.type) {
    case PacketType::kPublish: {
      auto publish = ParsePublish(p);
      if (!publish.ok()) return reader.BrokerError(publish.status());
      OnPublish(conn, *publish);
      return absl::OkStatus();
    }
    case PacketType::kPubrel: {
      auto id = ParsePacketId(p);
      if (!id.ok()) return reader.BrokerError(id.status());
      std::string pubcomp;
      AppendAck(PacketType::kPubcomp, *id, pubcomp);
      conn->Write(std::move(pubcomp));
      return absl::OkStatus();
    }
    case PacketType::kSuback:
      return OnSuback(*conn, p, reader, end);
    case PacketType::kPingresp:
    case PacketType::kUnsuback:
      return absl::OkStatus();
    default:
      return reader.BrokerError(absl::InvalidArgumentError(
          absl::StrCat("unexpected packet type ", static_cast<int>(p.type))));
  }
}

// A SUBACK must answer our SUBSCRIBE (same packet id, one return code per filter, each a
// granted QoS or 0x80); anything else is a protocol error. A refused filter fails the
// connection: staying connected would look ready with nothing flowing.
absl::Status Session::OnSuback(Connection& conn, const RawPacket& p, const PacketReader& reader,
                               ConnectionEnd& end) {
  const auto& filters = options_.filters;
  auto suback = ParseSuback(p);
  if (!suback.ok()) return reader.BrokerError(suback.status());
  if (!conn.subscribe_pending) {
    return reader.BrokerError(absl::InvalidArgumentError("SUBACK without a pending SUBSCRIBE"));
  }
  if (suback->packet_id != kSubscribeId) {
    return reader.BrokerError(absl::InvalidArgumentError(absl::StrCat(
        "SUBACK for packet id ", suback->packet_id, ", the SUBSCRIBE had ", kSubscribeId)));
  }
  if (suback->return_codes.size() != filters.size()) {
    return reader.BrokerError(absl::InvalidArgumentError(
        absl::StrCat("SUBACK carries ", suback->return_codes.size(), " return codes for ",
                     filters.size(), " topic filters")));
  }
  conn.subscribe_pending = false;
  for (std::size_t i = 0; i < filters.size(); ++i) {
    const std::uint8_t code = suback->return_codes[i];
    if (code == 0x80) {
      end.refused = true;
      absl::Status s = absl::PermissionDeniedError(
          absl::StrCat("mqtt: broker ", options_.broker_url, " refused subscription to '",
                       filters[i].filter, "'"));
      Log()->error("mqtt subscribe refused client_id={} error={}", options_.client_id,
                   s.ToString());
      return s;  // before the first SUBACK: Start fails with it
    }
    if (code > 2) {
      return reader.BrokerError(absl::InvalidArgumentError(
          absl::StrCat("SUBACK return code ", code, " for '", filters[i].filter, "'")));
    }
  }
  end.granted = true;
  connected_.store(true);
  ReportFirst(absl::OkStatus());
  return absl::OkStatus();
}

void Session::OnPublish(const std::shared_ptr<Connection>& conn, const Publish& publish) {
  // A persistent session may stream its queue before the SUBACK; Start() must not wait for
  // a SUBACK stuck behind a full channel that only the started pipeline drains.
  if (!Subscribed()) ReportFirst(absl::OkStatus());
  if (conn->subscribe_pending) connected_.store(true);  // a resumed session is delivering
  conn->reader_blocked.store(true, std::memory_order_relaxed);
  listener_.OnPublish(conn, publish);
  conn->MarkRead();
  conn->reader_blocked.store(false, std::memory_order_relaxed);
}

// An oversize PUBLISH is counted, logged once, and at QoS 1/2 acknowledged in its place among
// the others' acks, so the broker does not resend it forever; the connection carries on.
absl::Status Session::SkipOversizePublish(Connection& conn, PacketReader& reader,
                                          const FixedHeader& header) {
  auto skipped = reader.SkipOversizePublish(header);
  if (!skipped.ok()) return skipped.status();
  oversize_skipped_.fetch_add(1, std::memory_order_relaxed);
  Log()->warn(
      "mqtt message over max_packet_bytes skipped{} mqtt_topic={} bytes={} max_packet_bytes={} "
      "qos={} client_id={}",
      skipped->qos > 0 ? " and acknowledged" : "", skipped->topic, header.packet_size(),
      options_.max_packet_bytes, skipped->qos, options_.client_id);
  if (skipped->qos > 0) {
    if (options_.ack_mode == AckMode::kAfterPipelineAck) {
      // Behind the acknowledgements of earlier messages still in the pipeline.
      conn.Settle(conn.Track(skipped->packet_id, skipped->qos), Connection::State::kAcked);
    } else {
      std::string ack;
      AppendAck(skipped->qos == 2 ? PacketType::kPubrec : PacketType::kPuback, skipped->packet_id,
                ack);
      conn.Write(std::move(ack));
    }
  }
  return absl::OkStatus();
}

// Pings go out from here, not the reader, so they continue while the reader waits on a full
// channel; a half-open TCP connection would otherwise hang the reader for good.
void Session::KeepAliveLoop(std::stop_token st) {
  if (options_.keep_alive.count() == 0) return;
  const auto tick = std::clamp<std::chrono::milliseconds>(
      std::chrono::duration_cast<std::chrono::milliseconds>(options_.keep_alive) / 4,
      std::chrono::milliseconds(50), std::chrono::milliseconds(1000));
  std::mutex mu;
  std::condition_variable_any cv;
  std::unique_lock lock(mu);
  while (!st.stop_requested()) {
    cv.wait_for(lock, st, tick, [] { return false; });
    auto conn = CurrentConnection();
    if (!conn || !conn->handshaken.load()) continue;
    const KeepAliveAction action =
        CheckKeepAlive(options_.keep_alive,
                       {.now_ns = Nanos(now_()),
                        .last_write_ns = conn->last_write_ns.load(std::memory_order_relaxed),
                        .last_read_ns = conn->last_read_ns.load(std::memory_order_relaxed),
                        .writer_idle = conn->WriterIdle(),
                        .reader_blocked = conn->reader_blocked.load(std::memory_order_relaxed)});
    if (action.ping) conn->Write(EncodePingreq());
    if (action.dead) {
      Log()->warn("mqtt broker silent for 1.5 x keep_alive; reconnecting client_id={}",
                  options_.client_id);
      conn->transport().Shutdown();
    }
  }
}

}  // namespace dataflow::mqttconverter::internal

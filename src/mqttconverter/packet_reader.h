// PacketReader: MQTT packets from one connection's transport, for the session's reader
// thread. It holds at most one packet (up to max_packet_bytes) beyond its usual 64 KiB of
// buffer, and only while that packet is read; a PUBLISH over max_packet_bytes is read past in
// bounded chunks, never buffered. Every read stamps the connection's last-read time
// (keep-alive). Errors from the broker's bytes are Unavailable and name the broker.
// Not thread-safe: the reader thread only.
#pragma once

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "connection.h"
#include "mqtt_codec.h"

namespace dataflow::mqttconverter::internal {

class PacketReader {
 public:
  PacketReader(Connection& conn, std::size_t max_packet_bytes, std::string broker_url)
      : conn_(conn), max_packet_bytes_(max_packet_bytes), broker_url_(std::move(broker_url)) {}

  // What the next bytes hold: a complete packet (in `packet`, valid until the next call),
  // an oversize PUBLISH (its fixed header in `header`; SkipOversizePublish next), or not
  // enough yet (then ReadMore). Any other packet over max_packet_bytes is an error.
  enum class Next : std::uint8_t { kNeedMore, kPacket, kOversizePublish };
  absl::StatusOr<Next> Parse(RawPacket& packet, FixedHeader& header);
  // Reads more bytes (at least one) for the packet Parse asked for, until `deadline`.
  absl::Status ReadMore(Deadline deadline);

  // What an oversize PUBLISH was: enough to log and acknowledge it.
  struct SkippedPublish {
    std::string topic;  // bounded and escaped: outside data in a log line
    int qos = 0;
    std::uint16_t packet_id = 0;
  };
  // Reads past the oversize PUBLISH `header` Parse returned: its topic and packet id (at
  // most 65 KiB in), then the rest in chunks of the buffer's usual size.
  absl::StatusOr<SkippedPublish> SkipOversizePublish(const FixedHeader& header);

  // The broker's bytes were wrong: Unavailable, naming the broker.
  [[nodiscard]] absl::Status BrokerError(const absl::Status& s) const;

 private:
  static constexpr std::size_t kUsualSize = 64 * 1024;
  [[nodiscard]] std::string_view unparsed() const {
    return std::string_view(data_).substr(start_, end_ - start_);
  }
  // Makes room for at least one more read, for a packet of `need` bytes in all (0: not
  // known yet). Grows to the packet being read only; a buffer grown for an earlier packet
  // goes back to the usual size, so a large packet does not keep its memory.
  void Prepare(std::size_t need);
  absl::Status ReadFor(std::size_t need, Deadline deadline);

  Connection& conn_;
  const std::size_t max_packet_bytes_;
  const std::string broker_url_;
  std::string data_ = std::string(kUsualSize, '\0');
  std::size_t start_ = 0;  // [start_, end_) read but not parsed
  std::size_t end_ = 0;
  std::size_t need_ = 0;  // size of the packet being read; 0: its header is incomplete
};

}  // namespace dataflow::mqttconverter::internal

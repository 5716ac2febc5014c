#include "packet_reader.h"

#include <absl/strings/escaping.h>
#include <absl/strings/str_cat.h>

#include <algorithm>
#include <cstring>

#include "dataflow/messagepipeline/logging.h"

namespace dataflow::mqttconverter::internal {

absl::Status PacketReader::BrokerError(const absl::Status& s) const {
  return absl::UnavailableError(absl::StrCat("mqtt: from ", broker_url_, ": ", s.message()));
}

absl::StatusOr<PacketReader::Next> PacketReader::Parse(RawPacket& packet, FixedHeader& header) {
  need_ = 0;
  const std::string_view avail = unparsed();
  auto complete = ParseFixedHeader(avail, header);
  if (!complete.ok()) return BrokerError(complete.status());
  if (!*complete) return Next::kNeedMore;
  if (header.packet_size() > max_packet_bytes_) {
    if (header.type == PacketType::kPublish) return Next::kOversizePublish;
    return BrokerError(absl::InvalidArgumentError(
        absl::StrCat("packet type ", static_cast<int>(header.type), " of ", header.packet_size(),
                     " bytes is over max_packet_bytes (", max_packet_bytes_, ")")));
  }
  if (avail.size() < header.packet_size()) {
    need_ = header.packet_size();
    return Next::kNeedMore;
  }
  packet = {.type = header.type,
            .flags = header.flags,
            .body = avail.substr(header.header_size, header.remaining_length)};
  start_ += header.packet_size();
  return Next::kPacket;
}

absl::Status PacketReader::ReadMore(Deadline deadline) { return ReadFor(need_, deadline); }

void PacketReader::Prepare(std::size_t need) {
  const std::size_t avail = end_ - start_;
  const std::size_t size = std::max({kUsualSize, need, avail + 1});
  if (data_.size() != size) {
    std::string fresh(size, '\0');
    std::memcpy(fresh.data(), data_.data() + start_, avail);
    data_.swap(fresh);
    start_ = 0;
    end_ = avail;
  } else if (start_ == end_) {
    start_ = end_ = 0;
  } else if (start_ > 0 &&
             data_.size() - end_ < std::max<std::size_t>(16 * 1024, need - std::min(need, avail))) {
    std::memmove(data_.data(), data_.data() + start_, avail);
    end_ = avail;
    start_ = 0;
  }
}

absl::Status PacketReader::ReadFor(std::size_t need, Deadline deadline) {
  Prepare(need);
  auto n = conn_.transport().Read(data_.data() + end_, data_.size() - end_, deadline);
  if (!n.ok()) return n.status();
  end_ += *n;
  conn_.MarkRead();
  return absl::OkStatus();
}

absl::StatusOr<PacketReader::SkippedPublish> PacketReader::SkipOversizePublish(
    const FixedHeader& header) {
  Publish head;
  while (true) {
    const std::string_view body = unparsed().substr(header.header_size);
    auto n = ParsePublishHead(header.flags, body, header.remaining_length, head);
    if (!n.ok()) return BrokerError(n.status());
    if (*n > 0) break;
    // 2 + 65535 + 2 bytes of head at most, so this stays near the usual size.
    const std::size_t need =
        header.header_size + std::min<std::size_t>(header.remaining_length, 2 + 65535 + 2);
    if (auto s = ReadFor(need, Deadline::max()); !s.ok()) return s;
  }
  // head's views die with the buffer below.
  SkippedPublish out{.topic = absl::CHexEscape(BoundedText(head.topic, 256)),
                     .qos = head.qos,
                     .packet_id = head.packet_id};
  std::size_t left = header.packet_size();
  const std::size_t buffered = std::min(left, end_ - start_);
  start_ += buffered;
  left -= buffered;
  Prepare(0);
  while (left > 0) {
    // Never past this packet: the bytes after it belong to the next one.
    auto n = conn_.transport().Read(data_.data(), std::min(left, data_.size()), Deadline::max());
    if (!n.ok()) return n.status();
    left -= *n;
    conn_.MarkRead();
  }
  return out;
}

}  // namespace dataflow::mqttconverter::internal

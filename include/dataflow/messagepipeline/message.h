// Message: the canonical event flowing through every pipeline.
//
// A Message is MessageData (what is serialised and forwarded between services), the
// transport's attributes, and an ack handle. The handle settles exactly once: the first
// Ack() or Nack() wins and later calls are no-ops, from any thread. A Message destroyed
// unsettled is nacked and a warning is logged, so no message is ever dropped silently.
// Message is move-only; moving transfers the handle.
#pragma once

#include <absl/status/statusor.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "dataflow/messagepipeline/attributes.h"
#include "dataflow/messagepipeline/json_limits.h"

namespace dataflow::messagepipeline {

using Clock = std::chrono::system_clock;

// The part of a message that travels between services. Its JSON form matches the Go
// library's: {"id", "payload" (base64), "publishTime" (RFC 3339), "enrichmentData"}.
struct MessageData {
  std::string id;
  std::string payload;  // raw bytes
  // Clock::time_point{} means "unset"; it is written as Go's zero time, 0001-01-01T00:00:00Z.
  Clock::time_point publish_time{};
  // A JSON object, or null when nothing was added.
  nlohmann::json enrichment_data = nullptr;

  friend bool operator==(const MessageData&, const MessageData&) = default;
};

nlohmann::json ToJson(const MessageData& data);
std::string EncodeMessageData(const MessageData& data);
// Appends `text` as a JSON string: quoted, escaped as nlohmann's dump() escapes it, invalid
// UTF-8 replaced by U+FFFD (ids and keys come from users). Plain ASCII, the usual id, is
// copied as is, without building a json value.
void AppendJsonString(std::string& out, std::string_view text);
// Decodes the JSON envelope (unknown keys are ignored, and "payload": null or a missing member
// is empty, as with Go's decoder). Errors are InvalidArgument naming the offending field
// (OutOfRange for a publishTime ParseTimestamp cannot hold), or the limit an envelope beyond
// `limits` exceeds (its size, or enrichmentData nested too deep): such an envelope is refused
// before it becomes a json value.
absl::StatusOr<MessageData> DecodeMessageData(std::string_view json, const JsonLimits& limits = {});
// RFC 3339 with nanoseconds, UTC ("2026-01-02T03:04:05.123456789Z"); unset → Go's zero time.
std::string FormatTimestamp(Clock::time_point t);
// RFC 3339 with any offset. Go's zero time (0001-01-01T00:00:00Z) is "unset". A time_point
// counts nanoseconds in 64 bits, so it holds 1677-09-21 to 2262-04-11 only: a valid time
// outside that (Go accepts years 0001-9999) is OutOfRange, marked permanent, saying so;
// text that is not RFC 3339 is InvalidArgument.
absl::StatusOr<Clock::time_point> ParseTimestamp(std::string_view text);

// How a consuming service reads a message body: the envelope above, or the raw bytes
// (what an MQTT device sent, or ingestion with `payload_format: raw`).
enum class InputFormat {
  kAuto,      // an envelope if the body is one by the rule of DecodeInput, else raw
  kEnvelope,  // always an envelope; a body that does not decode is a permanent error
  kRaw,       // always raw, even a body that looks like an envelope
};
// "auto", "envelope", "raw"; InvalidArgument otherwise.
absl::StatusOr<InputFormat> ParseInputFormat(std::string_view name);
std::string_view InputFormatName(InputFormat format);

// The envelope a message body carries, by `format`; nullopt when the body is raw.
//
// The kAuto rule (docs/messagepipeline.md, "Envelope or raw"): the body is an envelope when
// it is what Go's json.Unmarshal would read as one with nothing lost: a JSON object (within
// `limits`) whose every key is one of "id", "payload", "publishTime", "enrichmentData",
// that has "payload", and whose members have the envelope's types: id a string,
// payload padded standard base64, publishTime an RFC 3339 string (these three may be null),
// enrichmentData an object or null. Anything else is raw. An envelope whose publishTime is
// outside what a time_point holds (ParseTimestamp) is still an envelope: a permanent error.
// With kEnvelope, a body that is not an envelope is a permanent error naming why.
absl::StatusOr<std::optional<MessageData>> DecodeInput(std::string_view body, InputFormat format,
                                                       const JsonLimits& limits = {});

// What Ack and Nack mean for one message source. Implementations are called at most once
// per message, by whichever thread settles it, and must be thread-safe with respect to the
// source's own threads.
class AckHandler {
 public:
  virtual ~AckHandler() = default;
  virtual void OnAck() = 0;
  virtual void OnNack() = 0;

 private:
  friend class Message;
  enum Outcome : std::uint8_t { kUnsettled, kAcked, kNacked };
  std::atomic<std::uint8_t> outcome_{kUnsettled};
};

// An AckHandler from two callables (either may be empty).
std::unique_ptr<AckHandler> MakeAckHandler(std::function<void()> on_ack,
                                           std::function<void()> on_nack);

class Message {
 public:
  Message() = default;
  explicit Message(MessageData data, Attributes attributes = {},
                   std::unique_ptr<AckHandler> handler = nullptr);
  Message(Message&& other) noexcept = default;
  Message& operator=(Message&& other) noexcept;
  Message(const Message&) = delete;
  Message& operator=(const Message&) = delete;
  ~Message();

  // Settle the message. The first call wins; later calls do nothing. Thread-safe.
  void Ack();
  void Nack();
  // True once settled, or when the message has no handle (nothing to settle).
  [[nodiscard]] bool settled() const;
  // True once settled by Nack (so a service can count what a processor settled itself).
  [[nodiscard]] bool nacked() const;

  MessageData data;
  Attributes attributes;
  std::string ordering_key;
  // 1 for the first delivery; 0 when the source does not count deliveries.
  int delivery_attempt = 0;
  // When set, the MessageData that data.payload is the envelope of (EncodeMessageData of it).
  // An in-process hop carries it beside the encoded body, so the next service takes it as is
  // instead of parsing what the last one encoded (DecodeInput(const Message&) below). Code
  // that rewrites data.payload must reset it; UnwrapInput does.
  std::shared_ptr<const MessageData> envelope;

 private:
  void SettleOnDestruction();
  std::unique_ptr<AckHandler> handler_;
};

// DecodeInput of message.data.payload, answered from message.envelope when it is set and the
// body it stands for is one the rule above reads as an envelope within `limits` (the body's
// size, and enrichmentData an object or null nested within max_depth): the same result,
// without the parse.
absl::StatusOr<std::optional<MessageData>> DecodeInput(const Message& message, InputFormat format,
                                                       const JsonLimits& limits = {});

// DecodeInput(message, ...) without its copy: the envelope the body carries, pointing into
// message.envelope when that answers, else into `parsed` (which it fills); nullptr when the
// body is raw. Valid as long as both are.
absl::StatusOr<const MessageData*> ViewInput(const Message& message, InputFormat format,
                                             std::optional<MessageData>& parsed,
                                             const JsonLimits& limits = {});

// Replaces message.data by the envelope its body carries (DecodeInput), keeping the
// transport's id and publish time where the envelope leaves them empty; a raw body leaves
// the message as it is. Returns the data it replaced (nullopt for a raw body), so a caller
// can put back what was received before dead-lettering or nacking it. The error is
// DecodeInput's (permanent).
absl::StatusOr<std::optional<MessageData>> UnwrapInput(Message& message, InputFormat format,
                                                       const JsonLimits& limits = {});

}  // namespace dataflow::messagepipeline

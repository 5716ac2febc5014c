#include "dataflow/messagepipeline/message.h"

#include <absl/strings/escaping.h>
#include <absl/strings/str_cat.h>
#include <absl/time/time.h>

#include <algorithm>
#include <chrono>

#include "dataflow/messagepipeline/errors.h"
#include "dataflow/messagepipeline/logging.h"

namespace dataflow::messagepipeline {
namespace {

constexpr std::string_view kGoZeroTime = "0001-01-01T00:00:00Z";

class CallbackAckHandler final : public AckHandler {
 public:
  CallbackAckHandler(std::function<void()> on_ack, std::function<void()> on_nack)
      : on_ack_(std::move(on_ack)), on_nack_(std::move(on_nack)) {}
  void OnAck() override {
    if (on_ack_) on_ack_();
  }
  void OnNack() override {
    if (on_nack_) on_nack_();
  }

 private:
  std::function<void()> on_ack_;
  std::function<void()> on_nack_;
};

}  // namespace

std::string FormatTimestamp(Clock::time_point t) {
  if (t == Clock::time_point{}) return std::string(kGoZeroTime);
  // Go's time.RFC3339Nano: UTC as "Z", fractional seconds without trailing zeros. Written
  // digit by digit from <chrono>'s calendar: every hop formats several (envelope, row,
  // archive line), and absl::FormatTime, then snprintf, were visible shares of a drain's CPU.
  using namespace std::chrono;  // NOLINT(google-build-using-namespace): calendar types
  const auto day = floor<days>(t);
  const year_month_day ymd{day};
  const hh_mm_ss hms{floor<seconds>(t - day)};
  auto nanos = duration_cast<nanoseconds>(t - floor<seconds>(t)).count();
  // A nanosecond time_point spans 1677-2262: the year always has four digits.
  char buf[32] = "0000-00-00T00:00:00";
  auto put = [&buf](std::size_t end, long long value, int digits) {
    for (int i = 1; i <= digits; ++i, value /= 10)
      buf[end - i] = static_cast<char>('0' + value % 10);
  };
  put(4, int{ymd.year()}, 4);
  put(7, unsigned{ymd.month()}, 2);
  put(10, unsigned{ymd.day()}, 2);
  put(13, hms.hours().count(), 2);
  put(16, hms.minutes().count(), 2);
  put(19, hms.seconds().count(), 2);
  std::size_t n = 19;
  if (nanos != 0) {
    int digits = 9;
    while (nanos % 10 == 0) {
      nanos /= 10;
      --digits;
    }
    buf[n++] = '.';
    put(n + static_cast<std::size_t>(digits), nanos, digits);
    n += static_cast<std::size_t>(digits);
  }
  buf[n++] = 'Z';
  return std::string(buf, n);
}

absl::StatusOr<Clock::time_point> ParseTimestamp(std::string_view text) {
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, std::string(text), &t, &err)) {
    return absl::InvalidArgumentError(
        absl::StrCat("not an RFC 3339 time: \"", std::string(text), "\": ", err));
  }
  // Go's zero time (and anything else before 1678 or after 2262) is outside what a
  // nanosecond time_point holds; the zero time means "unset", anything else is an error.
  if (text == kGoZeroTime) return Clock::time_point{};
  constexpr auto kMin = absl::FromUnixNanos(std::numeric_limits<int64_t>::min());
  constexpr auto kMax = absl::FromUnixNanos(std::numeric_limits<int64_t>::max());
  if (t < kMin || t > kMax) {
    // Permanent: the same text can never fit. Clamping would store a wrong time silently.
    return MarkPermanent(absl::OutOfRangeError(absl::StrCat(
        "time \"", std::string(text),
        "\" is outside 1677-09-21..2262-04-11, the range of a 64-bit nanosecond time (Go "
        "accepts years 0001-9999; this library does not carry such times)")));
  }
  return std::chrono::time_point_cast<Clock::duration>(absl::ToChronoTime(t));
}

nlohmann::json ToJson(const MessageData& data) {
  nlohmann::json j = {
      {"id", data.id},
      {"payload", absl::Base64Escape(data.payload)},
      {"publishTime", FormatTimestamp(data.publish_time)},
  };
  // Go's `omitempty`: a nil or empty map is left out.
  if (data.enrichment_data.is_object() && !data.enrichment_data.empty()) {
    j["enrichmentData"] = data.enrichment_data;
  }
  return j;
}

namespace {

// Ids and enrichment strings come from users and may hold invalid UTF-8; replace it rather
// than throw (nlohmann's default), since exceptions do not cross this API.
constexpr auto kReplaceInvalidUtf8 = nlohmann::json::error_handler_t::replace;

// dump() of `value` appended to `out`. Through dump() itself, not nlohmann's detail::
// serializer (which would skip dump()'s string): that namespace is no API, and an embedder
// may build us against another nlohmann release.
void AppendJson(std::string& out, const nlohmann::json& value) {
  out += value.dump(-1, ' ', /*ensure_ascii=*/false, kReplaceInvalidUtf8);
}

}  // namespace

void AppendJsonString(std::string& out, std::string_view text) {
  const bool plain = std::all_of(text.begin(), text.end(), [](char c) {
    return c >= 0x20 && c <= 0x7e && c != '"' && c != '\\';
  });
  if (!plain) {
    AppendJson(out, nlohmann::json(std::string(text)));
    return;
  }
  out.reserve(out.size() + text.size() + 2);
  out += '"';
  out.append(text);
  out += '"';
}

std::string EncodeMessageData(const MessageData& data) {
  // Written field by field, not through ToJson(): building a json object only to serialise it
  // copied the base64 payload twice and ran the string escaper over it, which can never need
  // escaping. The output is byte for byte ToJson(data).dump() (keys in its sorted order).
  std::string out;
  out.reserve(64 + data.id.size() + data.payload.size() * 4 / 3);
  out += '{';
  if (data.enrichment_data.is_object() && !data.enrichment_data.empty()) {
    out += "\"enrichmentData\":";
    AppendJson(out, data.enrichment_data);
    out += ',';
  }
  out += "\"id\":";
  AppendJsonString(out, data.id);
  absl::StrAppend(&out, ",\"payload\":\"", absl::Base64Escape(data.payload),
                  "\",\"publishTime\":\"", FormatTimestamp(data.publish_time), "\"}");
  return out;
}

namespace {

// The envelope's members out of a parsed object (unknown keys ignored, as Go's decoder does).
absl::StatusOr<MessageData> FromParsed(nlohmann::json& j) {
  if (!j.is_object()) return absl::InvalidArgumentError("message data: not a JSON object");
  MessageData out;
  if (auto it = j.find("id"); it != j.end() && !it->is_null()) {
    if (!it->is_string()) return absl::InvalidArgumentError("message data: \"id\" is not a string");
    out.id = it->get<std::string>();
  }
  if (auto it = j.find("payload"); it != j.end() && !it->is_null()) {
    if (!it->is_string()) {
      return absl::InvalidArgumentError("message data: \"payload\" is not a base64 string");
    }
    if (!absl::Base64Unescape(it->get_ref<const std::string&>(), &out.payload)) {
      return absl::InvalidArgumentError("message data: \"payload\" is not valid base64");
    }
  }
  if (auto it = j.find("publishTime"); it != j.end() && !it->is_null()) {
    if (!it->is_string()) {
      return absl::InvalidArgumentError("message data: \"publishTime\" is not a string");
    }
    auto t = ParseTimestamp(it->get_ref<const std::string&>());
    if (!t.ok()) {
      return MarkPermanent(
          absl::Status(t.status().code(),
                       absl::StrCat("message data: \"publishTime\": ", t.status().message())));
    }
    out.publish_time = *t;
  }
  if (auto it = j.find("enrichmentData"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) {
      return absl::InvalidArgumentError("message data: \"enrichmentData\" is not an object");
    }
    // An empty map is no map, as Go's omitempty writes it: {} decodes as null, so what is
    // decoded encodes back to itself.
    if (!it->empty()) out.enrichment_data = std::move(*it);
  }
  return out;
}

// Cheap part of the auto rule: a body that does not start with '{' or never spells the key
// "payload" (neither plainly nor with a \u escape) is raw without being parsed, which is
// what most device payloads are.
bool MayBeEnvelope(std::string_view body) {
  const std::size_t start = body.find_first_not_of(" \t\r\n");
  if (start == std::string_view::npos || body[start] != '{') return false;
  return body.find("\"payload\"") != std::string_view::npos ||
         body.find("\\u") != std::string_view::npos;
}

bool IsEnvelopeKey(const std::string& key) {
  return key == "id" || key == "payload" || key == "publishTime" || key == "enrichmentData";
}

}  // namespace

absl::StatusOr<MessageData> DecodeMessageData(std::string_view json, const JsonLimits& limits) {
  absl::StatusOr<nlohmann::json> parsed = ParseJsonBounded(json, limits);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("message data: ", parsed.status().message()));
  }
  return FromParsed(*parsed);
}

absl::StatusOr<InputFormat> ParseInputFormat(std::string_view name) {
  if (name == "auto") return InputFormat::kAuto;
  if (name == "envelope") return InputFormat::kEnvelope;
  if (name == "raw") return InputFormat::kRaw;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown input format \"", std::string(name), "\"; use auto, envelope or raw"));
}

std::string_view InputFormatName(InputFormat format) {
  switch (format) {
    case InputFormat::kAuto:
      return "auto";
    case InputFormat::kEnvelope:
      return "envelope";
    case InputFormat::kRaw:
      return "raw";
  }
  return "unknown";
}

absl::StatusOr<std::optional<MessageData>> DecodeInput(std::string_view body, InputFormat format,
                                                       const JsonLimits& limits) {
  switch (format) {
    case InputFormat::kRaw:
      return std::optional<MessageData>();
    case InputFormat::kEnvelope: {
      auto decoded = DecodeMessageData(body, limits);
      if (!decoded.ok()) return MarkPermanent(decoded.status());
      return std::optional<MessageData>(*std::move(decoded));
    }
    case InputFormat::kAuto:
      break;
  }
  if (!MayBeEnvelope(body)) return std::optional<MessageData>();
  absl::StatusOr<nlohmann::json> parsed = ParseJsonBounded(body, limits);
  if (!parsed.ok() || !parsed->is_object()) return std::optional<MessageData>();
  for (auto it = parsed->begin(); it != parsed->end(); ++it) {
    if (!IsEnvelopeKey(it.key())) return std::optional<MessageData>();
  }
  auto payload = parsed->find("payload");
  if (payload == parsed->end()) return std::optional<MessageData>();
  // Go's []byte is padded standard base64; absl would also take it unpadded.
  if (payload->is_string() && payload->get_ref<const std::string&>().size() % 4 != 0) {
    return std::optional<MessageData>();
  }
  absl::StatusOr<MessageData> decoded = FromParsed(*parsed);
  if (decoded.ok()) return std::optional<MessageData>(*std::move(decoded));
  // Go would read it as an envelope; it is one we cannot carry, not raw data.
  if (absl::IsOutOfRange(decoded.status())) return decoded.status();
  return std::optional<MessageData>();
}

std::unique_ptr<AckHandler> MakeAckHandler(std::function<void()> on_ack,
                                           std::function<void()> on_nack) {
  return std::make_unique<CallbackAckHandler>(std::move(on_ack), std::move(on_nack));
}

Message::Message(MessageData data, Attributes attributes, std::unique_ptr<AckHandler> handler)
    : data(std::move(data)), attributes(std::move(attributes)), handler_(std::move(handler)) {}

Message& Message::operator=(Message&& other) noexcept {
  if (this != &other) {
    SettleOnDestruction();
    data = std::move(other.data);
    attributes = std::move(other.attributes);
    ordering_key = std::move(other.ordering_key);
    delivery_attempt = other.delivery_attempt;
    envelope = std::move(other.envelope);
    handler_ = std::move(other.handler_);
  }
  return *this;
}

Message::~Message() { SettleOnDestruction(); }

void Message::SettleOnDestruction() {
  if (handler_ && handler_->outcome_.load(std::memory_order_acquire) == AckHandler::kUnsettled) {
    Log()->warn("message destroyed unsettled; nacking it id={}", data.id);
    Nack();
  }
}

namespace {
// The first settle wins: true if this call moved the handler out of kUnsettled.
bool Settle(std::atomic<std::uint8_t>& outcome, std::uint8_t to) {
  std::uint8_t expected = 0;
  return outcome.compare_exchange_strong(expected, to, std::memory_order_acq_rel);
}
}  // namespace

void Message::Ack() {
  if (handler_ && Settle(handler_->outcome_, AckHandler::kAcked)) handler_->OnAck();
}

void Message::Nack() {
  if (handler_ && Settle(handler_->outcome_, AckHandler::kNacked)) handler_->OnNack();
}

bool Message::settled() const {
  return !handler_ || handler_->outcome_.load(std::memory_order_acquire) != AckHandler::kUnsettled;
}

namespace {
// Whether `json` nests no deeper than `depth` (a scalar is depth 0). Recurses at most `depth`
// levels, whatever the value holds.
bool NestsWithin(const nlohmann::json& json, int depth) {
  if (!json.is_structured()) return true;
  if (depth <= 0) return false;
  for (const auto& element : json) {
    if (!NestsWithin(element, depth - 1)) return false;
  }
  return true;
}
}  // namespace

absl::StatusOr<const MessageData*> ViewInput(const Message& message, InputFormat format,
                                             std::optional<MessageData>& parsed,
                                             const JsonLimits& limits) {
  // The envelope's own object is one level; enrichmentData nests inside it.
  const MessageData* carried = message.envelope.get();
  if (carried != nullptr && format != InputFormat::kRaw &&
      message.data.payload.size() <= limits.max_bytes &&
      (carried->enrichment_data.is_null() ||
       (carried->enrichment_data.is_object() &&
        NestsWithin(carried->enrichment_data, limits.max_depth - 1)))) {
    return carried;
  }
  absl::StatusOr<std::optional<MessageData>> decoded =
      DecodeInput(message.data.payload, format, limits);
  if (!decoded.ok()) return decoded.status();
  parsed = *std::move(decoded);
  return parsed.has_value() ? &*parsed : nullptr;
}

absl::StatusOr<std::optional<MessageData>> DecodeInput(const Message& message, InputFormat format,
                                                       const JsonLimits& limits) {
  std::optional<MessageData> parsed;
  absl::StatusOr<const MessageData*> view = ViewInput(message, format, parsed, limits);
  if (!view.ok()) return view.status();
  if (parsed.has_value() || *view == nullptr) return parsed;  // the body parsed, or raw
  return std::optional<MessageData>(**view);                  // the carried envelope
}

absl::StatusOr<std::optional<MessageData>> UnwrapInput(Message& message, InputFormat format,
                                                       const JsonLimits& limits) {
  absl::StatusOr<std::optional<MessageData>> decoded = DecodeInput(message, format, limits);
  if (!decoded.ok() || !decoded->has_value()) return decoded;
  message.envelope.reset();  // data.payload will no longer be its body
  MessageData& envelope = **decoded;
  if (envelope.id.empty()) envelope.id = message.data.id;
  if (envelope.publish_time == Clock::time_point{})
    envelope.publish_time = message.data.publish_time;
  std::swap(message.data, envelope);
  return decoded;  // now the transport's data
}

bool Message::nacked() const {
  return handler_ && handler_->outcome_.load(std::memory_order_acquire) == AckHandler::kNacked;
}

}  // namespace dataflow::messagepipeline

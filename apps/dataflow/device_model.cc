#include "device_model.h"

#include <absl/strings/escaping.h>
#include <absl/strings/str_cat.h>

#include <string_view>

#include "dataflow/messagepipeline/errors.h"
#include "dataflow/messagepipeline/json_limits.h"

namespace dataflow::app {

namespace mp = messagepipeline;

void to_json(nlohmann::json& j, const DeviceInfo& d) {
  j = {{"name", d.name}, {"location", d.location}};
}
void from_json(const nlohmann::json& j, DeviceInfo& d) {
  d.name = j.at("name").get<std::string>();
  d.location = j.at("location").get<std::string>();
}

mp::TransformResult<Reading> ToReading(const mp::Message& m, mp::InputFormat format) {
  auto decoded = mp::DecodeInput(m.data.payload, format);
  if (!decoded.ok()) return decoded.status();  // permanent
  // The envelope's view when the body is one, else the message's own.
  const mp::MessageData* envelope = decoded->has_value() ? &**decoded : &m.data;
  // Device data, held to the same JSON limits as the envelope; an error quotes at most the
  // payload's first bytes, escaped (a payload may be megabytes of anything).
  absl::StatusOr<nlohmann::json> parsed = mp::ParseJsonBounded(envelope->payload);
  auto refuse = [&](absl::string_view why) {
    const std::string_view shown = std::string_view(envelope->payload).substr(0, 64);
    return mp::PermanentError(
        absl::StrCat("not a device reading (", why, "): \"",
                     absl::CHexEscape(absl::string_view(shown.data(), shown.size())),
                     envelope->payload.size() > shown.size() ? "...\"" : "\""));
  };
  if (!parsed.ok()) return refuse(parsed.status().message());
  nlohmann::json& body = *parsed;
  if (!body.is_object() || !body["deviceId"].is_string() || !body["temperature"].is_number()) {
    return refuse("needs string deviceId and number temperature");
  }
  Reading r;
  r.device_id = body["deviceId"].get<std::string>();
  r.temperature = body["temperature"].get<double>();
  if (body["humidity"].is_number()) r.humidity = body["humidity"].get<double>();
  if (const auto& sent = body["sentAt"]; sent.is_string()) {
    // Go's zero time parses to the unset time_point; that is no send time either.
    if (auto t = mp::ParseTimestamp(sent.get_ref<const std::string&>());
        t.ok() && *t != bqstore::Timestamp{}) {
      r.sent_at = *t;
    }
  }
  const auto& e = envelope->enrichment_data;
  // value() rather than operator[]: the envelope is const and the keys may be absent.
  if (e.is_object()) {
    if (auto name = e.value("name", nlohmann::json()); name.is_string()) {
      r.device_name = name.get<std::string>();
    }
    if (auto loc = e.value("location", nlohmann::json()); loc.is_string()) {
      r.location = loc.get<std::string>();
    }
  }
  r.published_at = envelope->publish_time == mp::Clock::time_point{} ? m.data.publish_time
                                                                     : envelope->publish_time;
  return std::optional<Reading>(std::move(r));
}

}  // namespace dataflow::app

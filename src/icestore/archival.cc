#include "dataflow/icestore/archival.h"

#include <absl/strings/escaping.h>
#include <absl/strings/str_cat.h>

#include <algorithm>
#include <ctime>

#include "dataflow/messagepipeline/errors.h"
#include "dataflow/messagepipeline/json_limits.h"

namespace dataflow::icestore {

using messagepipeline::Clock;

std::string EncodeArchivalLine(const ArchivalData& data) {
  // Field by field (keys in nlohmann's sorted order, as the object form wrote them): the
  // base64 payload, most of the line, never needs escaping, and the object form copied it
  // twice. Ids and keys with invalid UTF-8 get it replaced: a bad id must not stop archival.
  std::string line;
  line.reserve(128 + data.id.size() + data.batch_key.size() + data.original_payload.size() * 4 / 3);
  absl::StrAppend(&line, "{\"archivedAt\":\"", messagepipeline::FormatTimestamp(data.archived_at),
                  "\",\"batchKey\":");
  messagepipeline::AppendJsonString(line, data.batch_key);
  line += ",\"id\":";
  messagepipeline::AppendJsonString(line, data.id);
  absl::StrAppend(&line, ",\"originalPubSubPayload\":\"", absl::Base64Escape(data.original_payload),
                  "\"}\n");
  return line;
}

absl::StatusOr<ArchivalData> DecodeArchivalLine(std::string_view line,
                                                const messagepipeline::JsonLimits& limits) {
  absl::StatusOr<nlohmann::json> parsed = messagepipeline::ParseJsonBounded(line, limits);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("archival line: ", parsed.status().message()));
  }
  const nlohmann::json& j = *parsed;
  if (!j.is_object()) return absl::InvalidArgumentError("archival line is not a JSON object");
  ArchivalData out;
  auto string_field = [&](const char* name, std::string* dst) -> absl::Status {
    auto it = j.find(name);
    if (it == j.end() || !it->is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat("archival line: field '", name, "' is missing or not a string"));
    }
    *dst = it->get<std::string>();
    return absl::OkStatus();
  };
  std::string payload64, archived_at;
  for (auto [name, dst] : {std::pair{"id", &out.id}, std::pair{"batchKey", &out.batch_key},
                           std::pair{"archivedAt", &archived_at}}) {
    if (auto s = string_field(name, dst); !s.ok()) return s;
  }
  // Go writes a nil []byte as null: an empty payload.
  if (auto it = j.find("originalPubSubPayload"); it == j.end() || !it->is_null()) {
    if (auto s = string_field("originalPubSubPayload", &payload64); !s.ok()) return s;
  }
  if (!absl::Base64Unescape(payload64, &out.original_payload)) {
    return absl::InvalidArgumentError("archival line: originalPubSubPayload is not base64");
  }
  auto t = messagepipeline::ParseTimestamp(archived_at);
  if (!t.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("archival line: archivedAt: ", t.status().message()));
  }
  out.archived_at = *t;
  return out;
}

std::string SanitizeBatchKey(std::string_view key) {
  std::string out;
  out.reserve(key.size());
  std::size_t start = 0;
  while (start <= key.size()) {
    std::size_t end = key.find('/', start);
    if (end == std::string_view::npos) end = key.size();
    std::string segment;
    for (char c : key.substr(start, end - start)) {
      const auto u = static_cast<unsigned char>(c);
      segment.push_back(u < 0x20 || u == 0x7f || c == '\\' ? '_' : c);
    }
    // Empty, "." and ".." segments would make a leading '/', "//" or climb out of the prefix.
    if (!segment.empty() && segment != "." && segment != "..") {
      if (!out.empty()) out.push_back('/');
      out += segment;
    }
    start = end + 1;
  }
  if (out.empty()) out = "_";
  return out;
}

bool IsSafeBatchKey(std::string_view key) { return SanitizeBatchKey(key) == key; }

absl::StatusOr<std::string> MakeSafeBatchKey(std::string_view key, std::size_t max_bytes) {
  std::string safe = SanitizeBatchKey(key);
  if (safe.size() > max_bytes) {
    return messagepipeline::PermanentError(absl::StrCat(
        "batch key of ", safe.size(), " bytes exceeds the limit of ", max_bytes, " bytes"));
  }
  return safe;
}

absl::Status ValidateLocation(std::string_view location) {
  auto refuse = [&](std::string_view why) {
    // The value is device data: quote it escaped, never raw control bytes into a log.
    return messagepipeline::PermanentError(absl::StrCat(
        "archival: location \"",
        absl::CHexEscape(
            absl::string_view(location.data(), std::min<std::size_t>(location.size(), 64))),
        location.size() > 64 ? "..." : "",
        "\" is not a valid batch key segment: ", absl::string_view(why.data(), why.size())));
  };
  if (location == "." || location == "..") return refuse("a relative path");
  for (char c : location) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '/' || c == '\\') return refuse("contains a path separator");
    if (u < 0x20 || u == 0x7f) return refuse("contains a control character");
  }
  return absl::OkStatus();
}

namespace {

namespace mp = messagepipeline;

// The publish day (now when unset) as YYYY/MM/DD, UTC: the date part of FormatTimestamp, once
// per archived message.
std::string DayKey(Clock::time_point publish_time, Clock::time_point now) {
  const Clock::time_point when = publish_time == Clock::time_point{} ? now : publish_time;
  std::string key = mp::FormatTimestamp(when).substr(0, 10);  // YYYY-MM-DD
  key[4] = key[7] = '/';
  return key;
}

mp::TransformResult<ArchivalData> Transform(const mp::Message& message, mp::InputFormat format,
                                            ArchivalKey key_kind) {
  const Clock::time_point now = Clock::now();
  std::optional<mp::MessageData> parsed;
  auto view = mp::ViewInput(message, format, parsed);
  if (!view.ok()) return view.status();  // permanent
  // What the body says about itself when it is an envelope, else the transport's view.
  const mp::MessageData* envelope = *view;
  const std::string& id = envelope && !envelope->id.empty() ? envelope->id : message.data.id;
  const Clock::time_point published = envelope && envelope->publish_time != Clock::time_point{}
                                          ? envelope->publish_time
                                          : message.data.publish_time;
  const nlohmann::json& enrichment =
      envelope ? envelope->enrichment_data : message.data.enrichment_data;
  std::string key = DayKey(published, now);
  if (key_kind == ArchivalKey::kDayLocation) {
    std::string location;
    if (enrichment.is_object()) {
      auto it = enrichment.find("location");
      if (it != enrichment.end() && it->is_string()) location = it->get<std::string>();
    }
    // The Go code consults the attribute only when there is no enrichment data at all; we
    // also fall back when the enrichment lacks a location, which loses nothing.
    if (location.empty()) {
      if (auto it = message.attributes.find("location"); it != message.attributes.end()) {
        location = it->second;
      }
    }
    if (!location.empty()) {
      // Device data: refuse a location that is not one plain path segment rather than guess
      // what it meant. Sending it again cannot change it, so the message is dead-lettered.
      if (auto s = ValidateLocation(location); !s.ok()) return s;
      absl::StrAppend(&key, "/", location);
    }
  }
  return std::optional<ArchivalData>(ArchivalData{.id = id,
                                                  .batch_key = std::move(key),
                                                  .original_payload = message.data.payload,
                                                  .archived_at = now});
}

}  // namespace

mp::MessageTransformer<ArchivalData> MakeArchivalTransformer(mp::InputFormat format,
                                                             ArchivalKey key) {
  return [format, key](const mp::Message& message) { return Transform(message, format, key); };
}

mp::TransformResult<ArchivalData> ArchivalTransformer(const mp::Message& message) {
  return Transform(message, mp::InputFormat::kAuto, ArchivalKey::kDayLocation);
}

mp::TransformResult<ArchivalData> DayArchivalTransformer(const mp::Message& message) {
  return Transform(message, mp::InputFormat::kAuto, ArchivalKey::kDay);
}

}  // namespace dataflow::icestore

// Where an enrichment key comes from, and which fields of the looked-up document are kept.
//
// Keys: a path into the JSON payload ("device.id", "ids[0]"), an attribute, or a segment of
// the MQTT topic (the usual IoT layout `devices/<id>/telemetry` has the device id at segment
// 1), several of them tried in order. A non-empty string value is the key; anything else
// (absent, empty, null, a number, an object) is no key.
//
// Results: by default every field of the looked-up document is merged into
// `enrichmentData`; a field list keeps only the named fields, optionally renamed. Named fields
// can also be copied into attributes (today's use: `location`, by which icestore groups its
// archives). Thread-safe: everything here is immutable once built.
#pragma once

#include <absl/status/statusor.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "dataflow/enrichment/enricher.h"
#include "dataflow/messagepipeline/json_limits.h"

namespace dataflow::enrichment {

// A path into a JSON document: member names separated by '.', array indices in brackets
// ("a.b[0].c", "[2]"). A name holding '.', '[' or ']' cannot be written in this syntax.
class JsonPath {
 public:
  // InvalidArgument naming the position of the first error.
  static absl::StatusOr<JsonPath> Parse(std::string_view text);
  // A path of one member, whatever characters its name holds.
  static JsonPath Member(std::string name);

  // The value at the path, or null when any step is missing or of the wrong type.
  [[nodiscard]] const nlohmann::json* Find(const nlohmann::json& document) const;
  // The key at the path in JSON text: the value Find() gives in ParseJsonBounded(json_text,
  // limits) when it is a non-empty string; nullopt for any other value, or for text that is
  // not JSON within `limits` (of duplicate members the last counts). Read in one pass without
  // building the document, which was most of an enrichment's CPU per message.
  [[nodiscard]] std::optional<std::string> FindKeyIn(
      std::string_view json_text, const messagepipeline::JsonLimits& limits = {}) const;
  [[nodiscard]] const std::string& text() const { return text_; }

  using Step = std::variant<std::string, std::size_t>;  // a member name or an array index

 private:
  std::vector<Step> steps_;
  std::string text_;
};

// The key at `path` in the JSON payload; no key when the payload is not JSON.
KeyExtractor<std::string> PayloadPathKey(JsonPath path);
// Segment `index` (0-based) of the '/'-separated topic in `attribute` (the MQTT topic that
// ingestion records in `mqtt_topic`); no key for a missing or empty segment.
KeyExtractor<std::string> TopicSegmentKey(std::size_t index, std::string attribute = "mqtt_topic");
// The first key any of `extractors` finds, tried in order.
KeyExtractor<std::string> FirstKey(std::vector<KeyExtractor<std::string>> extractors);

// One field of the looked-up document and the name it is stored under.
struct FieldMapping {
  std::string from;
  std::string to;  // empty: the same name
};

struct DocumentSelection {
  // Fields merged into enrichmentData; empty: every field of the document.
  std::vector<FieldMapping> fields;
  // Fields copied into attributes (string values as they are, other scalars as JSON text).
  std::vector<FieldMapping> attributes;
};

// An applier for JSON documents that keeps what `selection` names. A document that is not a
// JSON object is stored whole under "enrichment" (as JsonApplier does) and sets no attribute.
Applier<nlohmann::json> SelectingApplier(DocumentSelection selection);

}  // namespace dataflow::enrichment

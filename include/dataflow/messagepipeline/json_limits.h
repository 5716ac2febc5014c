// ParseJsonBounded: the one JSON parser for data from outside the process (envelopes, archive
// lines, cached values, payloads), with a size and a nesting-depth limit.
//
// nlohmann::json copies, compares and serialises recursively, so a document nested 100 000
// deep is a stack overflow waiting for the first copy. The limits are checked while parsing,
// before a level beyond `max_depth` is built: a too-deep document never becomes a json value.
// Errors are InvalidArgument (callers decide whether that is permanent for a message).
// Pure functions; thread-safe.
#pragma once

#include <absl/status/statusor.h>

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string_view>

namespace dataflow::messagepipeline {

// Containers nested in one another: `[]` is depth 1, `{"a":[1]}` depth 2, a scalar depth 0.
inline constexpr int kDefaultJsonMaxDepth = 64;
// A Pub/Sub message is at most 10 MB; this leaves room for an envelope around a large MQTT
// payload (base64 adds a third) while refusing what no sender of ours produces.
inline constexpr std::size_t kDefaultJsonMaxBytes = std::size_t{64} << 20;

// Structural (usable as a template argument, e.g. cache::JsonCodec<V, JsonLimits{...}>).
struct JsonLimits {
  int max_depth = kDefaultJsonMaxDepth;
  std::size_t max_bytes = kDefaultJsonMaxBytes;
};

// Parses `text` as one JSON document within `limits`. InvalidArgument saying which limit was
// exceeded, or "not valid JSON" with the byte offset of the error (never the input's text).
absl::StatusOr<nlohmann::json> ParseJsonBounded(std::string_view text,
                                                const JsonLimits& limits = {});

}  // namespace dataflow::messagepipeline

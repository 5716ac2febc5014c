// ArchivalData and ArchivalTransformer: what icestore writes, one JSON line per message.
//
// A line is {"id", "batchKey", "originalPubSubPayload" (base64), "archivedAt" (RFC 3339)},
// the Go library's field names, so archives written by either read the same. The batch
// key groups messages into objects: "YYYY/MM/DD" of the publish time (now if unset), plus
// "/<location>" from the enrichment data or, failing that, the `location` attribute.
// A location must be one plain path segment (ValidateLocation): one that is not is a
// permanent error for that message (dead-lettered), never a failed batch. Keys become
// object-name segments, so a custom transformer's key is sanitised: it can never climb out
// of the prefix ("..", "."), start with "/", or carry control characters.
// Everything here is a pure function: thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "dataflow/messagepipeline/json_limits.h"
#include "dataflow/messagepipeline/message.h"
#include "dataflow/messagepipeline/transformer.h"

namespace dataflow::icestore {

struct ArchivalData {
  std::string id;
  std::string batch_key;
  std::string original_payload;  // raw bytes, base64 in JSON
  messagepipeline::Clock::time_point archived_at{};

  friend bool operator==(const ArchivalData&, const ArchivalData&) = default;
};

// One JSONL line, with the trailing '\n'.
std::string EncodeArchivalLine(const ArchivalData& data);
// Parses a line written by EncodeArchivalLine (or the Go library); InvalidArgument on error,
// including a line beyond `limits` (refused before it becomes a json value).
absl::StatusOr<ArchivalData> DecodeArchivalLine(std::string_view line,
                                                const messagepipeline::JsonLimits& limits = {});

// Makes `key` safe as a relative object path: empty, "." and ".." segments are dropped
// (so no leading '/', no "//", no climbing), control characters and '\\' become '_', and
// an empty result becomes "_". Idempotent.
std::string SanitizeBatchKey(std::string_view key);
// True if SanitizeBatchKey(key) == key; uploaders refuse other keys.
bool IsSafeBatchKey(std::string_view key);
// What the service does with every key: SanitizeBatchKey, then at most `max_bytes` bytes
// (keys become directory and object names), else InvalidArgument marked permanent (the
// message is dead-lettered; truncating would silently merge distinct keys).
absl::StatusOr<std::string> MakeSafeBatchKey(std::string_view key, std::size_t max_bytes);

// OK if `location` can be a batch key segment: not "." or "..", no '/', '\\', NUL or other
// control character. Otherwise InvalidArgument marked permanent (messagepipeline::IsPermanent).
absl::Status ValidateLocation(std::string_view location);

// How a transformer groups messages into objects.
enum class ArchivalKey {
  kDayLocation,  // YYYY/MM/DD/<location>: the Go library's
  // YYYY/MM/DD only: for archives of messages whose location may be the very thing that
  // made them fail (a dead-letter archive), so it never refuses one.
  kDay,
};

// The Go library's transformer (minus its test-only attribute hook). The message body is
// archived as received (originalPubSubPayload: the envelope itself when it is one); when it
// is an envelope (`format`, messagepipeline::DecodeInput), the id, the publish day and the
// location come from the envelope (its enrichmentData), falling back to the transport's.
// Permanent error for a location ValidateLocation refuses, or an envelope that does not
// decode (kEnvelope) or whose time cannot be held.
messagepipeline::MessageTransformer<ArchivalData> MakeArchivalTransformer(
    messagepipeline::InputFormat format = messagepipeline::InputFormat::kAuto,
    ArchivalKey key = ArchivalKey::kDayLocation);
// MakeArchivalTransformer() and MakeArchivalTransformer(kAuto, kDay), as functions.
messagepipeline::TransformResult<ArchivalData> ArchivalTransformer(
    const messagepipeline::Message& message);
messagepipeline::TransformResult<ArchivalData> DayArchivalTransformer(
    const messagepipeline::Message& message);

}  // namespace dataflow::icestore

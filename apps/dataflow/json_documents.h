// A JSON file of documents by key, {"<key>": {...}, ...}: the embedded stand-in for a
// Firestore collection (the demo's device registry, `cache.json_file` in configs).
#pragma once

#include <absl/status/statusor.h>

#include <cstddef>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

namespace dataflow::app {

// A whole registry is read at once, so it may be larger than one message; nesting is held to
// messagepipeline::kDefaultJsonMaxDepth like any JSON from outside.
inline constexpr std::size_t kMaxJsonDocumentsBytes = std::size_t{256} << 20;

// The file's object; NotFound if it cannot be read, InvalidArgument (naming the file and the
// key) if it is not an object of objects, or beyond the limits (kMaxJsonDocumentsBytes, 64
// levels).
absl::StatusOr<nlohmann::json> LoadJsonDocuments(const std::string& path);

}  // namespace dataflow::app

// A JSON file of documents by key, {"<key>": {...}, ...}: the embedded stand-in for a
// Firestore collection (the demo's device registry, `cache.json_file` in configs).
#pragma once

#include <absl/status/statusor.h>

#include <nlohmann/json.hpp>
#include <string>

namespace dataflow::app {

// The file's object; NotFound if it cannot be read, InvalidArgument (naming the file and the
// key) if it is not an object of objects.
absl::StatusOr<nlohmann::json> LoadJsonDocuments(const std::string& path);

}  // namespace dataflow::app

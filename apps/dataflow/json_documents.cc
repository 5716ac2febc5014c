#include "json_documents.h"

#include <absl/strings/str_cat.h>

#include <fstream>
#include <iterator>
#include <system_error>

#include "dataflow/messagepipeline/json_limits.h"

namespace dataflow::app {

absl::StatusOr<nlohmann::json> LoadJsonDocuments(const std::string& path) {
  // Held to the same limits as JSON from the network: its values are merged into envelopes,
  // and the size is checked before the file is read.
  const messagepipeline::JsonLimits limits{.max_bytes = kMaxJsonDocumentsBytes};
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return absl::NotFoundError("cannot read " + path);
  if (size > limits.max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", size, " bytes exceeds the limit of ", limits.max_bytes, " bytes"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError("cannot read " + path);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto documents = messagepipeline::ParseJsonBounded(text, limits);
  if (!documents.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", documents.status().message()));
  }
  if (!documents->is_object()) {
    return absl::InvalidArgumentError(path + ": expected a JSON object of documents by key");
  }
  for (const auto& [key, value] : documents->items()) {
    if (!value.is_object()) {
      return absl::InvalidArgumentError(path + ": document \"" + key + "\" is not an object");
    }
  }
  return documents;
}

}  // namespace dataflow::app

#include "json_documents.h"

#include <fstream>

namespace dataflow::app {

absl::StatusOr<nlohmann::json> LoadJsonDocuments(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError("cannot read " + path);
  auto documents = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (documents.is_discarded()) return absl::InvalidArgumentError(path + ": not valid JSON");
  if (!documents.is_object()) {
    return absl::InvalidArgumentError(path + ": expected a JSON object of documents by key");
  }
  for (const auto& [key, value] : documents.items()) {
    if (!value.is_object()) {
      return absl::InvalidArgumentError(path + ": document \"" + key + "\" is not an object");
    }
  }
  return documents;
}

}  // namespace dataflow::app

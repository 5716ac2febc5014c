// The json_file cache source: metadata from a JSON object file {"<key>": {...}}, the embedded
// source of truth (Firestore's stand-in in the demo).
#include "backends.h"
#include "json_documents.h"

namespace dataflow::app {
namespace {

using Json = nlohmann::json;

class JsonFileSource final : public cache::Fetcher<std::string, Json> {
 public:
  explicit JsonFileSource(Json documents) : documents_(std::move(documents)) {}
  absl::StatusOr<Json> Fetch(const std::string& key) override {
    auto it = documents_.find(key);
    if (it == documents_.end()) return absl::NotFoundError("no document " + key);
    return it.value();
  }
  absl::Status Close() override { return absl::OkStatus(); }

 private:
  Json documents_;
};

}  // namespace

void RegisterJsonFileBackend(Backends& backends) {
  backends.cache_sources.Register(
      "json_file",
      [](const CacheChainConfig& c,
         const BuildContext& /*context*/) -> absl::StatusOr<CacheSource> {
        auto documents = LoadJsonDocuments(*c.json_file);
        if (!documents.ok()) return documents.status();
        return std::make_shared<JsonFileSource>(*std::move(documents));
      });
}

}  // namespace dataflow::app

// The firestore cache source. Compiled only when the cache_firestore target is built
// (apps/dataflow/CMakeLists.txt).
#include "backends.h"
#include "dataflow/cache/firestore.h"

namespace dataflow::app {

void RegisterFirestoreBackend(Backends& backends) {
  backends.cache_sources.Register(
      "firestore",
      [](const CacheChainConfig& c, const BuildContext& context) -> absl::StatusOr<CacheSource> {
        auto fs = cache::Firestore<std::string, nlohmann::json>::Create(
            {.project_id = context.Project(c.firestore->project),
             .collection_name = c.firestore->collection,
             .database_id = c.firestore->database});
        if (!fs.ok()) return fs.status();
        return CacheSource(*std::move(fs));
      });
}

}  // namespace dataflow::app

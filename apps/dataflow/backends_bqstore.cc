// The sqlite table backend: rows as the config's `schema:` describes them, into a local
// SQLite table (the embedded warehouse).
#include <filesystem>

#include "backends.h"
#include "dataflow/bqstore/schema_sqlite_inserter.h"
#include "dataflow/messagepipeline/errors.h"

namespace dataflow::app {

void RegisterSqliteBackend(Backends& backends) {
  backends.tables.Register(
      "sqlite",
      [](const BigQueryConfig& c, const BuildContext& /*context*/) -> absl::StatusOr<RowInserter> {
        auto converter = bqstore::RowConverter::Create(c.columns);
        if (!converter.ok()) return messagepipeline::Annotate(converter.status(), "schema");
        std::error_code ignored;  // SQLite reports a directory that cannot be made clearly
        std::filesystem::create_directories(std::filesystem::path(c.sqlite->path).parent_path(),
                                            ignored);
        auto sqlite = bqstore::SchemaSqliteInserter::Create(
            {.path = c.sqlite->path, .table = c.sqlite->table}, *converter);
        if (!sqlite.ok()) return messagepipeline::Annotate(sqlite.status(), "sqlite");
        return RowInserter(*std::move(sqlite));
      });
}

}  // namespace dataflow::app

// The bigquery table backend: BigQuery's Storage Write API (or a local server speaking it).
// Only in builds whose bqstore package has the Storage Write client.
#include "backends.h"
#ifdef DATAFLOW_APP_HAS_STORAGE_WRITE
#include "dataflow/bqstore/schema_bigquery_inserter.h"
#include "dataflow/gcp/channel.h"
#include "dataflow/messagepipeline/errors.h"

namespace dataflow::app {

void RegisterBigQueryBackend(Backends& backends) {
  backends.tables.Register(
      "bigquery",
      [](const BigQueryConfig& c, const BuildContext& context) -> absl::StatusOr<RowInserter> {
        bqstore::SchemaBigQueryInserterOptions options;
        options.writer.project_id = context.Project(c.bigquery->project);
        options.writer.dataset_id = c.bigquery->dataset;
        options.writer.table_id = c.bigquery->table;
        options.table.create_if_missing = c.bigquery->create_table;
        options.table.create_dataset = c.bigquery->create_dataset;
        options.admin.endpoint = c.bigquery->rest_endpoint;
        if (!c.bigquery->grpc_endpoint.empty()) {
          options.writer.channel.endpoint = c.bigquery->grpc_endpoint;
          // Plaintext only to this machine or with BIGQUERY_EMULATOR_HOST set; else TLS.
          options.writer.channel.insecure =
              gcp::PlaintextAllowed(c.bigquery->grpc_endpoint, "BIGQUERY_EMULATOR_HOST");
        }
        options.columns = c.columns;  // empty with from_table
        options.sources = c.sources;
        auto bq = bqstore::SchemaBigQueryInserter::Create(std::move(options));
        if (!bq.ok()) return messagepipeline::Annotate(bq.status(), "table");
        return RowInserter(*std::move(bq));
      });
}

}  // namespace dataflow::app
#endif  // DATAFLOW_APP_HAS_STORAGE_WRITE

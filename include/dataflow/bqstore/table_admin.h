// BigQuery table management over the REST API (gcp::HttpClient, libcurl by default): get a table's
// schema, create a dataset or a table from a schema (with time partitioning and clustering), add
// columns. EnsureTable() is what the inserters call at start-up: create if missing, else check the
// existing table against the writer's schema and name the mismatching fields.
// BIGQUERY_EMULATOR_HOST (host:port) selects plain HTTP to a local server; an https
// endpoint gets bearer tokens from Google Application Default Credentials unless a token or
// provider is given. Thread-safe.
#pragma once

#include <absl/status/statusor.h>

#include <memory>
#include <string>
#include <vector>

#include "dataflow/bqstore/schema.h"
#include "dataflow/gcp/access_token.h"
#include "dataflow/gcp/http_client.h"

namespace dataflow::bqstore {

struct TableAdminOptions {
  std::string project_id;
  // Base URL; empty: http://$BIGQUERY_EMULATOR_HOST if set, else https://bigquery.googleapis.com.
  std::string endpoint;
  // A fixed OAuth2 bearer token; wins over `token_provider`.
  std::string access_token;
  // Asked for a token on every request (it caches). Null with no access_token: for an https
  // endpoint gcp::MakeDefaultAccessTokenProvider(), and Create fails when no credentials
  // exist; for http (BIGQUERY_EMULATOR_HOST, local servers) no Authorization header.
  std::shared_ptr<gcp::AccessTokenProvider> token_provider;
  long timeout_ms = 30000;
  // The transport; null: gcp::MakeCurlHttpClient().
  std::shared_ptr<gcp::HttpClient> http;
};

struct TableOptions {
  bool create_if_missing = true;
  bool create_dataset = false;  // also create the dataset when it is missing
  std::string partition_field;  // a TIMESTAMP column for DAY partitioning; empty: none
  std::vector<std::string> clustering_fields;
};

class TableAdmin {
 public:
  static absl::StatusOr<std::unique_ptr<TableAdmin>> Create(TableAdminOptions options);
  ~TableAdmin();

  // NotFound when the table (or dataset) does not exist.
  absl::StatusOr<TableSchema> GetTableSchema(const std::string& dataset, const std::string& table);
  // AlreadyExists when it exists.
  absl::Status InsertDataset(const std::string& dataset);
  absl::Status InsertTable(const std::string& dataset, const std::string& table,
                           const TableSchema& schema, const TableOptions& options = {});
  // Replaces the table's schema (BigQuery allows adding NULLABLE columns this way).
  absl::Status PatchSchema(const std::string& dataset, const std::string& table,
                           const TableSchema& schema);
  // The table's schema after creating the table if needed; InvalidArgument naming the
  // fields when an existing table does not fit `schema`.
  absl::StatusOr<TableSchema> EnsureTable(const std::string& dataset, const std::string& table,
                                          const TableSchema& schema, const TableOptions& options);

 private:
  struct Response {
    long code = 0;
    std::string body;
  };
  explicit TableAdmin(TableAdminOptions options);
  absl::StatusOr<Response> Call(const std::string& method, const std::string& path,
                                const std::string& body);
  TableAdminOptions options_;
};

}  // namespace dataflow::bqstore

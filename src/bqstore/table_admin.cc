#include "dataflow/bqstore/table_admin.h"

#include <absl/strings/str_cat.h>

#include <chrono>
#include <cstdlib>

#include "dataflow/messagepipeline/errors.h"

namespace dataflow::bqstore {
namespace {

// Maps an HTTP error to a status code the way Google's REST clients do.
absl::Status HttpStatus(long code, const std::string& what, const std::string& body) {
  std::string message = body;
  auto json = nlohmann::json::parse(body, nullptr, false);
  if (!json.is_discarded() && json.contains("error") && json["error"].is_object()) {
    message = json["error"].value("message", body);
  }
  message = absl::StrCat(what, ": HTTP ", code, ": ", message);
  switch (code) {
    case 400:
      return absl::InvalidArgumentError(message);
    case 401:
      return absl::UnauthenticatedError(message);
    case 403:
      return absl::PermissionDeniedError(message);
    case 404:
      return absl::NotFoundError(message);
    case 408:
      return absl::DeadlineExceededError(message);
    case 409:
      return absl::AlreadyExistsError(message);
    case 412:
      return absl::FailedPreconditionError(message);
    case 429:
      return absl::ResourceExhaustedError(message);
    default:
      return code >= 500 ? absl::UnavailableError(message) : absl::UnknownError(message);
  }
}

// A 4xx about the request itself (a bad name or schema) cannot succeed when sent again, so
// it is marked permanent. 401/403/404 (credentials, IAM, a dataset not created yet), 408, 429
// and 5xx are fixed outside the message and stay transient.
absl::Status HttpError(long code, const std::string& what, const std::string& body) {
  absl::Status status = HttpStatus(code, what, body);
  if (code >= 400 && code < 500 && code != 401 && code != 403 && code != 404 && code != 408 &&
      code != 429) {
    return messagepipeline::MarkPermanent(std::move(status));
  }
  return status;
}

}  // namespace

TableAdmin::TableAdmin(TableAdminOptions options) : options_(std::move(options)) {}
TableAdmin::~TableAdmin() = default;

absl::StatusOr<std::unique_ptr<TableAdmin>> TableAdmin::Create(TableAdminOptions options) {
  if (options.project_id.empty())
    return absl::InvalidArgumentError("table admin: project_id is required");
  if (options.endpoint.empty()) {
    const char* emulator = std::getenv("BIGQUERY_EMULATOR_HOST");
    options.endpoint = (emulator && *emulator) ? absl::StrCat("http://", emulator)
                                               : "https://bigquery.googleapis.com";
  }
  if (!options.access_token.empty()) {
    options.token_provider = gcp::MakeStaticAccessTokenProvider(options.access_token);
  } else if (!options.token_provider && options.endpoint.starts_with("https://")) {
    // Only https can be Google; plain http is the emulator or a test server, which take none.
    auto adc = gcp::MakeDefaultAccessTokenProvider();
    if (!adc.ok()) {
      return absl::Status(
          adc.status().code(),
          absl::StrCat("table admin: no access_token or token_provider given and no default "
                       "credentials for ",
                       options.endpoint, " (set BIGQUERY_EMULATOR_HOST for a local server): ",
                       adc.status().message()));
    }
    options.token_provider = *std::move(adc);
  }
  if (!options.http) options.http = gcp::MakeCurlHttpClient();
  return std::unique_ptr<TableAdmin>(new TableAdmin(std::move(options)));
}

absl::StatusOr<TableAdmin::Response> TableAdmin::Call(const std::string& method,
                                                      const std::string& path,
                                                      const std::string& body) {
  const std::string url =
      absl::StrCat(options_.endpoint, "/bigquery/v2/projects/", options_.project_id, path);
  gcp::HttpRequest request{.method = method,
                           .url = url,
                           .headers = {{"Content-Type", "application/json"}},
                           .body = body,
                           .timeout = std::chrono::milliseconds(options_.timeout_ms)};
  if (options_.token_provider) {
    auto token = options_.token_provider->Token();
    if (!token.ok()) {
      return absl::Status(
          token.status().code(),
          absl::StrCat(method, " ", url, ": no access token: ", token.status().message()));
    }
    request.headers["Authorization"] = absl::StrCat("Bearer ", *token);
  }
  auto sent = options_.http->Send(request);  // its errors name the method and URL
  if (!sent.ok()) return sent.status();
  return Response{.code = sent->status, .body = std::move(sent->body)};
}

absl::StatusOr<TableSchema> TableAdmin::GetTableSchema(const std::string& dataset,
                                                       const std::string& table) {
  auto r = Call("GET", absl::StrCat("/datasets/", dataset, "/tables/", table), "");
  if (!r.ok()) return r.status();
  if (r->code != 200) return HttpError(r->code, "tables.get " + dataset + "." + table, r->body);
  auto json = nlohmann::json::parse(r->body, nullptr, false);
  if (json.is_discarded() || !json.contains("schema")) {
    return absl::InternalError("tables.get: response without a schema");
  }
  return SchemaFromJson(json["schema"]);
}

absl::Status TableAdmin::InsertDataset(const std::string& dataset) {
  nlohmann::json body = {
      {"datasetReference", {{"projectId", options_.project_id}, {"datasetId", dataset}}}};
  auto r = Call("POST", "/datasets", body.dump());
  if (!r.ok()) return r.status();
  if (r->code != 200) return HttpError(r->code, "datasets.insert " + dataset, r->body);
  return absl::OkStatus();
}

absl::Status TableAdmin::InsertTable(const std::string& dataset, const std::string& table,
                                     const TableSchema& schema, const TableOptions& options) {
  nlohmann::json body = {
      {"tableReference",
       {{"projectId", options_.project_id}, {"datasetId", dataset}, {"tableId", table}}},
      {"schema", SchemaToJson(schema)}};
  if (!options.partition_field.empty()) {
    body["timePartitioning"] = {{"type", "DAY"}, {"field", options.partition_field}};
  }
  if (!options.clustering_fields.empty()) {
    body["clustering"] = {{"fields", options.clustering_fields}};
  }
  auto r = Call("POST", absl::StrCat("/datasets/", dataset, "/tables"), body.dump());
  if (!r.ok()) return r.status();
  if (r->code != 200) return HttpError(r->code, "tables.insert " + dataset + "." + table, r->body);
  return absl::OkStatus();
}

absl::Status TableAdmin::PatchSchema(const std::string& dataset, const std::string& table,
                                     const TableSchema& schema) {
  nlohmann::json body = {{"schema", SchemaToJson(schema)}};
  auto r = Call("PATCH", absl::StrCat("/datasets/", dataset, "/tables/", table), body.dump());
  if (!r.ok()) return r.status();
  if (r->code != 200) return HttpError(r->code, "tables.patch " + dataset + "." + table, r->body);
  return absl::OkStatus();
}

absl::StatusOr<TableSchema> TableAdmin::EnsureTable(const std::string& dataset,
                                                    const std::string& table,
                                                    const TableSchema& schema,
                                                    const TableOptions& options) {
  auto existing = GetTableSchema(dataset, table);
  if (existing.ok()) {
    if (auto s = CheckCompatible(schema, *existing); !s.ok()) {
      return messagepipeline::PermanentError(
          absl::StrCat("table ", dataset, ".", table, ": ", s.message()));
    }
    return existing;
  }
  if (!absl::IsNotFound(existing.status()) || !options.create_if_missing) return existing.status();
  if (options.create_dataset) {
    absl::Status s = InsertDataset(dataset);
    if (!s.ok() && !absl::IsAlreadyExists(s)) return s;
  }
  absl::Status s = InsertTable(dataset, table, schema, options);
  if (!s.ok() && !absl::IsAlreadyExists(s)) return s;  // a racing copy created it: fine
  if (absl::IsAlreadyExists(s)) return EnsureTable(dataset, table, schema, {});
  return schema;
}

}  // namespace dataflow::bqstore

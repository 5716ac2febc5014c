#include "dataflow/bqstore/table_admin.h"

#include <absl/strings/str_cat.h>
#include <curl/curl.h>

#include <cstdlib>
#include <mutex>

namespace dataflow::bqstore {
namespace {

std::size_t WriteBody(char* data, std::size_t size, std::size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

// Maps an HTTP error to a status code the way Google's REST clients do.
absl::Status HttpError(long code, const std::string& what, const std::string& body) {
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
  static std::once_flag curl_init;
  std::call_once(curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  return std::unique_ptr<TableAdmin>(new TableAdmin(std::move(options)));
}

absl::StatusOr<TableAdmin::Response> TableAdmin::Call(const std::string& method,
                                                      const std::string& path,
                                                      const std::string& body) {
  const std::string url =
      absl::StrCat(options_.endpoint, "/bigquery/v2/projects/", options_.project_id, path);
  std::string authorization;
  if (options_.token_provider) {
    auto token = options_.token_provider->Token();
    if (!token.ok()) {
      return absl::Status(
          token.status().code(),
          absl::StrCat(method, " ", url, ": no access token: ", token.status().message()));
    }
    authorization = absl::StrCat("Authorization: Bearer ", *token);
  }
  CURL* curl = curl_easy_init();
  if (!curl) return absl::InternalError("curl_easy_init failed");
  Response response;
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  if (!authorization.empty()) headers = curl_slist_append(headers, authorization.c_str());
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, options_.timeout_ms);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &WriteBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response.body);
  if (!body.empty()) {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  }
  const CURLcode rc = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.code);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK) {
    return absl::UnavailableError(absl::StrCat(method, " ", url, ": ", curl_easy_strerror(rc)));
  }
  return response;
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
      return absl::InvalidArgumentError(
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

// A credentials JSON file (service_account, authorized_user, external_account,
// impersonated_service_account) to the token source it describes (token_source.h). Errors
// name the file and the field, never a secret.
#include <absl/strings/match.h>
#include <absl/strings/str_cat.h>

#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string_view>

#include "token_source.h"

namespace dataflow::gcp::internal {
namespace {

constexpr char kGenerateAccessTokenSuffix[] = ":generateAccessToken";

// `where` prefixes every error: "credentials file F" or "credentials file F: source_credentials".
absl::Status FieldError(const std::string& where, const std::string& field,
                        absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": field \"", field, "\" ", problem));
}

absl::StatusOr<std::string> RequiredString(const nlohmann::json& json, const std::string& where,
                                           const char* field) {
  if (!json.contains(field)) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": missing field \"", field, "\""));
  }
  if (!json[field].is_string() || json[field].get<std::string>().empty()) {
    return FieldError(where, field, "must be a non-empty string");
  }
  return json[field].get<std::string>();
}

std::string OptionalString(const nlohmann::json& json, const char* field) {
  return json.contains(field) && json[field].is_string() ? json[field].get<std::string>()
                                                         : std::string();
}

// Like OptionalString, but a present field of another type is an error, not silently "".
absl::StatusOr<std::string> OptionalStringField(const nlohmann::json& json,
                                                const std::string& where, const char* field) {
  if (!json.contains(field) || json[field].is_null()) return std::string();
  if (!json[field].is_string()) return FieldError(where, field, "must be a string");
  return json[field].get<std::string>();
}

// service_account_impersonation_url (+ delegates, lifetime) -> Impersonation.
absl::StatusOr<Impersonation> ParseImpersonation(const std::string& url, const std::string& where,
                                                 const char* field) {
  constexpr std::string_view kMarker = "/serviceAccounts/";
  const std::size_t at = url.rfind(kMarker);
  const absl::string_view suffix = kGenerateAccessTokenSuffix;
  if (at == std::string::npos || url.size() <= at + kMarker.size() + suffix.size() ||
      !absl::EndsWith(url, suffix)) {
    return FieldError(where, field,
                      "must be an IAM Credentials URL ending in "
                      "/serviceAccounts/EMAIL:generateAccessToken");
  }
  Impersonation out;
  out.url = url;
  out.email = url.substr(at + kMarker.size(), url.size() - at - kMarker.size() - suffix.size());
  return out;
}

absl::StatusOr<std::vector<std::string>> ParseDelegates(const nlohmann::json& json,
                                                        const std::string& where) {
  std::vector<std::string> out;
  if (!json.contains("delegates") || json["delegates"].is_null()) return out;
  if (!json["delegates"].is_array()) return FieldError(where, "delegates", "must be a list");
  for (const auto& d : json["delegates"]) {
    if (!d.is_string() || d.get<std::string>().empty()) {
      return FieldError(where, "delegates", "must hold non-empty strings");
    }
    // IAM wants resource names; gcloud and users may write bare emails.
    std::string name = d.get<std::string>();
    out.push_back(absl::StartsWith(name, "projects/") ? name
                                                      : "projects/-/serviceAccounts/" + name);
  }
  return out;
}

absl::StatusOr<SubjectTokenSource> ParseCredentialSource(const nlohmann::json& json,
                                                         const std::string& where) {
  if (!json.contains("credential_source")) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": missing field \"credential_source\""));
  }
  const auto& cs = json["credential_source"];
  if (!cs.is_object()) return FieldError(where, "credential_source", "must be an object");
  if (cs.contains("executable")) {
    return absl::InvalidArgumentError(absl::StrCat(
        where,
        ": executable-sourced credentials (credential_source.executable) are not supported: a "
        "credentials file that names a program to run is code execution (Google's own clients "
        "refuse it unless GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1). Run the program "
        "yourself to keep a file fresh and use a \"file\" source"));
  }
  if (cs.contains("environment_id")) {
    return absl::InvalidArgumentError(absl::StrCat(
        where,
        ": AWS credential sources (credential_source.environment_id) are not supported (they "
        "need AWS SigV4 request signing); use a \"file\" or \"url\" source"));
  }
  SubjectTokenSource out;
  const std::string cs_where = where + ": credential_source";
  auto file = OptionalStringField(cs, cs_where, "file");
  if (!file.ok()) return file.status();
  auto url = OptionalStringField(cs, cs_where, "url");
  if (!url.ok()) return url.status();
  if (file->empty() == url->empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(cs_where, R"(: give exactly one of "file" and "url")"));
  }
  out.file = *file;
  out.url = *url;
  if (cs.contains("headers") && !cs["headers"].is_null()) {
    if (!cs["headers"].is_object()) return FieldError(cs_where, "headers", "must be an object");
    for (const auto& [name, value] : cs["headers"].items()) {
      if (!value.is_string()) {
        return FieldError(cs_where, "headers",
                          absl::StrCat("value of \"", name, "\" must be a string"));
      }
      out.headers.emplace_back(name, value.get<std::string>());
    }
  }
  if (cs.contains("format") && !cs["format"].is_null()) {
    const auto& format = cs["format"];
    const std::string f_where = cs_where + ": format";
    if (!format.is_object()) return FieldError(cs_where, "format", "must be an object");
    auto type = OptionalStringField(format, f_where, "type");
    if (!type.ok()) return type.status();
    if (*type == "json") {
      auto field = RequiredString(format, f_where, "subject_token_field_name");
      if (!field.ok()) return field.status();
      out.json_field = *field;
    } else if (!type->empty() && *type != "text") {
      return FieldError(f_where, "type", absl::StrCat("is \"", *type, "\"; want text or json"));
    }
  }
  return out;
}

absl::StatusOr<std::unique_ptr<TokenSource>> ParseCredentials(const nlohmann::json& json,
                                                              const std::string& file,
                                                              const std::string& where,
                                                              const AccessTokenOptions& options,
                                                              bool nested) {
  auto type = RequiredString(json, where, "type");
  if (!type.ok()) return type.status();
  std::string token_uri = options.token_uri;
  if (token_uri.empty()) token_uri = OptionalString(json, "token_uri");
  if (token_uri.empty()) token_uri = kGoogleTokenUri;
  const TokenHttpFunction http = options.http ? options.http : TokenHttpFunction(&CurlSend);

  if (*type == "service_account") {
    auto email = RequiredString(json, where, "client_email");
    if (!email.ok()) return email.status();
    auto pem = RequiredString(json, where, "private_key");
    if (!pem.ok()) return pem.status();
    auto key = ParsePrivateKey(*pem, where);
    if (!key.ok()) return key.status();
    // As an impersonation source, the token must be allowed to call IAM Credentials.
    return NewServiceAccountSource(
        file, *email, OptionalString(json, "private_key_id"), *key, token_uri,
        nested ? std::string(kCloudPlatformScope) : options.scope, http, options.request_timeout);
  }
  if (*type == "authorized_user") {
    auto client_id = RequiredString(json, where, "client_id");
    if (!client_id.ok()) return client_id.status();
    auto secret = RequiredString(json, where, "client_secret");
    if (!secret.ok()) return secret.status();
    auto refresh = RequiredString(json, where, "refresh_token");
    if (!refresh.ok()) return refresh.status();
    return NewAuthorizedUserSource(file, *client_id, *secret, *refresh, token_uri, http,
                                   options.request_timeout);
  }
  if (nested) {
    return FieldError(where, "type",
                      absl::StrCat("is \"", *type,
                                   "\"; source credentials must be service_account or "
                                   "authorized_user"));
  }
  if (*type == "impersonated_service_account") {
    auto url = RequiredString(json, where, "service_account_impersonation_url");
    if (!url.ok()) return url.status();
    auto impersonation = ParseImpersonation(*url, where, "service_account_impersonation_url");
    if (!impersonation.ok()) return impersonation.status();
    auto delegates = ParseDelegates(json, where);
    if (!delegates.ok()) return delegates.status();
    impersonation->delegates = *std::move(delegates);
    if (!json.contains("source_credentials")) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": missing field \"source_credentials\""));
    }
    if (!json["source_credentials"].is_object()) {
      return FieldError(where, "source_credentials", "must be an object");
    }
    auto source = ParseCredentials(json["source_credentials"], file, where + ": source_credentials",
                                   options, /*nested=*/true);
    if (!source.ok()) return source.status();
    return NewImpersonatedSource(file, *std::move(source), *std::move(impersonation), options.scope,
                                 http, options.request_timeout);
  }
  if (*type == "external_account") {
    ExternalAccountConfig c{.file = file, .scope = options.scope};
    for (auto [field, out] : {std::pair{"audience", &c.audience},
                              std::pair{"subject_token_type", &c.subject_token_type},
                              std::pair{"token_url", &c.token_url}}) {
      auto value = RequiredString(json, where, field);
      if (!value.ok()) return value.status();
      *out = *value;
    }
    auto subject = ParseCredentialSource(json, where);
    if (!subject.ok()) return subject.status();
    c.subject = *std::move(subject);
    for (auto [field, out] :
         {std::pair{"client_id", &c.client_id}, std::pair{"client_secret", &c.client_secret},
          std::pair{"workforce_pool_user_project", &c.workforce_pool_user_project}}) {
      auto value = OptionalStringField(json, where, field);
      if (!value.ok()) return value.status();
      *out = *value;
    }
    // STS accepts a user project only for workforce pools; saying so here beats its 400.
    if (!c.workforce_pool_user_project.empty() &&
        !absl::StrContains(c.audience, "/workforcePools/")) {
      return FieldError(where, "workforce_pool_user_project",
                        "is only valid with a workforce pool audience "
                        "(//iam.googleapis.com/locations/L/workforcePools/P/providers/X)");
    }
    auto url = OptionalStringField(json, where, "service_account_impersonation_url");
    if (!url.ok()) return url.status();
    if (!url->empty()) {
      auto impersonation = ParseImpersonation(*url, where, "service_account_impersonation_url");
      if (!impersonation.ok()) return impersonation.status();
      if (json.contains("service_account_impersonation") &&
          json["service_account_impersonation"].is_object()) {
        const auto& sai = json["service_account_impersonation"];
        if (sai.contains("token_lifetime_seconds")) {
          const auto& l = sai["token_lifetime_seconds"];
          // IAM's limits: 10 minutes to 12 hours (above 1 h only with an org policy).
          if (!l.is_number_integer() || l.get<std::int64_t>() < 600 ||
              l.get<std::int64_t>() > 43200) {
            return FieldError(where, "service_account_impersonation.token_lifetime_seconds",
                              "must be an integer from 600 to 43200");
          }
          impersonation->lifetime = std::chrono::seconds(l.get<std::int64_t>());
        }
      }
      c.impersonation = *std::move(impersonation);
    }
    return NewExternalAccountSource(std::move(c), http, options.request_timeout);
  }
  return absl::InvalidArgumentError(absl::StrCat(
      where, ": credentials type \"", *type,
      "\" is not supported (supported: service_account, authorized_user, external_account, "
      "impersonated_service_account)"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<TokenSource>> LoadCredentialsFile(
    const std::string& file, const AccessTokenOptions& options) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("credentials file ", file, " cannot be read"));
  }
  std::stringstream text;
  text << in.rdbuf();
  auto json = nlohmann::json::parse(text.str(), nullptr, false);
  if (json.is_discarded() || !json.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("credentials file ", file, ": not a JSON object"));
  }
  return ParseCredentials(json, file, absl::StrCat("credentials file ", file), options,
                          /*nested=*/false);
}

}  // namespace dataflow::gcp::internal

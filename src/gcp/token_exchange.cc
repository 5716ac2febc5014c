// One OAuth token request and its answer, shared by every token source (token_source.h):
// the request, the error an endpoint's answer becomes, IAM Credentials' generateAccessToken,
// and the redaction every error of an exchange that carried a secret passes through.
#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>
#include <absl/strings/str_replace.h>
#include <absl/strings/str_split.h>

#include <nlohmann/json.hpp>

#include "dataflow/gcp/http_client.h"
#include "dataflow/messagepipeline/message.h"
#include "token_source.h"

namespace dataflow::gcp::internal {
namespace {

// The OAuth endpoint answers errors as {"error": "...", "error_description": "..."}; the
// metadata server as plain text. Either way the text reaches the caller.
absl::Status TokenHttpError(const std::string& what, const TokenHttpRequest& req,
                            const TokenHttpResponse& resp) {
  std::string detail = resp.body.substr(0, 500);
  auto json = nlohmann::json::parse(resp.body, nullptr, false);
  if (!json.is_discarded() && json.is_object()) {
    std::vector<std::string> parts;
    for (const char* key : {"error", "error_description"}) {
      if (json.contains(key) && json[key].is_string())
        parts.push_back(json[key].get<std::string>());
    }
    // Some Google endpoints nest it: {"error": {"message": ...}}.
    if (json.contains("error") && json["error"].is_object()) {
      parts.push_back(json["error"].value("message", std::string()));
    }
    if (!parts.empty()) detail = absl::StrJoin(parts, ": ");
  }
  const std::string message =
      absl::StrCat(what, ": ", req.method, " ", req.url, ": HTTP ", resp.status, ": ", detail);
  if (resp.status == 400 || resp.status == 401) return absl::UnauthenticatedError(message);
  if (resp.status == 403) return absl::PermissionDeniedError(message);
  if (resp.status == 404) return absl::NotFoundError(message);
  if (resp.status == 408 || resp.status == 429 || resp.status >= 500) {
    return absl::UnavailableError(message);
  }
  return absl::UnknownError(message);
}

}  // namespace

absl::StatusOr<TokenHttpResponse> CurlSend(const TokenHttpRequest& request) {
  static const std::shared_ptr<HttpClient> client = MakeCurlHttpClient();
  HttpRequest r{.method = request.method,
                .url = request.url,
                .body = request.body,
                .timeout = request.timeout,
                .connect_timeout = request.timeout};
  for (const auto& [name, value] : request.headers) r.headers[name] = value;
  auto sent = client->Send(r);
  if (!sent.ok()) return sent.status();
  return TokenHttpResponse{
      .status = sent->status, .headers = std::move(sent->headers), .body = std::move(sent->body)};
}

absl::StatusOr<TokenHttpResponse> SendTokenRequest(const std::string& what,
                                                   const TokenHttpFunction& http,
                                                   const TokenHttpRequest& req) {
  absl::StatusOr<TokenHttpResponse> resp;
  try {
    resp = http(req);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(what, ": HTTP transport threw: ", e.what()));
  }
  if (!resp.ok()) {
    return absl::Status(resp.status().code(), absl::StrCat(what, ": ", resp.status().message()));
  }
  if (resp->status != 200) return TokenHttpError(what, req, *resp);
  return resp;
}

absl::StatusOr<FetchedToken> ExchangeForToken(const std::string& what,
                                              const TokenHttpFunction& http,
                                              const TokenHttpRequest& req) {
  auto resp = SendTokenRequest(what, http, req);
  if (!resp.ok()) return resp.status();
  auto json = nlohmann::json::parse(resp->body, nullptr, false);
  if (json.is_discarded() || !json.is_object() || !json.contains("access_token") ||
      !json["access_token"].is_string() || json["access_token"].get<std::string>().empty()) {
    return absl::InternalError(absl::StrCat(
        what, ": ", req.url, " answered 200 without an access_token: ", resp->body.substr(0, 200)));
  }
  FetchedToken out{.token = json["access_token"].get<std::string>(),
                   // Google's tokens live an hour; assume that if the field is missing.
                   .lifetime = std::chrono::seconds(3600)};
  if (json.contains("expires_in") && json["expires_in"].is_number()) {
    out.lifetime = std::chrono::seconds(json["expires_in"].get<std::int64_t>());
  }
  return out;
}

absl::Status Redact(const absl::Status& status, std::initializer_list<absl::string_view> secrets) {
  if (status.ok()) return status;
  std::string message(status.message());
  for (absl::string_view secret : secrets) {
    if (secret.empty()) continue;
    std::vector<absl::string_view> pieces = {secret};
    for (absl::string_view part : absl::StrSplit(secret, '.')) {
      if (part.size() >= 16 && part.size() < secret.size()) pieces.push_back(part);
    }
    for (absl::string_view piece : pieces) {
      message = absl::StrReplaceAll(message, {{piece, "[redacted]"}});
    }
  }
  return {status.code(), message};
}

absl::StatusOr<FetchedToken> GenerateAccessToken(
    const std::string& what, const TokenHttpFunction& http, const std::string& url,
    const std::string& bearer, const std::string& scope, const std::vector<std::string>& delegates,
    std::chrono::seconds lifetime, std::chrono::system_clock::time_point now,
    std::chrono::milliseconds timeout) {
  nlohmann::json body = {{"scope", nlohmann::json::array({scope})},
                         {"lifetime", absl::StrCat(lifetime.count(), "s")}};
  if (!delegates.empty()) body["delegates"] = delegates;
  TokenHttpRequest req{
      .method = "POST",
      .url = url,
      .headers = {{"Content-Type", "application/json"}, {"Authorization", "Bearer " + bearer}},
      .body = body.dump(),
      .timeout = timeout};
  auto resp = SendTokenRequest(what, http, req);
  if (!resp.ok()) return Redact(resp.status(), {bearer});
  // The answer is {"accessToken": ..., "expireTime": RFC 3339}; never quoted in an error,
  // since it holds a token.
  auto json = nlohmann::json::parse(resp->body, nullptr, false);
  if (json.is_discarded() || !json.is_object() || !json.contains("accessToken") ||
      !json["accessToken"].is_string() || json["accessToken"].get<std::string>().empty() ||
      !json.contains("expireTime") || !json["expireTime"].is_string()) {
    return absl::InternalError(
        absl::StrCat(what, ": ", url, " answered 200 without accessToken and expireTime"));
  }
  const std::string expire_text = json["expireTime"].get<std::string>();
  auto expire = messagepipeline::ParseTimestamp(expire_text);
  if (!expire.ok()) {
    return absl::InternalError(
        absl::StrCat(what, ": expireTime \"", expire_text, "\" is not an RFC 3339 time"));
  }
  const auto left = std::chrono::duration_cast<std::chrono::seconds>(*expire - now);
  if (left <= std::chrono::seconds::zero()) {
    return absl::InternalError(absl::StrCat(what, ": the token's expireTime ", expire_text,
                                            " is not in the future (clock skew?)"));
  }
  return FetchedToken{.token = json["accessToken"].get<std::string>(), .lifetime = left};
}

}  // namespace dataflow::gcp::internal

#include "dataflow/gcp/access_token.h"

#include <absl/strings/ascii.h>
#include <absl/strings/escaping.h>
#include <absl/strings/match.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>
#include <absl/strings/str_replace.h>
#include <absl/strings/str_split.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string_view>

#include "dataflow/gcp/http_client.h"
#include "dataflow/messagepipeline/logging.h"
#include "dataflow/messagepipeline/message.h"

namespace dataflow::gcp {
namespace {

using Clock = std::function<std::chrono::system_clock::time_point()>;

constexpr char kJwtBearerGrant[] = "urn:ietf:params:oauth:grant-type:jwt-bearer";
// RFC 8693 token exchange, as Google's Security Token Service implements it.
constexpr char kTokenExchangeGrant[] = "urn:ietf:params:oauth:grant-type:token-exchange";
constexpr char kAccessTokenType[] = "urn:ietf:params:oauth:token-type:access_token";
constexpr char kGenerateAccessTokenSuffix[] = ":generateAccessToken";
constexpr char kDefaultMetadataHost[] = "metadata.google.internal";
constexpr char kMetadataTokenPath[] = "/computeMetadata/v1/instance/service-accounts/default/token";
// Google accepts assertions valid for at most an hour.
constexpr std::chrono::seconds kAssertionLifetime{3600};

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

std::string Base64Url(std::string_view bytes) {
  // JWTs use unpadded base64url, which is what WebSafeBase64Escape produces.
  return absl::WebSafeBase64Escape(absl::string_view(bytes.data(), bytes.size()));
}

std::string OpenSslError() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return buf;
}

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

struct FetchedToken {
  std::string token;
  std::chrono::seconds lifetime{0};
};

// Where tokens come from; called by one thread at a time (CachingProvider serialises).
class TokenSource {
 public:
  virtual ~TokenSource() = default;
  virtual absl::StatusOr<FetchedToken> Fetch(std::chrono::system_clock::time_point now) = 0;
  [[nodiscard]] virtual std::string Describe() const = 0;
};

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

// Sends one token request; a transport failure or a non-200 answer is an error naming `what`.
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

// Endpoints may echo what they were sent (an STS rejecting a subject token may quote it), so
// every error from an exchange that carried a secret passes through here before it leaves:
// the secret, and each long '.'-separated part of it (a JWT's header, claims, signature),
// become "[redacted]".
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

// IAM Credentials' generateAccessToken: a token for the service account named in `url`
// (".../serviceAccounts/EMAIL:generateAccessToken"), paid for with `bearer`, the caller's
// own token, which needs roles/iam.serviceAccountTokenCreator on that account.
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

class ServiceAccountSource : public TokenSource {
 public:
  ServiceAccountSource(std::string file, std::string email, std::string key_id,
                       std::shared_ptr<EVP_PKEY> key, std::string token_uri, std::string scope,
                       TokenHttpFunction http, std::chrono::milliseconds timeout)
      : file_(std::move(file)),
        email_(std::move(email)),
        key_id_(std::move(key_id)),
        key_(std::move(key)),
        token_uri_(std::move(token_uri)),
        scope_(std::move(scope)),
        http_(std::move(http)),
        timeout_(timeout) {}

  absl::StatusOr<FetchedToken> Fetch(std::chrono::system_clock::time_point now) override {
    auto jwt = Assertion(now);
    if (!jwt.ok()) return jwt.status();
    TokenHttpRequest req{
        .method = "POST",
        .url = token_uri_,
        .headers = {{"Content-Type", "application/x-www-form-urlencoded"}},
        .body = absl::StrCat("grant_type=", UrlEncode(kJwtBearerGrant), "&assertion=", *jwt),
        .timeout = timeout_};
    return ExchangeForToken(absl::StrCat("service account ", email_), http_, req);
  }

  [[nodiscard]] std::string Describe() const override {
    return absl::StrCat("service account ", email_, " from ", file_);
  }

 private:
  absl::StatusOr<std::string> Assertion(std::chrono::system_clock::time_point now) {
    const std::int64_t iat =
        std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
    nlohmann::json header = {{"alg", "RS256"}, {"typ", "JWT"}};
    if (!key_id_.empty()) header["kid"] = key_id_;
    const nlohmann::json claims = {{"iss", email_},
                                   {"scope", scope_},
                                   {"aud", token_uri_},
                                   {"iat", iat},
                                   {"exp", iat + kAssertionLifetime.count()}};
    const std::string signing_input =
        absl::StrCat(Base64Url(header.dump()), ".", Base64Url(claims.dump()));
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    std::size_t len = 0;
    const auto* in = reinterpret_cast<const unsigned char*>(signing_input.data());
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_.get()) != 1 ||
        EVP_DigestSign(ctx.get(), nullptr, &len, in, signing_input.size()) != 1) {
      return absl::InternalError(
          absl::StrCat("signing the JWT for ", email_, ": ", OpenSslError()));
    }
    std::string signature(len, '\0');
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &len, in,
                       signing_input.size()) != 1) {
      return absl::InternalError(
          absl::StrCat("signing the JWT for ", email_, ": ", OpenSslError()));
    }
    signature.resize(len);
    return absl::StrCat(signing_input, ".", Base64Url(signature));
  }

  std::string file_, email_, key_id_;
  std::shared_ptr<EVP_PKEY> key_;
  std::string token_uri_, scope_;
  TokenHttpFunction http_;
  std::chrono::milliseconds timeout_;
};

class AuthorizedUserSource : public TokenSource {
 public:
  AuthorizedUserSource(std::string file, std::string client_id, std::string client_secret,
                       std::string refresh_token, std::string token_uri, TokenHttpFunction http,
                       std::chrono::milliseconds timeout)
      : file_(std::move(file)),
        client_id_(std::move(client_id)),
        client_secret_(std::move(client_secret)),
        refresh_token_(std::move(refresh_token)),
        token_uri_(std::move(token_uri)),
        http_(std::move(http)),
        timeout_(timeout) {}

  absl::StatusOr<FetchedToken> Fetch(std::chrono::system_clock::time_point) override {
    TokenHttpRequest req{
        .method = "POST",
        .url = token_uri_,
        .headers = {{"Content-Type", "application/x-www-form-urlencoded"}},
        .body = absl::StrCat("grant_type=refresh_token&client_id=", UrlEncode(client_id_),
                             "&client_secret=", UrlEncode(client_secret_),
                             "&refresh_token=", UrlEncode(refresh_token_)),
        .timeout = timeout_};
    return ExchangeForToken(absl::StrCat("user credentials from ", file_), http_, req);
  }

  [[nodiscard]] std::string Describe() const override {
    return absl::StrCat("user credentials from ", file_);
  }

 private:
  std::string file_, client_id_, client_secret_, refresh_token_, token_uri_;
  TokenHttpFunction http_;
  std::chrono::milliseconds timeout_;
};

class MetadataSource : public TokenSource {
 public:
  MetadataSource(std::string base, TokenHttpFunction http, std::chrono::milliseconds timeout)
      : base_(std::move(base)), http_(std::move(http)), timeout_(timeout) {}

  absl::StatusOr<FetchedToken> Fetch(std::chrono::system_clock::time_point) override {
    TokenHttpRequest req{.method = "GET",
                         .url = base_ + kMetadataTokenPath,
                         .headers = {{"Metadata-Flavor", "Google"}},
                         .timeout = timeout_};
    return ExchangeForToken("metadata server", http_, req);
  }

  [[nodiscard]] std::string Describe() const override {
    return absl::StrCat("metadata server ", base_);
  }

 private:
  std::string base_;
  TokenHttpFunction http_;
  std::chrono::milliseconds timeout_;
};

// Where an external account's subject token is read from, and how it is written there.
struct SubjectTokenSource {
  std::string file;  // exactly one of file and url
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;  // url only
  std::string json_field;  // empty: the whole content is the token ("text" format)

  [[nodiscard]] std::string Describe() const {
    return file.empty() ? absl::StrCat("url ", url) : absl::StrCat("file ", file);
  }
};

// The token from `content`. Errors name the place and the field, never the content: it is
// (or holds) a credential.
absl::StatusOr<std::string> ExtractSubjectToken(const std::string& content,
                                                const SubjectTokenSource& source) {
  if (source.json_field.empty()) {
    // A file written with `echo` ends in a newline that is no part of any token.
    std::string token(absl::StripAsciiWhitespace(content));
    if (token.empty()) {
      return absl::UnavailableError(absl::StrCat("subject token ", source.Describe(), ": empty"));
    }
    return token;
  }
  auto json = nlohmann::json::parse(content, nullptr, false);
  if (json.is_discarded() || !json.is_object()) {
    return absl::UnavailableError(absl::StrCat("subject token ", source.Describe(),
                                               ": not a JSON object (format type is json)"));
  }
  auto field = json.find(source.json_field);
  if (field == json.end() || !field->is_string() || field->get<std::string>().empty()) {
    return absl::UnavailableError(absl::StrCat("subject token ", source.Describe(),
                                               ": no non-empty string field \"", source.json_field,
                                               "\""));
  }
  return field->get<std::string>();
}

// Read on every exchange: the file is rotated, and the URL's token expires, on their owner's
// schedule (a Kubernetes projected token, a CI job's OIDC token).
absl::StatusOr<std::string> ReadSubjectToken(const SubjectTokenSource& source,
                                             const TokenHttpFunction& http,
                                             std::chrono::milliseconds timeout) {
  if (!source.file.empty()) {
    std::ifstream in(source.file, std::ios::binary);
    if (!in) {
      return absl::UnavailableError(
          absl::StrCat("subject token file ", source.file, " cannot be read"));
    }
    std::stringstream text;
    text << in.rdbuf();
    return ExtractSubjectToken(text.str(), source);
  }
  TokenHttpRequest req{
      .method = "GET", .url = source.url, .headers = source.headers, .timeout = timeout};
  auto resp = SendTokenRequest("subject token url", http, req);
  if (!resp.ok()) return resp.status();
  return ExtractSubjectToken(resp->body, source);
}

// What generateAccessToken needs for one impersonated service account.
struct Impersonation {
  std::string url;    // .../serviceAccounts/EMAIL:generateAccessToken
  std::string email;  // from the url, for messages
  std::vector<std::string> delegates;
  std::chrono::seconds lifetime{3600};
};

// Workload and workforce identity federation: a token from another identity provider (the
// subject token) exchanged at Google's STS for a federated access token, optionally then
// exchanged at IAM Credentials for a service account's token.
class ExternalAccountSource : public TokenSource {
 public:
  struct Config {
    std::string file, audience, subject_token_type, token_url;
    SubjectTokenSource subject;
    std::string client_id, client_secret, workforce_pool_user_project;
    std::optional<Impersonation> impersonation;
    std::string scope;
  };
  ExternalAccountSource(Config config, TokenHttpFunction http, std::chrono::milliseconds timeout)
      : c_(std::move(config)), http_(std::move(http)), timeout_(timeout) {}

  absl::StatusOr<FetchedToken> Fetch(std::chrono::system_clock::time_point now) override {
    auto subject = ReadSubjectToken(c_.subject, http_, timeout_);
    if (!subject.ok()) {
      return absl::Status(subject.status().code(), absl::StrCat("external account ", c_.audience,
                                                                ": ", subject.status().message()));
    }
    // The federated token must be able to call IAM Credentials when it is only a step.
    const std::string scope = c_.impersonation ? kCloudPlatformScope : c_.scope;
    std::string body =
        absl::StrCat("grant_type=", UrlEncode(kTokenExchangeGrant),
                     "&requested_token_type=", UrlEncode(kAccessTokenType),
                     "&subject_token=", UrlEncode(*subject),
                     "&subject_token_type=", UrlEncode(c_.subject_token_type),
                     "&audience=", UrlEncode(c_.audience), "&scope=", UrlEncode(scope));
    TokenHttpRequest req{.method = "POST",
                         .url = c_.token_url,
                         .headers = {{"Content-Type", "application/x-www-form-urlencoded"}},
                         .timeout = timeout_};
    if (!c_.client_id.empty()) {
      // An OAuth client authenticates the exchange itself (RFC 6749 Basic auth); then the
      // workforce pool user project is billed through the client, not sent as an option.
      req.headers.emplace_back(
          "Authorization",
          "Basic " + absl::Base64Escape(absl::StrCat(c_.client_id, ":", c_.client_secret)));
    } else if (!c_.workforce_pool_user_project.empty()) {
      body += "&options=" +
              UrlEncode(nlohmann::json{{"userProject", c_.workforce_pool_user_project}}.dump());
    }
    req.body = std::move(body);
    auto sts = ExchangeForToken(absl::StrCat("token exchange for ", c_.audience), http_, req);
    if (!sts.ok()) return Redact(sts.status(), {*subject, c_.client_secret});
    if (!c_.impersonation) return sts;
    auto out =
        GenerateAccessToken(absl::StrCat("impersonating ", c_.impersonation->email), http_,
                            c_.impersonation->url, sts->token, c_.scope,
                            c_.impersonation->delegates, c_.impersonation->lifetime, now, timeout_);
    if (!out.ok()) return Redact(out.status(), {*subject, sts->token});
    return out;
  }

  [[nodiscard]] std::string Describe() const override {
    std::string out = absl::StrCat("external account ", c_.audience, " (subject token from ",
                                   c_.subject.Describe(), ") from ", c_.file);
    if (c_.impersonation) absl::StrAppend(&out, ", impersonating ", c_.impersonation->email);
    return out;
  }

 private:
  const Config c_;
  TokenHttpFunction http_;
  std::chrono::milliseconds timeout_;
};

// gcloud's `auth application-default login --impersonate-service-account`: the source
// credentials' token buys the service account's token at IAM Credentials on every refresh.
class ImpersonatedSource : public TokenSource {
 public:
  ImpersonatedSource(std::string file, std::unique_ptr<TokenSource> source,
                     Impersonation impersonation, std::string scope, TokenHttpFunction http,
                     std::chrono::milliseconds timeout)
      : file_(std::move(file)),
        source_(std::move(source)),
        impersonation_(std::move(impersonation)),
        scope_(std::move(scope)),
        http_(std::move(http)),
        timeout_(timeout) {}

  absl::StatusOr<FetchedToken> Fetch(std::chrono::system_clock::time_point now) override {
    auto source = source_->Fetch(now);
    if (!source.ok()) return source.status();
    auto out = GenerateAccessToken(
        absl::StrCat("impersonating ", impersonation_.email), http_, impersonation_.url,
        source->token, scope_, impersonation_.delegates, impersonation_.lifetime, now, timeout_);
    if (!out.ok()) return Redact(out.status(), {source->token});
    return out;
  }

  [[nodiscard]] std::string Describe() const override {
    return absl::StrCat("service account ", impersonation_.email, " impersonated by ",
                        source_->Describe(), " (", file_, ")");
  }

 private:
  std::string file_;
  std::unique_ptr<TokenSource> source_;
  Impersonation impersonation_;
  std::string scope_;
  TokenHttpFunction http_;
  std::chrono::milliseconds timeout_;
};

class StaticProvider : public AccessTokenProvider {
 public:
  explicit StaticProvider(std::string token) : token_(std::move(token)) {}
  absl::StatusOr<std::string> Token() override { return token_; }

 private:
  std::string token_;
};

class CachingProvider : public AccessTokenProvider {
 public:
  CachingProvider(std::unique_ptr<TokenSource> source, Clock clock, std::chrono::seconds margin)
      : source_(std::move(source)), clock_(std::move(clock)), margin_(margin) {}

  absl::StatusOr<std::string> Token() override {
    std::unique_lock lock(mu_);
    const std::uint64_t seen = completed_;
    while (true) {
      const auto now = clock_();
      if (!token_.empty() && now < refresh_at_) return token_;
      if (!refreshing_) break;
      // Someone else is refreshing; a token that has not expired yet is still good to send.
      if (!token_.empty() && now < expires_at_) return token_;
      cv_.wait(lock, [&] { return !refreshing_; });
      // Share the refresh we waited for, failure included: no stampede on a failing endpoint.
      if (completed_ != seen && !last_error_.ok()) return last_error_;
    }
    refreshing_ = true;
    lock.unlock();
    const auto started = clock_();
    absl::StatusOr<FetchedToken> fetched;
    try {
      fetched = source_->Fetch(started);
    } catch (const std::exception& e) {
      fetched = absl::InternalError(absl::StrCat("fetching an access token threw: ", e.what()));
    }
    lock.lock();
    refreshing_ = false;
    ++completed_;
    cv_.notify_all();
    if (!fetched.ok()) {
      last_error_ = fetched.status();
      return last_error_;
    }
    last_error_ = absl::OkStatus();
    token_ = std::move(fetched->token);
    // Timed from the request's start, so the cache never outlives the real token; a short-
    // lived token is refreshed at half its life rather than on every call.
    const auto lifetime = fetched->lifetime;
    expires_at_ = started + lifetime;
    refresh_at_ = expires_at_ - std::min<std::chrono::seconds>(margin_, lifetime / 2);
    return token_;
  }

 private:
  const std::unique_ptr<TokenSource> source_;
  const Clock clock_;
  const std::chrono::seconds margin_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool refreshing_ = false;
  std::uint64_t completed_ = 0;
  absl::Status last_error_;
  std::string token_;
  std::chrono::system_clock::time_point refresh_at_, expires_at_;
};

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

absl::StatusOr<std::shared_ptr<EVP_PKEY>> ParsePrivateKey(const std::string& pem,
                                                          const std::string& where) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  EVP_PKEY* key = bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr;
  if (key == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": field \"private_key\" is not a PEM private key (", OpenSslError(), ")"));
  }
  std::shared_ptr<EVP_PKEY> owned(key, &EVP_PKEY_free);
  if (EVP_PKEY_base_id(key) != EVP_PKEY_RSA) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": \"private_key\" is not an RSA key (RS256 needs one)"));
  }
  return owned;
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
    return std::make_unique<ServiceAccountSource>(
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
    return std::make_unique<AuthorizedUserSource>(file, *client_id, *secret, *refresh, token_uri,
                                                  http, options.request_timeout);
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
    return std::make_unique<ImpersonatedSource>(file, *std::move(source), *std::move(impersonation),
                                                options.scope, http, options.request_timeout);
  }
  if (*type == "external_account") {
    ExternalAccountSource::Config c{.file = file, .scope = options.scope};
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
    return std::make_unique<ExternalAccountSource>(std::move(c), http, options.request_timeout);
  }
  return absl::InvalidArgumentError(absl::StrCat(
      where, ": credentials type \"", *type,
      "\" is not supported (supported: service_account, authorized_user, external_account, "
      "impersonated_service_account)"));
}

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

// Google's clients treat a host as a metadata server only if it answers with this header, so
// a captive portal or proxy answering every URL is not mistaken for one.
absl::Status ProbeMetadataServer(const std::string& base, const TokenHttpFunction& http,
                                 std::chrono::milliseconds timeout) {
  TokenHttpRequest req{.method = "GET",
                       .url = base + "/",
                       .headers = {{"Metadata-Flavor", "Google"}},
                       .timeout = timeout};
  absl::StatusOr<TokenHttpResponse> resp;
  try {
    resp = http(req);
  } catch (const std::exception& e) {
    return absl::UnavailableError(e.what());
  }
  if (!resp.ok()) return resp.status();
  auto flavor = resp->headers.find("metadata-flavor");
  if (flavor == resp->headers.end() || flavor->second != "Google") {
    return absl::UnavailableError(absl::StrCat("GET ", req.url, " answered HTTP ", resp->status,
                                               " without \"Metadata-Flavor: Google\""));
  }
  return absl::OkStatus();
}

}  // namespace

std::shared_ptr<AccessTokenProvider> MakeStaticAccessTokenProvider(std::string token) {
  return std::make_shared<StaticProvider>(std::move(token));
}

absl::StatusOr<std::shared_ptr<AccessTokenProvider>> MakeDefaultAccessTokenProvider(
    AccessTokenOptions options) {
  if (!options.clock) options.clock = [] { return std::chrono::system_clock::now(); };
  if (!options.http) options.http = &CurlSend;
  if (options.refresh_margin < std::chrono::seconds::zero()) {
    return absl::InvalidArgumentError("access token: refresh_margin must not be negative");
  }
  auto wrap = [&](std::unique_ptr<TokenSource> source)
      -> absl::StatusOr<std::shared_ptr<AccessTokenProvider>> {
    Log()->debug("gcp credentials source=\"{}\"", source->Describe());
    return std::make_shared<CachingProvider>(std::move(source), options.clock,
                                             options.refresh_margin);
  };
  auto from_file =
      [&](const std::string& file) -> absl::StatusOr<std::shared_ptr<AccessTokenProvider>> {
    auto source = LoadCredentialsFile(file, options);
    if (!source.ok()) return source.status();
    return wrap(*std::move(source));
  };

  if (!options.credentials_file.empty()) return from_file(options.credentials_file);

  std::vector<std::string> tried;
  // 1. An explicitly named file must work: falling through to other credentials would run
  //    the program as someone else than the operator intended.
  if (const std::string env = Env("GOOGLE_APPLICATION_CREDENTIALS"); !env.empty()) {
    if (!std::filesystem::exists(env)) {
      return absl::NotFoundError(
          absl::StrCat("GOOGLE_APPLICATION_CREDENTIALS names ", env, ", which does not exist"));
    }
    return from_file(env);
  }
  tried.push_back("GOOGLE_APPLICATION_CREDENTIALS is not set");

  // 2. gcloud's file from `gcloud auth application-default login`.
  std::string gcloud_dir = Env("CLOUDSDK_CONFIG");
  if (gcloud_dir.empty() && !Env("HOME").empty()) gcloud_dir = Env("HOME") + "/.config/gcloud";
  if (gcloud_dir.empty()) {
    tried.push_back("no gcloud credentials file (neither CLOUDSDK_CONFIG nor HOME is set)");
  } else {
    const std::string well_known = gcloud_dir + "/application_default_credentials.json";
    if (std::filesystem::exists(well_known)) return from_file(well_known);
    tried.push_back(absl::StrCat(well_known, " does not exist"));
  }

  // 3. The metadata server of GCE, GKE, Cloud Run and friends.
  std::string host = options.metadata_host;
  if (host.empty()) host = Env("GCE_METADATA_HOST");
  if (host.empty()) host = kDefaultMetadataHost;
  const std::string base = host.find("://") == std::string::npos ? "http://" + host : host;
  const absl::Status probe =
      ProbeMetadataServer(base, options.http, options.metadata_probe_timeout);
  if (probe.ok()) {
    return wrap(std::make_unique<MetadataSource>(base, options.http, options.request_timeout));
  }
  tried.push_back(absl::StrCat("no metadata server at ", host, " (", probe.message(), ")"));

  return absl::FailedPreconditionError(absl::StrCat(
      "no Google credentials found: ", absl::StrJoin(tried, "; "),
      ". Set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, run `gcloud auth "
      "application-default login`, or run on Google Cloud"));
}

}  // namespace dataflow::gcp

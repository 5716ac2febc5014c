#include "dataflow/gcp/access_token.h"

#include <absl/strings/ascii.h>
#include <absl/strings/escaping.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string_view>

#include "dataflow/gcp/http_client.h"
#include "dataflow/messagepipeline/logging.h"

namespace dataflow::gcp {
namespace {

using Clock = std::function<std::chrono::system_clock::time_point()>;

constexpr char kJwtBearerGrant[] = "urn:ietf:params:oauth:grant-type:jwt-bearer";
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

absl::StatusOr<FetchedToken> ExchangeForToken(const std::string& what,
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

absl::StatusOr<std::string> RequiredString(const nlohmann::json& json, const std::string& file,
                                           const char* field) {
  if (!json.contains(field)) {
    return absl::InvalidArgumentError(
        absl::StrCat("credentials file ", file, ": missing field \"", field, "\""));
  }
  if (!json[field].is_string() || json[field].get<std::string>().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("credentials file ", file, ": field \"", field,
                                                   "\" must be a non-empty string"));
  }
  return json[field].get<std::string>();
}

std::string OptionalString(const nlohmann::json& json, const char* field) {
  return json.contains(field) && json[field].is_string() ? json[field].get<std::string>()
                                                         : std::string();
}

absl::StatusOr<std::shared_ptr<EVP_PKEY>> ParsePrivateKey(const std::string& pem,
                                                          const std::string& file) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  EVP_PKEY* key = bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr;
  if (key == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("credentials file ", file,
                     ": field \"private_key\" is not a PEM private key (", OpenSslError(), ")"));
  }
  std::shared_ptr<EVP_PKEY> owned(key, &EVP_PKEY_free);
  if (EVP_PKEY_base_id(key) != EVP_PKEY_RSA) {
    return absl::InvalidArgumentError(absl::StrCat(
        "credentials file ", file, ": \"private_key\" is not an RSA key (RS256 needs one)"));
  }
  return owned;
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
  auto type = RequiredString(json, file, "type");
  if (!type.ok()) return type.status();
  std::string token_uri = options.token_uri;
  if (token_uri.empty()) token_uri = OptionalString(json, "token_uri");
  if (token_uri.empty()) token_uri = kGoogleTokenUri;
  const TokenHttpFunction http = options.http ? options.http : TokenHttpFunction(&CurlSend);

  if (*type == "service_account") {
    auto email = RequiredString(json, file, "client_email");
    if (!email.ok()) return email.status();
    auto pem = RequiredString(json, file, "private_key");
    if (!pem.ok()) return pem.status();
    auto key = ParsePrivateKey(*pem, file);
    if (!key.ok()) return key.status();
    return std::make_unique<ServiceAccountSource>(
        file, *email, OptionalString(json, "private_key_id"), *key, token_uri, options.scope, http,
        options.request_timeout);
  }
  if (*type == "authorized_user") {
    auto client_id = RequiredString(json, file, "client_id");
    if (!client_id.ok()) return client_id.status();
    auto secret = RequiredString(json, file, "client_secret");
    if (!secret.ok()) return secret.status();
    auto refresh = RequiredString(json, file, "refresh_token");
    if (!refresh.ok()) return refresh.status();
    return std::make_unique<AuthorizedUserSource>(file, *client_id, *secret, *refresh, token_uri,
                                                  http, options.request_timeout);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("credentials file ", file, ": credentials type \"", *type,
                   "\" is not supported (supported: service_account, authorized_user)"));
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

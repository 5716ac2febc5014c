// Where access tokens come from (token_source.h): a service account's self-signed JWT, a
// user's refresh token, the metadata server, an external account's subject token exchanged
// at STS, and a service account impersonated with another source's token.
#include <absl/strings/ascii.h>
#include <absl/strings/escaping.h>
#include <absl/strings/str_cat.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string_view>

#include "dataflow/gcp/http_client.h"
#include "token_source.h"

namespace dataflow::gcp::internal {
namespace {

constexpr char kJwtBearerGrant[] = "urn:ietf:params:oauth:grant-type:jwt-bearer";
// RFC 8693 token exchange, as Google's Security Token Service implements it.
constexpr char kTokenExchangeGrant[] = "urn:ietf:params:oauth:grant-type:token-exchange";
constexpr char kAccessTokenType[] = "urn:ietf:params:oauth:token-type:access_token";
constexpr char kMetadataTokenPath[] = "/computeMetadata/v1/instance/service-accounts/default/token";
// Google accepts assertions valid for at most an hour.
constexpr std::chrono::seconds kAssertionLifetime{3600};

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

// Workload and workforce identity federation: a token from another identity provider (the
// subject token) exchanged at Google's STS for a federated access token, optionally then
// exchanged at IAM Credentials for a service account's token.
class ExternalAccountSource : public TokenSource {
 public:
  ExternalAccountSource(ExternalAccountConfig config, TokenHttpFunction http,
                        std::chrono::milliseconds timeout)
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
  const ExternalAccountConfig c_;
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

}  // namespace

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

std::unique_ptr<TokenSource> NewServiceAccountSource(std::string file, std::string email,
                                                     std::string key_id,
                                                     std::shared_ptr<EVP_PKEY> key,
                                                     std::string token_uri, std::string scope,
                                                     TokenHttpFunction http,
                                                     std::chrono::milliseconds timeout) {
  return std::make_unique<ServiceAccountSource>(
      std::move(file), std::move(email), std::move(key_id), std::move(key), std::move(token_uri),
      std::move(scope), std::move(http), timeout);
}

std::unique_ptr<TokenSource> NewAuthorizedUserSource(std::string file, std::string client_id,
                                                     std::string client_secret,
                                                     std::string refresh_token,
                                                     std::string token_uri, TokenHttpFunction http,
                                                     std::chrono::milliseconds timeout) {
  return std::make_unique<AuthorizedUserSource>(std::move(file), std::move(client_id),
                                                std::move(client_secret), std::move(refresh_token),
                                                std::move(token_uri), std::move(http), timeout);
}

std::unique_ptr<TokenSource> NewMetadataSource(std::string base, TokenHttpFunction http,
                                               std::chrono::milliseconds timeout) {
  return std::make_unique<MetadataSource>(std::move(base), std::move(http), timeout);
}

std::unique_ptr<TokenSource> NewExternalAccountSource(ExternalAccountConfig config,
                                                      TokenHttpFunction http,
                                                      std::chrono::milliseconds timeout) {
  return std::make_unique<ExternalAccountSource>(std::move(config), std::move(http), timeout);
}

std::unique_ptr<TokenSource> NewImpersonatedSource(std::string file,
                                                   std::unique_ptr<TokenSource> source,
                                                   Impersonation impersonation, std::string scope,
                                                   TokenHttpFunction http,
                                                   std::chrono::milliseconds timeout) {
  return std::make_unique<ImpersonatedSource>(std::move(file), std::move(source),
                                              std::move(impersonation), std::move(scope),
                                              std::move(http), timeout);
}

}  // namespace dataflow::gcp::internal

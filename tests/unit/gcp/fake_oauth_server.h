// Test stand-ins for Google's OAuth token endpoint and the GCE metadata server, on one
// loopback port (Google's endpoint cannot be reached from tests). The token endpoint checks
// what Google's checks: for a JWT-bearer grant the assertion's header (RS256, kid), claims
// (iss, scope, aud = this endpoint's URL, iat not in the future, exp after now and at most an
// hour after iat) and its RS256 signature against the service account's public key; for a
// refresh-token grant the client id, secret and refresh token. Failures answer 400 with an
// OAuth error body, as Google does. The metadata paths require "Metadata-Flavor: Google".
// On the same port, stand-ins for the other endpoints credentials reach:
//   - POST /sts: Google's Security Token Service (RFC 8693 token exchange), checking the grant,
//     requested token type, audience, subject token type, scope and subject token;
//   - POST /v1/projects/-/serviceAccounts/EMAIL:generateAccessToken: IAM Credentials, which
//     accepts only a bearer token this server issued, and answers Google's JSON shape;
//   - GET /subject: an identity provider's token URL (the url credential source).
// Also a throwaway RSA key pair and credentials-file writers. Header-only; thread-safe.
#pragma once

#include <absl/strings/escaping.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_split.h>
#include <httplib.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "dataflow_testing/http_server_thread.h"

namespace dataflow::testing {

// An RSA key pair made for this test run: the private key as PKCS#8 PEM (the form in
// Google's key files) and a public-only key for checking signatures.
struct TestRsaKey {
  std::string private_pem;
  std::shared_ptr<EVP_PKEY> public_key;

  static TestRsaKey Generate() {
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> pair(
        EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048)), &EVP_PKEY_free);
    if (!pair) throw std::runtime_error("RSA key generation failed");
    TestRsaKey key;
    key.private_pem = ToPem(pair.get(), /*is_private=*/true);
    const std::string public_pem = ToPem(pair.get(), /*is_private=*/false);
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(
        BIO_new_mem_buf(public_pem.data(), static_cast<int>(public_pem.size())), &BIO_free);
    key.public_key.reset(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr), &EVP_PKEY_free);
    if (!key.public_key) throw std::runtime_error("reading the public key back failed");
    return key;
  }

 private:
  static std::string ToPem(EVP_PKEY* key, bool is_private) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
    const int ok =
        is_private ? PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr)
                   : PEM_write_bio_PUBKEY(bio.get(), key);
    if (ok != 1) throw std::runtime_error("PEM encoding failed");
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
  }
};

// A fresh directory under the test temp dir, removed with the object.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "dataflow-cred-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::string& path() const { return path_; }

  // Writes `text` to path()/relative (creating directories) and returns the full path.
  std::string Write(const std::string& relative, const std::string& text) const {
    const std::filesystem::path p = std::filesystem::path(path_) / relative;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }

 private:
  std::string path_;
};

inline std::string ServiceAccountJson(const std::string& email, const std::string& private_pem,
                                      const std::string& key_id, const std::string& token_uri) {
  return nlohmann::json{{"type", "service_account"}, {"project_id", "test-project"},
                        {"private_key_id", key_id},  {"private_key", private_pem},
                        {"client_email", email},     {"client_id", "1234567890"},
                        {"token_uri", token_uri}}
      .dump(2);
}

inline std::string AuthorizedUserJson(const std::string& client_id, const std::string& secret,
                                      const std::string& refresh_token,
                                      const std::string& token_uri) {
  return nlohmann::json{{"type", "authorized_user"},
                        {"client_id", client_id},
                        {"client_secret", secret},
                        {"refresh_token", refresh_token},
                        {"token_uri", token_uri}}
      .dump(2);
}

class FakeOAuthServer {
 public:
  static constexpr char kJwtBearer[] = "urn:ietf:params:oauth:grant-type:jwt-bearer";
  static constexpr char kCloudPlatform[] = "https://www.googleapis.com/auth/cloud-platform";

  FakeOAuthServer() {
    server_.Post("/token", [this](const httplib::Request& req, httplib::Response& res) {
      HandleToken(req, res);
    });
    server_.Post("/sts", [this](const httplib::Request& req, httplib::Response& res) {
      HandleSts(req, res);
    });
    server_.Post(R"(/v1/projects/-/serviceAccounts/([^/:]+):generateAccessToken)",
                 [this](const httplib::Request& req, httplib::Response& res) {
                   HandleGenerateAccessToken(req, res);
                 });
    server_.Get("/subject", [this](const httplib::Request& req, httplib::Response& res) {
      ++subject_requests;
      std::lock_guard lock(mu_);
      if (!subject_header_.first.empty() &&
          req.get_header_value(subject_header_.first) != subject_header_.second) {
        res.status = 401;
        res.set_content("missing " + subject_header_.first, "text/plain");
        return;
      }
      res.set_content(subject_body_, "application/json");
    });
    server_.Get("/", [this](const httplib::Request& req, httplib::Response& res) {
      if (metadata_flavor_reply) res.set_header("Metadata-Flavor", "Google");
      res.set_content(
          req.get_header_value("Metadata-Flavor") == "Google" ? "computeMetadata/\n" : "",
          "text/plain");
    });
    server_.Get("/computeMetadata/v1/instance/service-accounts/default/token",
                [this](const httplib::Request& req, httplib::Response& res) {
                  if (metadata_flavor_reply) res.set_header("Metadata-Flavor", "Google");
                  if (req.get_header_value("Metadata-Flavor") != "Google") {
                    res.status = 403;
                    res.set_content("Missing required header: Metadata-Flavor", "text/plain");
                    return;
                  }
                  const int n = ++metadata_token_requests;
                  res.set_content(nlohmann::json{{"access_token", "md-token-" + std::to_string(n)},
                                                 {"expires_in", expires_in.load()},
                                                 {"token_type", "Bearer"}}
                                      .dump(),
                                  "application/json");
                });
    port_ = server_.bind_to_any_port("127.0.0.1");
    if (port_ <= 0) throw std::runtime_error("fake OAuth server: bind failed");
    accept_loop_.Start(server_);
  }
  ~FakeOAuthServer() {
    Release();
    accept_loop_.Stop();
  }
  FakeOAuthServer(const FakeOAuthServer&) = delete;
  FakeOAuthServer& operator=(const FakeOAuthServer&) = delete;

  [[nodiscard]] std::string token_uri() const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/token";
  }
  [[nodiscard]] std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
  [[nodiscard]] std::string base() const { return "http://" + host(); }
  [[nodiscard]] std::string sts_url() const { return base() + "/sts"; }
  [[nodiscard]] std::string subject_url() const { return base() + "/subject"; }
  [[nodiscard]] std::string impersonation_url(const std::string& email) const {
    return base() + "/v1/projects/-/serviceAccounts/" + email + ":generateAccessToken";
  }

  // What a token exchange must carry: the subject token the identity provider issued, for
  // this audience and subject token type; `scope` is the scope it asks for.
  void ExpectSubjectToken(std::string subject_token, std::string audience,
                          std::string subject_token_type, std::string scope = kCloudPlatform) {
    std::lock_guard lock(mu_);
    sts_ = {std::move(subject_token), std::move(audience), std::move(subject_token_type),
            std::move(scope)};
  }
  // generateAccessToken answers only for this account (others: 403, as IAM does).
  void ExpectImpersonation(std::string email) {
    std::lock_guard lock(mu_);
    impersonated_email_ = std::move(email);
  }
  // What GET /subject answers, and the header it requires ("" name: none).
  void ServeSubject(std::string body, std::string header = "", std::string value = "") {
    std::lock_guard lock(mu_);
    subject_body_ = std::move(body);
    subject_header_ = {std::move(header), std::move(value)};
  }
  // The form of the last token exchange that was answered 200.
  std::map<std::string, std::string> last_sts_form() {
    std::lock_guard lock(mu_);
    return last_sts_form_;
  }
  std::string last_sts_authorization() {
    std::lock_guard lock(mu_);
    return last_sts_authorization_;
  }
  // The bearer token and JSON body of the last generateAccessToken answered 200.
  std::string last_iam_bearer() {
    std::lock_guard lock(mu_);
    return last_iam_bearer_;
  }
  nlohmann::json last_iam_body() {
    std::lock_guard lock(mu_);
    return last_iam_body_;
  }

  // What a JWT-bearer grant must carry. The public key comes from TestRsaKey.
  void ExpectServiceAccount(std::string email, std::shared_ptr<EVP_PKEY> public_key,
                            std::string key_id) {
    std::lock_guard lock(mu_);
    sa_email_ = std::move(email);
    sa_key_ = std::move(public_key);
    sa_key_id_ = std::move(key_id);
  }
  void ExpectAuthorizedUser(std::string client_id, std::string secret, std::string refresh) {
    std::lock_guard lock(mu_);
    user_ = {std::move(client_id), std::move(secret), std::move(refresh)};
  }

  // The server's idea of now, in Unix seconds; 0: the real clock. Tests that inject a clock
  // into the client set the same value here.
  std::atomic<std::int64_t> now_seconds{0};
  std::atomic<int> expires_in{3600};
  std::atomic<bool> metadata_flavor_reply{true};  // false: not a metadata server
  std::atomic<int> fail_next{0};                  // next token requests answer 503
  std::atomic<int> token_requests{0};             // every POST /token
  std::atomic<int> metadata_token_requests{0};    // accepted metadata token GETs
  std::atomic<int> sts_requests{0};               // every POST /sts
  std::atomic<int> iam_requests{0};               // every generateAccessToken
  std::atomic<int> subject_requests{0};           // every GET /subject

  // The header and claims of the last JWT that passed every check.
  nlohmann::json last_jwt_header() {
    std::lock_guard lock(mu_);
    return last_header_;
  }
  nlohmann::json last_jwt_claims() {
    std::lock_guard lock(mu_);
    return last_claims_;
  }

  // While held, token requests wait inside the handler (a refresh in flight).
  void Hold() {
    std::lock_guard lock(mu_);
    hold_ = true;
  }
  void Release() {
    std::lock_guard lock(mu_);
    hold_ = false;
    cv_.notify_all();
  }
  // Blocks until `n` token requests are waiting inside the handler.
  void WaitUntilHeld(int n) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return held_ >= n; });
  }

 private:
  static std::string PercentDecode(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '+') {
        out.push_back(' ');
      } else if (s[i] == '%' && i + 2 < s.size()) {
        out.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
        i += 2;
      } else {
        out.push_back(s[i]);
      }
    }
    return out;
  }
  static std::map<std::string, std::string> ParseForm(const std::string& body) {
    std::map<std::string, std::string> form;
    for (absl::string_view pair : absl::StrSplit(body, '&', absl::SkipEmpty())) {
      std::pair<std::string, std::string> kv = absl::StrSplit(pair, absl::MaxSplits('=', 1));
      form[PercentDecode(kv.first)] = PercentDecode(kv.second);
    }
    return form;
  }
  static void Reject(httplib::Response& res, const std::string& error,
                     const std::string& description) {
    res.status = 400;
    res.set_content(nlohmann::json{{"error", error}, {"error_description", description}}.dump(),
                    "application/json");
  }
  std::int64_t Now() const {
    const std::int64_t fixed = now_seconds.load();
    if (fixed != 0) return fixed;
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

  void HandleToken(const httplib::Request& req, httplib::Response& res) {
    const int n = ++token_requests;
    {
      std::unique_lock lock(mu_);
      if (hold_) {
        ++held_;
        cv_.notify_all();
        // Bounded so a client that wrongly waits for this reply fails its test, not hangs it.
        cv_.wait_for(lock, std::chrono::seconds(30), [&] { return !hold_; });
        --held_;
      }
    }
    if (fail_next > 0) {
      --fail_next;
      res.status = 503;
      res.set_content(R"({"error":"temporarily_unavailable","error_description":"try later"})",
                      "application/json");
      return;
    }
    if (req.get_header_value("Content-Type").find("application/x-www-form-urlencoded") != 0) {
      return Reject(res, "invalid_request", "Content-Type must be x-www-form-urlencoded");
    }
    auto form = ParseForm(req.body);
    std::string error;
    std::string prefix;
    if (form["grant_type"] == kJwtBearer) {
      error = CheckAssertion(form["assertion"]);
      prefix = "sa-token-";
    } else if (form["grant_type"] == "refresh_token") {
      std::lock_guard lock(mu_);
      if (user_.empty() || form["client_id"] != user_[0] || form["client_secret"] != user_[1]) {
        return Reject(res, "invalid_client", "The OAuth client was not found.");
      }
      if (form["refresh_token"] != user_[2]) {
        return Reject(res, "invalid_grant", "Token has been expired or revoked.");
      }
      prefix = "user-token-";
    } else {
      return Reject(res, "unsupported_grant_type", "Invalid grant_type: " + form["grant_type"]);
    }
    if (!error.empty()) return Reject(res, "invalid_grant", error);
    Issue(prefix + std::to_string(n));
    res.set_content(nlohmann::json{{"access_token", prefix + std::to_string(n)},
                                   {"expires_in", expires_in.load()},
                                   {"token_type", "Bearer"}}
                        .dump(),
                    "application/json");
  }

  void Issue(const std::string& token) {
    std::lock_guard lock(mu_);
    issued_.insert(token);
  }

  static constexpr char kTokenExchange[] = "urn:ietf:params:oauth:grant-type:token-exchange";
  static constexpr char kAccessTokenType[] = "urn:ietf:params:oauth:token-type:access_token";

  void HandleSts(const httplib::Request& req, httplib::Response& res) {
    const int n = ++sts_requests;
    if (req.get_header_value("Content-Type").find("application/x-www-form-urlencoded") != 0) {
      return Reject(res, "invalid_request", "Content-Type must be x-www-form-urlencoded");
    }
    auto form = ParseForm(req.body);
    std::lock_guard lock(mu_);
    if (form["grant_type"] != kTokenExchange) {
      return Reject(res, "unsupported_grant_type", "Invalid grant_type: " + form["grant_type"]);
    }
    if (form["requested_token_type"] != kAccessTokenType) {
      return Reject(res, "invalid_request", "Invalid requested_token_type");
    }
    if (form["audience"] != sts_.audience) return Reject(res, "invalid_target", "Bad audience");
    if (form["subject_token_type"] != sts_.subject_token_type) {
      return Reject(res, "invalid_request", "Invalid subject_token_type");
    }
    if (form["scope"] != sts_.scope) return Reject(res, "invalid_scope", "Bad scope");
    if (form["subject_token"] != sts_.subject_token) {
      // Quotes what it was sent, so a client that passes this text on unfiltered shows up.
      return Reject(res, "invalid_grant",
                    "The subject token " + form["subject_token"] + " is invalid or expired.");
    }
    last_sts_form_ = form;
    last_sts_authorization_ = req.get_header_value("Authorization");
    const std::string token = "sts-token-" + std::to_string(n);
    issued_.insert(token);
    res.set_content(nlohmann::json{{"access_token", token},
                                   {"issued_token_type", kAccessTokenType},
                                   {"token_type", "Bearer"},
                                   {"expires_in", expires_in.load()}}
                        .dump(),
                    "application/json");
  }

  static void IamError(httplib::Response& res, int code, const std::string& status,
                       const std::string& message) {
    res.status = code;
    res.set_content(
        nlohmann::json{{"error", {{"code", code}, {"message", message}, {"status", status}}}}
            .dump(),
        "application/json");
  }

  void HandleGenerateAccessToken(const httplib::Request& req, httplib::Response& res) {
    const int n = ++iam_requests;
    const std::string email = req.matches[1];
    const std::string authorization = req.get_header_value("Authorization");
    std::lock_guard lock(mu_);
    const std::string bearer =
        authorization.rfind("Bearer ", 0) == 0 ? authorization.substr(7) : std::string();
    if (issued_.count(bearer) == 0) {
      return IamError(res, 401, "UNAUTHENTICATED",
                      "Request had invalid authentication credentials.");
    }
    if (email != impersonated_email_) {
      // Quotes the caller's token, so a client that passes this text on unfiltered shows up.
      return IamError(res, 403, "PERMISSION_DENIED",
                      "Permission 'iam.serviceAccounts.getAccessToken' denied on " + email +
                          " for caller " + bearer);
    }
    auto body = nlohmann::json::parse(req.body, nullptr, false);
    if (!body.is_object() || !body.contains("scope") || !body["scope"].is_array() ||
        body["scope"].empty()) {
      return IamError(res, 400, "INVALID_ARGUMENT", "scope is required");
    }
    std::int64_t lifetime = 3600;
    if (body.contains("lifetime")) {
      const std::string text = body["lifetime"].get<std::string>();
      if (text.empty() || text.back() != 's') {
        return IamError(res, 400, "INVALID_ARGUMENT", "lifetime must be a duration");
      }
      lifetime = std::stoll(text.substr(0, text.size() - 1));
    }
    last_iam_bearer_ = bearer;
    last_iam_body_ = body;
    const std::string token = "impersonated-token-" + std::to_string(n);
    issued_.insert(token);
    const auto expire = static_cast<std::time_t>(Now() + lifetime);
    std::tm tm{};
    gmtime_r(&expire, &tm);
    char when[32];
    std::strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    res.set_content(nlohmann::json{{"accessToken", token}, {"expireTime", when}}.dump(),
                    "application/json");
  }

  // "" when the assertion is one Google would accept, else the reason.
  std::string CheckAssertion(const std::string& jwt) {
    std::vector<std::string> parts = absl::StrSplit(jwt, '.');
    if (parts.size() != 3) return "Invalid JWT: Token must be a short-lived token";
    std::string header_text, claims_text, signature;
    if (!absl::WebSafeBase64Unescape(parts[0], &header_text) ||
        !absl::WebSafeBase64Unescape(parts[1], &claims_text) ||
        !absl::WebSafeBase64Unescape(parts[2], &signature) ||
        parts[0].find('=') != std::string::npos || parts[1].find('=') != std::string::npos) {
      return "Invalid JWT: not unpadded base64url";
    }
    auto header = nlohmann::json::parse(header_text, nullptr, false);
    auto claims = nlohmann::json::parse(claims_text, nullptr, false);
    if (!header.is_object() || !claims.is_object()) return "Invalid JWT: not JSON";
    std::lock_guard lock(mu_);
    if (!sa_key_) return "Invalid JWT: no service account expected";
    if (header.value("alg", "") != "RS256") return "Invalid JWT: alg must be RS256";
    if (header.value("kid", "") != sa_key_id_) return "Invalid JWT: unknown kid";
    if (claims.value("iss", "") != sa_email_) return "Invalid JWT: iss is not the account";
    if (claims.value("scope", "") != kCloudPlatform) return "Invalid JWT: unexpected scope";
    if (claims.value("aud", "") != token_uri()) return "Invalid JWT: aud is not " + token_uri();
    if (!claims.contains("iat") || !claims["iat"].is_number_integer() || !claims.contains("exp") ||
        !claims["exp"].is_number_integer()) {
      return "Invalid JWT: iat and exp must be integers";
    }
    const std::int64_t iat = claims["iat"], exp = claims["exp"], now = Now();
    if (iat > now + 60) return "Invalid JWT: iat is in the future";
    if (exp <= now)
      return "Invalid JWT: Token must be a short-lived token and in a reasonable "
             "timeframe (expired)";
    if (exp - iat > 3600 || exp <= iat) return "Invalid JWT: exp must be within an hour of iat";
    const std::string signing_input = parts[0] + "." + parts[1];
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    if (EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, sa_key_.get()) != 1 ||
        EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                         signature.size(),
                         reinterpret_cast<const unsigned char*>(signing_input.data()),
                         signing_input.size()) != 1) {
      return "Invalid JWT Signature.";
    }
    last_header_ = header;
    last_claims_ = claims;
    return "";
  }

  httplib::Server server_;
  HttpServerThread accept_loop_;
  int port_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  bool hold_ = false;
  int held_ = 0;
  std::string sa_email_, sa_key_id_;
  std::shared_ptr<EVP_PKEY> sa_key_;
  std::vector<std::string> user_;  // client id, secret, refresh token
  struct {
    std::string subject_token, audience, subject_token_type, scope;
  } sts_;
  std::string impersonated_email_;
  std::string subject_body_;
  std::pair<std::string, std::string> subject_header_;
  std::set<std::string> issued_;  // every token this server handed out
  std::map<std::string, std::string> last_sts_form_;
  std::string last_sts_authorization_;
  std::string last_iam_bearer_;
  nlohmann::json last_iam_body_;
  nlohmann::json last_header_, last_claims_;
};

// While it lives, no Application Default Credentials exist: the variables that point at
// them (and any `extra` ones, e.g. an emulator host) are unset and HOME is an empty
// directory; the originals come back when it is destroyed.
class NoAmbientCredentials {
 public:
  explicit NoAmbientCredentials(std::vector<std::string> extra = {}) {
    extra.insert(extra.end(), {"GOOGLE_APPLICATION_CREDENTIALS", "HOME", "CLOUDSDK_CONFIG",
                               "GCE_METADATA_HOST"});
    for (const auto& name : extra) {
      const char* v = std::getenv(name.c_str());
      saved_.emplace_back(name, v ? std::optional<std::string>(v) : std::nullopt);
      unsetenv(name.c_str());
    }
    setenv("HOME", home_.path().c_str(), 1);  // no gcloud credentials file
  }
  ~NoAmbientCredentials() {
    for (const auto& [name, value] : saved_) {
      value ? setenv(name.c_str(), value->c_str(), 1) : unsetenv(name.c_str());
    }
  }
  NoAmbientCredentials(const NoAmbientCredentials&) = delete;
  NoAmbientCredentials& operator=(const NoAmbientCredentials&) = delete;

  // The empty HOME, for tests that put a gcloud credentials file there.
  [[nodiscard]] const TempDir& home() const { return home_; }

  // GOOGLE_APPLICATION_CREDENTIALS -> a service-account key whose token_uri is `oauth`,
  // which will accept it.
  void UseServiceAccount(FakeOAuthServer& oauth, const std::string& email) {
    static const TestRsaKey key = TestRsaKey::Generate();
    oauth.ExpectServiceAccount(email, key.public_key, "k1");
    const std::string file = files_.Write(
        "sa.json", ServiceAccountJson(email, key.private_pem, "k1", oauth.token_uri()));
    setenv("GOOGLE_APPLICATION_CREDENTIALS", file.c_str(), 1);
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
  TempDir home_;
  TempDir files_;
};

// A stand-in for one Google REST call on a free loopback port: answers `method` requests
// whose path matches `pattern` (httplib regex) with `json`, and remembers each request's
// Authorization header ("" when absent).
class AuthorizationRecorder {
 public:
  AuthorizationRecorder(const std::string& method, const std::string& pattern, std::string json)
      : json_(std::move(json)) {
    auto handler = [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mu_);
      authorizations_.push_back(req.get_header_value("Authorization"));
      res.set_content(json_, "application/json");
    };
    if (method == "GET") {
      server_.Get(pattern, handler);
    } else {
      server_.Post(pattern, handler);
    }
    port_ = server_.bind_to_any_port("127.0.0.1");
    accept_loop_.Start(server_);
  }
  ~AuthorizationRecorder() { accept_loop_.Stop(); }
  AuthorizationRecorder(const AuthorizationRecorder&) = delete;
  AuthorizationRecorder& operator=(const AuthorizationRecorder&) = delete;

  [[nodiscard]] std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
  [[nodiscard]] std::string endpoint() const { return "http://" + host(); }
  std::vector<std::string> authorizations() {
    std::lock_guard lock(mu_);
    return authorizations_;
  }

 private:
  const std::string json_;
  httplib::Server server_;
  HttpServerThread accept_loop_;
  int port_ = 0;
  std::mutex mu_;
  std::vector<std::string> authorizations_;
};

}  // namespace dataflow::testing

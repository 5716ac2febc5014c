// Internal to dataflow::gcp_auth (access_token.h), not installed. The parts behind
// MakeDefaultAccessTokenProvider:
//   token_exchange.cc    one token request and its answer, generateAccessToken, redaction
//   token_sources.cc     service account (self-signed JWT), user refresh token, metadata
//                        server, external account (STS), impersonated service account
//   credentials_file.cc  a credentials JSON file -> the source it describes
//   access_token.cc      the caching provider and the lookup order (ADC)
#pragma once

#include <absl/status/status.h>
#include <absl/status/statusor.h>
#include <absl/strings/str_cat.h>
#include <openssl/evp.h>

#include <chrono>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dataflow/gcp/access_token.h"

namespace dataflow::gcp::internal {

struct FetchedToken {
  std::string token;
  std::chrono::seconds lifetime{0};
};

// Where tokens come from; called by one thread at a time (the caching provider serialises).
class TokenSource {
 public:
  virtual ~TokenSource() = default;
  virtual absl::StatusOr<FetchedToken> Fetch(std::chrono::system_clock::time_point now) = 0;
  [[nodiscard]] virtual std::string Describe() const = 0;
};

// --- token_exchange.cc

// The default transport (libcurl).
absl::StatusOr<TokenHttpResponse> CurlSend(const TokenHttpRequest& request);

// Sends one token request; a transport failure or a non-200 answer is an error naming `what`.
absl::StatusOr<TokenHttpResponse> SendTokenRequest(const std::string& what,
                                                   const TokenHttpFunction& http,
                                                   const TokenHttpRequest& req);

// A request answered with an OAuth token response ({"access_token", "expires_in"}).
absl::StatusOr<FetchedToken> ExchangeForToken(const std::string& what,
                                              const TokenHttpFunction& http,
                                              const TokenHttpRequest& req);

// Endpoints may echo what they were sent (an STS rejecting a subject token may quote it), so
// every error from an exchange that carried a secret passes through here before it leaves:
// the secret, and each long '.'-separated part of it (a JWT's header, claims, signature),
// become "[redacted]".
absl::Status Redact(const absl::Status& status, std::initializer_list<absl::string_view> secrets);

// IAM Credentials' generateAccessToken: a token for the service account named in `url`
// (".../serviceAccounts/EMAIL:generateAccessToken"), paid for with `bearer`, the caller's
// own token, which needs roles/iam.serviceAccountTokenCreator on that account.
absl::StatusOr<FetchedToken> GenerateAccessToken(
    const std::string& what, const TokenHttpFunction& http, const std::string& url,
    const std::string& bearer, const std::string& scope, const std::vector<std::string>& delegates,
    std::chrono::seconds lifetime, std::chrono::system_clock::time_point now,
    std::chrono::milliseconds timeout);

// --- token_sources.cc

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

// What generateAccessToken needs for one impersonated service account.
struct Impersonation {
  std::string url;    // .../serviceAccounts/EMAIL:generateAccessToken
  std::string email;  // from the url, for messages
  std::vector<std::string> delegates;
  std::chrono::seconds lifetime{3600};
};

struct ExternalAccountConfig {
  std::string file, audience, subject_token_type, token_url;
  SubjectTokenSource subject;
  std::string client_id, client_secret, workforce_pool_user_project;
  std::optional<Impersonation> impersonation;
  std::string scope;
};

// An RSA private key from PEM; errors name `where` and the field "private_key".
absl::StatusOr<std::shared_ptr<EVP_PKEY>> ParsePrivateKey(const std::string& pem,
                                                          const std::string& where);

std::unique_ptr<TokenSource> NewServiceAccountSource(std::string file, std::string email,
                                                     std::string key_id,
                                                     std::shared_ptr<EVP_PKEY> key,
                                                     std::string token_uri, std::string scope,
                                                     TokenHttpFunction http,
                                                     std::chrono::milliseconds timeout);
std::unique_ptr<TokenSource> NewAuthorizedUserSource(std::string file, std::string client_id,
                                                     std::string client_secret,
                                                     std::string refresh_token,
                                                     std::string token_uri, TokenHttpFunction http,
                                                     std::chrono::milliseconds timeout);
// `base`: the metadata server's http://host[:port].
std::unique_ptr<TokenSource> NewMetadataSource(std::string base, TokenHttpFunction http,
                                               std::chrono::milliseconds timeout);
// Workload and workforce identity federation.
std::unique_ptr<TokenSource> NewExternalAccountSource(ExternalAccountConfig config,
                                                      TokenHttpFunction http,
                                                      std::chrono::milliseconds timeout);
// gcloud's impersonated_service_account: `source`'s token buys the service account's.
std::unique_ptr<TokenSource> NewImpersonatedSource(std::string file,
                                                   std::unique_ptr<TokenSource> source,
                                                   Impersonation impersonation, std::string scope,
                                                   TokenHttpFunction http,
                                                   std::chrono::milliseconds timeout);

// --- credentials_file.cc

// The source a credentials file describes. NotFound when it cannot be read, InvalidArgument
// naming the file and field when it is malformed or of an unsupported type.
absl::StatusOr<std::unique_ptr<TokenSource>> LoadCredentialsFile(const std::string& file,
                                                                 const AccessTokenOptions& options);

}  // namespace dataflow::gcp::internal

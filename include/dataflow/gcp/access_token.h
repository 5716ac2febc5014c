// OAuth2 access tokens for Google REST APIs (GCS JSON API, BigQuery tables) from Google
// Application Default Credentials, looked up in the order Google's clients use:
//   1. $GOOGLE_APPLICATION_CREDENTIALS: a JSON file (types below);
//   2. gcloud's well-known file, $CLOUDSDK_CONFIG or $HOME/.config/gcloud, then
//      application_default_credentials.json (same types);
//   3. the GCE metadata server (metadata.google.internal, or $GCE_METADATA_HOST), probed
//      once at creation.
// File types: "service_account" (a self-signed RS256 JWT exchanged at the key's token_uri),
// "authorized_user" (a refresh-token grant), "external_account" (workload/workforce identity
// federation: a subject token read from a file or URL, exchanged at Google's STS per RFC 8693,
// then optionally at IAM Credentials generateAccessToken for a service account's token) and
// "impersonated_service_account" (gcloud's: service_account or authorized_user source
// credentials whose token buys the service account's at generateAccessToken). docs/operations.md
// ("Google credentials") lists the fields read and what is refused.
// gRPC clients do not need this: their channels carry Google default credentials already.
// Providers are thread-safe: a token is cached until shortly before it expires and is
// refreshed by one caller while the others wait (or keep using the still-valid old one).
// No token, subject token, refresh token or key ever appears in a log line or an error.
#pragma once

#include <absl/status/statusor.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace dataflow::gcp {

inline constexpr char kCloudPlatformScope[] = "https://www.googleapis.com/auth/cloud-platform";
inline constexpr char kGoogleTokenUri[] = "https://oauth2.googleapis.com/token";

// Supplies OAuth2 bearer tokens (the value after "Authorization: Bearer "). Thread-safe.
class AccessTokenProvider {
 public:
  virtual ~AccessTokenProvider() = default;
  virtual absl::StatusOr<std::string> Token() = 0;
};

// A fixed token (tests, or one obtained elsewhere, e.g. `gcloud auth print-access-token`).
std::shared_ptr<AccessTokenProvider> MakeStaticAccessTokenProvider(std::string token);

// The HTTP exchange the provider needs, replaceable for tests or a custom transport.
struct TokenHttpRequest {
  std::string method;
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::chrono::milliseconds timeout{std::chrono::seconds(30)};
};
struct TokenHttpResponse {
  long status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};
// A transport failure is an error status (Unavailable); any HTTP status is a response.
using TokenHttpFunction = std::function<absl::StatusOr<TokenHttpResponse>(const TokenHttpRequest&)>;

struct AccessTokenOptions {
  // The scope of service-account, external-account and impersonated tokens (user credentials
  // and the metadata server carry the scopes they were granted).
  std::string scope = kCloudPlatformScope;
  // A credentials file used instead of the lookup above (it must exist and parse).
  std::string credentials_file;
  // Replaces the file's token_uri (also the JWT audience) for service_account and
  // authorized_user credentials, nested ones included; empty: the file's, else Google's.
  // An external_account's token_url (STS) is always the file's.
  std::string token_uri;
  // host[:port] of the metadata server; empty: $GCE_METADATA_HOST, else
  // metadata.google.internal.
  std::string metadata_host;
  // Refresh this long before expiry (at most half a token's lifetime).
  std::chrono::seconds refresh_margin{std::chrono::minutes(5)};
  std::chrono::milliseconds request_timeout{std::chrono::seconds(30)};
  // Off GCE the metadata host does not resolve, so the probe fails fast; this bounds it when a
  // resolver or route hangs instead.
  std::chrono::milliseconds metadata_probe_timeout{std::chrono::seconds(2)};
  std::function<std::chrono::system_clock::time_point()> clock;  // default: system_clock
  TokenHttpFunction http;                                        // default: libcurl
};

// The provider for the first credentials found in the order above. Fails at creation:
// InvalidArgument naming the file and field for a malformed or unknown credentials file,
// NotFound when GOOGLE_APPLICATION_CREDENTIALS names a missing file, FailedPrecondition
// listing every place tried when there are no credentials at all. Token() errors carry the
// token endpoint's error text.
absl::StatusOr<std::shared_ptr<AccessTokenProvider>> MakeDefaultAccessTokenProvider(
    AccessTokenOptions options = {});

}  // namespace dataflow::gcp

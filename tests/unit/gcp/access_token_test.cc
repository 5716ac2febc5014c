// MakeDefaultAccessTokenProvider over the wire against local stand-ins for Google's OAuth
// token endpoint and the metadata server (fake_oauth_server.h), with credentials files and
// environment variables set up the way ADC finds them.
#include "dataflow/gcp/access_token.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <stdlib.h>

#include <atomic>
#include <thread>
#include <vector>

#include "dataflow/messagepipeline/logging.h"
#include "fake_oauth_server.h"

namespace dataflow::gcp {
namespace {

using dataflow::testing::AuthorizedUserJson;
using dataflow::testing::FakeOAuthServer;
using dataflow::testing::NoAmbientCredentials;
using dataflow::testing::ServiceAccountJson;
using dataflow::testing::TempDir;
using dataflow::testing::TestRsaKey;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kEmail[] = "pipeline@test-project.iam.gserviceaccount.com";
constexpr char kKeyId[] = "kid-0123";
constexpr std::int64_t kT0 = 1'750'000'000;

// One key pair for the binary: generating RSA keys is the slowest part of these tests.
const TestRsaKey& Key() {
  static const TestRsaKey key = TestRsaKey::Generate();
  return key;
}

// Each test starts with no ADC anywhere: HOME is an empty directory and the variables are
// unset; the originals come back afterwards.
class AccessTokenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fake_.now_seconds = kT0;
    fake_.ExpectServiceAccount(kEmail, Key().public_key, kKeyId);
  }

  // The client's clock is the fake's: JWT times and cache expiry use the same "now".
  AccessTokenOptions Options() {
    return {.clock = [this] {
      return std::chrono::system_clock::time_point(std::chrono::seconds(fake_.now_seconds.load()));
    }};
  }
  std::string WriteServiceAccount(const std::string& pem = Key().private_pem) {
    return files_.Write("sa.json", ServiceAccountJson(kEmail, pem, kKeyId, fake_.token_uri()));
  }
  std::shared_ptr<AccessTokenProvider> ServiceAccountProvider() {
    setenv("GOOGLE_APPLICATION_CREDENTIALS", WriteServiceAccount().c_str(), 1);
    auto p = MakeDefaultAccessTokenProvider(Options());
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? *p : nullptr;
  }

  NoAmbientCredentials env_;
  TempDir files_;
  FakeOAuthServer fake_;
};

TEST_F(AccessTokenTest, ServiceAccountSignsAJwtTheTokenEndpointAccepts) {
  auto provider = ServiceAccountProvider();
  ASSERT_NE(provider, nullptr);
  auto token = provider->Token();
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(*token, "sa-token-1");
  // The fake accepted the assertion (signature included); these are the claims it saw.
  const auto header = fake_.last_jwt_header();
  EXPECT_EQ(header["alg"], "RS256");
  EXPECT_EQ(header["typ"], "JWT");
  EXPECT_EQ(header["kid"], kKeyId);
  const auto claims = fake_.last_jwt_claims();
  EXPECT_EQ(claims["iss"], kEmail);
  EXPECT_EQ(claims["scope"], "https://www.googleapis.com/auth/cloud-platform");
  EXPECT_EQ(claims["aud"], fake_.token_uri());
  EXPECT_EQ(claims["iat"], kT0);
  EXPECT_EQ(claims["exp"], kT0 + 3600);
}

TEST_F(AccessTokenTest, SignatureFromAnotherKeyIsRejectedAndTheEndpointsErrorSurfaces) {
  const TestRsaKey other = TestRsaKey::Generate();
  setenv("GOOGLE_APPLICATION_CREDENTIALS", WriteServiceAccount(other.private_pem).c_str(), 1);
  auto provider = MakeDefaultAccessTokenProvider(Options());
  ASSERT_TRUE(provider.ok()) << provider.status();
  auto token = (*provider)->Token();
  EXPECT_EQ(token.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(token.status().message()), HasSubstr("HTTP 400"));
  EXPECT_THAT(std::string(token.status().message()), HasSubstr("invalid_grant"));
  EXPECT_THAT(std::string(token.status().message()), HasSubstr("Invalid JWT Signature."));
}

TEST_F(AccessTokenTest, CachesUntilFiveMinutesBeforeExpiryThenRefreshes) {
  auto provider = ServiceAccountProvider();
  ASSERT_NE(provider, nullptr);
  EXPECT_EQ(provider->Token().value_or(""), "sa-token-1");
  fake_.now_seconds = kT0 + 3600 - 301;
  EXPECT_EQ(provider->Token().value_or(""), "sa-token-1");
  EXPECT_EQ(fake_.token_requests, 1);
  fake_.now_seconds = kT0 + 3600 - 300;
  EXPECT_EQ(provider->Token().value_or(""), "sa-token-2");
  EXPECT_EQ(fake_.token_requests, 2);
  // The new assertion is dated by the clock at the refresh.
  EXPECT_EQ(fake_.last_jwt_claims()["iat"], kT0 + 3600 - 300);
}

TEST_F(AccessTokenTest, ShortLivedTokenIsRefreshedAtHalfItsLifeNotOnEveryCall) {
  fake_.expires_in = 120;  // shorter than the 5 min margin
  auto provider = ServiceAccountProvider();
  ASSERT_NE(provider, nullptr);
  EXPECT_EQ(provider->Token().value_or(""), "sa-token-1");
  fake_.now_seconds = kT0 + 59;
  EXPECT_EQ(provider->Token().value_or(""), "sa-token-1");
  fake_.now_seconds = kT0 + 60;
  EXPECT_EQ(provider->Token().value_or(""), "sa-token-2");
}

TEST_F(AccessTokenTest, ConcurrentCallersShareOneRefresh) {
  auto provider = ServiceAccountProvider();
  ASSERT_NE(provider, nullptr);
  fake_.Hold();
  std::vector<absl::StatusOr<std::string>> results(8);
  std::vector<std::thread> threads;
  threads.emplace_back([&] { results[0] = provider->Token(); });
  fake_.WaitUntilHeld(1);  // the first refresh is in flight; the others arrive during it
  for (std::size_t i = 1; i < results.size(); ++i) {
    threads.emplace_back([&, i] { results[i] = provider->Token(); });
  }
  fake_.Release();
  for (auto& t : threads) t.join();
  for (const auto& r : results) EXPECT_EQ(r.value_or(r.status().ToString()), "sa-token-1");
  EXPECT_EQ(fake_.token_requests, 1);
}

TEST_F(AccessTokenTest, StillValidTokenIsServedWhileARefreshIsInFlight) {
  auto provider = ServiceAccountProvider();
  ASSERT_NE(provider, nullptr);
  ASSERT_EQ(provider->Token().value_or(""), "sa-token-1");
  fake_.now_seconds = kT0 + 3600 - 100;  // due for refresh, not yet expired
  fake_.Hold();
  absl::StatusOr<std::string> refreshed;
  std::thread refresher([&] { refreshed = provider->Token(); });
  fake_.WaitUntilHeld(1);
  // Does not wait for the held refresh (if it did, it would get sa-token-2 once the fake's
  // hold times out).
  EXPECT_EQ(provider->Token().value_or(""), "sa-token-1");
  fake_.Release();
  refresher.join();
  EXPECT_EQ(refreshed.value_or(""), "sa-token-2");
}

TEST_F(AccessTokenTest, FailedRefreshIsReportedAndRetriedOnTheNextCall) {
  auto provider = ServiceAccountProvider();
  ASSERT_NE(provider, nullptr);
  fake_.fail_next = 1;
  auto first = provider->Token();
  EXPECT_EQ(first.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(first.status().message()), HasSubstr("temporarily_unavailable"));
  EXPECT_EQ(provider->Token().value_or(""), "sa-token-2");
}

TEST_F(AccessTokenTest, AuthorizedUserFromGcloudWellKnownFile) {
  fake_.ExpectAuthorizedUser("client-1.apps.googleusercontent.com", "s3cret&=", "1//refresh");
  env_.home().Write(".config/gcloud/application_default_credentials.json",
                    AuthorizedUserJson("client-1.apps.googleusercontent.com",
                                       "s3cret&=", "1//refresh", fake_.token_uri()));
  auto provider = MakeDefaultAccessTokenProvider(Options());
  ASSERT_TRUE(provider.ok()) << provider.status();
  EXPECT_EQ((*provider)->Token().value_or(""), "user-token-1");
}

TEST_F(AccessTokenTest, CloudsdkConfigMovesTheGcloudDirectory) {
  fake_.ExpectAuthorizedUser("c", "s", "r");
  files_.Write("gcloud/application_default_credentials.json",
               AuthorizedUserJson("c", "s", "r", fake_.token_uri()));
  setenv("CLOUDSDK_CONFIG", (files_.path() + "/gcloud").c_str(), 1);
  auto provider = MakeDefaultAccessTokenProvider(Options());
  ASSERT_TRUE(provider.ok()) << provider.status();
  EXPECT_EQ((*provider)->Token().value_or(""), "user-token-1");
}

TEST_F(AccessTokenTest, RevokedRefreshTokenErrorSurfaces) {
  fake_.ExpectAuthorizedUser("c", "s", "current");
  env_.home().Write(".config/gcloud/application_default_credentials.json",
                    AuthorizedUserJson("c", "s", "revoked", fake_.token_uri()));
  auto provider = MakeDefaultAccessTokenProvider(Options());
  ASSERT_TRUE(provider.ok()) << provider.status();
  auto token = (*provider)->Token();
  EXPECT_FALSE(token.ok());
  EXPECT_THAT(std::string(token.status().message()),
              HasSubstr("invalid_grant: Token has been expired or revoked."));
}

TEST_F(AccessTokenTest, GoogleApplicationCredentialsComesBeforeTheGcloudFile) {
  fake_.ExpectAuthorizedUser("c", "s", "r");
  env_.home().Write(".config/gcloud/application_default_credentials.json",
                    AuthorizedUserJson("c", "s", "r", fake_.token_uri()));
  auto provider = ServiceAccountProvider();
  ASSERT_NE(provider, nullptr);
  EXPECT_EQ(provider->Token().value_or(""), "sa-token-1");
}

TEST_F(AccessTokenTest, MetadataServerWhenNoFileAndItRequiresTheFlavorHeader) {
  setenv("GCE_METADATA_HOST", fake_.host().c_str(), 1);
  auto provider = MakeDefaultAccessTokenProvider(Options());
  ASSERT_TRUE(provider.ok()) << provider.status();
  // The fake answers 403 to a token request without "Metadata-Flavor: Google".
  EXPECT_EQ((*provider)->Token().value_or(""), "md-token-1");
  EXPECT_EQ((*provider)->Token().value_or(""), "md-token-1");  // cached
  EXPECT_EQ(fake_.metadata_token_requests, 1);
  EXPECT_EQ(fake_.token_requests, 0);
}

TEST_F(AccessTokenTest, MetadataHostOptionOverridesTheVariable) {
  setenv("GCE_METADATA_HOST", "127.0.0.1:1", 1);
  auto options = Options();
  options.metadata_host = fake_.host();
  auto provider = MakeDefaultAccessTokenProvider(options);
  ASSERT_TRUE(provider.ok()) << provider.status();
  EXPECT_EQ((*provider)->Token().value_or(""), "md-token-1");
}

TEST_F(AccessTokenTest, NothingFoundListsWhatWasTried) {
  // A server that answers but not as a metadata server (no Metadata-Flavor reply header).
  fake_.metadata_flavor_reply = false;
  setenv("GCE_METADATA_HOST", fake_.host().c_str(), 1);
  auto provider = MakeDefaultAccessTokenProvider(Options());
  EXPECT_EQ(provider.status().code(), absl::StatusCode::kFailedPrecondition);
  const std::string message(provider.status().message());
  EXPECT_THAT(message, HasSubstr("GOOGLE_APPLICATION_CREDENTIALS is not set"));
  EXPECT_THAT(message, HasSubstr(env_.home().path() +
                                 "/.config/gcloud/application_default_credentials.json"));
  EXPECT_THAT(message, HasSubstr("no metadata server at " + fake_.host()));
  EXPECT_THAT(message, HasSubstr("Metadata-Flavor"));
  EXPECT_EQ(fake_.metadata_token_requests, 0);
}

TEST_F(AccessTokenTest, MissingFileNamedByTheVariableIsAnError) {
  const std::string missing = files_.path() + "/nope.json";
  setenv("GOOGLE_APPLICATION_CREDENTIALS", missing.c_str(), 1);
  setenv("GCE_METADATA_HOST", fake_.host().c_str(), 1);  // would work, must not be used
  auto provider = MakeDefaultAccessTokenProvider(Options());
  EXPECT_EQ(provider.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(provider.status().message()), HasSubstr(missing));
}

TEST_F(AccessTokenTest, MalformedFilesNameTheFileAndTheField) {
  auto error_for = [&](const std::string& text) {
    const std::string file = files_.Write("bad.json", text);
    setenv("GOOGLE_APPLICATION_CREDENTIALS", file.c_str(), 1);
    auto p = MakeDefaultAccessTokenProvider(Options());
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument) << text;
    const std::string message(p.status().message());
    EXPECT_THAT(message, HasSubstr(file));
    return message;
  };
  EXPECT_THAT(error_for("{not json"), HasSubstr("not a JSON object"));
  EXPECT_THAT(error_for(R"({"client_email": "x"})"), HasSubstr("missing field \"type\""));
  EXPECT_THAT(error_for(R"({"type": "service_account", "client_email": "a@b"})"),
              HasSubstr("missing field \"private_key\""));
  EXPECT_THAT(error_for(R"({"type": "service_account", "private_key": "k"})"),
              HasSubstr("missing field \"client_email\""));
  EXPECT_THAT(error_for(R"({"type": "service_account", "client_email": "a@b",
                            "private_key": "-----BEGIN PRIVATE KEY-----\nxx\n"})"),
              HasSubstr("\"private_key\" is not a PEM private key"));
  EXPECT_THAT(error_for(R"({"type": "authorized_user", "client_id": "c", "client_secret": "s"})"),
              HasSubstr("missing field \"refresh_token\""));
  EXPECT_THAT(error_for(R"({"type": "authorized_user", "client_id": 7})"),
              HasSubstr("field \"client_id\" must be a non-empty string"));
}

TEST_F(AccessTokenTest, UnknownCredentialsTypeIsNamed) {
  const std::string file = files_.Write(
      "gdch.json", R"({"type": "gdch_service_account", "audience": "//iam.googleapis.com/x"})");
  auto p = MakeDefaultAccessTokenProvider({.credentials_file = file});
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(p.status().message()), HasSubstr("\"gdch_service_account\""));
  EXPECT_THAT(std::string(p.status().message()), HasSubstr(file));
}

TEST_F(AccessTokenTest, TokenUriOptionReplacesTheFilesAndIsTheAudience) {
  const std::string file = files_.Write(
      "sa.json", ServiceAccountJson(kEmail, Key().private_pem, kKeyId, "https://unreachable"));
  auto options = Options();
  options.credentials_file = file;
  options.token_uri = fake_.token_uri();
  auto provider = MakeDefaultAccessTokenProvider(options);
  ASSERT_TRUE(provider.ok()) << provider.status();
  EXPECT_EQ((*provider)->Token().value_or(""), "sa-token-1");
  EXPECT_EQ(fake_.last_jwt_claims()["aud"], fake_.token_uri());
}

// ---- external_account (workload / workforce identity federation) ----

constexpr char kAudience[] =
    "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/pool/providers/oidc";
constexpr char kJwtType[] = "urn:ietf:params:oauth:token-type:jwt";
// Shaped like a JWT (header.claims.signature), so the redaction of its parts is exercised too.
constexpr char kSubject[] =
    "eyJhbGciOiJSUzI1NiIsImtpZCI6Imsx.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6cGlwZWxpbmUi"
    ".c2lnbmF0dXJlLWJ5dGVzLWZvci10aGUtdGVzdA";
constexpr char kTarget[] = "archiver@test-project.iam.gserviceaccount.com";

// The library's log lines (every level) while it lives.
class LogCapture {
 public:
  LogCapture() : sink_(std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(1000)) {
    level_ = Log()->level();
    Log()->set_level(spdlog::level::trace);
    Log()->sinks().push_back(sink_);
  }
  ~LogCapture() {
    auto& sinks = Log()->sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
    Log()->set_level(level_);
  }
  [[nodiscard]] std::string Text() const {
    std::string out;
    for (const auto& line : sink_->last_formatted()) out += line;
    return out;
  }

 private:
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
  spdlog::level::level_enum level_;
};

// `text` holds none of the secret, nor any of its '.'-separated parts.
void ExpectNoSecret(const std::string& text, const std::string& secret) {
  EXPECT_THAT(text, Not(HasSubstr(secret)));
  for (absl::string_view part : absl::StrSplit(secret, '.')) {
    EXPECT_THAT(text, Not(HasSubstr(std::string(part))));
  }
}

class ExternalAccountTest : public AccessTokenTest {
 protected:
  // An external_account file whose subject token is read from `source` (credential_source).
  std::string WriteExternalAccount(nlohmann::json source,
                                   const nlohmann::json& extra = nlohmann::json::object()) {
    nlohmann::json j = {{"type", "external_account"},
                        {"audience", kAudience},
                        {"subject_token_type", kJwtType},
                        {"token_url", fake_.sts_url()},
                        {"credential_source", std::move(source)}};
    j.update(extra);
    return files_.Write("external.json", j.dump(2));
  }
  absl::StatusOr<std::shared_ptr<AccessTokenProvider>> ProviderFor(const std::string& file) {
    auto options = Options();
    options.credentials_file = file;
    return MakeDefaultAccessTokenProvider(options);
  }
};

TEST_F(ExternalAccountTest, FileSourceIsExchangedAtStsPerRfc8693) {
  fake_.ExpectSubjectToken(kSubject, kAudience, kJwtType);
  const std::string subject_file = files_.Write("token", std::string(kSubject) + "\n");
  setenv("GOOGLE_APPLICATION_CREDENTIALS", WriteExternalAccount({{"file", subject_file}}).c_str(),
         1);
  auto provider = MakeDefaultAccessTokenProvider(Options());
  ASSERT_TRUE(provider.ok()) << provider.status();
  EXPECT_EQ((*provider)->Token().value_or(""), "sts-token-1");
  auto form = fake_.last_sts_form();
  EXPECT_EQ(form["grant_type"], "urn:ietf:params:oauth:grant-type:token-exchange");
  EXPECT_EQ(form["requested_token_type"], "urn:ietf:params:oauth:token-type:access_token");
  EXPECT_EQ(form["subject_token_type"], kJwtType);
  EXPECT_EQ(form["audience"], kAudience);
  EXPECT_EQ(form["scope"], "https://www.googleapis.com/auth/cloud-platform");
  EXPECT_EQ(form["subject_token"], kSubject);  // the file's trailing newline is not sent
  EXPECT_EQ(form.count("options"), 0u);
  EXPECT_EQ(fake_.last_sts_authorization(), "");
  EXPECT_EQ(fake_.token_requests, 0);
  EXPECT_EQ(fake_.iam_requests, 0);
}

TEST_F(ExternalAccountTest, UrlSourceWithJsonFormatSendsItsHeaders) {
  fake_.ExpectSubjectToken(kSubject, kAudience, kJwtType);
  fake_.ServeSubject(nlohmann::json{{"access_token", kSubject}, {"expires_in", 3600}}.dump(),
                     "Metadata", "True");
  auto provider = ProviderFor(WriteExternalAccount(
      {{"url", fake_.subject_url()},
       {"headers", {{"Metadata", "True"}}},
       {"format", {{"type", "json"}, {"subject_token_field_name", "access_token"}}}}));
  ASSERT_TRUE(provider.ok()) << provider.status();
  EXPECT_EQ((*provider)->Token().value_or(""), "sts-token-1");
  EXPECT_EQ(fake_.subject_requests, 1);
  EXPECT_EQ(fake_.last_sts_form()["subject_token"], kSubject);
}

TEST_F(ExternalAccountTest, UrlSourceWithoutItsHeaderFailsClearly) {
  fake_.ExpectSubjectToken(kSubject, kAudience, kJwtType);
  fake_.ServeSubject(kSubject, "Metadata", "True");
  auto provider = ProviderFor(WriteExternalAccount({{"url", fake_.subject_url()}}));
  ASSERT_TRUE(provider.ok()) << provider.status();
  auto token = (*provider)->Token();
  EXPECT_EQ(token.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(token.status().message()), HasSubstr("subject token url"));
  EXPECT_THAT(std::string(token.status().message()), HasSubstr(fake_.subject_url()));
  EXPECT_EQ(fake_.sts_requests, 0);
}

TEST_F(ExternalAccountTest, ImpersonationChainStsTokenBuysTheServiceAccountsToken) {
  // The STS step asks for cloud-platform (to call IAM); the final token has the caller's scope.
  fake_.ExpectSubjectToken(kSubject, kAudience, kJwtType);
  fake_.ExpectImpersonation(kTarget);
  const std::string subject_file = files_.Write("token", kSubject);
  auto options = Options();
  options.scope = "https://www.googleapis.com/auth/devstorage.read_write";
  options.credentials_file =
      WriteExternalAccount({{"file", subject_file}},
                           {{"service_account_impersonation_url", fake_.impersonation_url(kTarget)},
                            {"service_account_impersonation", {{"token_lifetime_seconds", 1800}}}});
  auto provider = MakeDefaultAccessTokenProvider(options);
  ASSERT_TRUE(provider.ok()) << provider.status();
  EXPECT_EQ((*provider)->Token().value_or(""), "impersonated-token-1");
  EXPECT_EQ(fake_.last_sts_form()["scope"], "https://www.googleapis.com/auth/cloud-platform");
  EXPECT_EQ(fake_.last_iam_bearer(), "sts-token-1");
  const auto body = fake_.last_iam_body();
  EXPECT_EQ(body["scope"], nlohmann::json::array({options.scope}));
  EXPECT_EQ(body["lifetime"], "1800s");
  EXPECT_FALSE(body.contains("delegates"));
  // The token lives as long as IAM's expireTime says: refreshed 5 minutes before it, both
  // steps again.
  fake_.now_seconds = kT0 + 1800 - 301;
  EXPECT_EQ((*provider)->Token().value_or(""), "impersonated-token-1");
  fake_.now_seconds = kT0 + 1800 - 300;
  EXPECT_EQ((*provider)->Token().value_or(""), "impersonated-token-2");
  EXPECT_EQ(fake_.sts_requests, 2);
  EXPECT_EQ(fake_.last_iam_bearer(), "sts-token-2");
}

TEST_F(ExternalAccountTest, RefreshBeforeExpiryRereadsTheRotatedSubjectToken) {
  fake_.ExpectSubjectToken("subject-one", kAudience, kJwtType);
  const std::string subject_file = files_.Write("token", "subject-one");
  auto provider = ProviderFor(WriteExternalAccount({{"file", subject_file}}));
  ASSERT_TRUE(provider.ok()) << provider.status();
  EXPECT_EQ((*provider)->Token().value_or(""), "sts-token-1");
  // The identity provider rotates the file (a Kubernetes projected token does, hourly).
  files_.Write("token", "subject-two");
  fake_.ExpectSubjectToken("subject-two", kAudience, kJwtType);
  fake_.now_seconds = kT0 + 3600 - 301;
  EXPECT_EQ((*provider)->Token().value_or(""), "sts-token-1");
  EXPECT_EQ(fake_.sts_requests, 1);
  fake_.now_seconds = kT0 + 3600 - 300;
  auto refreshed = (*provider)->Token();
  EXPECT_EQ(refreshed.value_or(refreshed.status().ToString()), "sts-token-2");
  EXPECT_EQ(fake_.last_sts_form()["subject_token"], "subject-two");
}

TEST_F(ExternalAccountTest, StsErrorIsClearAndCarriesNoSecret) {
  LogCapture log;
  // The fake expects another subject token and quotes the one it got in its error.
  fake_.ExpectSubjectToken("the-right-one", kAudience, kJwtType);
  const std::string subject_file = files_.Write("token", kSubject);
  auto provider = ProviderFor(WriteExternalAccount(
      {{"file", subject_file}},
      {{"client_id", "sts-client"}, {"client_secret", "client-secret-value-0123456789"}}));
  ASSERT_TRUE(provider.ok()) << provider.status();
  auto token = (*provider)->Token();
  ASSERT_FALSE(token.ok());
  const std::string message(token.status().message());
  EXPECT_EQ(token.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(message, HasSubstr(std::string("token exchange for ") + kAudience));
  EXPECT_THAT(message, HasSubstr("HTTP 400"));
  EXPECT_THAT(message, HasSubstr("invalid_grant"));
  EXPECT_THAT(message, HasSubstr("[redacted]"));
  ExpectNoSecret(message, kSubject);
  EXPECT_THAT(message, Not(HasSubstr("client-secret-value-0123456789")));
  ExpectNoSecret(log.Text(), kSubject);
  EXPECT_THAT(log.Text(), Not(HasSubstr("client-secret-value")));
}

TEST_F(ExternalAccountTest, ClientCredentialsAndWorkforcePoolUserProject) {
  constexpr char kWorkforce[] =
      "//iam.googleapis.com/locations/global/workforcePools/staff/providers/okta";
  fake_.ExpectSubjectToken(kSubject, kWorkforce, kJwtType);
  const std::string subject_file = files_.Write("token", kSubject);
  // Without an OAuth client, the user project travels in the exchange's options.
  auto provider = ProviderFor(WriteExternalAccount(
      {{"file", subject_file}},
      {{"audience", kWorkforce}, {"workforce_pool_user_project", "billing-project"}}));
  ASSERT_TRUE(provider.ok()) << provider.status();
  EXPECT_EQ((*provider)->Token().value_or(""), "sts-token-1");
  EXPECT_EQ(nlohmann::json::parse(fake_.last_sts_form()["options"]),
            (nlohmann::json{{"userProject", "billing-project"}}));
  // With one, the client authenticates with HTTP Basic and no options are sent.
  provider = ProviderFor(WriteExternalAccount({{"file", subject_file}},
                                              {{"audience", kWorkforce},
                                               {"workforce_pool_user_project", "billing-project"},
                                               {"client_id", "cid"},
                                               {"client_secret", "csecret"}}));
  ASSERT_TRUE(provider.ok()) << provider.status();
  EXPECT_EQ((*provider)->Token().value_or(""), "sts-token-2");
  EXPECT_EQ(fake_.last_sts_authorization(), "Basic " + absl::Base64Escape("cid:csecret"));
  EXPECT_EQ(fake_.last_sts_form().count("options"), 0u);
}

TEST_F(ExternalAccountTest, UnreadableSubjectTokensNameThePlaceNotTheContent) {
  fake_.ExpectSubjectToken(kSubject, kAudience, kJwtType);
  const std::string missing = files_.path() + "/not-yet-written";
  auto provider = ProviderFor(WriteExternalAccount({{"file", missing}}));
  ASSERT_TRUE(provider.ok()) << provider.status();
  auto token = (*provider)->Token();
  EXPECT_EQ(token.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(token.status().message()), HasSubstr(missing));

  const std::string json_file =
      files_.Write("token.json", nlohmann::json{{"id_token", kSubject}}.dump());
  provider = ProviderFor(WriteExternalAccount(
      {{"file", json_file},
       {"format", {{"type", "json"}, {"subject_token_field_name", "access_token"}}}}));
  ASSERT_TRUE(provider.ok()) << provider.status();
  token = (*provider)->Token();
  EXPECT_EQ(token.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(token.status().message()), HasSubstr("\"access_token\""));
  EXPECT_THAT(std::string(token.status().message()), HasSubstr(json_file));
  ExpectNoSecret(std::string(token.status().message()), kSubject);
  EXPECT_EQ(fake_.sts_requests, 0);
}

TEST_F(ExternalAccountTest, MalformedFilesNameTheField) {
  auto error_for = [&](const nlohmann::json& j) {
    const std::string file = files_.Write("bad.json", j.dump());
    auto p = ProviderFor(file);
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument) << j.dump();
    const std::string message(p.status().message());
    EXPECT_THAT(message, HasSubstr(file));
    return message;
  };
  const nlohmann::json good = {{"type", "external_account"},
                               {"audience", kAudience},
                               {"subject_token_type", kJwtType},
                               {"token_url", fake_.sts_url()},
                               {"credential_source", {{"file", "/var/run/token"}}}};
  auto with = [&](const nlohmann::json& patch) {
    nlohmann::json j = good;
    j.merge_patch(patch);
    return j;
  };
  EXPECT_THAT(error_for(with({{"audience", nullptr}})), HasSubstr("missing field \"audience\""));
  EXPECT_THAT(error_for(with({{"token_url", 5}})),
              HasSubstr("field \"token_url\" must be a non-empty string"));
  EXPECT_THAT(error_for(with({{"credential_source", nullptr}})),
              HasSubstr("missing field \"credential_source\""));
  EXPECT_THAT(error_for(with({{"credential_source", {{"url", "http://x"}}}})),
              HasSubstr("credential_source: give exactly one of \"file\" and \"url\""));
  EXPECT_THAT(error_for(with({{"credential_source", {{"format", {{"type", "json"}}}}}})),
              HasSubstr("format: missing field \"subject_token_field_name\""));
  EXPECT_THAT(error_for(with({{"credential_source", {{"format", {{"type", "xml"}}}}}})),
              HasSubstr("field \"type\" is \"xml\"; want text or json"));
  EXPECT_THAT(error_for(with({{"credential_source", {{"headers", {{"Metadata", 1}}}}}})),
              HasSubstr("field \"headers\" value of \"Metadata\" must be a string"));
  const std::string executable =
      error_for({{"type", "external_account"},
                 {"audience", kAudience},
                 {"subject_token_type", kJwtType},
                 {"token_url", fake_.sts_url()},
                 {"credential_source", {{"executable", {{"command", "/usr/bin/get-token"}}}}}});
  EXPECT_THAT(executable, HasSubstr("executable-sourced credentials"));
  EXPECT_THAT(executable, HasSubstr("not supported"));
  EXPECT_THAT(error_for(with({{"credential_source", {{"environment_id", "aws1"}}}})),
              HasSubstr("AWS credential sources"));
  EXPECT_THAT(error_for(with({{"service_account_impersonation_url", "https://example.com/x"}})),
              HasSubstr("field \"service_account_impersonation_url\" must be an IAM Credentials"));
  EXPECT_THAT(error_for(with({{"workforce_pool_user_project", "p"}})),
              HasSubstr("field \"workforce_pool_user_project\" is only valid with a workforce"));
  EXPECT_THAT(
      error_for(with({{"service_account_impersonation_url", fake_.impersonation_url(kTarget)},
                      {"service_account_impersonation", {{"token_lifetime_seconds", 30}}}})),
      HasSubstr("token_lifetime_seconds\" must be an integer from 600 to 43200"));
}

// ---- impersonated_service_account (gcloud auth application-default login
//      --impersonate-service-account) ----

nlohmann::json ImpersonatedJson(const std::string& url, nlohmann::json source,
                                nlohmann::json delegates = nlohmann::json::array()) {
  return {{"type", "impersonated_service_account"},
          {"service_account_impersonation_url", url},
          {"delegates", std::move(delegates)},
          {"source_credentials", std::move(source)}};
}

TEST_F(AccessTokenTest, ImpersonatedServiceAccountFromGcloudsFileWithUserSource) {
  fake_.ExpectAuthorizedUser("c", "s", "r");
  fake_.ExpectImpersonation(kTarget);
  env_.home().Write(
      ".config/gcloud/application_default_credentials.json",
      ImpersonatedJson(fake_.impersonation_url(kTarget),
                       nlohmann::json::parse(AuthorizedUserJson("c", "s", "r", fake_.token_uri())),
                       {"relay@test-project.iam.gserviceaccount.com"})
          .dump(2));
  auto provider = MakeDefaultAccessTokenProvider(Options());
  ASSERT_TRUE(provider.ok()) << provider.status();
  EXPECT_EQ((*provider)->Token().value_or(""), "impersonated-token-1");
  EXPECT_EQ(fake_.last_iam_bearer(), "user-token-1");
  const auto body = fake_.last_iam_body();
  EXPECT_THAT(body["delegates"].get<std::vector<std::string>>(),
              ElementsAre("projects/-/serviceAccounts/relay@test-project.iam.gserviceaccount.com"));
  EXPECT_EQ(body["scope"],
            nlohmann::json::array({"https://www.googleapis.com/auth/cloud-platform"}));
  EXPECT_EQ(body["lifetime"], "3600s");
  // Cached like the others: one exchange per refresh.
  EXPECT_EQ((*provider)->Token().value_or(""), "impersonated-token-1");
  EXPECT_EQ(fake_.iam_requests, 1);
}

TEST_F(AccessTokenTest, ImpersonatedServiceAccountWithServiceAccountSource) {
  fake_.ExpectImpersonation(kTarget);
  const std::string file = files_.Write(
      "imp.json", ImpersonatedJson(fake_.impersonation_url(kTarget),
                                   nlohmann::json::parse(ServiceAccountJson(
                                       kEmail, Key().private_pem, kKeyId, fake_.token_uri())))
                      .dump());
  setenv("GOOGLE_APPLICATION_CREDENTIALS", file.c_str(), 1);
  auto options = Options();
  options.scope = "https://www.googleapis.com/auth/bigquery";
  auto provider = MakeDefaultAccessTokenProvider(options);
  ASSERT_TRUE(provider.ok()) << provider.status();
  EXPECT_EQ((*provider)->Token().value_or(""), "impersonated-token-1");
  // The source's own token is cloud-platform (the fake checks the JWT's scope), the final
  // one has the caller's scope.
  EXPECT_EQ(fake_.last_iam_bearer(), "sa-token-1");
  EXPECT_EQ(fake_.last_iam_body()["scope"], nlohmann::json::array({options.scope}));
}

TEST_F(AccessTokenTest, ImpersonationDeniedIsClearAndCarriesNoToken) {
  LogCapture log;
  fake_.ExpectAuthorizedUser("c", "s", "r");
  fake_.ExpectImpersonation("someone-else@test-project.iam.gserviceaccount.com");
  const std::string file = files_.Write(
      "imp.json",
      ImpersonatedJson(fake_.impersonation_url(kTarget),
                       nlohmann::json::parse(AuthorizedUserJson("c", "s", "r", fake_.token_uri())))
          .dump());
  auto options = Options();
  options.credentials_file = file;
  auto provider = MakeDefaultAccessTokenProvider(options);
  ASSERT_TRUE(provider.ok()) << provider.status();
  auto token = (*provider)->Token();
  EXPECT_EQ(token.status().code(), absl::StatusCode::kPermissionDenied);
  const std::string message(token.status().message());
  EXPECT_THAT(message, HasSubstr(std::string("impersonating ") + kTarget));
  EXPECT_THAT(message, HasSubstr("iam.serviceAccounts.getAccessToken"));
  // The fake quotes the caller's token in its error.
  EXPECT_THAT(message, Not(HasSubstr("user-token-1")));
  EXPECT_THAT(log.Text(), Not(HasSubstr("user-token-1")));
}

TEST_F(AccessTokenTest, MalformedImpersonatedFilesNameTheField) {
  auto error_for = [&](const nlohmann::json& j) {
    const std::string file = files_.Write("bad.json", j.dump());
    auto p = MakeDefaultAccessTokenProvider({.credentials_file = file});
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument) << j.dump();
    return std::string(p.status().message());
  };
  const std::string url = fake_.impersonation_url(kTarget);
  EXPECT_THAT(error_for({{"type", "impersonated_service_account"},
                         {"service_account_impersonation_url", url}}),
              HasSubstr("missing field \"source_credentials\""));
  EXPECT_THAT(error_for(ImpersonatedJson(url, {{"type", "service_account"}})),
              HasSubstr("source_credentials: missing field \"client_email\""));
  EXPECT_THAT(error_for(ImpersonatedJson(url, {{"type", "external_account"}})),
              HasSubstr("source credentials must be service_account or authorized_user"));
  EXPECT_THAT(error_for(ImpersonatedJson(url, {{"type", "authorized_user"}}, {1})),
              HasSubstr("field \"delegates\" must hold non-empty strings"));
  EXPECT_THAT(error_for(ImpersonatedJson("https://iamcredentials.googleapis.com/v1/x",
                                         {{"type", "authorized_user"}})),
              HasSubstr("\"service_account_impersonation_url\" must be an IAM Credentials URL"));
}

TEST(StaticAccessTokenProvider, ReturnsItsToken) {
  EXPECT_EQ(MakeStaticAccessTokenProvider("abc")->Token().value_or(""), "abc");
}

}  // namespace
}  // namespace dataflow::gcp

// MakeDefaultAccessTokenProvider over the wire against local stand-ins for Google's OAuth
// token endpoint and the metadata server (fake_oauth_server.h), with credentials files and
// environment variables set up the way ADC finds them.
#include "dataflow/gcp/access_token.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <thread>
#include <vector>

#include "fake_oauth_server.h"

namespace dataflow::gcp {
namespace {

using dataflow::testing::AuthorizedUserJson;
using dataflow::testing::FakeOAuthServer;
using dataflow::testing::NoAmbientCredentials;
using dataflow::testing::ServiceAccountJson;
using dataflow::testing::TempDir;
using dataflow::testing::TestRsaKey;
using ::testing::HasSubstr;

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
      "wif.json", R"({"type": "external_account", "audience": "//iam.googleapis.com/x"})");
  auto p = MakeDefaultAccessTokenProvider({.credentials_file = file});
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(p.status().message()), HasSubstr("\"external_account\""));
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

TEST(StaticAccessTokenProvider, ReturnsItsToken) {
  EXPECT_EQ(MakeStaticAccessTokenProvider("abc")->Token().value_or(""), "abc");
}

}  // namespace
}  // namespace dataflow::gcp

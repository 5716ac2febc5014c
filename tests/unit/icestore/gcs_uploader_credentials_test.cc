// Which bearer token GcsBatchUploader sends: from Application Default Credentials when no
// provider is given for Google's endpoint, none for the emulator, and a clear Create error
// when there are no credentials. Over the wire against a local GCS stand-in and the fake
// OAuth token endpoint from tests/unit/gcp.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <stdlib.h>

#include <mutex>
#include <optional>
#include <vector>

#include "dataflow/gcp/access_token.h"
#include "dataflow/icestore/archival.h"
#include "dataflow/icestore/gcs_uploader.h"
#include "fake_oauth_server.h"

namespace dataflow::icestore {
namespace {

using dataflow::testing::AuthorizationRecorder;
using dataflow::testing::FakeOAuthServer;
using dataflow::testing::NoAmbientCredentials;
using gcp::HttpClient;
using gcp::HttpRequest;
using gcp::HttpResponse;
using gcp::MakeCurlHttpClient;
using ::testing::HasSubstr;

constexpr char kEmail[] = "archiver@test-project.iam.gserviceaccount.com";

// A transport that sends requests for Google's endpoint to a local server instead, so the
// uploader can be created exactly as for production (https, no provider) in a test.
class RedirectingHttpClient : public HttpClient {
 public:
  explicit RedirectingHttpClient(std::string to) : to_(std::move(to)) {}
  absl::StatusOr<HttpResponse> Send(const HttpRequest& request) override {
    HttpRequest copy = request;
    constexpr std::string_view kGoogle = "https://storage.googleapis.com";
    if (copy.url.starts_with(kGoogle)) copy.url = to_ + copy.url.substr(kGoogle.size());
    return curl_->Send(copy);
  }

 private:
  std::string to_;
  std::shared_ptr<HttpClient> curl_ = MakeCurlHttpClient();
};

class GcsCredentialsTest : public ::testing::Test {
 protected:
  void UseServiceAccount() { env_.UseServiceAccount(oauth_, kEmail); }
  static ObjectGroup Group() {
    return {.batch_key = "2025/06/15",
            .jsonl = EncodeArchivalLine({.id = "m1", .batch_key = "2025/06/15"})};
  }

  NoAmbientCredentials env_{{"STORAGE_EMULATOR_HOST"}};
  FakeOAuthServer oauth_;
  // Media uploads.
  AuthorizationRecorder gcs_{"POST", R"(/upload/storage/v1/b/([^/]+)/o)",
                             R"({"kind":"storage#object"})"};
};

TEST_F(GcsCredentialsTest, GoogleEndpointWithoutProviderUsesDefaultCredentials) {
  UseServiceAccount();
  auto up = GcsBatchUploader::Create(
      {.bucket = "b", .http = std::make_shared<RedirectingHttpClient>(gcs_.endpoint())});
  ASSERT_TRUE(up.ok()) << up.status();
  EXPECT_EQ((*up)->endpoint(), "https://storage.googleapis.com");
  ASSERT_TRUE((*up)->Upload(Group()).ok());
  ASSERT_TRUE((*up)->Upload(Group()).ok());
  EXPECT_THAT(gcs_.authorizations(),
              ::testing::ElementsAre("Bearer sa-token-1", "Bearer sa-token-1"));
  EXPECT_EQ(oauth_.token_requests, 1);  // cached between uploads
}

TEST_F(GcsCredentialsTest, DefaultProviderPassedExplicitlyIsUsedForAnyEndpoint) {
  UseServiceAccount();
  auto provider = gcp::MakeDefaultAccessTokenProvider();
  ASSERT_TRUE(provider.ok()) << provider.status();
  auto up = GcsBatchUploader::Create(
      {.bucket = "b", .endpoint = gcs_.endpoint(), .token_provider = *provider});
  ASSERT_TRUE(up.ok()) << up.status();
  ASSERT_TRUE((*up)->Upload(Group()).ok());
  EXPECT_THAT(gcs_.authorizations(), ::testing::ElementsAre("Bearer sa-token-1"));
}

TEST_F(GcsCredentialsTest, EmulatorNeedsNoCredentialsAndGetsNoToken) {
  setenv("GCE_METADATA_HOST", oauth_.host().c_str(), 1);  // would answer; must not be asked
  setenv("STORAGE_EMULATOR_HOST", gcs_.endpoint().c_str(), 1);
  auto up = GcsBatchUploader::Create({.bucket = "b"});
  ASSERT_TRUE(up.ok()) << up.status();
  ASSERT_TRUE((*up)->Upload(Group()).ok());
  EXPECT_THAT(gcs_.authorizations(), ::testing::ElementsAre(""));
  EXPECT_EQ(oauth_.metadata_token_requests, 0);
}

TEST_F(GcsCredentialsTest, NoCredentialsAnywhereFailsCreateClearly) {
  oauth_.metadata_flavor_reply = false;  // answers, but is no metadata server
  setenv("GCE_METADATA_HOST", oauth_.host().c_str(), 1);
  auto up = GcsBatchUploader::Create({.bucket = "b"});
  EXPECT_EQ(up.status().code(), absl::StatusCode::kFailedPrecondition);
  const std::string message(up.status().message());
  EXPECT_THAT(message, HasSubstr("token_provider"));
  EXPECT_THAT(message, HasSubstr("STORAGE_EMULATOR_HOST"));
  EXPECT_THAT(message, HasSubstr("GOOGLE_APPLICATION_CREDENTIALS is not set"));
  EXPECT_THAT(message, HasSubstr("no metadata server at " + oauth_.host()));
}

}  // namespace
}  // namespace dataflow::icestore

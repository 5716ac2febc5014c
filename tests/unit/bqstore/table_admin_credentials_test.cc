// Which bearer token TableAdmin sends: a provider's (here the default-credentials one pointed
// at the fake OAuth endpoint from tests/unit/gcp), a fixed access_token, or none for local
// servers; and Create's error for Google's endpoint when no credentials exist. Over the wire
// against a local stand-in for the BigQuery tables.get call.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <stdlib.h>

#include <mutex>
#include <optional>
#include <vector>

#include "dataflow/bqstore/table_admin.h"
#include "dataflow/gcp/access_token.h"
#include "fake_oauth_server.h"

namespace dataflow::bqstore {
namespace {

using dataflow::testing::AuthorizationRecorder;
using dataflow::testing::FakeOAuthServer;
using dataflow::testing::NoAmbientCredentials;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kEmail[] = "loader@test-project.iam.gserviceaccount.com";

class TableAdminCredentialsTest : public ::testing::Test {
 protected:
  void UseServiceAccount() { env_.UseServiceAccount(oauth_, kEmail); }
  // A TableAdmin for the stand-in whose tokens come from Application Default Credentials.
  std::unique_ptr<TableAdmin> AdminWithDefaultCredentials() {
    auto provider = gcp::MakeDefaultAccessTokenProvider();
    EXPECT_TRUE(provider.ok()) << provider.status();
    if (!provider.ok()) return nullptr;
    auto admin = TableAdmin::Create(
        {.project_id = "p", .endpoint = bq_.endpoint(), .token_provider = *provider});
    EXPECT_TRUE(admin.ok()) << admin.status();
    return admin.ok() ? *std::move(admin) : nullptr;
  }

  NoAmbientCredentials env_{{"BIGQUERY_EMULATOR_HOST"}};
  FakeOAuthServer oauth_;
  // tables.get with a one-column schema.
  AuthorizationRecorder bq_{
      "GET", R"(/bigquery/v2/projects/([^/]+)/datasets/([^/]+)/tables/([^/]+))",
      R"({"schema":{"fields":[{"name":"id","type":"STRING","mode":"REQUIRED"}]}})"};
};

TEST_F(TableAdminCredentialsTest, DefaultProviderTokenIsSentAsBearer) {
  UseServiceAccount();
  auto admin = AdminWithDefaultCredentials();
  ASSERT_NE(admin, nullptr);
  ASSERT_TRUE(admin->GetTableSchema("d", "t").ok());
  ASSERT_TRUE(admin->GetTableSchema("d", "t").ok());
  EXPECT_THAT(bq_.authorizations(), ElementsAre("Bearer sa-token-1", "Bearer sa-token-1"));
  EXPECT_EQ(oauth_.token_requests, 1);
}

TEST_F(TableAdminCredentialsTest, TokenFailureFailsTheCallWithTheEndpointsError) {
  UseServiceAccount();
  auto admin = AdminWithDefaultCredentials();
  ASSERT_NE(admin, nullptr);
  oauth_.fail_next = 1;
  auto schema = admin->GetTableSchema("d", "t");
  EXPECT_EQ(schema.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(schema.status().message()), HasSubstr("temporarily_unavailable"));
  EXPECT_TRUE(bq_.authorizations().empty());  // nothing sent without a token
  EXPECT_TRUE(admin->GetTableSchema("d", "t").ok());
}

TEST_F(TableAdminCredentialsTest, FixedAccessTokenStillWins) {
  UseServiceAccount();
  auto provider = gcp::MakeDefaultAccessTokenProvider();
  ASSERT_TRUE(provider.ok()) << provider.status();
  auto admin = TableAdmin::Create({.project_id = "p",
                                   .endpoint = bq_.endpoint(),
                                   .access_token = "fixed",
                                   .token_provider = *provider});
  ASSERT_TRUE(admin.ok()) << admin.status();
  ASSERT_TRUE((*admin)->GetTableSchema("d", "t").ok());
  EXPECT_THAT(bq_.authorizations(), ElementsAre("Bearer fixed"));
  EXPECT_EQ(oauth_.token_requests, 0);
}

TEST_F(TableAdminCredentialsTest, EmulatorHostNeedsNoCredentialsAndGetsNoToken) {
  setenv("GCE_METADATA_HOST", oauth_.host().c_str(), 1);  // would answer; must not be asked
  setenv("BIGQUERY_EMULATOR_HOST", bq_.host().c_str(), 1);
  auto admin = TableAdmin::Create({.project_id = "p"});
  ASSERT_TRUE(admin.ok()) << admin.status();
  ASSERT_TRUE((*admin)->GetTableSchema("d", "t").ok());
  EXPECT_THAT(bq_.authorizations(), ElementsAre(""));
  EXPECT_EQ(oauth_.metadata_token_requests, 0);
}

TEST_F(TableAdminCredentialsTest, GoogleEndpointWithoutCredentialsFailsCreateClearly) {
  oauth_.metadata_flavor_reply = false;  // answers, but is no metadata server
  setenv("GCE_METADATA_HOST", oauth_.host().c_str(), 1);
  auto admin = TableAdmin::Create({.project_id = "p"});
  EXPECT_EQ(admin.status().code(), absl::StatusCode::kFailedPrecondition);
  const std::string message(admin.status().message());
  EXPECT_THAT(message, HasSubstr("https://bigquery.googleapis.com"));
  EXPECT_THAT(message, HasSubstr("BIGQUERY_EMULATOR_HOST"));
  EXPECT_THAT(message, HasSubstr("GOOGLE_APPLICATION_CREDENTIALS is not set"));
  // With credentials the same options are accepted (tokens are fetched on first use).
  UseServiceAccount();
  EXPECT_TRUE(TableAdmin::Create({.project_id = "p"}).ok());
  EXPECT_EQ(oauth_.token_requests, 0);
}

}  // namespace
}  // namespace dataflow::bqstore

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

using dataflow::testing::FakeOAuthServer;
using dataflow::testing::ServiceAccountJson;
using dataflow::testing::TempDir;
using dataflow::testing::TestRsaKey;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kEmail[] = "loader@test-project.iam.gserviceaccount.com";

// Answers tables.get with a one-column schema and remembers each Authorization header.
class RecordingBigQuery {
 public:
  RecordingBigQuery() {
    server_.Get(R"(/bigquery/v2/projects/([^/]+)/datasets/([^/]+)/tables/([^/]+))",
                [this](const httplib::Request& req, httplib::Response& res) {
                  std::lock_guard lock(mu_);
                  authorizations_.push_back(req.get_header_value("Authorization"));
                  res.set_content(
                      R"({"schema":{"fields":[{"name":"id","type":"STRING","mode":"REQUIRED"}]}})",
                      "application/json");
                });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] {
      server_.listen_after_bind();
      ended_ = true;
    });
  }
  ~RecordingBigQuery() {
    // stop() is a no-op until the accept loop runs.
    while (!server_.is_running() && !ended_) std::this_thread::yield();
    server_.stop();
    thread_.join();
  }
  [[nodiscard]] std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
  [[nodiscard]] std::string endpoint() const { return "http://" + host(); }
  std::vector<std::string> authorizations() {
    std::lock_guard lock(mu_);
    return authorizations_;
  }

 private:
  httplib::Server server_;
  std::thread thread_;
  std::atomic<bool> ended_{false};
  int port_ = 0;
  std::mutex mu_;
  std::vector<std::string> authorizations_;
};

class TableAdminCredentialsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : {"GOOGLE_APPLICATION_CREDENTIALS", "HOME", "CLOUDSDK_CONFIG",
                             "GCE_METADATA_HOST", "BIGQUERY_EMULATOR_HOST"}) {
      const char* v = std::getenv(name);
      saved_.emplace_back(name, v ? std::optional<std::string>(v) : std::nullopt);
      unsetenv(name);
    }
    setenv("HOME", home_.path().c_str(), 1);  // no gcloud credentials file
  }
  void TearDown() override {
    for (const auto& [name, value] : saved_) {
      value ? setenv(name.c_str(), value->c_str(), 1) : unsetenv(name.c_str());
    }
  }
  // GOOGLE_APPLICATION_CREDENTIALS → a service-account key whose token_uri is the fake.
  void UseServiceAccount() {
    static const TestRsaKey key = TestRsaKey::Generate();
    oauth_.ExpectServiceAccount(kEmail, key.public_key, "k1");
    const std::string file = files_.Write(
        "sa.json", ServiceAccountJson(kEmail, key.private_pem, "k1", oauth_.token_uri()));
    setenv("GOOGLE_APPLICATION_CREDENTIALS", file.c_str(), 1);
  }

  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
  TempDir home_;
  TempDir files_;
  FakeOAuthServer oauth_;
  RecordingBigQuery bq_;
};

TEST_F(TableAdminCredentialsTest, DefaultProviderTokenIsSentAsBearer) {
  UseServiceAccount();
  auto provider = gcp::MakeDefaultAccessTokenProvider();
  ASSERT_TRUE(provider.ok()) << provider.status();
  auto admin = TableAdmin::Create(
      {.project_id = "p", .endpoint = bq_.endpoint(), .token_provider = *provider});
  ASSERT_TRUE(admin.ok()) << admin.status();
  ASSERT_TRUE((*admin)->GetTableSchema("d", "t").ok());
  ASSERT_TRUE((*admin)->GetTableSchema("d", "t").ok());
  EXPECT_THAT(bq_.authorizations(), ElementsAre("Bearer sa-token-1", "Bearer sa-token-1"));
  EXPECT_EQ(oauth_.token_requests, 1);
}

TEST_F(TableAdminCredentialsTest, TokenFailureFailsTheCallWithTheEndpointsError) {
  UseServiceAccount();
  auto provider = gcp::MakeDefaultAccessTokenProvider();
  ASSERT_TRUE(provider.ok()) << provider.status();
  auto admin = TableAdmin::Create(
      {.project_id = "p", .endpoint = bq_.endpoint(), .token_provider = *provider});
  ASSERT_TRUE(admin.ok()) << admin.status();
  oauth_.fail_next = 1;
  auto schema = (*admin)->GetTableSchema("d", "t");
  EXPECT_EQ(schema.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(schema.status().message()), HasSubstr("temporarily_unavailable"));
  EXPECT_TRUE(bq_.authorizations().empty());  // nothing sent without a token
  EXPECT_TRUE((*admin)->GetTableSchema("d", "t").ok());
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

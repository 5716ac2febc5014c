#include <gtest/gtest.h>

#include <cstdlib>

#include "dataflow/gcp/channel.h"
#include "dataflow/gcp/project.h"
#include "dataflow/gcp/status.h"
#include "google/pubsub/v1/pubsub.grpc.pb.h"

namespace dataflow::gcp {
namespace {

TEST(ResolveEndpoint, ExplicitEndpointWins) {
  setenv("DATAFLOW_TEST_EMULATOR", "127.0.0.1:1", 1);
  auto r = ResolveEndpoint({.default_endpoint = "pubsub.googleapis.com:443",
                            .endpoint = "localhost:9000",
                            .insecure = true,
                            .emulator_host_env = "DATAFLOW_TEST_EMULATOR"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->target, "localhost:9000");
  EXPECT_TRUE(r->insecure);
  EXPECT_FALSE(r->emulator);
}

TEST(ResolveEndpoint, EmulatorVariableMeansInsecure) {
  setenv("DATAFLOW_TEST_EMULATOR", "127.0.0.1:8085", 1);
  auto r = ResolveEndpoint({.default_endpoint = "pubsub.googleapis.com:443",
                            .emulator_host_env = "DATAFLOW_TEST_EMULATOR"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->target, "127.0.0.1:8085");
  EXPECT_TRUE(r->insecure);
  EXPECT_TRUE(r->emulator);
  setenv("DATAFLOW_TEST_EMULATOR", "", 1);  // empty counts as unset
  r = ResolveEndpoint({.default_endpoint = "pubsub.googleapis.com:443",
                       .emulator_host_env = "DATAFLOW_TEST_EMULATOR"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->target, "pubsub.googleapis.com:443");
  EXPECT_FALSE(r->insecure);
}

TEST(ResolveEndpoint, RejectsWhatIsNotHostPort) {
  setenv("DATAFLOW_TEST_EMULATOR", "http://localhost:8085", 1);
  auto r = ResolveEndpoint({.emulator_host_env = "DATAFLOW_TEST_EMULATOR"});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("DATAFLOW_TEST_EMULATOR"), std::string::npos);
  EXPECT_FALSE(ResolveEndpoint({.endpoint = "localhost"}).ok());
  EXPECT_FALSE(ResolveEndpoint({.endpoint = "localhost:80x"}).ok());
  unsetenv("DATAFLOW_TEST_EMULATOR");
  auto none = ResolveEndpoint({.emulator_host_env = "DATAFLOW_TEST_EMULATOR"});
  EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(PlaintextAllowed, OnlyToThisMachineOrWithTheEmulatorVariableSet) {
  unsetenv("DATAFLOW_TEST_EMULATOR");
  for (const char* local : {"127.0.0.1:9060", "localhost:9060", "[::1]:9060", "127.8.9.10:1"}) {
    EXPECT_TRUE(PlaintextAllowed(local, "DATAFLOW_TEST_EMULATOR")) << local;
  }
  for (const char* remote : {"bigquery.example.com:443", "10.0.0.7:9060", "127.example.com:1",
                             "[2001:db8::1]:443", "localhost.example.com:1"}) {
    EXPECT_FALSE(PlaintextAllowed(remote, "DATAFLOW_TEST_EMULATOR")) << remote;
    EXPECT_FALSE(PlaintextAllowed(remote, "")) << remote;
  }
  setenv("DATAFLOW_TEST_EMULATOR", "", 1);  // empty counts as unset
  EXPECT_FALSE(PlaintextAllowed("bigquery-emulator:9060", "DATAFLOW_TEST_EMULATOR"));
  setenv("DATAFLOW_TEST_EMULATOR", "bigquery-emulator:9050", 1);
  EXPECT_TRUE(PlaintextAllowed("bigquery-emulator:9060", "DATAFLOW_TEST_EMULATOR"));
  unsetenv("DATAFLOW_TEST_EMULATOR");
}

TEST(MakeChannel, InsecureChannelToAnEmulatorHost) {
  auto ch = MakeChannel({.endpoint = "127.0.0.1:1", .insecure = true});
  ASSERT_TRUE(ch.ok()) << ch.status();
  ASSERT_NE(*ch, nullptr);
  // The generated stubs link and construct over it.
  auto stub = google::pubsub::v1::Publisher::NewStub(*ch);
  EXPECT_NE(stub, nullptr);
}

TEST(ProjectId, ConfiguredThenEnvironment) {
  setenv("GOOGLE_CLOUD_PROJECT", "from-env", 1);
  EXPECT_EQ(*ResolveProjectId("configured"), "configured");
  EXPECT_EQ(*ResolveProjectId(""), "from-env");
  unsetenv("GOOGLE_CLOUD_PROJECT");
  EXPECT_EQ(ResolveProjectId("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveProjectId("a/b").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveProjectId("a b").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Status, RoundTripsCodeAndMessage) {
  grpc::Status g(grpc::StatusCode::NOT_FOUND, "no such subscription");
  absl::Status a = FromGrpcStatus(g, "StreamingPull");
  EXPECT_EQ(a.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(a.message(), "StreamingPull: no such subscription");
  grpc::Status back = ToGrpcStatus(absl::UnavailableError("down"));
  EXPECT_EQ(back.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(back.error_message(), "down");
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
  EXPECT_TRUE(IsRetryable(absl::StatusCode::kUnavailable));
  EXPECT_FALSE(IsRetryable(absl::StatusCode::kNotFound));
  EXPECT_FALSE(IsRetryable(absl::StatusCode::kPermissionDenied));
}

}  // namespace
}  // namespace dataflow::gcp

#include "ops_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>

#include "dataflow/metrics/service_families.h"

namespace dataflow::app {
namespace {

using namespace std::chrono_literals;

struct Answer {
  int status = -1;  // -1: no answer
  std::string body;
  std::string content_type;
};

Answer Get(int port, const std::string& path) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(5s);
  client.set_read_timeout(5s);
  auto res = client.Get(path);
  if (!res) return {};
  return Answer{res->status, res->body, res->get_header_value("Content-Type")};
}

OpsServerOptions Loopback(int port = 0) { return {.host = "127.0.0.1", .port = port}; }

// A TCP connection to 127.0.0.1:port that sends `bytes` (maybe nothing) and then stays silent
// until destroyed.
class SilentClient {
 public:
  SilentClient(int port, const std::string& bytes) : fd_(socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
                 (bytes.empty() || send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
                                       static_cast<ssize_t>(bytes.size()));
  }
  ~SilentClient() {
    if (fd_ >= 0) close(fd_);
  }
  SilentClient(const SilentClient&) = delete;
  SilentClient& operator=(const SilentClient&) = delete;
  [[nodiscard]] bool connected() const { return connected_; }

 private:
  int fd_;
  bool connected_ = false;
};

TEST(OpsServer, EndpointsOverHttpWithReadinessFlipping) {
  std::atomic<bool> consumer_connected{false};
  metrics::Telemetry telemetry;
  telemetry.AddCallback([](metrics::ScrapeWriter& out) {
    metrics::WriteServiceMetrics(out, "enrichment", messagepipeline::ServiceMetrics{.received = 3});
  });
  auto server =
      OpsServer::Start(Loopback(), OpsProbes{
                                       .live = [] { return true; },
                                       .readiness =
                                           [&] {
                                             return std::vector<ComponentReadiness>{
                                                 {.name = "ingestion consumer", .ready = true},
                                                 {.name = "enrichment consumer",
                                                  .ready = consumer_connected.load(),
                                                  .detail = "not connected"},
                                             };
                                           },
                                       .metrics = [&] { return telemetry.Collect(); },
                                   });
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  ASSERT_GT(port, 0);

  Answer health = Get(port, "/healthz");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body, "ok\n");

  Answer not_ready = Get(port, "/readyz");
  EXPECT_EQ(not_ready.status, 503);
  EXPECT_EQ(not_ready.body,
            "not ready (1 of 2 components; the reasons are in the log):\nenrichment consumer\n");

  consumer_connected = true;
  Answer ready = Get(port, "/readyz");
  EXPECT_EQ(ready.status, 200);
  EXPECT_EQ(ready.body, "ready\n");

  Answer metrics = Get(port, "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_TRUE(metrics.content_type.starts_with("text/plain; version=0.0.4"))
      << metrics.content_type;
  EXPECT_EQ(metrics.body, telemetry.Render());
  EXPECT_NE(metrics.body.find("dataflow_messages_received_total{service=\"enrichment\"} 3\n"),
            std::string::npos);

  Answer unknown = Get(port, "/nope");
  EXPECT_EQ(unknown.status, 404);
  // Nothing the client sent is reflected back.
  EXPECT_EQ(unknown.body, "not found (try /healthz, /readyz, /metrics)\n");
}

// A liveness probe must not wait behind idle or stalled connections (a Kubernetes probe that
// times out restarts a healthy pod): 64 idle connections and 16 clients that send half a
// request and stall, then /healthz is timed. The bound: under 100 ms.
TEST(OpsServer, HealthzAnswersPromptlyWithIdleAndStalledConnectionsOpen) {
  auto server = OpsServer::Start(Loopback(), OpsProbes{.live = [] { return true; }});
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  std::vector<std::unique_ptr<SilentClient>> clients;
  for (int i = 0; i < 64; ++i) clients.push_back(std::make_unique<SilentClient>(port, ""));
  for (int i = 0; i < 16; ++i) {
    clients.push_back(std::make_unique<SilentClient>(port, "GET /healthz HTTP/1.1\r\nHost: x"));
  }
  for (const auto& c : clients) ASSERT_TRUE(c->connected());
  // And more stalled clients arriving while it is measured (a flood, below the thread cap).
  std::vector<std::unique_ptr<SilentClient>> flood;
  std::thread flooder([&] {
    for (int i = 0; i < 100; ++i) {
      flood.push_back(std::make_unique<SilentClient>(port, "GET /metrics HTTP/1.1\r\n"));
    }
  });
  for (int round = 0; round < 3; ++round) {
    const auto start = std::chrono::steady_clock::now();
    Answer health = Get(port, "/healthz");
    const auto took = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(health.status, 200);
    // Not a speed claim: a probe that had to wait for a thread held by a stalled connection
    // is answered only once the server drops that connection, after its 1 s stall timeout.
    // Below that, the probe had a thread of its own (typically in about a millisecond).
    EXPECT_LT(took, 1s) << "round " << round << ": "
                        << std::chrono::duration<double, std::milli>(took).count() << " ms";
    std::printf("healthz with 64 idle + 16 stalled connections and a flood: %.2f ms\n",
                std::chrono::duration<double, std::milli>(took).count());
  }
  flooder.join();
}

TEST(OpsServer, NotLiveIs503) {
  std::atomic<bool> live{true};
  auto server = OpsServer::Start(Loopback(), OpsProbes{.live = [&] { return live.load(); }});
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ(Get((*server)->port(), "/healthz").status, 200);
  live = false;
  EXPECT_EQ(Get((*server)->port(), "/healthz").status, 503);
}

TEST(OpsServer, WithoutProbesLiveReadyAndEmptyMetrics) {
  auto server = OpsServer::Start(Loopback(), OpsProbes{});
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ(Get((*server)->port(), "/healthz").status, 200);
  EXPECT_EQ(Get((*server)->port(), "/readyz").status, 200);
  Answer metrics = Get((*server)->port(), "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_EQ(metrics.body, "");
}

TEST(OpsServer, ThrowingProbesAnswerErrors) {
  auto server = OpsServer::Start(
      Loopback(), OpsProbes{
                      .live = []() -> bool { throw std::runtime_error("live broke"); },
                      .readiness = []() -> std::vector<ComponentReadiness> {
                        throw std::runtime_error("ready broke");
                      },
                      .metrics = []() -> std::vector<prometheus::MetricFamily> {
                        throw std::runtime_error("scrape broke");
                      },
                  });
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  Answer live = Get(port, "/healthz");
  EXPECT_EQ(live.status, 503);
  EXPECT_EQ(live.body, "not live (the reason is in the log)\n");
  EXPECT_EQ(Get(port, "/readyz").status, 503);
  Answer metrics = Get(port, "/metrics");
  EXPECT_EQ(metrics.status, 500);
  EXPECT_EQ(metrics.body.find("scrape broke"), std::string::npos);
}

TEST(OpsServer, PortInUseIsAClearError) {
  auto first = OpsServer::Start(Loopback(), OpsProbes{});
  ASSERT_TRUE(first.ok()) << first.status();
  const int port = (*first)->port();
  auto second = OpsServer::Start(Loopback(port), OpsProbes{});
  ASSERT_FALSE(second.ok()) << "two servers on one port";
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(second.status().message().find(absl::StrCat("127.0.0.1:", port)), std::string::npos)
      << second.status();
  // The first one still answers.
  EXPECT_EQ(Get(port, "/healthz").status, 200);
}

TEST(OpsServer, BadOptionsAreRejected) {
  EXPECT_EQ(OpsServer::Start(Loopback(-1), {}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(OpsServer::Start(Loopback(65536), {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(OpsServer::Start({.host = "", .port = 0}, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto not_local = OpsServer::Start({.host = "203.0.113.7", .port = 0}, {});  // TEST-NET-3
  EXPECT_EQ(not_local.status().code(), absl::StatusCode::kUnavailable) << not_local.status();
}

TEST(OpsServer, StopClosesThePortAndItCanBeReused) {
  auto server = OpsServer::Start(Loopback(), OpsProbes{});
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  EXPECT_EQ(Get(port, "/healthz").status, 200);
  (*server)->Stop();
  (*server)->Stop();  // idempotent
  EXPECT_EQ(Get(port, "/healthz").status, -1) << "nothing listens after Stop";
  auto again = OpsServer::Start(Loopback(port), OpsProbes{});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(Get(port, "/healthz").status, 200);
}

TEST(OpsServer, StopRightAfterStartReturns) {
  for (int i = 0; i < 20; ++i) {
    auto server = OpsServer::Start(Loopback(), OpsProbes{});
    ASSERT_TRUE(server.ok()) << server.status();
    (*server)->Stop();  // would hang if the accept loop were not running yet
  }
}

// A consumer whose connection and end the test controls.
class FakeConsumer final : public messagepipeline::MessageConsumer {
 public:
  FakeConsumer() : channel_(1), done_(done_promise_.get_future().share()) {}
  absl::Status Start() override { return absl::OkStatus(); }
  absl::Status Stop(messagepipeline::Deadline) override {
    End(absl::OkStatus());
    return absl::OkStatus();
  }
  messagepipeline::BoundedQueue<messagepipeline::Message>& Messages() override { return channel_; }
  std::shared_future<absl::Status> Done() override { return done_; }
  [[nodiscard]] bool IsConnected() const override { return connected.load(); }

  void End(absl::Status status) {
    if (!ended_.exchange(true)) done_promise_.set_value(std::move(status));
  }
  std::atomic<bool> connected{false};

 private:
  messagepipeline::BoundedQueue<messagepipeline::Message> channel_;
  std::promise<absl::Status> done_promise_;
  std::shared_future<absl::Status> done_;
  std::atomic<bool> ended_{false};
};

TEST(ConsumerReadiness, ConnectedAndNotStopped) {
  FakeConsumer consumer;
  ComponentReadiness r = ConsumerReadiness("raw", consumer);
  EXPECT_EQ(r.name, "raw");
  EXPECT_FALSE(r.ready);
  EXPECT_EQ(r.detail, "not connected");
  consumer.connected = true;
  EXPECT_TRUE(ConsumerReadiness("raw", consumer).ready);
  consumer.End(absl::UnavailableError("broker gone"));
  r = ConsumerReadiness("raw", consumer);
  EXPECT_FALSE(r.ready);
  EXPECT_NE(r.detail.find("broker gone"), std::string::npos) << r.detail;
}

}  // namespace
}  // namespace dataflow::app

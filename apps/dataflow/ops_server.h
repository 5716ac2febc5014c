// OpsServer: the program's operations endpoints over HTTP (cpp-httplib).
//
//   GET /healthz  200 "ok" while the process is live, else 503
//   GET /readyz   200 when every component is ready, else 503 naming those that are not (their
//                 details, which may hold internal errors and addresses, go to the log)
//   GET /metrics  200, Prometheus text (exposition format 0.0.4, prometheus::TextSerializer)
//   anything else 404 (the path is not echoed)
// Error bodies are generic: reasons are logged, not sent. A connection gets its own thread
// (up to a cap) and is dropped after a second of silence, so idle or stalled clients cannot
// delay a probe (see ConnectionThreads in ops_server.cc).
//
// The server knows nothing about services: the runner hands it probes (callbacks) that ask
// them. Probes run on the server's threads, concurrently with the pipeline, so they must be
// thread-safe; a probe that throws answers 503 (500 for /metrics) and is logged. Thread-safe.
#pragma once

#include <absl/status/statusor.h>
#include <prometheus/metric_family.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "dataflow/messagepipeline/consumer.h"

namespace httplib {
class Server;
}

namespace dataflow::app {

struct OpsServerOptions {
  // All interfaces by default: Kubernetes/container probes and Prometheus reach the pod on its
  // own IP, not on loopback. `ops.host: 127.0.0.1` keeps it on the machine.
  std::string host = "0.0.0.0";
  int port = 9464;  // Prometheus' customary exporter port; 0: any free port (see port())
};

struct ComponentReadiness {
  std::string name;
  bool ready = false;
  std::string detail;  // optional: why it is not ready, logged by /readyz (not sent)
};

struct OpsProbes {
  std::function<bool()> live;                                  // null: always live
  std::function<std::vector<ComponentReadiness>()> readiness;  // null or empty list: ready
  // The families to serve, e.g. metrics::Telemetry::Collect. Null: an empty scrape.
  std::function<std::vector<prometheus::MetricFamily>()> metrics;
};

class OpsServer {
 public:
  // Binds and starts serving before it returns. InvalidArgument for a bad port or empty
  // host; Unavailable naming host:port when it cannot listen there (in use, not permitted,
  // not a local address).
  static absl::StatusOr<std::unique_ptr<OpsServer>> Start(OpsServerOptions options,
                                                          OpsProbes probes);
  ~OpsServer();  // Stop()
  OpsServer(const OpsServer&) = delete;
  OpsServer& operator=(const OpsServer&) = delete;

  // Stops accepting and joins the server's threads; a request being answered is finished
  // first. Idempotent.
  void Stop();

  // The port it listens on (the chosen one when options.port was 0).
  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] const std::string& host() const { return options_.host; }

 private:
  OpsServer(OpsServerOptions options, OpsProbes probes);
  void Route();

  const OpsServerOptions options_;
  const OpsProbes probes_;
  std::unique_ptr<httplib::Server> server_;
  int port_ = 0;
  std::thread thread_;
  std::atomic<bool> listen_ended_{false};
  std::mutex stop_mu_;
  bool stopped_ = false;
};

// A consumer's readiness: ready while it reports itself connected and has not stopped; the
// detail says which of the two failed (with the consumer's final status if it stopped).
ComponentReadiness ConsumerReadiness(std::string name, messagepipeline::MessageConsumer& consumer);

}  // namespace dataflow::app

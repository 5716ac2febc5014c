#include "ops_server.h"

#include <absl/strings/str_cat.h>
#include <httplib.h>
#include <sys/socket.h>

#include <chrono>
#include <exception>
#include <optional>

#include "dataflow/messagepipeline/logging.h"

namespace dataflow::app {
namespace {

constexpr char kTextPlain[] = "text/plain; charset=utf-8";
// What Prometheus expects for the 0.0.4 text format.
constexpr char kPrometheusText[] = "text/plain; version=0.0.4; charset=utf-8";

// Runs a probe; nullopt (with the reason in `error`, logged) if it threw.
template <typename Fn>
auto CallProbe(const char* endpoint, Fn&& fn, std::string* error) -> std::optional<decltype(fn())> {
  try {
    return fn();
  } catch (const std::exception& e) {
    *error = e.what();
  } catch (...) {
    *error = "non-standard exception";
  }
  if (error->empty()) *error = "exception without a message";
  static LogRateLimit limit;
  if (limit.Allow()) {
    Log()->error("ops probe threw endpoint={} what=\"{}\" suppressed={}", endpoint, *error,
                 limit.suppressed());
  }
  return std::nullopt;
}

}  // namespace

OpsServer::OpsServer(OpsServerOptions options, OpsProbes probes)
    : options_(std::move(options)),
      probes_(std::move(probes)),
      server_(std::make_unique<httplib::Server>()) {}

OpsServer::~OpsServer() { Stop(); }

absl::StatusOr<std::unique_ptr<OpsServer>> OpsServer::Start(OpsServerOptions options,
                                                            OpsProbes probes) {
  if (options.port < 0 || options.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("ops server: port must be 0 (any free port) to 65535, got ", options.port));
  }
  if (options.host.empty()) return absl::InvalidArgumentError("ops server: host is empty");

  std::unique_ptr<OpsServer> self(new OpsServer(std::move(options), std::move(probes)));
  httplib::Server& server = *self->server_;
  self->Route();
  // httplib's default sets SO_REUSEPORT, which lets a second process bind a port that is in
  // use (and steal half its scrapes). SO_REUSEADDR alone still allows a quick restart.
  server.set_socket_options([](socket_t sock) {
    int yes = 1;
    (void)setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  // Probes and scrapes come every few seconds: two threads are plenty, and one request per
  // connection means no idle keep-alive connection holds a thread or delays Stop().
  server.new_task_queue = [] { return new httplib::ThreadPool(2); };
  server.set_keep_alive_max_count(1);
  server.set_keep_alive_timeout(2);
  server.set_read_timeout(std::chrono::seconds(5));
  server.set_write_timeout(std::chrono::seconds(5));

  const std::string& host = self->options_.host;
  int port = self->options_.port;
  if (port == 0) {
    port = server.bind_to_any_port(host);
  } else if (!server.bind_to_port(host, port)) {
    port = -1;
  }
  if (port <= 0) {
    self->stopped_ = true;  // nothing to stop
    return absl::UnavailableError(absl::StrCat(
        "ops server: cannot listen on ", host, ":", self->options_.port,
        " (port in use, not permitted, or not a local address); choose another ops port"));
  }
  self->port_ = port;

  OpsServer* raw = self.get();
  self->thread_ = std::thread([raw] {
    if (!raw->server_->listen_after_bind()) {
      Log()->error("ops server stopped accepting connections host={} port={}", raw->host(),
                   raw->port());
    }
    raw->listen_ended_.store(true, std::memory_order_release);
  });
  // httplib's stop() is a no-op until its accept loop runs, so a Stop() right after Start()
  // would hang the join: return only once it runs. Microseconds; there is no event to wait on.
  while (!server.is_running() && !raw->listen_ended_.load(std::memory_order_acquire)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (!server.is_running() && raw->listen_ended_.load(std::memory_order_acquire)) {
    raw->thread_.join();
    raw->stopped_ = true;
    return absl::InternalError(absl::StrCat("ops server: accept loop on ", host, ":", port,
                                            " ended as soon as it started"));
  }
  Log()->info("ops server listening host={} port={}", host, port);
  return self;
}

void OpsServer::Stop() {
  std::lock_guard lock(stop_mu_);
  if (stopped_) return;
  stopped_ = true;
  server_->stop();
  if (thread_.joinable()) thread_.join();
  Log()->info("ops server stopped host={} port={}", options_.host, port_);
}

void OpsServer::Route() {
  httplib::Server& server = *server_;

  server.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
    std::string error;
    const bool live =
        !probes_.live || CallProbe(
                             "/healthz", [&] { return probes_.live(); }, &error) == true;
    res.status = live ? 200 : 503;
    res.set_content(
        live ? "ok\n" : absl::StrCat("not live", error.empty() ? "" : ": ", error, "\n"),
        kTextPlain);
  });

  server.Get("/readyz", [this](const httplib::Request&, httplib::Response& res) {
    std::vector<ComponentReadiness> components;
    std::string error;
    if (probes_.readiness) {
      components = CallProbe(
                       "/readyz", [&] { return probes_.readiness(); }, &error)
                       .value_or(std::vector<ComponentReadiness>{ComponentReadiness{
                           .name = "readiness probe", .ready = false, .detail = "threw"}});
    }
    std::string not_ready;
    std::size_t waiting = 0;
    for (const ComponentReadiness& c : components) {
      if (c.ready) continue;
      ++waiting;
      absl::StrAppend(&not_ready, c.name, c.detail.empty() ? "" : ": ", c.detail, "\n");
    }
    if (waiting == 0) {
      res.status = 200;
      res.set_content("ready\n", kTextPlain);
    } else {
      res.status = 503;
      res.set_content(absl::StrCat("not ready (", waiting, " of ", components.size(),
                                   " components):\n", not_ready),
                      kTextPlain);
    }
  });

  server.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    if (!probes_.metrics) {
      res.set_content("", kPrometheusText);
      return;
    }
    std::string error;
    std::optional<std::string> text = CallProbe(
        "/metrics", [&] { return probes_.metrics(); }, &error);
    if (!text) {
      res.status = 500;
      res.set_content(absl::StrCat("metrics failed: ", error, "\n"), kTextPlain);
      return;
    }
    res.set_content(*text, kPrometheusText);
  });

  // Fills in the body of a 404 (an unknown path); leaves our own 5xx answers alone.
  server.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req,
                                                                   httplib::Response& res) {
    if (res.status != 404 || !res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    res.set_content(absl::StrCat("not found: ", req.path, " (try /healthz, /readyz, /metrics)\n"),
                    kTextPlain);
    return httplib::Server::HandlerResponse::Handled;
  }));
}

ComponentReadiness ConsumerReadiness(std::string name, messagepipeline::MessageConsumer& consumer) {
  std::shared_future<absl::Status> done = consumer.Done();
  if (done.valid() && done.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
    const absl::Status& final_status = done.get();
    return ComponentReadiness{
        .name = std::move(name),
        .ready = false,
        .detail = final_status.ok() ? "stopped" : "stopped: " + final_status.ToString()};
  }
  if (!consumer.IsConnected()) {
    return ComponentReadiness{.name = std::move(name), .ready = false, .detail = "not connected"};
  }
  return ComponentReadiness{.name = std::move(name), .ready = true, .detail = ""};
}

}  // namespace dataflow::app

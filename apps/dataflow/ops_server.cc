#include "ops_server.h"

#include <absl/strings/str_cat.h>
#include <httplib.h>
#include <prometheus/text_serializer.h>
#include <sys/socket.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <list>
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

// httplib serves each connection on one thread from accept to close, so a connection that
// sends nothing (or half a request) holds a thread until a timeout. A fixed pool of two let
// six idle connections delay /healthz by seconds, long enough for a liveness probe to kill a
// healthy pod. Instead: a thread per connection, started when it is accepted, up to
// kMaxConnectionThreads (then connections wait in order); together with the one-second
// timeouts below, a probe gets a thread at once unless more than that many connections are
// open, and then within about a second. Threads exist only while connections do.
constexpr std::size_t kMaxConnectionThreads = 256;

class ConnectionThreads final : public httplib::TaskQueue {
 public:
  void enqueue(std::function<void()> fn) override {
    std::lock_guard lock(mu_);
    waiting_.push_back(std::move(fn));
    JoinFinishedLocked();
    if (running_ < kMaxConnectionThreads) {
      ++running_;
      Worker& worker = workers_.emplace_back();
      worker.thread = std::thread([this, &worker] { Work(worker); });
    }
  }

  // Waits for every connection's work, queued or running, and joins the threads (httplib
  // calls it when it stops).
  void shutdown() override {
    std::list<Worker> workers;
    {
      std::unique_lock lock(mu_);
      idle_.wait(lock, [this] { return running_ == 0; });
      workers.swap(workers_);
    }
    for (Worker& worker : workers) worker.thread.join();
  }

 private:
  struct Worker {
    std::thread thread;
    bool finished = false;  // guarded by mu_; the thread touches nothing after setting it
  };

  void Work(Worker& worker) {
    std::unique_lock lock(mu_);
    while (!waiting_.empty()) {
      std::function<void()> fn = std::move(waiting_.front());
      waiting_.pop_front();
      lock.unlock();
      fn();
      lock.lock();
    }
    worker.finished = true;
    // Last touch of `this`, under the lock shutdown() waits on.
    if (--running_ == 0) idle_.notify_all();
  }

  // Threads whose work ran out are joined when the next connection comes (they have only
  // their exit left), so threads never outlive the server detached.
  void JoinFinishedLocked() {
    for (auto it = workers_.begin(); it != workers_.end();) {
      if (!it->finished) {
        ++it;
        continue;
      }
      it->thread.join();
      it = workers_.erase(it);
    }
  }

  std::mutex mu_;
  std::condition_variable idle_;
  std::deque<std::function<void()>> waiting_;
  std::list<Worker> workers_;
  std::size_t running_ = 0;
};

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
  // The socket is kept to widen its listen backlog below (the last one offered is the one
  // that was bound).
  socket_t listen_socket = INVALID_SOCKET;
  server.set_socket_options([&listen_socket](socket_t sock) {
    int yes = 1;
    (void)setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    listen_socket = sock;
  });
  // See ConnectionThreads. One request per connection, and short timeouts: a probe or scrape
  // sends its request at once (a connection silent for a second is dropped: keep_alive_timeout
  // bounds the wait for the first byte, read_timeout each later read), so no connection holds
  // a thread or delays Stop() for long.
  server.new_task_queue = [] { return new ConnectionThreads(); };
  server.set_keep_alive_max_count(1);
  server.set_keep_alive_timeout(1);
  server.set_read_timeout(std::chrono::seconds(1));
  server.set_write_timeout(std::chrono::seconds(2));

  const std::string& host = self->options_.host;
  int port = self->options_.port;
  if (port == 0) {
    port = server.bind_to_any_port(host);
  } else if (!server.bind_to_port(host, port)) {
    port = -1;
  }
  // httplib (0.11) listens with a backlog of 5: a burst of connections (idle ones, a flood)
  // fills it and the next SYN, maybe a probe's, is dropped and retried a second later.
  // listen() again on a listening socket only changes the backlog.
  if (port > 0 && listen_socket != INVALID_SOCKET) (void)listen(listen_socket, SOMAXCONN);
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
    // The reason is in the log (CallProbe): internal error strings stay off the network.
    res.set_content(live ? "ok\n" : "not live (the reason is in the log)\n", kTextPlain);
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
    std::string not_ready;  // names only: the details (errors, addresses) go to the log
    std::string details;
    std::size_t waiting = 0;
    for (const ComponentReadiness& c : components) {
      if (c.ready) continue;
      ++waiting;
      absl::StrAppend(&not_ready, c.name, "\n");
      absl::StrAppend(&details, details.empty() ? "" : "; ", c.name, c.detail.empty() ? "" : ": ",
                      c.detail);
    }
    if (waiting == 0) {
      res.status = 200;
      res.set_content("ready\n", kTextPlain);
    } else {
      static LogRateLimit limit(1);
      if (limit.Allow()) {
        Log()->warn("not ready components=\"{}\" suppressed={}", BoundedText(details),
                    limit.suppressed());
      }
      res.status = 503;
      res.set_content(absl::StrCat("not ready (", waiting, " of ", components.size(),
                                   " components; the reasons are in the log):\n", not_ready),
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
        "/metrics", [&] { return prometheus::TextSerializer().Serialize(probes_.metrics()); },
        &error);
    if (!text) {
      res.status = 500;
      res.set_content("metrics failed (the reason is in the log)\n", kTextPlain);
      return;
    }
    res.set_content(*text, kPrometheusText);
  });

  // Fills in the body of a 404 (an unknown path); leaves our own 5xx answers alone.
  // The path is not echoed: whatever a client sends is not reflected back.
  server.set_error_handler(
      httplib::Server::HandlerWithResponse([](const httplib::Request&, httplib::Response& res) {
        if (res.status != 404 || !res.body.empty())
          return httplib::Server::HandlerResponse::Unhandled;
        res.set_content("not found (try /healthz, /readyz, /metrics)\n", kTextPlain);
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

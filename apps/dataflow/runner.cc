#include "runner.h"

#include <absl/strings/str_cat.h>
#include <pthread.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <thread>

#include "backends.h"
#include "dataflow/messagepipeline/errors.h"
#include "dataflow/messagepipeline/in_process_broker.h"
#include "dataflow/messagepipeline/log_format.h"
#include "dataflow/messagepipeline/logging.h"
#include "dataflow/messagepipeline/service.h"
#include "dataflow/metrics/in_process_families.h"
#include "dataflow/metrics/service_families.h"
#include "dataflow/version.h"
#include "ops_server.h"
#include "services.h"

namespace dataflow::app {
namespace {

namespace mp = messagepipeline;
using Clock = std::chrono::steady_clock;

// The member of `sc`, its path in the config naming any error.
absl::StatusOr<ServiceParts> BuildMember(const ServiceConfig& sc, std::size_t index,
                                         const BuildContext& context) {
  auto built =
      std::visit([&](const auto& spec) { return BuildService(sc.name, spec, context); }, sc.spec);
  if (!built.ok()) {
    return mp::Annotate(built.status(), absl::StrCat("services[", index, "] (", sc.name, ")"));
  }
  return built;
}

}  // namespace

struct Pipeline::Impl {
  // First, so it goes last: its scrape callbacks own services that count in its histograms.
  metrics::Telemetry telemetry;
  std::shared_ptr<mp::InProcessBroker> broker;
  std::unique_ptr<mp::ServiceGroup> group;
};

Pipeline::Pipeline(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Pipeline::~Pipeline() = default;  // the group stops what still runs

absl::StatusOr<std::unique_ptr<Pipeline>> Pipeline::Build(const ProgramConfig& config,
                                                          PipelineHooks hooks) {
  auto impl = std::make_unique<Impl>();
  impl->broker = hooks.broker ? std::move(hooks.broker) : mp::InProcessBroker::Create();
  metrics::AddInProcessBrokerFamilies(impl->telemetry, impl->broker);
  for (const auto& topic : config.in_process_topics) {
    if (auto s = impl->broker->CreateTopic(topic); !s.ok()) {
      return mp::Annotate(s, "in_process.topics");
    }
  }
  mp::ServiceGroupOptions group{.broker = impl->broker};
  for (const auto& [name, topic] : config.in_process_subscriptions) {
    if (auto s = impl->broker->CreateSubscription(name, topic); !s.ok()) {
      return mp::Annotate(s, "in_process.subscriptions");
    }
    group.subscriptions.push_back(name);
  }
  impl->group = std::make_unique<mp::ServiceGroup>(std::move(group));
  const BuildContext context{
      .config = config,
      .backends = hooks.backends != nullptr ? *hooks.backends : DefaultBackends(),
      .broker = impl->broker,
      .telemetry = impl->telemetry,
      .ingestion_inputs = std::move(hooks.ingestion_inputs)};
  for (std::size_t i = 0; i < config.services.size(); ++i) {
    auto parts = BuildMember(config.services[i], i, context);
    if (!parts.ok()) return parts.status();
    // The families every service has; its parts registered their own while it was built.
    metrics::AddServiceFamilies(impl->telemetry, parts->member);
    impl->group->Add(std::move(parts->member));
  }
  return std::unique_ptr<Pipeline>(new Pipeline(std::move(impl)));
}

absl::Status Pipeline::Start() { return impl_->group->Start(); }

absl::Status Pipeline::Failure() const { return impl_->group->Failure(); }

absl::Status Pipeline::Stop(std::chrono::milliseconds timeout) {
  return impl_->group->Stop(Clock::now() + timeout);
}

std::vector<ServiceStatus> Pipeline::Status() const {
  std::vector<ServiceStatus> out;
  for (const auto& m : impl_->group->members()) {
    out.push_back({.name = m.name,
                   .kind = m.kind,
                   .connected = m.consumer->IsConnected(),
                   .metrics = m.service->metrics()});
  }
  return out;
}

metrics::Telemetry& Pipeline::telemetry() const { return impl_->telemetry; }

std::vector<ComponentReadiness> Pipeline::Readiness() const {
  std::vector<ComponentReadiness> out;
  for (const auto& m : impl_->group->members()) {
    out.push_back(ConsumerReadiness(m.name, *m.consumer));
  }
  return out;
}

void BlockStopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

namespace {

// The next SIGINT/SIGTERM within `wait`, or 0.
int WaitForStopSignal(std::chrono::milliseconds wait) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  timespec ts{.tv_sec = static_cast<time_t>(wait.count() / 1000),
              .tv_nsec = static_cast<long>((wait.count() % 1000) * 1000000)};
  const int sig = sigtimedwait(&set, nullptr, &ts);
  return sig > 0 ? sig : 0;
}

}  // namespace

int RunProgram(const ProgramConfig& config) {
  for (const auto& line : Describe(config)) Log()->info("service {}", line);
  auto pipeline = Pipeline::Build(config);
  if (!pipeline.ok()) {
    Announce(spdlog::level::err, pipeline.status().ToString());
    return 1;
  }
  // Up before the services start, so probes see "live, not ready" while consumers connect.
  metrics::RegisterBuildInfo((*pipeline)->telemetry(), DATAFLOW_VERSION);
  std::unique_ptr<OpsServer> ops;
  if (config.ops.enabled) {
    auto started =
        OpsServer::Start({.host = config.ops.host, .port = config.ops.port},
                         {.live = [] { return true; },
                          .readiness = [p = pipeline->get()] { return p->Readiness(); },
                          .metrics = [p = pipeline->get()] { return p->telemetry().Collect(); }});
    if (!started.ok()) {
      Announce(spdlog::level::err, "ops endpoint: " + started.status().ToString());
      return 1;
    }
    ops = *std::move(started);
    Log()->info("ops endpoint listening host={} port={} paths=/healthz,/readyz,/metrics",
                config.ops.host, ops->port());
  }
  if (auto s = (*pipeline)->Start(); !s.ok()) {
    Announce(spdlog::level::err, "starting " + s.ToString());
    (void)(*pipeline)->Stop(config.shutdown_timeout);
    return 1;
  }
  Log()->info("running services={} (SIGINT or SIGTERM stops them)", config.services.size());
  bool failed = false;
  while (true) {
    if (const int sig = WaitForStopSignal(std::chrono::milliseconds(200)); sig != 0) {
      Log()->info("stopping signal={} timeout_ms={}", strsignal(sig),
                  config.shutdown_timeout.count());
      break;
    }
    if (auto s = (*pipeline)->Failure(); !s.ok()) {
      Announce(spdlog::level::err, s.ToString());
      failed = true;
      break;
    }
  }
  // A second signal while stopping means "now": exit without waiting for the drain.
  std::atomic<bool> stopped{false};
  std::jthread impatient([&stopped] {
    while (!stopped.load()) {
      if (WaitForStopSignal(std::chrono::milliseconds(100)) != 0) {
        Announce(spdlog::level::warn, "second stop signal, exiting without draining");
        std::_Exit(1);
      }
    }
  });
  const absl::Status stop = (*pipeline)->Stop(config.shutdown_timeout);
  stopped = true;
  impatient.join();
  if (ops) ops->Stop();
  for (const auto& s : (*pipeline)->Status()) {
    Announce(spdlog::level::info,
             absl::StrCat("service stopped name=", s.name, " kind=", s.kind,
                          " received=", s.metrics.received, " processed=", s.metrics.processed,
                          " skipped=", s.metrics.skipped, " dead_lettered=",
                          s.metrics.dead_lettered, " nacked=", s.metrics.nacked));
  }
  if (!stop.ok()) {
    Announce(spdlog::level::err, "stop was not clean: " + std::string(stop.message()));
    return 1;
  }
  return failed ? 1 : 0;
}

}  // namespace dataflow::app

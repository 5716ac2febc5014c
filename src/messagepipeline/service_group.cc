#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>

#include <chrono>
#include <thread>

#include "dataflow/messagepipeline/errors.h"
#include "dataflow/messagepipeline/in_process_broker.h"
#include "dataflow/messagepipeline/logging.h"
#include "dataflow/messagepipeline/service.h"

namespace dataflow::messagepipeline {

ServiceGroup::ServiceGroup(ServiceGroupOptions options) : options_(std::move(options)) {}

ServiceGroup::~ServiceGroup() {
  if (started_ > 0) (void)Stop(std::chrono::steady_clock::now());
}

void ServiceGroup::Add(ServiceGroupMember member) { members_.push_back(std::move(member)); }

absl::Status ServiceGroup::Start() {
  if (started_ > 0 || stopped_) return absl::FailedPreconditionError("service group started once");
  for (auto it = members_.rbegin(); it != members_.rend(); ++it) {
    if (auto s = it->service->Start(); !s.ok()) {
      const absl::Status failed = Annotate(s, it->name);
      // The group never ran: stop what started without waiting for drains.
      (void)Stop(std::chrono::steady_clock::now());
      return failed;
    }
    ++started_;
    Log()->info("service started name={} kind={}", it->name, it->kind);
  }
  return absl::OkStatus();
}

absl::Status ServiceGroup::Failure() const {
  for (const auto& m : members_) {
    if (!m.consumer) continue;
    auto done = m.consumer->Done();
    if (done.wait_for(std::chrono::seconds(0)) != std::future_status::ready) continue;
    const absl::Status& status = done.get();
    return status.ok() ? absl::UnavailableError(m.name + ": its consumer ended")
                       : Annotate(status, m.name);
  }
  return absl::OkStatus();
}

void ServiceGroup::DrainInProcess(const std::string& subscription, Deadline deadline) const {
  // Polled: the broker has no "drained" signal, and a stop happens once per process.
  while (std::chrono::steady_clock::now() < deadline) {
    auto stats = options_.broker->Stats(subscription);
    if (!stats.ok() || (stats->pending == 0 && stats->outstanding == 0)) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

absl::Status ServiceGroup::Stop(Deadline deadline) {
  if (stopped_) return absl::OkStatus();
  stopped_ = true;
  // Members started from the back; the first `skip` were never started.
  const std::size_t skip = members_.size() - started_;
  std::vector<std::string> problems;
  // Upstream members stop by waiting for what they published to be stored downstream (end
  // to end): the sinks must not sit on partial batches until their flush interval.
  for (std::size_t i = skip; i < members_.size(); ++i) members_[i].service->FlushPromptly();
  for (std::size_t i = skip; i < members_.size(); ++i) {
    ServiceGroupMember& m = members_[i];
    if (options_.broker && !m.in_process_input.empty())
      DrainInProcess(m.in_process_input, deadline);
    const std::uint64_t nacked_before = m.service->metrics().nacked;
    if (auto s = m.service->Stop(deadline); !s.ok())
      problems.push_back(Annotate(s, m.name).ToString(absl::StatusToStringMode::kWithNoExtraData));
    for (auto& close : m.close_after_stop) {
      if (auto s = close(deadline); !s.ok())
        problems.push_back(
            Annotate(s, m.name).ToString(absl::StatusToStringMode::kWithNoExtraData));
    }
    const std::uint64_t nacked = m.service->metrics().nacked - nacked_before;
    if (nacked > 0) {
      problems.push_back(absl::StrCat(m.name, ": ", nacked,
                                      " messages nacked while stopping (the broker redelivers)"));
    }
    Log()->info("service stopped name={} nacked_at_stop={}", m.name, nacked);
  }
  started_ = 0;
  if (options_.broker) {
    std::vector<std::string> checked = options_.subscriptions;
    if (checked.empty()) {
      for (const auto& m : members_) {
        if (!m.in_process_input.empty()) checked.push_back(m.in_process_input);
      }
    }
    std::size_t left = 0;
    for (const auto& name : checked) {
      if (auto stats = options_.broker->Stats(name); stats.ok()) {
        left += stats->pending + stats->outstanding;
      }
    }
    if (left > 0) {
      // Never acknowledged to their source (end-to-end acknowledgement): it sends them again.
      problems.push_back(absl::StrCat(left,
                                      " messages left unacknowledged in in-process subscriptions "
                                      "(their source redelivers them)"));
    }
  }
  if (problems.empty()) return absl::OkStatus();
  return absl::AbortedError(absl::StrJoin(problems, "; "));
}

}  // namespace dataflow::messagepipeline

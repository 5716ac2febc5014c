#include "ack_batcher.h"

#include <algorithm>
#include <utility>

#include "dataflow/gcp/status.h"
#include "dataflow/messagepipeline/logging.h"

namespace dataflow::pubsub {
namespace {

// The server accepts at most 2500 ack ids per request (and 512 KB).
constexpr std::size_t kMaxIdsPerRequest = 2500;

}  // namespace

AckBatcher::AckBatcher(std::shared_ptr<SubscriberStub> stub, AckBatcherOptions options)
    : stub_(std::move(stub)),
      options_(std::move(options)),
      backoff_(*messagepipeline::ExponentialBackoff::Create(options_.backoff)) {}

const char* AckBatcher::KindName(Kind kind) {
  switch (kind) {
    case Kind::kAck:
      return "ack";
    case Kind::kNack:
      return "nack";
    case Kind::kExtend:
      return "modack";
  }
  return "?";
}

void AckBatcher::LogExpired(Kind kind, std::size_t n) {
  static LogRateLimit limit;
  if (limit.Allow()) {
    Log()->warn(
        "pubsub {} given up: the lease ran out while retrying; the message may be "
        "redelivered subscription={} ids={} suppressed={}",
        KindName(kind), options_.subscription, n, limit.suppressed());
  }
}

void AckBatcher::Ack(LeasedId id) {
  std::lock_guard lock(mu_);
  acks_.push_back(std::move(id));
}

void AckBatcher::Nack(LeasedId id) {
  std::lock_guard lock(mu_);
  nacks_.push_back(std::move(id));
}

void AckBatcher::Flush(bool retries) {
  std::vector<LeasedId> acks, nacks;
  std::size_t expired_acks = 0, expired_nacks = 0;
  {
    std::lock_guard lock(mu_);
    acks.swap(acks_);
    nacks.swap(nacks_);
    stats_.acks_sent += acks.size();
    stats_.nacks_sent += nacks.size();
    const auto now = Now();
    if (retries && now >= next_retry_) {
      auto take = [&](std::vector<LeasedId>& from, std::vector<LeasedId>& to,
                      std::size_t& expired) {
        for (auto& p : from) {
          if (p.expires <= now) {
            ++expired;
          } else {
            to.push_back(std::move(p));
          }
        }
        from.clear();
      };
      const std::size_t before = acks.size() + nacks.size();
      take(retry_acks_, acks, expired_acks);
      take(retry_nacks_, nacks, expired_nacks);
      stats_.settle_retries += acks.size() + nacks.size() - before;
      stats_.settles_expired += expired_acks + expired_nacks;
      cv_.notify_all();
    }
  }
  if (expired_acks > 0) LogExpired(Kind::kAck, expired_acks);
  if (expired_nacks > 0) LogExpired(Kind::kNack, expired_nacks);
  if (!acks.empty()) Send(Kind::kAck, std::move(acks), nullptr);
  if (!nacks.empty()) Send(Kind::kNack, std::move(nacks), nullptr);
}

std::vector<ExtensionResult> AckBatcher::Extend(std::vector<LeasedId> ids) {
  std::vector<ExtensionResult> results;
  if (ids.empty()) return results;
  {
    std::lock_guard lock(mu_);
    stats_.extensions_sent += ids.size();
  }
  Send(Kind::kExtend, std::move(ids), &results);
  return results;
}

void AckBatcher::Send(Kind kind, std::vector<LeasedId> ids, std::vector<ExtensionResult>* results) {
  const int deadline_s =
      kind == Kind::kExtend ? static_cast<int>(options_.ack_deadline.count()) : 0;
  for (std::size_t i = 0; i < ids.size(); i += kMaxIdsPerRequest) {
    const auto end = std::min(ids.size(), i + kMaxIdsPerRequest);
    const std::size_t n = end - i;
    {
      std::lock_guard lock(mu_);
      in_flight_ += n;
    }
    const auto sent_at = Now();
    absl::Status status;
    if (kind == Kind::kAck) {
      v1::AcknowledgeRequest r;
      r.set_subscription(options_.subscription);
      for (auto j = i; j < end; ++j) r.add_ack_ids(ids[j].id);
      status = stub_->Acknowledge(r);
    } else {
      v1::ModifyAckDeadlineRequest r;
      r.set_subscription(options_.subscription);
      r.set_ack_deadline_seconds(deadline_s);
      for (auto j = i; j < end; ++j) r.add_ack_ids(ids[j].id);
      status = stub_->ModifyAckDeadline(r);
    }
    std::unique_lock lock(mu_);
    in_flight_ -= n;
    cv_.notify_all();
    if (status.ok()) {
      backoff_.Reset();
      if (results != nullptr) {
        ExtensionResult r{.confirmed = true, .at = sent_at};
        for (auto j = i; j < end; ++j) r.ids.push_back(std::move(ids[j].id));
        results->push_back(std::move(r));
      }
      continue;
    }
    if (!gcp::IsRetryable(status.code())) {
      // A lost ack or extension means a redelivery, which at-least-once allows.
      stats_.settles_failed += n;
      lock.unlock();
      static LogRateLimit limit;
      if (limit.Allow()) {
        Log()->warn("pubsub {} failed subscription={} ids={} error={}", KindName(kind),
                    options_.subscription, n, status.ToString());
      }
      continue;
    }
    const auto now = Now();
    const auto delay = backoff_.Next();
    ExtensionResult retry{.confirmed = false, .at = now + delay};
    std::size_t retried = 0;
    for (auto j = i; j < end; ++j) {
      if (now + delay >= ids[j].expires) continue;
      ++retried;
      if (kind == Kind::kExtend) {
        retry.ids.push_back(std::move(ids[j].id));
      } else {
        (kind == Kind::kAck ? retry_acks_ : retry_nacks_).push_back(std::move(ids[j]));
      }
    }
    if (kind != Kind::kExtend) next_retry_ = now + delay;
    if (results != nullptr && !retry.ids.empty()) results->push_back(std::move(retry));
    stats_.settles_expired += n - retried;
    lock.unlock();
    if (retried < n) LogExpired(kind, n - retried);
    static LogRateLimit limit;
    if (retried > 0 && limit.Allow()) {
      Log()->warn("pubsub {} failed, retrying subscription={} ids={} delay_ms={} error={}",
                  KindName(kind), options_.subscription, retried, delay.count(), status.ToString());
    }
  }
}

bool AckBatcher::WaitIdle(SteadyClock::time_point deadline) {
  std::unique_lock lock(mu_);
  return cv_.wait_until(lock, deadline, [&] {
    return retry_acks_.empty() && retry_nacks_.empty() && in_flight_ == 0;
  });
}

std::size_t AckBatcher::Unsent() const {
  std::lock_guard lock(mu_);
  return acks_.size() + nacks_.size() + retry_acks_.size() + retry_nacks_.size() + in_flight_;
}

AckBatcher::Stats AckBatcher::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace dataflow::pubsub

#include "dataflow/pubsub/producer.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "dataflow/gcp/project.h"
#include "dataflow/messagepipeline/errors.h"
#include "dataflow/messagepipeline/logging.h"

namespace dataflow::pubsub {

using messagepipeline::Attributes;
using messagepipeline::Deadline;
using messagepipeline::MessageData;
using messagepipeline::OutgoingMessage;

namespace {

// Pub/Sub rejects requests over 10 MB; a single message that alone exceeds it can never be
// sent, so it fails at once instead of after retries.
constexpr std::size_t kMaxRequestBytes = 10 * 1000 * 1000;

}  // namespace

absl::StatusOr<std::unique_ptr<GooglePubsubProducer>> GooglePubsubProducer::Create(
    std::shared_ptr<PublisherStub> stub, ProducerOptions options) {
  if (stub == nullptr) return absl::InvalidArgumentError("producer: stub is null");
  auto project = gcp::ResolveProjectId(options.project_id);
  if (!project.ok()) return project.status();
  options.project_id = *project;
  if (options.max_batch_messages == 0 || options.max_batch_messages > 1000) {
    return absl::InvalidArgumentError("producer: max_batch_messages must be 1..1000");
  }
  if (options.max_batch_bytes == 0 || options.max_batch_bytes > kMaxRequestBytes) {
    return absl::InvalidArgumentError("producer: max_batch_bytes must be 1..10000000");
  }
  if (options.max_batch_delay.count() < 0) {
    return absl::InvalidArgumentError("producer: max_batch_delay must not be negative");
  }
  if (options.max_concurrent_batches < 1) {
    return absl::InvalidArgumentError("producer: max_concurrent_batches must be >= 1");
  }
  if (auto b = messagepipeline::ExponentialBackoff::Create(options.backoff); !b.ok())
    return b.status();
  return std::unique_ptr<GooglePubsubProducer>(
      new GooglePubsubProducer(std::move(stub), std::move(options)));
}

GooglePubsubProducer::GooglePubsubProducer(std::shared_ptr<PublisherStub> stub,
                                           ProducerOptions options)
    : stub_(std::move(stub)), options_(std::move(options)) {
  for (int i = 0; i < options_.max_concurrent_batches; ++i) {
    senders_.emplace_back([this] { SenderLoop(); });
  }
  timer_ = std::jthread([this](std::stop_token st) { TimerLoop(st); });
}

GooglePubsubProducer::~GooglePubsubProducer() {
  (void)Stop(std::chrono::steady_clock::now() + options_.publish_timeout);
}

std::future<GooglePubsubProducer::Result> GooglePubsubProducer::Publish(const MessageData& data,
                                                                        Attributes attributes,
                                                                        std::string ordering_key) {
  return Publish(options_.topic_id,
                 OutgoingMessage{.payload = messagepipeline::EncodeMessageData(data),
                                 .attributes = std::move(attributes),
                                 .ordering_key = std::move(ordering_key)});
}

std::future<GooglePubsubProducer::Result> GooglePubsubProducer::PublishRaw(
    std::string payload, Attributes attributes, std::string ordering_key) {
  return Publish(options_.topic_id, OutgoingMessage{.payload = std::move(payload),
                                                    .attributes = std::move(attributes),
                                                    .ordering_key = std::move(ordering_key)});
}

std::future<GooglePubsubProducer::Result> GooglePubsubProducer::Publish(const std::string& topic,
                                                                        OutgoingMessage message) {
  Pending p = ToPending(message);
  auto future = p.promise.get_future();
  Enqueue(topic, std::move(p), message.ordering_key);
  return future;
}

void GooglePubsubProducer::PublishAsync(const std::string& topic, OutgoingMessage message,
                                        Callback done) {
  Pending p = ToPending(message);
  p.callback = std::move(done);
  Enqueue(topic, std::move(p), message.ordering_key);
}

GooglePubsubProducer::Pending GooglePubsubProducer::ToPending(OutgoingMessage& message) {
  Pending p;
  p.message.set_data(std::move(message.payload));
  for (auto& [k, v] : message.attributes) (*p.message.mutable_attributes())[k] = v;
  p.message.set_ordering_key(message.ordering_key);
  return p;
}

void GooglePubsubProducer::Resolve(Pending& p, const Result& r) {
  if (p.callback) {
    p.callback(r);
  } else {
    p.promise.set_value(r);
  }
}

void GooglePubsubProducer::Enqueue(const std::string& topic, Pending pending,
                                   const std::string& ordering_key) {
  if (topic.empty()) {
    Resolve(pending,
            absl::InvalidArgumentError("publish: no topic (set ProducerOptions.topic_id)"));
    return;
  }
  const std::size_t bytes = pending.message.ByteSizeLong();
  if (bytes + 1024 > kMaxRequestBytes) {
    Resolve(pending, messagepipeline::PermanentError(absl::StrCat(
                         "publish: message of ", bytes, " bytes exceeds Pub/Sub's 10 MB limit")));
    return;
  }
  std::unique_lock lock(mu_);
  if (stopping_) {
    lock.unlock();
    Resolve(pending, absl::FailedPreconditionError("publish: producer is stopped"));
    return;
  }
  Key key{topic, ordering_key};
  if (!ordering_key.empty()) {
    if (auto paused = paused_keys_.find(key); paused != paused_keys_.end()) {
      absl::Status error = PausedError(key, paused->second);
      lock.unlock();
      Resolve(pending, error);
      return;
    }
  }
  bool wake = false;
  auto it = open_.find(key);
  if (it != open_.end() && it->second.bytes + bytes > options_.max_batch_bytes) {
    // Would overflow the byte limit: send what is there, start a new batch.
    ready_.push_back(std::move(it->second));
    open_.erase(it);
    it = open_.end();
  }
  if (it == open_.end()) {
    wake = true;
    it = open_
             .emplace(key, Batch{.topic = topic,
                                 .ordering_key = ordering_key,
                                 .opened = std::chrono::steady_clock::now()})
             .first;
    ++batches_opened_;
  }
  it->second.items.push_back(std::move(pending));
  it->second.bytes += bytes;
  ++outstanding_;
  if (it->second.items.size() >= options_.max_batch_messages ||
      it->second.bytes >= options_.max_batch_bytes) {
    ready_.push_back(std::move(it->second));
    open_.erase(it);
    wake = true;
  }
  // Only a ready batch (senders) or a new batch (the timer's next due time) concerns the
  // waiters: waking five threads on every publish cost more CPU than the RPCs.
  if (wake) cv_.notify_all();
}

void GooglePubsubProducer::TimerLoop(std::stop_token stop) {
  std::unique_lock lock(mu_);
  while (!stop.stop_requested()) {
    auto now = std::chrono::steady_clock::now();
    auto next = now + std::chrono::hours(1);
    for (auto it = open_.begin(); it != open_.end();) {
      auto due = it->second.opened + options_.max_batch_delay;
      if (due <= now) {
        ready_.push_back(std::move(it->second));
        it = open_.erase(it);
        cv_.notify_all();
      } else {
        next = std::min(next, due);
        ++it;
      }
    }
    // Wake at the earliest due time, or when a new batch opens (it may be due sooner).
    const std::uint64_t seen = batches_opened_;
    cv_.wait_until(lock, stop, next, [&] { return batches_opened_ != seen; });
  }
}

void GooglePubsubProducer::SenderLoop() {
  std::unique_lock lock(mu_);
  while (true) {
    auto pick = ready_.end();
    cv_.wait(lock, [&] {
      for (pick = ready_.begin(); pick != ready_.end(); ++pick) {
        if (pick->ordering_key.empty() ||
            !in_flight_keys_.contains(Key{pick->topic, pick->ordering_key})) {
          return true;
        }
      }
      return shutdown_ && ready_.empty();
    });
    if (pick == ready_.end()) return;  // shut down and nothing left
    Batch batch = std::move(*pick);
    ready_.erase(pick);
    Key key{batch.topic, batch.ordering_key};
    if (!batch.ordering_key.empty()) in_flight_keys_.insert(key);
    lock.unlock();
    absl::Status failure = Send(batch);
    lock.lock();
    std::vector<Pending> behind;  // queued after a failed batch of the same ordering key
    if (!failure.ok() && !batch.ordering_key.empty()) {
      // Pause the key before anyone learns of the failure, so a publish made in reaction
      // to it cannot overtake the failed messages.
      paused_keys_.emplace(key, failure);
      if (auto it = open_.find(key); it != open_.end()) {
        for (auto& p : it->second.items) behind.push_back(std::move(p));
        open_.erase(it);
      }
      for (auto it = ready_.begin(); it != ready_.end();) {
        if (it->topic == key.first && it->ordering_key == key.second) {
          for (auto& p : it->items) behind.push_back(std::move(p));
          it = ready_.erase(it);
        } else {
          ++it;
        }
      }
      Log()->error("pubsub ordering key paused after a failed publish topic={} key={} error={}",
                   batch.topic, batch.ordering_key, failure.ToString());
    }
    if (!batch.ordering_key.empty()) in_flight_keys_.erase(key);
    lock.unlock();
    if (!failure.ok()) {
      for (auto& p : batch.items) {
        if (!p.error.ok()) Resolve(p, p.error);
      }
      const absl::Status paused = PausedError(key, failure);
      for (auto& p : behind) Resolve(p, paused);
    }
    lock.lock();
    outstanding_ -= batch.items.size() + behind.size();
    if (outstanding_ == 0) idle_cv_.notify_all();
    cv_.notify_all();
  }
}

absl::Status GooglePubsubProducer::PausedError(const Key& key, const absl::Status& cause) {
  return absl::FailedPreconditionError(
      absl::StrCat("publish: ordering key \"", key.second, "\" on topic ", key.first,
                   " is paused after a failed publish (", cause.ToString(),
                   "); call ResumePublish(\"", key.second, "\") to publish with it again"));
}

void GooglePubsubProducer::ResumePublish(const std::string& ordering_key) {
  ResumePublish(options_.topic_id, ordering_key);
}

void GooglePubsubProducer::ResumePublish(const std::string& topic,
                                         const std::string& ordering_key) {
  std::lock_guard lock(mu_);
  paused_keys_.erase(Key{topic, ordering_key});
}

absl::Status GooglePubsubProducer::Flush(Deadline deadline) {
  std::unique_lock lock(mu_);
  for (auto& [key, batch] : open_) ready_.push_back(std::move(batch));
  open_.clear();
  cv_.notify_all();
  // idle_cv_ is a plain condition_variable; steady deadline.
  if (!idle_cv_.wait_until(lock, deadline, [&] { return outstanding_ == 0; })) {
    return absl::DeadlineExceededError(
        absl::StrCat("producer flush: ", outstanding_, " messages still unpublished"));
  }
  return absl::OkStatus();
}

absl::Status GooglePubsubProducer::Stop(Deadline deadline) {
  {
    std::lock_guard lock(mu_);
    if (shutdown_) return absl::OkStatus();
    stopping_ = true;
  }
  absl::Status result = Flush(deadline);
  std::vector<Pending> failed;
  {
    std::lock_guard lock(mu_);
    if (!result.ok()) {
      // Out of time: stop retrying and fail what never went out, so no future hangs.
      abort_ = true;
      for (auto& batch : ready_) {
        for (auto& p : batch.items) failed.push_back(std::move(p));
        outstanding_ -= batch.items.size();
      }
      ready_.clear();
    }
    shutdown_ = true;
    cv_.notify_all();
  }
  for (auto& p : failed) {
    Resolve(p, absl::DeadlineExceededError("producer stopped before this message was sent"));
  }
  timer_.request_stop();
  if (timer_.joinable()) timer_.join();
  for (auto& t : senders_) {
    if (t.joinable()) t.join();
  }
  return result;
}

}  // namespace dataflow::pubsub

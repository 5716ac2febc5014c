// GooglePubsubProducer: a batching Pub/Sub publisher.
//
// Messages are batched per (topic, ordering key) and sent when a batch reaches
// max_batch_messages or max_batch_bytes, or max_batch_delay after its first message (Go
// defaults: 100 / 1 MB / 100 ms). Every publish gets a future that resolves with the
// server's message id or with the error that stopped it; retryable errors are retried with
// backoff until retry_timeout. Batches with an ordering key are sent one at a time per key,
// so the server sees them in publish order; when one fails for good, the key is paused:
// its queued and later messages fail with FAILED_PRECONDITION until ResumePublish(key), so
// a key's messages never reach the server out of order (as Google's clients do). Other
// keys and messages without a key are unaffected. Flush() sends everything pending and waits;
// Stop(deadline) flushes and fails whatever could not be sent in time, so no future is
// left unresolved. Also a core MessagePublisher (topic-routed).
//
// GoogleSimplePublisher: fire-and-forget publishing whose failures are logged (dead
// letters, diagnostics). PubsubDeadLetterSink: parks poison messages on a topic.
//
// All three are thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "dataflow/messagepipeline/backoff.h"
#include "dataflow/messagepipeline/dead_letter.h"
#include "dataflow/messagepipeline/message.h"
#include "dataflow/messagepipeline/publisher.h"
#include "dataflow/pubsub/pubsub_stub.h"

namespace dataflow::pubsub {

struct ProducerOptions {
  std::string project_id;  // empty: $GOOGLE_CLOUD_PROJECT
  std::string topic_id;    // default topic for Publish(MessageData) and PublishRaw
  std::size_t max_batch_messages = 100;
  std::size_t max_batch_bytes = 1000 * 1000;
  std::chrono::milliseconds max_batch_delay{100};
  int max_concurrent_batches = 4;                                       // Publish RPCs in flight
  std::chrono::milliseconds publish_timeout{std::chrono::seconds(60)};  // per RPC
  std::chrono::milliseconds retry_timeout{std::chrono::seconds(60)};    // per batch, all tries
  messagepipeline::BackoffOptions backoff{};
};

class GooglePubsubProducer : public messagepipeline::MessagePublisher {
 public:
  using Result = absl::StatusOr<std::string>;
  using Callback = std::function<void(const Result&)>;

  static absl::StatusOr<std::unique_ptr<GooglePubsubProducer>> Create(
      std::shared_ptr<PublisherStub> stub, ProducerOptions options);
  ~GooglePubsubProducer() override;

  // The JSON envelope of `data` (Go wire format) to the default topic.
  std::future<Result> Publish(const messagepipeline::MessageData& data,
                              messagepipeline::Attributes attributes = {},
                              std::string ordering_key = {});
  // Raw bytes to the default topic.
  std::future<Result> PublishRaw(std::string payload, messagepipeline::Attributes attributes = {},
                                 std::string ordering_key = {});
  // MessagePublisher: `message` as is, to `topic` (a topic id in this project).
  std::future<Result> Publish(const std::string& topic,
                              messagepipeline::OutgoingMessage message) override;
  // Like Publish(topic, message), but `done` runs (on a producer thread) with the result.
  void PublishAsync(const std::string& topic, messagepipeline::OutgoingMessage message,
                    Callback done) override;

  // After a batch with `ordering_key` failed, publishing with that key on the default topic
  // (or on `topic`) fails fast until this is called. A no-op for a key that is not paused.
  void ResumePublish(const std::string& ordering_key);
  void ResumePublish(const std::string& topic, const std::string& ordering_key);

  // Sends every pending batch now and waits until all publishes so far have resolved.
  absl::Status Flush(messagepipeline::Deadline deadline);
  absl::Status Stop(messagepipeline::Deadline deadline) override;

  [[nodiscard]] const std::string& project_id() const { return options_.project_id; }
  [[nodiscard]] const std::string& default_topic() const { return options_.topic_id; }

 private:
  struct Pending {
    v1::PubsubMessage message;
    std::promise<Result> promise;
    Callback callback;
    absl::Status error;  // set by Send when it failed; the caller resolves it
  };
  struct Batch {
    std::string topic;
    std::string ordering_key;
    std::vector<Pending> items;
    std::size_t bytes = 0;
    std::chrono::steady_clock::time_point opened;
  };
  using Key = std::pair<std::string, std::string>;

  GooglePubsubProducer(std::shared_ptr<PublisherStub> stub, ProducerOptions options);
  void Enqueue(const std::string& topic, Pending pending, const std::string& ordering_key);
  void TimerLoop(std::stop_token stop);
  void SenderLoop();
  // Publishes `batch` with retries; resolves the items that were sent and sets `error` on
  // the others (the caller resolves them, after pausing an ordering key); returns the first
  // error.
  absl::Status Send(Batch& batch);
  // Publishes items [begin, end) in one request, retrying retryable errors; resolves them on
  // success only. INVALID_ARGUMENT comes back marked permanent.
  absl::Status SendRange(Batch& batch, std::size_t begin, std::size_t end);
  // `message`'s payload, attributes and ordering key as a pending publish (it is moved from).
  static Pending ToPending(messagepipeline::OutgoingMessage& message);
  static void Resolve(Pending& p, const Result& r);
  static absl::Status PausedError(const Key& key, const absl::Status& cause);

  std::shared_ptr<PublisherStub> stub_;
  ProducerOptions options_;
  std::mutex mu_;
  std::condition_variable_any cv_;   // timer and senders
  std::condition_variable idle_cv_;  // outstanding_ reached 0
  std::map<Key, Batch> open_;
  std::deque<Batch> ready_;
  std::set<Key> in_flight_keys_;
  std::map<Key, absl::Status> paused_keys_;  // ordering keys whose last batch failed, why
  std::size_t outstanding_ = 0;
  std::uint64_t batches_opened_ = 0;
  bool stopping_ = false;  // no new publishes
  bool shutdown_ = false;  // threads exit once ready_ is empty
  bool abort_ = false;     // stop retrying: the Stop deadline passed
  std::vector<std::jthread> senders_;
  std::jthread timer_;
};

// Fire-and-forget: Publish() returns at once; failures are logged (rate-limited) with the
// topic and error, successes counted. For dead letters and diagnostics, not for data that
// must arrive.
class GoogleSimplePublisher {
 public:
  static absl::StatusOr<std::unique_ptr<GoogleSimplePublisher>> Create(
      std::shared_ptr<PublisherStub> stub, ProducerOptions options);
  void Publish(std::string payload, messagepipeline::Attributes attributes = {});
  absl::Status Stop(messagepipeline::Deadline deadline) { return producer_->Stop(deadline); }
  [[nodiscard]] std::size_t failures() const { return failures_->load(); }

 private:
  GoogleSimplePublisher() = default;
  std::string topic_;
  std::unique_ptr<GooglePubsubProducer> producer_;
  std::shared_ptr<std::atomic<std::size_t>> failures_ =
      std::make_shared<std::atomic<std::size_t>>(0);
};

// DeadLetterSink that publishes the original payload and attributes plus the dead-letter
// attributes (dataflow_error, dataflow_source, dataflow_delivery_attempt) to `topic`, and
// returns OK only once Pub/Sub has stored it.
class PubsubDeadLetterSink : public messagepipeline::DeadLetterSink {
 public:
  PubsubDeadLetterSink(std::shared_ptr<GooglePubsubProducer> producer, std::string topic)
      : producer_(std::move(producer)), topic_(std::move(topic)) {}
  absl::Status Send(const messagepipeline::Message& message, const absl::Status& reason,
                    std::string_view source) override;

 private:
  std::shared_ptr<GooglePubsubProducer> producer_;
  std::string topic_;
};

}  // namespace dataflow::pubsub

// GooglePubsubConsumer: a MessageConsumer over Pub/Sub StreamingPull.
//
// Opens `streams` StreamingPull streams on one subscription with server-side flow control
// (max outstanding messages and bytes; defaults 1000 / 100 MB), hands each message to the
// bounded channel (a full channel stops the reader: backpressure), extends the ack deadline
// of every message still in flight up to max_lease_extension, and sends acks, nacks and
// deadline extensions to the server in batches (every ack_flush_interval). Those that fail
// with a retryable error are retried with backoff for as long as the message's lease lasts;
// past it they are counted (Stats::settles_expired) and logged. A stream that ends with a
// retryable error (UNAVAILABLE, ...) is reopened with exponential backoff and jitter; one
// that reaches its planned end (max_stream_duration) is half-closed and reopened at once, and
// the messages it delivered stay leased and are settled as usual (acks go by Acknowledge);
// Message::delivery_attempt is the server's count or, without one, this consumer's own;
// NOT_FOUND / PERMISSION_DENIED / INVALID_ARGUMENT stop the consumer with that error in
// Done(). Start() checks the subscription first, so a missing one fails there.
// Stop(deadline) half-closes the streams, nacks what never reached the channel, closes the
// channel and waits (until the deadline) for the acks and nacks settled so far to reach the
// server; past the deadline it returns DeadlineExceeded saying what was left (a thread
// still inside the stub then is joined by the destructor, not detached). Messages already in
// the channel can still be acked or nacked (they are sent to the server until the consumer
// is destroyed; the destructor nacks whatever is still unsettled, cancels the streams and
// joins every thread, so it waits for an RPC in progress, which the gRPC stub bounds).
// Thread-safe. The parts (stream reader, lease manager, ack batcher, flow control) are
// private, under src/pubsub; docs/pubsub.md describes them.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <future>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "dataflow/messagepipeline/backoff.h"
#include "dataflow/messagepipeline/consumer.h"
#include "dataflow/metrics/registration.h"
#include "dataflow/pubsub/pubsub_stub.h"

namespace dataflow::pubsub {

namespace internal {
class SubscriberSession;  // src/pubsub/subscriber_session.h
}  // namespace internal

struct ConsumerOptions {
  std::string project_id;  // empty: $GOOGLE_CLOUD_PROJECT
  std::string subscription_id;
  int streams = 1;
  std::size_t max_outstanding_messages = 1000;
  std::size_t max_outstanding_bytes = 100 * 1024 * 1024;
  std::size_t channel_capacity = 1000;
  // The deadline requested for each delivery and each extension (10..600 s).
  std::chrono::seconds ack_deadline{30};
  // Stop extending a message's deadline this long after it arrived (Go: 60 min).
  std::chrono::milliseconds max_lease_extension{std::chrono::minutes(60)};
  std::chrono::milliseconds ack_flush_interval{100};
  // Each StreamingPull stream gets a gRPC deadline this far ahead, which is what ends a dead
  // client's stream on the server (the emulator otherwise keeps leasing messages into it;
  // see docs/pubsub.md for the default). A live client half-closes it a little earlier
  // (2 s, or a fifth of it if shorter), so the server ends it cleanly, and opens the next
  // at once (no backoff, no warning). 0: neither.
  std::chrono::milliseconds max_stream_duration{std::chrono::seconds(60)};
  // When the server does not count deliveries (Message::delivery_attempt; Pub/Sub does only
  // for a subscription with a dead-letter policy) the consumer counts the deliveries it saw
  // of each message id, so a service's max_delivery_attempts still ends a redelivery loop.
  // An ack forgets the message; past this many ids the one delivered longest ago is
  // forgotten. Each consumer counts only its own deliveries. 0: no counting (attempt 0).
  std::size_t delivery_count_capacity = 100'000;
  messagepipeline::BackoffOptions reconnect_backoff{.initial = std::chrono::milliseconds(100),
                                                    .maximum = std::chrono::seconds(10),
                                                    .multiplier = 2.0};
  // Retrying acks, nacks and extensions that failed with a retryable error.
  messagepipeline::BackoffOptions settle_backoff{.initial = std::chrono::milliseconds(100),
                                                 .maximum = std::chrono::seconds(5),
                                                 .multiplier = 2.0};
  // The clock that leases and retries are timed by; empty: steady_clock::now. For tests.
  std::function<std::chrono::steady_clock::time_point()> clock;
};

class GooglePubsubConsumer : public messagepipeline::MessageConsumer {
 public:
  static absl::StatusOr<std::unique_ptr<GooglePubsubConsumer>> Create(
      std::shared_ptr<SubscriberStub> stub, ConsumerOptions options);
  ~GooglePubsubConsumer() override;

  absl::Status Start() override;
  absl::Status Stop(messagepipeline::Deadline deadline) override;
  messagepipeline::BoundedQueue<messagepipeline::Message>& Messages() override;
  std::shared_future<absl::Status> Done() override;
  [[nodiscard]] bool IsConnected() const override;

  struct Stats {
    std::size_t received = 0;
    std::size_t acks_sent = 0;  // first attempts; retries are counted in settle_retries
    std::size_t nacks_sent = 0;
    std::size_t extensions_sent = 0;
    std::size_t reconnects = 0;       // after an error, with backoff
    std::size_t stream_renewals = 0;  // streams reopened at their max_stream_duration
    std::size_t settle_retries = 0;   // ack/nack/extension ids sent again after a failure
    std::size_t settles_expired = 0;  // ids given up: their lease ran out while retrying
    std::size_t settles_failed = 0;   // ids dropped on a non-retryable error
    // Flow control now: messages handed to the channel or pipeline and not yet settled,
    // their bytes, and how many streams wait for room under the limits.
    std::size_t outstanding_messages = 0;
    std::size_t outstanding_bytes = 0;
    std::size_t streams_waiting_for_flow_control = 0;
    std::size_t delivery_counts = 0;          // message ids counted now (not acked)
    std::size_t delivery_counts_evicted = 0;  // forgotten over delivery_count_capacity
  };
  [[nodiscard]] Stats stats() const;

  // Exports stats() as the dataflow_pubsub_* families (pubsub_metrics.h), labelled `labels`,
  // on every scrape of `telemetry` until this consumer is destroyed; a second call replaces
  // the first. Not concurrently with itself.
  void RegisterMetrics(metrics::Telemetry& telemetry, const metrics::Labels& labels);

 private:
  explicit GooglePubsubConsumer(std::unique_ptr<internal::SubscriberSession> session);

  std::unique_ptr<internal::SubscriberSession> session_;
  metrics::Registration metrics_;  // after session_: removed before it goes
};

}  // namespace dataflow::pubsub

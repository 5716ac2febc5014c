// GooglePubsubConsumer: a MessageConsumer over Pub/Sub StreamingPull.
//
// Opens `streams` StreamingPull streams on one subscription with server-side flow control
// (max outstanding messages and bytes; defaults 1000 / 100 MB), hands each message to the
// bounded channel (a full channel stops the reader: backpressure), extends the ack deadline
// of every message still in flight up to max_lease_extension, and sends acks, nacks and
// deadline extensions to the server in batches (every ack_flush_interval). A stream that
// ends with a retryable error (UNAVAILABLE, ...) is reopened with exponential backoff and
// jitter; NOT_FOUND / PERMISSION_DENIED / INVALID_ARGUMENT stop the consumer with that error
// in Done(). Start() checks the subscription first, so a missing one fails there.
// Stop() ends the streams, nacks what never reached the channel and closes the channel;
// messages already in it can still be acked or nacked (they are sent to the server until
// the consumer is destroyed; the destructor nacks whatever is still unsettled).
// Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "dataflow/gcp/backoff.h"
#include "dataflow/messagepipeline/consumer.h"
#include "dataflow/pubsub/pubsub_stub.h"

namespace dataflow::pubsub {

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
  gcp::BackoffOptions reconnect_backoff{.initial = std::chrono::milliseconds(100),
                                        .maximum = std::chrono::seconds(10),
                                        .multiplier = 2.0};
};

class GooglePubsubConsumer : public messagepipeline::MessageConsumer {
 public:
  static absl::StatusOr<std::unique_ptr<GooglePubsubConsumer>> Create(
      std::shared_ptr<PubsubStub> stub, ConsumerOptions options);
  ~GooglePubsubConsumer() override;

  absl::Status Start() override;
  absl::Status Stop(messagepipeline::Deadline deadline) override;
  messagepipeline::BoundedQueue<messagepipeline::Message>& Messages() override;
  std::shared_future<absl::Status> Done() override;
  [[nodiscard]] bool IsConnected() const override;

  struct Stats {
    std::size_t received = 0;
    std::size_t acks_sent = 0;
    std::size_t nacks_sent = 0;
    std::size_t extensions_sent = 0;
    std::size_t reconnects = 0;
  };
  [[nodiscard]] Stats stats() const;

  struct State;  // shared with ack handlers, which may outlive a Stop()

 private:
  GooglePubsubConsumer(std::shared_ptr<PubsubStub> stub, ConsumerOptions options);
  void ReadLoop(int index);
  void LeaseLoop(std::stop_token stop);
  void Finish(absl::Status status);
  void SendSettlements();
  void SendIds(const std::vector<std::string>& ids, int deadline, bool ack);

  std::shared_ptr<State> state_;
  std::vector<std::jthread> readers_;
  std::jthread lease_thread_;
};

}  // namespace dataflow::pubsub

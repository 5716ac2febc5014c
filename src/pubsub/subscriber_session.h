// SubscriberSession: the body of GooglePubsubConsumer, composing its units (see
// docs/pubsub.md, "Inside the consumer"): one StreamReader per stream, the LeaseManager, the
// AckBatcher, FlowControl and the DeliveryCounter, each with its own lock. It owns the
// threads — one per reader and one "pump" that extends leases, renews streams at their
// planned end and flushes acks every ack_flush_interval — and joins every one of them: Stop()
// those that finished by its deadline, the destructor the rest.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ack_batcher.h"
#include "dataflow/messagepipeline/bounded_queue.h"
#include "dataflow/pubsub/consumer.h"
#include "delivery_counter.h"
#include "flow_control.h"
#include "lease_manager.h"
#include "stream_reader.h"

namespace dataflow::pubsub::internal {

class SubscriberSession {
 public:
  // `options` are valid (GooglePubsubConsumer::Create checks them), project_id resolved.
  SubscriberSession(std::shared_ptr<SubscriberStub> stub, ConsumerOptions options);
  ~SubscriberSession();  // Stop() with 5 s, then cancels the streams and joins every thread

  absl::Status Start();
  absl::Status Stop(messagepipeline::Deadline deadline);
  messagepipeline::BoundedQueue<messagepipeline::Message>& queue() { return queue_; }
  std::shared_future<absl::Status> done() const { return done_; }
  [[nodiscard]] bool connected() const;
  [[nodiscard]] GooglePubsubConsumer::Stats stats() const;

 private:
  // What a message's ack handler reaches; it may outlive the session (a message still in
  // the pipeline), so the handler holds it weakly.
  struct Settling {
    Settling(std::shared_ptr<SubscriberStub> stub, const ConsumerOptions& o,
             const std::string& subscription);
    LeaseManager leases;
    AckBatcher batcher;
    FlowControl flow;
    DeliveryCounter deliveries;
    std::atomic<std::size_t> received{0};
  };
  static void Settle(const std::weak_ptr<Settling>& weak, const std::string& ack_id,
                     const std::string& message_id, bool ack);

  // Marks the session stopping, stops the readers (half-closing idle streams), wakes flow
  // control, closes the channel and resolves Done() with `status` (the first one only).
  void Finish(absl::Status status);
  // Hands one response's messages to the channel under flow control; nacks what it could
  // not hand over (the session is stopping).
  void HandOver(v1::StreamingPullResponse& response);
  void Pump();
  // Until `deadline`: asks the pump for a pass and waits for it and for the acks and nacks
  // it sent (including retries) to be confirmed or given up.
  bool Flush(messagepipeline::Deadline deadline);
  // Joins the threads of readers that have stopped (all of them with `all`).
  void JoinReaders(bool all);

  const std::shared_ptr<SubscriberStub> stub_;
  const ConsumerOptions options_;
  const std::string subscription_;
  messagepipeline::BoundedQueue<messagepipeline::Message> queue_;
  const std::shared_ptr<Settling> settling_;
  std::vector<std::unique_ptr<StreamReader>> readers_;  // fixed at construction

  // Lifecycle and threads.
  mutable std::mutex mu_;
  bool started_ = false;
  bool stopping_ = false;
  bool done_set_ = false;
  std::vector<std::thread> reader_threads_;  // by reader index; joined when not joinable()
  std::thread pump_thread_;
  std::promise<absl::Status> done_promise_;
  std::shared_future<absl::Status> done_;

  // The pump's requests.
  std::mutex pump_mu_;
  std::condition_variable pump_cv_;
  bool pump_stop_ = false;             // the destructor: last pass (nack every lease), then exit
  std::uint64_t flush_requested_ = 0;  // Stop() asks for a pass now ...
  std::uint64_t flush_completed_ = 0;  // ... and waits for it
};

}  // namespace dataflow::pubsub::internal

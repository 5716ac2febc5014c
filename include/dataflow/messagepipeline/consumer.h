// MessageConsumer: a source of messages (Pub/Sub, MQTT, the in-process broker, ...).
//
// A consumer pulls from its transport into a bounded channel that the services read. A
// full channel stops it pulling (backpressure). Stop() ends pulling, settles (nacks)
// whatever it holds that never reached the channel, and closes the channel so the
// pipeline can drain what is already in it. Implementations are thread-safe.
#pragma once

#include <absl/status/status.h>

#include <chrono>
#include <future>

#include "dataflow/messagepipeline/bounded_queue.h"
#include "dataflow/messagepipeline/message.h"

namespace dataflow::messagepipeline {

using Deadline = std::chrono::steady_clock::time_point;

class MessageConsumer {
 public:
  virtual ~MessageConsumer() = default;

  // Begins delivering into Messages(). Fails for a second call or after Stop().
  virtual absl::Status Start() = 0;
  // Idempotent. Returns once the channel is closed (or at the deadline, with an error).
  virtual absl::Status Stop(Deadline deadline) = 0;
  // The channel the pipeline reads; closed when the consumer has stopped for good.
  virtual BoundedQueue<Message>& Messages() = 0;
  // Ready once the consumer has stopped, by Stop() or by a permanent error it reports.
  virtual std::shared_future<absl::Status> Done() = 0;
  // For readiness probes: connected to the transport and pulling.
  [[nodiscard]] virtual bool IsConnected() const { return true; }
};

}  // namespace dataflow::messagepipeline

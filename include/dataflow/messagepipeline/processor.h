// Processors: the business logic at the end of a pipeline.
//
// StreamProcessor<T> handles one message at a time; the service acks on OK and nacks on an
// error (dead-letters a permanent one). BatchProcessor<T> handles a batch and may settle
// each message itself (e.g. dead-letter rejected rows); after it returns, the service acks
// the messages it left unsettled if it returned OK and nacks them if it returned an error.
// A processor that throws is treated as having returned an Internal error.
// Processors are called concurrently (stream) or from one batcher thread (batch).
#pragma once

#include <absl/status/status.h>

#include <functional>
#include <span>

#include "dataflow/messagepipeline/message.h"

namespace dataflow::messagepipeline {

template <typename T>
struct ProcessableItem {
  Message original;
  T payload;
  // Set by a batch processor that parked this message on the dead-letter topic itself (and
  // acked it), so the service counts it as dead-lettered rather than processed.
  bool dead_lettered = false;
};

template <typename T>
using StreamProcessor = std::function<absl::Status(Message& original, T& payload)>;

template <typename T>
using BatchProcessor = std::function<absl::Status(std::span<ProcessableItem<T>> batch)>;

// Works on the message itself (e.g. publishes an enriched message).
using MessageProcessor = std::function<absl::Status(Message& message)>;

// Asynchronous variants, for sinks that confirm later (a batching publisher, an in-process
// topic that waits for its subscriptions). The processor starts the work and calls `done`
// exactly once, on any thread (possibly inline), once the sink has the message or with the
// error that stopped it. The service keeps the message until then and settles it by the
// result, with a bounded number in flight; results may arrive in any order.
using Completion = std::function<void(absl::Status)>;
template <typename T>
using AsyncStreamProcessor = std::function<void(Message& original, T& payload, Completion done)>;
using AsyncMessageProcessor = std::function<void(Message& message, Completion done)>;

}  // namespace dataflow::messagepipeline

// MessageTransformer<T>: turns a raw Message into the typed payload a processor works on.
//
// The result says one of three things:
//   - a value:            process it;
//   - std::nullopt, skip: ack the message and drop it on purpose (filtered out);
//   - an error:           nack it for redelivery, or, if IsPermanent(error), dead-letter it.
// Transformers are called concurrently from several workers and must be thread-safe.
#pragma once

#include <absl/status/statusor.h>

#include <cstddef>
#include <functional>
#include <limits>
#include <optional>

#include "dataflow/messagepipeline/message.h"

namespace dataflow::messagepipeline {

template <typename T>
using TransformResult = absl::StatusOr<std::optional<T>>;

template <typename T>
using MessageTransformer = std::function<TransformResult<T>(const Message&)>;

// The "skip" result, for readability at return sites: `return Skip<Reading>();`
template <typename T>
TransformResult<T> Skip() {
  return std::optional<T>(std::nullopt);
}

// Decodes the inter-service JSON envelope (MessageData); undecodable input is a permanent
// error, so it is dead-lettered rather than redelivered forever.
TransformResult<MessageData> EnvelopeTransformer(const Message& message);

// Passes the payload bytes through unchanged.
TransformResult<std::string> RawPayloadTransformer(const Message& message);

struct PayloadLimits {
  std::size_t min_bytes = 0;
  std::size_t max_bytes = std::numeric_limits<std::size_t>::max();
};

// Logs (rate-limited) and counts a payload outside the limits; the caller skips the message.
void ReportPayloadOutOfRange(const Message& message, const PayloadLimits& limits);

// Wraps a transformer so that messages whose payload size is outside `limits` are skipped
// (acked and dropped, with a warning) before `next` sees them.
template <typename T>
MessageTransformer<T> WithPayloadValidation(MessageTransformer<T> next, PayloadLimits limits) {
  return [next = std::move(next), limits](const Message& message) -> TransformResult<T> {
    const std::size_t size = message.data.payload.size();
    if (size < limits.min_bytes || size > limits.max_bytes) {
      ReportPayloadOutOfRange(message, limits);
      return Skip<T>();
    }
    return next(message);
  };
}

}  // namespace dataflow::messagepipeline

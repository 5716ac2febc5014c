// DeadLetterSink: where poison messages are parked instead of being redelivered forever.
//
// A message sent here keeps its payload and attributes and gains three attributes: the
// error text, the service that gave up on it, and its delivery attempt. Every attribute value
// is cut to kMaxAttributeValueBytes (Pub/Sub's limit), so an oversize attribute that made the
// message poison (a 64 KiB MQTT topic) cannot make its dead letter fail too; the error text
// never carries more than that either. The service acks
// the original only once Send() returned OK; if the sink fails, the message is nacked.
// Implementations are thread-safe.
#pragma once

#include <absl/status/status.h>

#include <cstddef>
#include <string_view>

#include "dataflow/messagepipeline/message.h"

namespace dataflow::messagepipeline {

inline constexpr std::string_view kDeadLetterErrorAttribute = "dataflow_error";
inline constexpr std::string_view kDeadLetterSourceAttribute = "dataflow_source";
inline constexpr std::string_view kDeadLetterAttemptAttribute = "dataflow_delivery_attempt";

// Pub/Sub rejects attribute values over 1024 bytes and keys over 256.
inline constexpr std::size_t kMaxAttributeValueBytes = 1024;
inline constexpr std::size_t kMaxAttributeKeyBytes = 256;

class DeadLetterSink {
 public:
  virtual ~DeadLetterSink() = default;
  // Stores a copy of `message` with the dead-letter attributes; OK only once it is durable.
  virtual absl::Status Send(const Message& message, const absl::Status& reason,
                            std::string_view source) = 0;
};

// The original attributes (bounded as above; a key over the limit is dropped) plus the
// dead-letter ones; for sink implementations.
Attributes DeadLetterAttributes(const Message& message, const absl::Status& reason,
                                std::string_view source);

}  // namespace dataflow::messagepipeline

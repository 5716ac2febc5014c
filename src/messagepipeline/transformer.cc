#include "dataflow/messagepipeline/transformer.h"

#include <absl/strings/str_cat.h>

#include "dataflow/messagepipeline/errors.h"
#include "dataflow/messagepipeline/logging.h"

namespace dataflow::messagepipeline {

TransformResult<MessageData> EnvelopeTransformer(const Message& message) {
  auto decoded = DecodeMessageData(message.data.payload);
  if (!decoded.ok()) return MarkPermanent(decoded.status());
  return std::optional<MessageData>(*std::move(decoded));
}

TransformResult<std::string> RawPayloadTransformer(const Message& message) {
  return std::optional<std::string>(message.data.payload);
}

void ReportPayloadOutOfRange(const Message& message, const PayloadLimits& limits) {
  static LogRateLimit limit;
  if (limit.Allow()) {
    Log()->warn(
        "payload size out of range; skipping message id={} size={} min={} max={} suppressed={}",
        message.data.id, message.data.payload.size(), limits.min_bytes, limits.max_bytes,
        limit.suppressed());
  }
}

}  // namespace dataflow::messagepipeline

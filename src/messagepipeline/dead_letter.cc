#include "dataflow/messagepipeline/dead_letter.h"

#include <absl/strings/str_cat.h>

#include "dataflow/messagepipeline/logging.h"

namespace dataflow::messagepipeline {

Attributes DeadLetterAttributes(const Message& message, const absl::Status& reason,
                                std::string_view source) {
  Attributes out;
  for (const auto& [key, value] : message.attributes) {
    if (key.size() > kMaxAttributeKeyBytes) continue;
    out.emplace(key, BoundedText(value, kMaxAttributeValueBytes));
  }
  out.insert_or_assign(std::string(kDeadLetterErrorAttribute),
                       BoundedText(reason.ToString(), kMaxAttributeValueBytes));
  out.insert_or_assign(std::string(kDeadLetterSourceAttribute),
                       BoundedText(source, kMaxAttributeValueBytes));
  out.insert_or_assign(std::string(kDeadLetterAttemptAttribute),
                       absl::StrCat(message.delivery_attempt));
  return out;
}

}  // namespace dataflow::messagepipeline

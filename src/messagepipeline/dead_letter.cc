#include "dataflow/messagepipeline/dead_letter.h"

#include <absl/strings/str_cat.h>

namespace dataflow::messagepipeline {

Attributes DeadLetterAttributes(const Message& message, const absl::Status& reason,
                                std::string_view source) {
  Attributes out = message.attributes;
  out.insert_or_assign(std::string(kDeadLetterErrorAttribute), reason.ToString());
  out.insert_or_assign(std::string(kDeadLetterSourceAttribute), std::string(source));
  out.insert_or_assign(std::string(kDeadLetterAttemptAttribute),
                       absl::StrCat(message.delivery_attempt));
  return out;
}

}  // namespace dataflow::messagepipeline

#include "dataflow/messagepipeline/errors.h"

#include <absl/strings/cord.h>

namespace dataflow::messagepipeline {
namespace {
constexpr absl::string_view kPermanentPayload = "dataflow.permanent";
}

absl::Status PermanentError(std::string_view message) {
  return MarkPermanent(
      absl::InvalidArgumentError(absl::string_view(message.data(), message.size())));
}

absl::Status MarkPermanent(absl::Status status) {
  if (!status.ok()) status.SetPayload(kPermanentPayload, absl::Cord("1"));
  return status;
}

bool IsPermanent(const absl::Status& status) {
  return !status.ok() && status.GetPayload(kPermanentPayload).has_value();
}

}  // namespace dataflow::messagepipeline

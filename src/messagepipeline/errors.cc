#include "dataflow/messagepipeline/errors.h"

#include <absl/strings/cord.h>
#include <absl/strings/str_cat.h>

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

absl::Status Annotate(const absl::Status& status, std::string_view where) {
  if (status.ok()) return status;
  absl::Status annotated(status.code(), absl::StrCat(absl::string_view(where.data(), where.size()),
                                                     ": ", status.message()));
  status.ForEachPayload([&annotated](absl::string_view type_url, const absl::Cord& payload) {
    annotated.SetPayload(type_url, payload);
  });
  return annotated;
}

}  // namespace dataflow::messagepipeline

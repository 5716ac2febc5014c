// Permanent errors: failures that retrying the same message cannot fix (a payload that does
// not parse, a value outside a schema). Services send messages that fail permanently to the
// dead-letter sink instead of nacking them into an endless redelivery loop.
#pragma once

#include <absl/status/status.h>

#include <string_view>

namespace dataflow::messagepipeline {

// An InvalidArgument error marked permanent.
absl::Status PermanentError(std::string_view message);
// The same status, marked permanent (OK stays OK).
absl::Status MarkPermanent(absl::Status status);
bool IsPermanent(const absl::Status& status);

// The same status (code and payloads, so a permanent error stays permanent) with its message
// prefixed by where it happened: "<where>: <message>". OK stays OK.
absl::Status Annotate(const absl::Status& status, std::string_view where);

}  // namespace dataflow::messagepipeline

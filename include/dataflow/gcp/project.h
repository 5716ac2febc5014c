// The Google Cloud project a client works in: from configuration, else from the
// GOOGLE_CLOUD_PROJECT environment variable (the convention of Google's clients).
// Free functions; thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace dataflow::gcp {

// `configured` if non-empty, else $GOOGLE_CLOUD_PROJECT. InvalidArgument when neither is set
// or the id cannot be a project id (contains '/', whitespace, or is too long), so a typo
// fails at start-up instead of producing "projects//topics/x" at run time.
absl::StatusOr<std::string> ResolveProjectId(std::string_view configured);

// Validates a project id as used in resource names; OK or InvalidArgument.
absl::Status ValidateProjectId(std::string_view project_id);

}  // namespace dataflow::gcp

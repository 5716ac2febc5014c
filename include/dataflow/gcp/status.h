// Conversions between gRPC 1.51's grpc::Status and absl::Status (separate types in this
// gRPC version; the numeric codes are the same canonical codes), and the default
// classification of retryable codes used by the Google API clients in this library.
// Free functions; thread-safe.
#pragma once

#include <grpcpp/support/status.h>

#include <string_view>

#include "absl/status/status.h"

namespace dataflow::gcp {

// Same code and message. `context`, if given, is prefixed as "context: message" so a
// caller's log line says which call failed.
absl::Status FromGrpcStatus(const grpc::Status& status, std::string_view context = {});

grpc::Status ToGrpcStatus(const absl::Status& status);

// Codes on which Google's clients retry by default: UNAVAILABLE, DEADLINE_EXCEEDED,
// RESOURCE_EXHAUSTED, ABORTED, and INTERNAL (the service returns it for transient RST_STREAM
// failures). Everything else (NOT_FOUND, PERMISSION_DENIED, INVALID_ARGUMENT, ...) is
// permanent for the call that got it.
bool IsRetryable(absl::StatusCode code);

}  // namespace dataflow::gcp

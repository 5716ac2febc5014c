#include "dataflow/gcp/status.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace dataflow::gcp {

absl::Status FromGrpcStatus(const grpc::Status& status, std::string_view context) {
  if (status.ok()) return absl::OkStatus();
  // grpc::StatusCode and absl::StatusCode both number the canonical codes 0..16.
  auto code = static_cast<absl::StatusCode>(static_cast<int>(status.error_code()));
  if (context.empty()) return {code, status.error_message()};
  return {code, absl::StrCat(absl::string_view(context.data(), context.size()), ": ",
                             status.error_message())};
}

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return {static_cast<grpc::StatusCode>(static_cast<int>(status.code())),
          std::string(status.message())};
}

bool IsRetryable(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kInternal:
      return true;
    default:
      return false;
  }
}

}  // namespace dataflow::gcp

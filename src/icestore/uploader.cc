#include "dataflow/icestore/uploader.h"

#include <absl/strings/str_cat.h>
#include <absl/strings/str_format.h>

#include <atomic>
#include <chrono>
#include <random>

#include "dataflow/icestore/archival.h"

namespace dataflow::icestore {
namespace {

// "archive/" is "archive": the Go README's own example prefix ends in '/', and objects must
// not be named "archive//<key>/...".
std::string_view TrimTrailingSlashes(std::string_view prefix) {
  while (!prefix.empty() && prefix.back() == '/') prefix.remove_suffix(1);
  return prefix;
}

}  // namespace

std::string MakeObjectName(std::string_view prefix, std::string_view batch_key) {
  prefix = TrimTrailingSlashes(prefix);
  thread_local std::mt19937_64 rng{std::random_device{}()};
  const auto now = std::chrono::duration_cast<std::chrono::microseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  // Time first so a listing sorts roughly by write order; randomness makes it unique
  // across threads and processes (several copies of the service share a bucket).
  std::string id = absl::StrFormat("%016x-%016x", static_cast<std::uint64_t>(now), rng());
  std::string key(batch_key);
  if (prefix.empty()) return absl::StrCat(key, "/", id, ".jsonl.gz");
  return absl::StrCat(std::string(prefix), "/", key, "/", id, ".jsonl.gz");
}

absl::StatusOr<PreparedObject> PrepareObject(const ObjectGroup& group, std::string_view prefix,
                                             const GzipOptions& gzip) {
  if (!IsSafeBatchKey(group.batch_key)) {
    return absl::InvalidArgumentError(
        absl::StrCat("unsafe batch key '", group.batch_key, "'; sanitise it first"));
  }
  auto gzipped = GzipCompress(group.jsonl, gzip);
  if (!gzipped.ok()) return gzipped.status();
  return PreparedObject{.name = MakeObjectName(prefix, group.batch_key),
                        .gzipped = *std::move(gzipped)};
}

absl::Status ValidatePrefix(std::string_view prefix) {
  const std::string_view trimmed = TrimTrailingSlashes(prefix);
  if (trimmed.empty() || IsSafeBatchKey(trimmed)) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("object prefix '", std::string(prefix),
                   "' must be relative, without empty, '.' or '..' segments or control "
                   "characters (suggest '",
                   SanitizeBatchKey(prefix), "')"));
}

}  // namespace dataflow::icestore

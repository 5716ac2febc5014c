// Gzip (RFC 1952) compression for archives, with two codecs: zlib, and libdeflate (whole
// buffer at once, faster at equal levels). Both produce ordinary gzip members that `zcat`
// reads. The default codec and level were picked from bench/icestore (docs/icestore.md).
// Pure functions: thread-safe.
#pragma once

#include <absl/status/statusor.h>

#include <string>
#include <string_view>

namespace dataflow::icestore {

enum class GzipCodec { kZlib, kLibdeflate };

struct GzipOptions {
  GzipCodec codec = GzipCodec::kLibdeflate;
  int level = 1;  // 1..9 (libdeflate accepts up to 12)
};

absl::Status ValidateGzipOptions(const GzipOptions& options);
absl::StatusOr<std::string> GzipCompress(std::string_view data, const GzipOptions& options = {});
// For tests and tools: decompresses every gzip member in `data`.
absl::StatusOr<std::string> GzipDecompress(std::string_view data);

}  // namespace dataflow::icestore

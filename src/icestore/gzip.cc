#include "dataflow/icestore/gzip.h"

#include <absl/strings/str_cat.h>
#include <libdeflate.h>
#include <zlib.h>

#include <memory>

namespace dataflow::icestore {
namespace {

absl::StatusOr<std::string> ZlibGzip(std::string_view data, int level) {
  z_stream z{};
  // windowBits 15 + 16 selects the gzip wrapper.
  if (deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    return absl::InternalError("zlib deflateInit2 failed");
  }
  std::string out;
  out.resize(deflateBound(&z, static_cast<uLong>(data.size())) + 32);
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&z, Z_FINISH);
  const std::size_t written = z.total_out;
  deflateEnd(&z);
  if (rc != Z_STREAM_END) return absl::InternalError(absl::StrCat("zlib deflate failed: ", rc));
  out.resize(written);
  return out;
}

absl::StatusOr<std::string> LibdeflateGzip(std::string_view data, int level) {
  std::unique_ptr<libdeflate_compressor, decltype(&libdeflate_free_compressor)> c(
      libdeflate_alloc_compressor(level), &libdeflate_free_compressor);
  if (!c) return absl::ResourceExhaustedError("libdeflate: cannot allocate a compressor");
  std::string out;
  out.resize(libdeflate_gzip_compress_bound(c.get(), data.size()));
  const std::size_t n =
      libdeflate_gzip_compress(c.get(), data.data(), data.size(), out.data(), out.size());
  if (n == 0) return absl::InternalError("libdeflate: output did not fit its own bound");
  out.resize(n);
  return out;
}

}  // namespace

absl::Status ValidateGzipOptions(const GzipOptions& options) {
  const int max = options.codec == GzipCodec::kZlib ? 9 : 12;
  if (options.level < 1 || options.level > max) {
    return absl::InvalidArgumentError(
        absl::StrCat("gzip level must be in 1..", max, ", got ", options.level));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> GzipCompress(std::string_view data, const GzipOptions& options) {
  if (auto s = ValidateGzipOptions(options); !s.ok()) return s;
  if (data.size() > (std::size_t{1} << 31)) {
    // zlib's single-shot counters are 32-bit; groups are capped far below this anyway.
    return absl::InvalidArgumentError("gzip input larger than 2 GiB");
  }
  return options.codec == GzipCodec::kZlib ? ZlibGzip(data, options.level)
                                           : LibdeflateGzip(data, options.level);
}

absl::StatusOr<std::string> GzipDecompress(std::string_view data) {
  std::string out;
  while (!data.empty()) {  // concatenated members, as zcat reads them
    z_stream z{};
    if (inflateInit2(&z, 15 + 16) != Z_OK) return absl::InternalError("inflateInit2 failed");
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    z.avail_in = static_cast<uInt>(data.size());
    char buf[64 * 1024];
    int rc = Z_OK;
    while (rc == Z_OK) {
      z.next_out = reinterpret_cast<Bytef*>(buf);
      z.avail_out = sizeof(buf);
      rc = inflate(&z, Z_NO_FLUSH);
      out.append(buf, sizeof(buf) - z.avail_out);
      if (rc == Z_BUF_ERROR && z.avail_in == 0) break;
    }
    const std::size_t consumed = data.size() - z.avail_in;
    inflateEnd(&z);
    if (rc != Z_STREAM_END) {
      return absl::InvalidArgumentError(absl::StrCat("not a complete gzip stream (zlib ", rc, ")"));
    }
    data.remove_prefix(consumed);
  }
  return out;
}

}  // namespace dataflow::icestore

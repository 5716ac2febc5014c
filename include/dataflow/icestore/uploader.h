// DataUploader: writes one flushed group of JSONL lines as one gzip object named
// `<prefix>/<batchKey>/<unique id>.jsonl.gz`. Upload() returns OK only once the object is
// durable (renamed into place, or finalised by the storage service); the caller acks the
// group's messages then and nacks them all on an error. Implementations are thread-safe:
// the batcher calls Upload() from several threads at once.
#pragma once

#include <absl/status/statusor.h>

#include <cstddef>
#include <string>
#include <string_view>

#include "dataflow/icestore/gzip.h"

namespace dataflow::icestore {

struct ObjectGroup {
  std::string batch_key;  // sanitised (IsSafeBatchKey)
  std::string jsonl;      // the lines, uncompressed, each ending in '\n'
  std::size_t records = 0;
};

class DataUploader {
 public:
  virtual ~DataUploader() = default;
  // Returns the object name written (relative to the bucket or root directory).
  virtual absl::StatusOr<std::string> Upload(const ObjectGroup& group) = 0;
};

// "<prefix>/<batch_key>/<unique id>.jsonl.gz" (no leading '/' when prefix is empty; a
// prefix's trailing '/'s are dropped, so "archive/" names "archive/<key>/..."). The id
// is time-ordered plus 64 random bits, so concurrent writers never collide.
std::string MakeObjectName(std::string_view prefix, std::string_view batch_key);

// What every uploader does first: checks the group's key, gzips its lines and names the
// object (MakeObjectName). InvalidArgument for an unsafe key.
struct PreparedObject {
  std::string name;
  std::string gzipped;
};
absl::StatusOr<PreparedObject> PrepareObject(const ObjectGroup& group, std::string_view prefix,
                                             const GzipOptions& gzip);

// Prefixes must be relative, without "." / ".." segments: the same rules as batch keys,
// after trailing '/'s are dropped (the Go README's example prefix ends in one).
absl::Status ValidatePrefix(std::string_view prefix);

}  // namespace dataflow::icestore

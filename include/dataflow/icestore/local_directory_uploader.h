// LocalDirectoryUploader: the embedded default sink. Writes each group to
// `<root>/<prefix>/<batchKey>/<unique id>.jsonl.gz`, atomically: the bytes go to a hidden
// temp file in the same directory, are fsynced, and only then renamed into place, so a
// reader (or a crash) never sees a partial object. Thread-safe.
#pragma once

#include <absl/status/statusor.h>

#include <memory>
#include <string>

#include "dataflow/icestore/gzip.h"
#include "dataflow/icestore/uploader.h"

namespace dataflow::icestore {

struct LocalDirectoryUploaderOptions {
  std::string root;    // created if missing
  std::string prefix;  // relative, may be empty
  GzipOptions gzip;
  bool fsync = true;  // off only for benchmarks of the CPU side
};

class LocalDirectoryUploader : public DataUploader {
 public:
  static absl::StatusOr<std::unique_ptr<LocalDirectoryUploader>> Create(
      LocalDirectoryUploaderOptions options);
  absl::StatusOr<std::string> Upload(const ObjectGroup& group) override;

 private:
  explicit LocalDirectoryUploader(LocalDirectoryUploaderOptions options)
      : options_(std::move(options)) {}
  LocalDirectoryUploaderOptions options_;
};

}  // namespace dataflow::icestore

// LocalDirectoryUploader: the embedded default sink. Writes each group to
// `<root>/<prefix>/<batchKey>/<unique id>.jsonl.gz`, atomically: the bytes go to a hidden
// temp file in the same directory, are fsynced, and only then renamed into place, so a
// reader (or a crash) never sees a partial object. With `fsync` (the default) an upload
// returns only once the object survives a power loss: the file, the directory entry of the
// rename, and every directory on the way that is new (each one and its parent: the entry
// naming it). A failed fsync fails the upload, so the group is redelivered. Thread-safe.
#pragma once

#include <absl/status/statusor.h>

#include <filesystem>
#include <memory>
#include <mutex>
#include <set>
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
  // mkdir -p `dir` below the root; with fsync, syncs each directory on the way not yet known
  // to be durable, and its parent, then remembers it.
  absl::Status MakeDirectories(const std::filesystem::path& dir);

  LocalDirectoryUploaderOptions options_;
  std::mutex durable_mu_;
  // Directories whose entry (in their parent) was fsynced by this uploader. Under durable_mu_.
  std::set<std::string> durable_;
  // Leaf directories MakeDirectories completed (made, and synced with fsync); cleared when
  // one turns out to be gone. Under durable_mu_.
  std::set<std::string> made_;
};

}  // namespace dataflow::icestore

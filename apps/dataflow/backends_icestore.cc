// The archive backends: a local directory, or a Google Cloud Storage bucket.
#include "backends.h"
#include "dataflow/icestore/gcs_uploader.h"
#include "dataflow/icestore/local_directory_uploader.h"
#include "dataflow/messagepipeline/errors.h"

namespace dataflow::app {

void RegisterArchiveBackends(Backends& backends) {
  using Made = absl::StatusOr<std::shared_ptr<icestore::DataUploader>>;
  backends.archives.Register("local", [](const IceStoreConfig& c) -> Made {
    auto local = icestore::LocalDirectoryUploader::Create(
        {.root = c.local->root, .prefix = c.local->prefix});
    if (!local.ok()) return messagepipeline::Annotate(local.status(), "local");
    return std::shared_ptr<icestore::DataUploader>(*std::move(local));
  });
  backends.archives.Register("gcs", [](const IceStoreConfig& c) -> Made {
    auto gcs =
        icestore::GcsBatchUploader::Create({.bucket = c.gcs->bucket, .prefix = c.gcs->prefix});
    if (!gcs.ok()) return messagepipeline::Annotate(gcs.status(), "gcs");
    return std::shared_ptr<icestore::DataUploader>(*std::move(gcs));
  });
}

}  // namespace dataflow::app

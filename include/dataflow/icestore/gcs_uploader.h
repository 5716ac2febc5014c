// GcsBatchUploader: writes each group as one gzip object in a Google Cloud Storage bucket
// through the JSON API over libcurl. Small objects go in one request (uploadType=media);
// objects of resumable_threshold bytes or more use a resumable session in chunk_size
// pieces, resuming from the server's committed offset after a failed chunk. 429, 5xx and
// transport errors are retried with exponential backoff; every create carries
// ifGenerationMatch=0, so a retry can never overwrite, and a 412 on a retry means an earlier
// attempt already landed. STORAGE_EMULATOR_HOST (as Google's clients read it) switches the
// endpoint to the emulator, with no token; otherwise tokens come from Google Application
// Default Credentials unless a provider is given. Thread-safe: uploads run concurrently.
#pragma once

#include <absl/status/statusor.h>

#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <string>

#include "dataflow/gcp/access_token.h"
#include "dataflow/gcp/http_client.h"
#include "dataflow/icestore/gzip.h"
#include "dataflow/icestore/uploader.h"

namespace dataflow::icestore {

// Supplies OAuth2 bearer tokens: the gcp package's interface, so one provider (e.g. from
// gcp::MakeDefaultAccessTokenProvider) serves GCS and BigQuery alike.
using TokenProvider = gcp::AccessTokenProvider;
// A fixed token (tests, or a token obtained elsewhere, e.g. `gcloud auth print-access-token`).
std::shared_ptr<TokenProvider> MakeStaticTokenProvider(std::string token);

struct GcsUploaderOptions {
  std::string bucket;
  std::string prefix;  // relative, may be empty
  GzipOptions gzip;
  // Empty: STORAGE_EMULATOR_HOST if set (http:// added when it has no scheme), else
  // https://storage.googleapis.com.
  std::string endpoint;
  // Unused for the emulator (STORAGE_EMULATOR_HOST or a plain http:// endpoint). Elsewhere,
  // null means gcp::MakeDefaultAccessTokenProvider(): Create fails when no credentials exist.
  std::shared_ptr<TokenProvider> token_provider;
  std::shared_ptr<gcp::HttpClient> http;                   // default: libcurl
  std::size_t resumable_threshold = std::size_t{8} << 20;  // compressed bytes
  std::size_t chunk_size = std::size_t{8} << 20;           // a multiple of 256 KiB
  int max_attempts = 6;                                    // per request
  std::chrono::milliseconds initial_backoff{200};
  std::chrono::milliseconds max_backoff{std::chrono::seconds(10)};
  std::chrono::milliseconds request_timeout{std::chrono::seconds(60)};
};

class GcsBatchUploader : public DataUploader {
 public:
  static absl::StatusOr<std::unique_ptr<GcsBatchUploader>> Create(GcsUploaderOptions options);
  absl::StatusOr<std::string> Upload(const ObjectGroup& group) override;
  [[nodiscard]] const std::string& endpoint() const { return options_.endpoint; }

 private:
  explicit GcsBatchUploader(GcsUploaderOptions options) : options_(std::move(options)) {}
  absl::StatusOr<gcp::HttpResponse> SendWithRetry(gcp::HttpRequest request, bool is_create);
  absl::Status SimpleUpload(const std::string& name, std::string_view data);
  absl::Status ResumableUpload(const std::string& name, std::string_view data);
  absl::Status Authorize(gcp::HttpRequest& request);

  GcsUploaderOptions options_;
};

}  // namespace dataflow::icestore

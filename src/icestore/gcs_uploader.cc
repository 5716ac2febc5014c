#include "dataflow/icestore/gcs_uploader.h"

#include <absl/strings/ascii.h>
#include <absl/strings/numbers.h>
#include <absl/strings/str_cat.h>

#include <cstdlib>
#include <thread>

#include "dataflow/icestore/archival.h"
#include "dataflow/messagepipeline/backoff.h"
#include "dataflow/messagepipeline/errors.h"
#include "dataflow/messagepipeline/logging.h"

namespace dataflow::icestore {
namespace {

using gcp::HttpClient;
using gcp::HttpRequest;
using gcp::HttpResponse;
using gcp::MakeCurlHttpClient;
using gcp::UrlEncode;

constexpr std::size_t kChunkQuantum = 256 * 1024;  // GCS requires chunk sizes in these units

bool Retryable(long status) { return status == 408 || status == 429 || status >= 500; }

// The status for a failed request. A 4xx that is about the request itself (a name GCS
// refuses, a bad argument) can never succeed, so it is marked permanent and the service
// dead-letters its messages instead of looping. 401/403/404 are about the deployment (an
// expired token, a missing IAM binding or bucket): an operator's fix makes the same upload
// succeed, so they stay transient like 5xx, 408, 429 and transport errors (they reach the
// dead-letter topic only after max_delivery_attempts). `session` is a resumable session's own URL:
// 404/410 there means the session expired, and a retry of the upload opens a new one.
absl::Status HttpError(const HttpRequest& req, const HttpResponse& resp, bool session = false) {
  std::string msg = absl::StrCat("GCS ", req.method, " ", req.url, ": HTTP ", resp.status, " ",
                                 resp.body.substr(0, 300));
  if (Retryable(resp.status)) return absl::UnavailableError(msg);
  if (session && (resp.status == 404 || resp.status == 410)) {
    return absl::UnavailableError(absl::StrCat(msg, " (upload session expired)"));
  }
  if (resp.status == 401) return absl::UnauthenticatedError(msg);
  if (resp.status == 403) return absl::PermissionDeniedError(msg);
  if (resp.status == 404) return absl::NotFoundError(msg);
  absl::Status status;
  if (resp.status == 412) {
    status = absl::FailedPreconditionError(msg);
  } else if (resp.status >= 400 && resp.status < 500) {
    status = absl::InvalidArgumentError(msg);
  } else {
    return absl::UnknownError(msg);  // an unexpected 1xx/2xx/3xx: not known to be final
  }
  return messagepipeline::MarkPermanent(std::move(status));
}

messagepipeline::BackoffOptions Backoff(const GcsUploaderOptions& options) {
  return {.initial = options.initial_backoff, .maximum = options.max_backoff, .multiplier = 2};
}

// "bytes=0-1234" → 1235 committed bytes; no Range header → 0.
std::size_t CommittedBytes(const HttpResponse& resp) {
  auto it = resp.headers.find("range");
  if (it == resp.headers.end()) return 0;
  auto dash = it->second.rfind('-');
  std::size_t last = 0;
  if (dash == std::string::npos || !absl::SimpleAtoi(it->second.substr(dash + 1), &last)) return 0;
  return last + 1;
}

}  // namespace

std::shared_ptr<TokenProvider> MakeStaticTokenProvider(std::string token) {
  return gcp::MakeStaticAccessTokenProvider(std::move(token));
}

absl::StatusOr<std::unique_ptr<GcsBatchUploader>> GcsBatchUploader::Create(
    GcsUploaderOptions options) {
  if (options.bucket.empty()) return absl::InvalidArgumentError("GCS uploader: bucket is empty");
  if (auto s = ValidatePrefix(options.prefix); !s.ok()) return s;
  if (auto s = ValidateGzipOptions(options.gzip); !s.ok()) return s;
  bool emulator = false;
  if (options.endpoint.empty()) {
    const char* host = std::getenv("STORAGE_EMULATOR_HOST");
    if (host != nullptr && *host != '\0') {
      options.endpoint = host;
      emulator = true;
    } else {
      options.endpoint = "https://storage.googleapis.com";
    }
  }
  if (options.endpoint.find("://") == std::string::npos) {
    options.endpoint = "http://" + options.endpoint;
  }
  while (options.endpoint.ends_with('/')) options.endpoint.pop_back();
  // Plain http is an emulator or a test server; Google's endpoint is https and needs a token.
  if (options.endpoint.starts_with("http://")) emulator = true;
  // A provider given for the emulator is still used (a local proxy may want a token).
  if (!emulator && !options.token_provider) {
    auto adc = gcp::MakeDefaultAccessTokenProvider();
    if (!adc.ok()) {
      return absl::Status(
          adc.status().code(),
          absl::StrCat("GCS uploader: no token_provider given and no default credentials for ",
                       options.endpoint,
                       " (set STORAGE_EMULATOR_HOST for the emulator): ", adc.status().message()));
    }
    options.token_provider = *std::move(adc);
  }
  if (options.chunk_size == 0 || options.chunk_size % kChunkQuantum != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("GCS uploader: chunk_size must be a positive multiple of 262144, got ",
                     options.chunk_size));
  }
  if (options.max_attempts < 1) {
    return absl::InvalidArgumentError("GCS uploader: max_attempts must be >= 1");
  }
  if (auto b = messagepipeline::ExponentialBackoff::Create(Backoff(options)); !b.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("GCS uploader: initial_backoff/max_backoff: ", b.status().message()));
  }
  if (!options.http) options.http = MakeCurlHttpClient();
  return std::unique_ptr<GcsBatchUploader>(new GcsBatchUploader(std::move(options)));
}

absl::Status GcsBatchUploader::Authorize(HttpRequest& request) {
  if (!options_.token_provider) return absl::OkStatus();  // the emulator
  auto token = options_.token_provider->Token();
  if (!token.ok()) return token.status();
  request.headers["Authorization"] = "Bearer " + *token;
  return absl::OkStatus();
}

absl::StatusOr<HttpResponse> GcsBatchUploader::SendWithRetry(HttpRequest request, bool is_create) {
  auto backoff =
      messagepipeline::ExponentialBackoff::Create(Backoff(options_));  // validated in Create
  absl::Status last;
  for (int attempt = 1; attempt <= options_.max_attempts; ++attempt) {
    if (attempt > 1) std::this_thread::sleep_for(backoff->Next());  // a retry backoff
    if (auto s = Authorize(request); !s.ok()) return s;
    request.timeout = options_.request_timeout;
    auto resp = options_.http->Send(request);
    if (!resp.ok()) {
      last = resp.status();
      continue;
    }
    // Our names are unique per upload, so on a retry "already exists" is our earlier attempt.
    if (is_create && resp->status == 412 && attempt > 1) return resp;
    if (!Retryable(resp->status)) return resp;
    last = HttpError(request, *resp);
  }
  return absl::UnavailableError(
      absl::StrCat("GCS: gave up after ", options_.max_attempts, " attempts: ", last.message()));
}

absl::StatusOr<std::string> GcsBatchUploader::Upload(const ObjectGroup& group) {
  auto object = PrepareObject(group, options_.prefix, options_.gzip);
  if (!object.ok()) return object.status();
  const std::string& name = object->name;
  absl::Status s = object->gzipped.size() >= options_.resumable_threshold
                       ? ResumableUpload(name, object->gzipped)
                       : SimpleUpload(name, object->gzipped);
  if (!s.ok()) return s;
  return name;
}

absl::Status GcsBatchUploader::SimpleUpload(const std::string& name, std::string_view data) {
  HttpRequest req{
      .method = "POST",
      .url = absl::StrCat(options_.endpoint, "/upload/storage/v1/b/", UrlEncode(options_.bucket),
                          "/o?uploadType=media&name=", UrlEncode(name), "&ifGenerationMatch=0"),
      .headers = {{"Content-Type", "application/gzip"}},
      .body = data};
  auto resp = SendWithRetry(req, /*is_create=*/true);
  if (!resp.ok()) return resp.status();
  if (resp->status == 200 || resp->status == 201 || resp->status == 412) return absl::OkStatus();
  return HttpError(req, *resp);
}

absl::Status GcsBatchUploader::ResumableUpload(const std::string& name, std::string_view data) {
  HttpRequest start{
      .method = "POST",
      .url = absl::StrCat(options_.endpoint, "/upload/storage/v1/b/", UrlEncode(options_.bucket),
                          "/o?uploadType=resumable&name=", UrlEncode(name), "&ifGenerationMatch=0"),
      .headers = {{"Content-Type", "application/json; charset=UTF-8"},
                  {"X-Upload-Content-Type", "application/gzip"},
                  {"X-Upload-Content-Length", std::to_string(data.size())}},
      .body = "{}"};
  auto session = SendWithRetry(start, /*is_create=*/true);
  if (!session.ok()) return session.status();
  if (session->status != 200 && session->status != 201) return HttpError(start, *session);
  auto loc = session->headers.find("location");
  if (loc == session->headers.end()) {
    return absl::InternalError("GCS resumable upload: no Location header in the session reply");
  }
  const std::string url = loc->second;
  const std::size_t total = data.size();
  std::size_t offset = 0;
  int failures = 0;
  while (true) {
    const std::size_t n = std::min(options_.chunk_size, total - offset);
    const bool last = offset + n == total;
    // An explicit type: libcurl would otherwise label the bytes as a urlencoded form.
    HttpRequest put{.method = "PUT",
                    .url = url,
                    .headers = {{"Content-Type", "application/gzip"}},
                    .body = data.substr(offset, n)};
    put.headers["Content-Range"] =
        n == 0 ? absl::StrCat("bytes */", total)
               : absl::StrCat("bytes ", offset, "-", offset + n - 1, "/",
                              last ? std::to_string(total) : std::string("*"));
    auto resp = SendWithRetry(put, /*is_create=*/false);
    if (resp.ok() && (resp->status == 200 || resp->status == 201)) return absl::OkStatus();
    if (resp.ok() && resp->status == 308) {
      offset = CommittedBytes(*resp);  // the server says what it kept
      if (offset > total) return absl::InternalError("GCS: server committed more than sent");
      continue;
    }
    if (++failures >= options_.max_attempts) {
      return resp.ok() ? HttpError(put, *resp, /*session=*/true) : resp.status();
    }
    // Ask the session where it stands, then resume from there.
    HttpRequest query{.method = "PUT", .url = url};
    query.headers["Content-Range"] = absl::StrCat("bytes */", total);
    auto status = SendWithRetry(query, /*is_create=*/false);
    if (!status.ok()) return status.status();
    if (status->status == 200 || status->status == 201) return absl::OkStatus();
    if (status->status != 308) return HttpError(query, *status, /*session=*/true);
    offset = CommittedBytes(*status);
  }
}

}  // namespace dataflow::icestore

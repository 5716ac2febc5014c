#include "dataflow/gcp/access_token.h"

#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>

#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <mutex>

#include "dataflow/messagepipeline/logging.h"
#include "token_source.h"

// The cache in front of a token source and the lookup order; the sources, the credentials
// file reader and the HTTP exchanges are listed in token_source.h.
namespace dataflow::gcp {
namespace {

using Clock = std::function<std::chrono::system_clock::time_point()>;
using internal::CurlSend;
using internal::FetchedToken;
using internal::TokenSource;

constexpr char kDefaultMetadataHost[] = "metadata.google.internal";

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

class StaticProvider : public AccessTokenProvider {
 public:
  explicit StaticProvider(std::string token) : token_(std::move(token)) {}
  absl::StatusOr<std::string> Token() override { return token_; }

 private:
  std::string token_;
};

class CachingProvider : public AccessTokenProvider {
 public:
  CachingProvider(std::unique_ptr<TokenSource> source, Clock clock, std::chrono::seconds margin)
      : source_(std::move(source)), clock_(std::move(clock)), margin_(margin) {}

  absl::StatusOr<std::string> Token() override {
    std::unique_lock lock(mu_);
    const std::uint64_t seen = completed_;
    while (true) {
      const auto now = clock_();
      if (!token_.empty() && now < refresh_at_) return token_;
      if (!refreshing_) break;
      // Someone else is refreshing; a token that has not expired yet is still good to send.
      if (!token_.empty() && now < expires_at_) return token_;
      cv_.wait(lock, [&] { return !refreshing_; });
      // Share the refresh we waited for, failure included: no stampede on a failing endpoint.
      if (completed_ != seen && !last_error_.ok()) return last_error_;
    }
    refreshing_ = true;
    lock.unlock();
    const auto started = clock_();
    absl::StatusOr<FetchedToken> fetched;
    try {
      fetched = source_->Fetch(started);
    } catch (const std::exception& e) {
      fetched = absl::InternalError(absl::StrCat("fetching an access token threw: ", e.what()));
    }
    lock.lock();
    refreshing_ = false;
    ++completed_;
    cv_.notify_all();
    if (!fetched.ok()) {
      last_error_ = fetched.status();
      return last_error_;
    }
    last_error_ = absl::OkStatus();
    token_ = std::move(fetched->token);
    // Timed from the request's start, so the cache never outlives the real token; a short-
    // lived token is refreshed at half its life rather than on every call.
    const auto lifetime = fetched->lifetime;
    expires_at_ = started + lifetime;
    refresh_at_ = expires_at_ - std::min<std::chrono::seconds>(margin_, lifetime / 2);
    return token_;
  }

 private:
  const std::unique_ptr<TokenSource> source_;
  const Clock clock_;
  const std::chrono::seconds margin_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool refreshing_ = false;
  std::uint64_t completed_ = 0;
  absl::Status last_error_;
  std::string token_;
  std::chrono::system_clock::time_point refresh_at_, expires_at_;
};

// Google's clients treat a host as a metadata server only if it answers with this header, so
// a captive portal or proxy answering every URL is not mistaken for one.
absl::Status ProbeMetadataServer(const std::string& base, const TokenHttpFunction& http,
                                 std::chrono::milliseconds timeout) {
  TokenHttpRequest req{.method = "GET",
                       .url = base + "/",
                       .headers = {{"Metadata-Flavor", "Google"}},
                       .timeout = timeout};
  absl::StatusOr<TokenHttpResponse> resp;
  try {
    resp = http(req);
  } catch (const std::exception& e) {
    return absl::UnavailableError(e.what());
  }
  if (!resp.ok()) return resp.status();
  auto flavor = resp->headers.find("metadata-flavor");
  if (flavor == resp->headers.end() || flavor->second != "Google") {
    return absl::UnavailableError(absl::StrCat("GET ", req.url, " answered HTTP ", resp->status,
                                               " without \"Metadata-Flavor: Google\""));
  }
  return absl::OkStatus();
}

}  // namespace

std::shared_ptr<AccessTokenProvider> MakeStaticAccessTokenProvider(std::string token) {
  return std::make_shared<StaticProvider>(std::move(token));
}

absl::StatusOr<std::shared_ptr<AccessTokenProvider>> MakeDefaultAccessTokenProvider(
    AccessTokenOptions options) {
  if (!options.clock) options.clock = [] { return std::chrono::system_clock::now(); };
  if (!options.http) options.http = &CurlSend;
  if (options.refresh_margin < std::chrono::seconds::zero()) {
    return absl::InvalidArgumentError("access token: refresh_margin must not be negative");
  }
  auto wrap = [&](std::unique_ptr<TokenSource> source)
      -> absl::StatusOr<std::shared_ptr<AccessTokenProvider>> {
    Log()->debug("gcp credentials source=\"{}\"", source->Describe());
    return std::make_shared<CachingProvider>(std::move(source), options.clock,
                                             options.refresh_margin);
  };
  auto from_file =
      [&](const std::string& file) -> absl::StatusOr<std::shared_ptr<AccessTokenProvider>> {
    auto source = internal::LoadCredentialsFile(file, options);
    if (!source.ok()) return source.status();
    return wrap(*std::move(source));
  };

  if (!options.credentials_file.empty()) return from_file(options.credentials_file);

  std::vector<std::string> tried;
  // 1. An explicitly named file must work: falling through to other credentials would run
  //    the program as someone else than the operator intended.
  if (const std::string env = Env("GOOGLE_APPLICATION_CREDENTIALS"); !env.empty()) {
    if (!std::filesystem::exists(env)) {
      return absl::NotFoundError(
          absl::StrCat("GOOGLE_APPLICATION_CREDENTIALS names ", env, ", which does not exist"));
    }
    return from_file(env);
  }
  tried.push_back("GOOGLE_APPLICATION_CREDENTIALS is not set");

  // 2. gcloud's file from `gcloud auth application-default login`.
  std::string gcloud_dir = Env("CLOUDSDK_CONFIG");
  if (gcloud_dir.empty() && !Env("HOME").empty()) gcloud_dir = Env("HOME") + "/.config/gcloud";
  if (gcloud_dir.empty()) {
    tried.push_back("no gcloud credentials file (neither CLOUDSDK_CONFIG nor HOME is set)");
  } else {
    const std::string well_known = gcloud_dir + "/application_default_credentials.json";
    if (std::filesystem::exists(well_known)) return from_file(well_known);
    tried.push_back(absl::StrCat(well_known, " does not exist"));
  }

  // 3. The metadata server of GCE, GKE, Cloud Run and friends.
  std::string host = options.metadata_host;
  if (host.empty()) host = Env("GCE_METADATA_HOST");
  if (host.empty()) host = kDefaultMetadataHost;
  const std::string base = host.find("://") == std::string::npos ? "http://" + host : host;
  const absl::Status probe =
      ProbeMetadataServer(base, options.http, options.metadata_probe_timeout);
  if (probe.ok()) {
    return wrap(internal::NewMetadataSource(base, options.http, options.request_timeout));
  }
  tried.push_back(absl::StrCat("no metadata server at ", host, " (", probe.message(), ")"));

  return absl::FailedPreconditionError(absl::StrCat(
      "no Google credentials found: ", absl::StrJoin(tried, "; "),
      ". Set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, run `gcloud auth "
      "application-default login`, or run on Google Cloud"));
}

}  // namespace dataflow::gcp

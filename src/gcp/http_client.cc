#include "dataflow/gcp/http_client.h"

#include <absl/strings/ascii.h>
#include <absl/strings/str_cat.h>
#include <curl/curl.h>

#include <memory>
#include <new>
#include <string>
#include <string_view>

namespace dataflow::gcp {
namespace {

class CurlHttpClient : public HttpClient {
 public:
  CurlHttpClient() {
    static const bool initialised = [] { return curl_global_init(CURL_GLOBAL_DEFAULT) == 0; }();
    (void)initialised;
  }

  absl::StatusOr<HttpResponse> Send(const HttpRequest& request) override {
    std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), &curl_easy_cleanup);
    if (!curl) return absl::ResourceExhaustedError("curl_easy_init failed");
    HttpResponse response;
    curl_slist* headers = nullptr;
    for (const auto& [k, v] : request.headers) {
      headers = curl_slist_append(headers, absl::StrCat(k, ": ", v).c_str());
    }
    // No "Expect: 100-continue" round trip for uploads.
    headers = curl_slist_append(headers, "Expect:");
    CURL* c = curl.get();
    curl_easy_setopt(c, CURLOPT_URL, request.url.c_str());
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(request.timeout.count()));
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(request.connect_timeout.count()));
    if (request.method != "GET") {
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, request.body.data());
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                       static_cast<curl_off_t>(request.body.size()));
    }
    curl_easy_setopt(
        c, CURLOPT_WRITEFUNCTION, +[](char* p, size_t s, size_t n, void* out) {
          static_cast<std::string*>(out)->append(p, s * n);
          return s * n;
        });
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &response.body);
    curl_easy_setopt(
        c, CURLOPT_HEADERFUNCTION, +[](char* p, size_t s, size_t n, void* out) {
          std::string_view line(p, s * n);
          if (auto colon = line.find(':'); colon != std::string_view::npos) {
            std::string name(line.substr(0, colon));
            absl::AsciiStrToLower(&name);
            std::string value(line.substr(colon + 1));
            absl::StripAsciiWhitespace(&value);
            (*static_cast<std::map<std::string, std::string>*>(out))[name] = value;
          }
          return s * n;
        });
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &response.headers);
    const CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(headers);
    if (rc != CURLE_OK) {
      return absl::UnavailableError(
          absl::StrCat(request.method, " ", request.url, ": ", curl_easy_strerror(rc)));
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &response.status);
    return response;
  }
};

}  // namespace

std::shared_ptr<HttpClient> MakeCurlHttpClient() { return std::make_shared<CurlHttpClient>(); }

std::string UrlEncode(std::string_view s) {
  // libcurl >= 7.82 ignores the handle; it keeps A-Z a-z 0-9 - . _ ~ as they are.
  std::unique_ptr<char, decltype(&curl_free)> escaped(
      curl_easy_escape(nullptr, s.data(), static_cast<int>(s.size())), &curl_free);
  if (!escaped) throw std::bad_alloc();
  return std::string(escaped.get());
}

}  // namespace dataflow::gcp

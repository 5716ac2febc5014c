// A small HTTP transport for Google's REST endpoints (Cloud Storage, OAuth tokens), behind an
// interface so tests and users can plug in another one. The libcurl implementation is
// thread-safe (one easy handle per request).
#pragma once

#include <absl/status/statusor.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <string_view>

namespace dataflow::gcp {

struct HttpRequest {
  std::string method;
  std::string url;
  std::map<std::string, std::string> headers;
  std::string_view body;
  std::chrono::milliseconds timeout{std::chrono::seconds(60)};
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(10)};
};
struct HttpResponse {
  long status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};
class HttpClient {
 public:
  virtual ~HttpClient() = default;
  // A transport failure is Unavailable; any HTTP status is a response.
  virtual absl::StatusOr<HttpResponse> Send(const HttpRequest& request) = 0;
};
std::shared_ptr<HttpClient> MakeCurlHttpClient();

// Percent-encodes everything but RFC 3986's unreserved characters (for query values, form
// fields and object names in paths).
std::string UrlEncode(std::string_view s);

}  // namespace dataflow::gcp

// libFuzzer target for the enrichment key read from device payloads (JsonPath::FindKeyIn):
// it reads the key in one pass without building the document, so whatever the payload, it
// must give what the parsed document gives (ParseJsonBounded, then JsonPath::Find, then a
// non-empty string), under the default limits and tight ones. Aborts on any difference.
//
// Input: the path text, a newline, then the payload.
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "dataflow/enrichment/keys.h"
#include "dataflow/messagepipeline/json_limits.h"

namespace {

namespace mp = dataflow::messagepipeline;
using dataflow::enrichment::JsonPath;

std::optional<std::string> KeyFromDocument(const JsonPath& path, std::string_view text,
                                           const mp::JsonLimits& limits) {
  auto doc = mp::ParseJsonBounded(text, limits);
  if (!doc.ok()) return std::nullopt;
  const nlohmann::json* v = path.Find(*doc);
  if (v == nullptr || !v->is_string() || v->get_ref<const std::string&>().empty()) {
    return std::nullopt;
  }
  return v->get<std::string>();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t newline = input.find('\n');
  if (newline == std::string_view::npos) return 0;
  auto path = JsonPath::Parse(input.substr(0, newline));
  if (!path.ok()) return 0;
  const std::string_view payload = input.substr(newline + 1);
  for (const mp::JsonLimits limits : {mp::JsonLimits{}, mp::JsonLimits{.max_depth = 3},
                                      mp::JsonLimits{.max_depth = 64, .max_bytes = 64}}) {
    if (path->FindKeyIn(payload, limits) != KeyFromDocument(*path, payload, limits)) std::abort();
  }
  return 0;
}

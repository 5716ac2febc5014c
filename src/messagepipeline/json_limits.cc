#include "dataflow/messagepipeline/json_limits.h"

#include <absl/strings/str_cat.h>

#include <exception>
#include <string>

namespace dataflow::messagepipeline {
namespace {

using Json = nlohmann::json;

// nlohmann's own DOM builder behind a depth gate: returning false from a SAX event stops the
// (iterative) parser at once, so nothing deeper than the limit is ever allocated. Being a
// template argument rather than a virtual SAX interface, it parses as fast as json::parse.
class BoundedDomSax {
 public:
  BoundedDomSax(Json& result, int max_depth)
      : dom_(result, /*allow_exceptions=*/false), max_depth_(max_depth) {}

  bool null() { return dom_.null(); }
  bool boolean(bool v) { return dom_.boolean(v); }
  bool number_integer(Json::number_integer_t v) { return dom_.number_integer(v); }
  bool number_unsigned(Json::number_unsigned_t v) { return dom_.number_unsigned(v); }
  bool number_float(Json::number_float_t v, const Json::string_t& s) {
    return dom_.number_float(v, s);
  }
  bool string(Json::string_t& v) { return dom_.string(v); }
  bool binary(Json::binary_t& v) { return dom_.binary(v); }
  bool start_object(std::size_t n) { return Enter() && dom_.start_object(n); }
  bool key(Json::string_t& v) { return dom_.key(v); }
  bool end_object() {
    --depth_;
    return dom_.end_object();
  }
  bool start_array(std::size_t n) { return Enter() && dom_.start_array(n); }
  bool end_array() {
    --depth_;
    return dom_.end_array();
  }
  template <typename Exception>
  bool parse_error(std::size_t position, const std::string& last_token, const Exception& ex) {
    error_position_ = position;
    return dom_.parse_error(position, last_token, ex);
  }

  [[nodiscard]] bool too_deep() const { return too_deep_; }
  [[nodiscard]] std::size_t error_position() const { return error_position_; }

 private:
  bool Enter() {
    if (++depth_ <= max_depth_) return true;
    too_deep_ = true;
    return false;
  }

  nlohmann::detail::json_sax_dom_parser<Json> dom_;
  const int max_depth_;
  int depth_ = 0;
  bool too_deep_ = false;
  std::size_t error_position_ = 0;
};

}  // namespace

absl::StatusOr<nlohmann::json> ParseJsonBounded(std::string_view text, const JsonLimits& limits) {
  if (text.size() > limits.max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("JSON document of ", text.size(),
                                                   " bytes exceeds the limit of ", limits.max_bytes,
                                                   " bytes"));
  }
  Json result;
  BoundedDomSax sax(result, limits.max_depth);
  bool ok = false;
  try {
    ok = Json::sax_parse(text.data(), text.data() + text.size(), &sax);
  } catch (const std::exception& e) {  // only allocation failures can get here
    return absl::ResourceExhaustedError(absl::StrCat("JSON: ", e.what()));
  }
  if (sax.too_deep()) {
    return absl::InvalidArgumentError(
        absl::StrCat("JSON nested deeper than the limit of ", limits.max_depth, " levels"));
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("not valid JSON (error at byte ", sax.error_position(), ")"));
  }
  return result;
}

}  // namespace dataflow::messagepipeline

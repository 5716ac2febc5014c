#include "config_reader.h"

namespace dataflow::app::yaml_config {

// ${NAME} and ${NAME:-default}; an unset variable without a default is an error. The values
// substituted go to `withheld`: an error must never echo what came from the environment.
std::string Expand(const std::string& value, const EnvLookup& lookup, const std::string& path,
                   Errors& errors, std::vector<std::string>& withheld) {
  std::string out;
  std::size_t pos = 0;
  while (true) {
    const std::size_t start = value.find("${", pos);
    if (start == std::string::npos) break;
    const std::size_t end = value.find('}', start);
    if (end == std::string::npos) {
      // Not the value: it may be a password.
      errors.push_back({path, "unterminated ${ (no closing })"});
      return value;
    }
    out.append(value, pos, start - pos);
    std::string expr = value.substr(start + 2, end - start - 2);
    std::optional<std::string> fallback;
    if (auto dash = expr.find(":-"); dash != std::string::npos) {
      fallback = expr.substr(dash + 2);
      expr.resize(dash);
    }
    std::optional<std::string> got = lookup ? lookup(expr) : std::nullopt;
    if (got && !got->empty()) {
      withheld.push_back(*got);
      out += *got;
    } else if (fallback) {
      out += *fallback;
    } else {
      errors.push_back({path, "environment variable " + expr + " is not set"});
    }
    pos = end + 1;
  }
  out.append(value, pos);
  return out;
}

// user:password@ in a URL or address: the credentials would be printed wherever the address
// is (validate, logs, errors), so they are refused; `instead` says where they go.
void RejectCredentials(Reader& r, const std::string& value, const std::string& path,
                       const std::string& instead) {
  std::size_t start = value.find("://");
  start = start == std::string::npos ? 0 : start + 3;
  const std::size_t end = value.find_first_of("/?#", start);
  if (value.substr(start, end == std::string::npos ? std::string::npos : end - start).find('@') ==
      std::string::npos) {
    return;
  }
  r.Error(path,
          "contains credentials (user:password@), which would be printed wherever the "
          "address is: " +
              instead);
}

}  // namespace dataflow::app::yaml_config

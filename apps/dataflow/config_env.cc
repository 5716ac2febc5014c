#include <absl/strings/ascii.h>
#include <absl/strings/str_join.h>
#include <absl/strings/str_split.h>
#include <yaml-cpp/yaml.h>

#include <set>
#include <string>
#include <vector>

#include "config_keys.h"
#include "config_parts.h"
#include "config_reader.h"

extern char** environ;  // NOLINT: POSIX

namespace dataflow::app {
namespace yaml_config {
namespace {

std::string Lower(std::string s) { return absl::AsciiStrToLower(s); }
std::string NameKey(std::string s) {
  s = Lower(std::move(s));
  for (char& ch : s) {
    if (ch == '-') ch = '_';
  }
  return s;
}

}  // namespace

// DATAFLOW__A__B__C=value sets A.B.C; in a sequence a segment picks the element whose `name`
// matches (or, when it is a number, the element at that index).
void ApplyOverride(YAML::Node root, const std::string& variable, const std::string& value,
                   Errors& errors) {
  const std::vector<std::string> segments =
      absl::StrSplit(variable.substr(std::string("DATAFLOW__").size()), "__");
  YAML::Node node = root;
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const std::string seg = Lower(segments[i]);
    if (seg.empty()) {
      errors.push_back({variable, "empty path segment"});
      return;
    }
    const bool last = i + 1 == segments.size();
    if (node.IsSequence()) {
      YAML::Node found;
      for (std::size_t k = 0; k < node.size(); ++k) {
        if ((node[k].IsMap() && node[k]["name"] && NameKey(node[k]["name"].Scalar()) == seg) ||
            std::to_string(k) == seg) {
          found.reset(node[k]);
          break;
        }
      }
      if (!found.IsDefined() || found.IsNull()) {
        errors.push_back({variable, "no element named \"" + seg + "\" to override"});
        return;
      }
      if (last) {
        errors.push_back({variable, "cannot replace a whole list element"});
        return;
      }
      node.reset(found);
      continue;
    }
    if (!node.IsMap() && !node.IsNull()) {
      errors.push_back({variable, "\"" + seg + "\" is inside a single value"});
      return;
    }
    if (last) {
      node[seg] = value;
      node[seg].SetTag(kFromEnvironmentTag);  // never echoed in errors
      return;
    }
    YAML::Node child = node[seg];
    if (!child.IsDefined() || child.IsNull()) {
      // A path the file does not have yet: create it; unknown keys are reported later.
      node[seg] = YAML::Node(YAML::NodeType::Map);
      child = node[seg];
    }
    node.reset(child);
  }
}

}  // namespace yaml_config

std::vector<std::pair<std::string, std::string>> EnvironmentVariables() {
  std::vector<std::pair<std::string, std::string>> vars;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string entry = *e;
    const auto eq = entry.find('=');
    if (eq != std::string::npos) vars.emplace_back(entry.substr(0, eq), entry.substr(eq + 1));
  }
  return vars;
}

}  // namespace dataflow::app

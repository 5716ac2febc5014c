// Reading the program's YAML config: typed values with their paths in errors, ${VAR}
// expansion, and secrets withheld from every message (config.h says what is read).
#pragma once

#include <absl/strings/str_join.h>
#include <absl/time/time.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <initializer_list>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "config.h"

namespace dataflow::app::yaml_config {

using Errors = std::vector<ConfigError>;

inline std::string Join(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}
inline std::string Index(const std::string& path, std::size_t i) {
  return path + "[" + std::to_string(i) + "]";
}

// Keys whose values are secrets: never echoed, wherever they appear.
inline bool IsSecretKey(std::string_view key) {
  return key == "password" || key.ends_with("_password") || key.ends_with("token") ||
         key.ends_with("secret");
}

// Tags the values DATAFLOW__ variables put into the tree: they come from the environment.
inline constexpr char kFromEnvironmentTag[] = "!dataflow-environment";

// What errors say instead of a withheld value.
inline constexpr char kWithheld[] = "(value withheld: a secret or from the environment)";

// ${NAME} and ${NAME:-default}; an unset variable without a default is an error. The values
// substituted go to `withheld`: an error must never echo what came from the environment.
std::string Expand(const std::string& value, const EnvLookup& lookup, const std::string& path,
                   Errors& errors, std::vector<std::string>& withheld);

// Reads typed values out of a YAML tree, recording errors with their paths.
class Reader {
 public:
  Reader(Errors& errors, EnvLookup lookup, std::vector<std::string>& withheld)
      : errors_(errors), lookup_(std::move(lookup)), withheld_(withheld) {}

  // `value` quoted for an error message, or a placeholder when it is (or contains) a secret
  // or something from the environment.
  [[nodiscard]] std::string Quote(const std::string& value, bool quotes = true) const {
    for (const std::string& w : withheld_) {
      // A short one only when it is the whole value: "1" must not withhold every number.
      if (w.empty() || (w.size() < 4 ? value != w : value.find(w) == std::string::npos)) continue;
      return kWithheld;
    }
    return quotes ? "\"" + value + "\"" : value;
  }

  void Error(const std::string& path, const std::string& message) {
    errors_.push_back({path, message});
  }

  // True when `node` is a map; reports keys outside `allowed`.
  bool Map(const YAML::Node& node, const std::string& path,
           std::initializer_list<const char*> allowed) {
    return Map(node, path, std::vector<std::string>(allowed.begin(), allowed.end()));
  }
  bool Map(const YAML::Node& node, const std::string& path,
           const std::vector<std::string>& allowed) {
    if (!node.IsMap()) {
      Error(path, "expected a mapping");
      return false;
    }
    const std::set<std::string> known(allowed.begin(), allowed.end());
    for (const auto& kv : node) {
      const auto key = kv.first.as<std::string>();
      if (!known.contains(key)) {
        Error(Join(path, key),
              "unknown key (expected one of: " + absl::StrJoin(allowed, ", ") + ")");
      }
    }
    return true;
  }

  std::optional<std::string> Scalar(const YAML::Node& parent, const char* key,
                                    const std::string& path, bool required) {
    const YAML::Node node = parent[key];
    const std::string at = Join(path, key);
    if (!node || node.IsNull()) {
      if (required) Error(at, "missing");
      return std::nullopt;
    }
    if (!node.IsScalar()) {
      Error(at, "expected a single value");
      return std::nullopt;
    }
    std::string value = Expand(node.Scalar(), lookup_, at, errors_, withheld_);
    if (IsSecretKey(key)) {
      withheld_.push_back(node.Scalar());
      withheld_.push_back(value);
    } else if (node.Tag() == kFromEnvironmentTag) {
      withheld_.push_back(value);
    }
    return value;
  }

  void String(const YAML::Node& parent, const char* key, const std::string& path, std::string& out,
              bool required = false) {
    auto v = Scalar(parent, key, path, required);
    if (!v) return;
    if (required && v->empty()) {
      Error(Join(path, key), "must not be empty");
      return;
    }
    out = *v;
  }

  template <typename Int>
  void Integer(const YAML::Node& parent, const char* key, const std::string& path, Int& out,
               long long min, long long max) {
    auto v = Scalar(parent, key, path, false);
    if (!v) return;
    char* end = nullptr;
    errno = 0;
    const long long n = std::strtoll(v->c_str(), &end, 10);
    if (v->empty() || *end != '\0' || errno != 0) {
      Error(Join(path, key), "expected an integer, got " + Quote(*v));
    } else if (n < min || n > max) {
      Error(Join(path, key), "must be between " + std::to_string(min) + " and " +
                                 std::to_string(max) + ", got " + Quote(*v, false));
    } else {
      out = static_cast<Int>(n);
    }
  }

  void Bool(const YAML::Node& parent, const char* key, const std::string& path, bool& out) {
    auto v = Scalar(parent, key, path, false);
    if (!v) return;
    if (const std::optional<bool> parsed = messagepipeline::ParseBool(*v)) {
      out = *parsed;
    } else {
      Error(Join(path, key), "expected true or false, got " + Quote(*v));
    }
  }

  // "500ms", "30s", "1m30s" (absl::ParseDuration); a bare number is seconds.
  template <typename Duration>
  void Dur(const YAML::Node& parent, const char* key, const std::string& path, Duration& out) {
    auto v = Scalar(parent, key, path, false);
    if (!v) return;
    std::string text = *v;
    if (!text.empty() && text.find_first_not_of("0123456789") == std::string::npos) text += "s";
    absl::Duration d;
    if (!absl::ParseDuration(text, &d) || d < absl::ZeroDuration()) {
      Error(Join(path, key), "expected a duration like 500ms, 30s or 1m, got " + Quote(*v));
      return;
    }
    out = std::chrono::duration_cast<Duration>(absl::ToChronoNanoseconds(d));
  }

  void Format(const YAML::Node& parent, const char* key, const std::string& path,
              messagepipeline::InputFormat& out) {
    auto v = Scalar(parent, key, path, false);
    if (!v) return;
    auto f = messagepipeline::ParseInputFormat(*v);
    if (!f.ok()) {
      Error(Join(path, key), "expected auto, envelope or raw, got " + Quote(*v));
    } else {
      out = *f;
    }
  }

  void Policy(const YAML::Node& parent, const char* key, const std::string& path,
              enrichment::FailurePolicy& out) {
    auto v = Scalar(parent, key, path, false);
    if (!v) return;
    auto p = enrichment::ParseFailurePolicy(*v);
    if (!p.ok()) {
      Error(Join(path, key), "unknown enrichment failure policy " + Quote(*v) +
                                 "; use skip, pass_unenriched or nack");
    } else {
      out = *p;
    }
  }

 private:
  Errors& errors_;
  EnvLookup lookup_;
  std::vector<std::string>& withheld_;
};

// user:password@ in a URL or address: the credentials would be printed wherever the address
// is (validate, logs, errors), so they are refused; `instead` says where they go.
void RejectCredentials(Reader& r, const std::string& value, const std::string& path,
                       const std::string& instead);

}  // namespace dataflow::app::yaml_config

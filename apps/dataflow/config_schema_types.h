// The JSON Schema of each kind of scalar the config reader reads (config_reader.h), for
// `dataflow schema` (config_schema.cc) and the key tables (config_table.h).
#pragma once

#include <absl/time/time.h>

#include <cctype>
#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace dataflow::app::schema_types {

using Json = nlohmann::json;

// How the reader reads each scalar decides its schema:
//   - text (Reader::String): any YAML scalar, so 123 or true is text too;
//   - integers, booleans, durations, enums read through Reader::Scalar: the typed value, or a
//     string holding a ${VAR} reference (validate checks the value after substitution);
//   - values the reader takes verbatim (sink kinds, group_by, in-process names, columns): no
//     ${VAR}, which the reader would not expand there.
inline constexpr char kEnvRef[] = "#/definitions/env_reference";

inline Json Ref(const char* target) { return {{"$ref", target}}; }

inline Json With(Json schema, const std::string& description, Json default_value = nullptr) {
  if (!description.empty()) schema["description"] = description;
  if (!default_value.is_null()) schema["default"] = std::move(default_value);
  return schema;
}

// "[Pp][Ii][Pp][Ee]…": ECMA-262 patterns in JSON Schema have no case-insensitive flag.
inline std::string AnyCase(const std::string& word) {
  std::string out;
  for (char c : word) {
    if (std::isalpha(static_cast<unsigned char>(c))) {
      out += '[';
      out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      out += ']';
    } else {
      out += c;
    }
  }
  return out;
}

// Durations as strings, in the reader's syntax (what absl::ParseDuration reads back).
inline std::string DurationText(std::chrono::nanoseconds d) {
  return absl::FormatDuration(absl::FromChrono(d));
}

inline Json Text(const std::string& description, Json default_value = nullptr,
                 bool required = false) {
  Json s = {{"type", Json::array({"string", "number", "boolean"})}};
  if (required) s["minLength"] = 1;  // the reader's "must not be empty"
  return With(std::move(s), description, std::move(default_value));
}

inline Json Integer(const std::string& description, long long min, long long max,
                    Json default_value = nullptr) {
  Json typed = {{"type", "integer"}, {"minimum", min}, {"maximum", max}};
  return With(
      {{"anyOf", Json::array({std::move(typed), Ref("#/definitions/integer_text"), Ref(kEnvRef)})}},
      description, std::move(default_value));
}

inline Json Bool(const std::string& description, bool default_value) {
  return With({{"anyOf", Json::array({{{"type", "boolean"}},
                                      {{"enum", Json::array({0, 1})}},
                                      Ref("#/definitions/boolean_text"),
                                      Ref(kEnvRef)})}},
              description, default_value);
}

template <typename Rep, typename Period>
Json Duration(const std::string& description, std::chrono::duration<Rep, Period> default_value) {
  return With({{"anyOf", Json::array({{{"type", "integer"}, {"minimum", 0}},
                                      Ref("#/definitions/duration"),
                                      Ref(kEnvRef)})}},
              description, DurationText(default_value));
}

// One of `values`; `any_case` when the reader compares case-insensitively, `env` when it
// expands ${VAR} first.
inline Json Enum(const std::string& description, const std::vector<std::string>& values,
                 Json default_value, bool any_case, bool env) {
  Json options = Json::array({{{"enum", values}}});
  if (any_case) {
    std::string pattern;
    for (const auto& v : values) pattern += (pattern.empty() ? "" : "|") + AnyCase(v);
    options.push_back({{"type", "string"}, {"pattern", "^(?:" + pattern + ")$"}});
  }
  if (env) options.push_back(Ref(kEnvRef));
  Json s = options.size() == 1 ? options[0] : Json{{"anyOf", std::move(options)}};
  return With(std::move(s), description, std::move(default_value));
}

}  // namespace dataflow::app::schema_types

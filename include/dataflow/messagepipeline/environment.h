// What config readers share: a lookup of environment variables (injectable, so tests do not
// touch the process environment) and the one spelling of booleans (true/false, yes/no, on/off,
// 1/0, any case) that YAML values and environment variables both accept.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace dataflow::messagepipeline {

using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;

// The process environment (getenv).
EnvLookup ProcessEnvironment();

// true/false, yes/no, on/off, 1/0 in any case; nullopt for anything else.
std::optional<bool> ParseBool(std::string_view text);

}  // namespace dataflow::messagepipeline

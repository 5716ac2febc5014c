// YAML trees as JSON values, for the parts of a config or test file that hold data (a row
// schema, payloads, expected outputs).
#pragma once

#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>

namespace dataflow::app {

// Plain scalars that read as JSON (true, null, 0.5) become those values; quoted ones stay
// strings.
nlohmann::json YamlToJson(const YAML::Node& node);

}  // namespace dataflow::app

// The pieces of ParseConfig (config.cc) beside the blocks (config_keys.h): the
// cross-service checks (config_checks.cc) and the DATAFLOW__ overrides (config_env.cc).
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

#include "config.h"
#include "config_reader.h"

namespace dataflow::app::yaml_config {

// Checks that wiring refers to things that exist: in-process names, unique service names.
void CheckWiring(const ProgramConfig& c, Errors& errors);
// Passwords that would cross the network in plaintext, and TLS without a certificate check.
void SecurityWarnings(const ProgramConfig& c, std::vector<ConfigError>& warnings);
// Replaces every withheld value still in `list` (the safety net behind Reader::Quote).
void Scrub(std::vector<ConfigError>& list, const std::vector<std::string>& withheld);

// DATAFLOW__A__B__C=value sets A.B.C in `root`.
void ApplyOverride(YAML::Node root, const std::string& variable, const std::string& value,
                   Errors& errors);

}  // namespace dataflow::app::yaml_config

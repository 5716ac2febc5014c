// The pieces of ParseConfig (config.cc), one file per concern: the service kinds' blocks
// (config_services.cc, config_enrichment.cc), the cross-service checks (config_checks.cc)
// and the DATAFLOW__ overrides (config_env.cc).
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

#include "config.h"
#include "config_reader.h"

namespace dataflow::app::yaml_config {

// `source:` (pubsub or in_process) and `sink:` (pubsub, in_process or a map) under `parent`.
void ReadSource(Reader& r, const YAML::Node& parent, const std::string& path, SourceConfig& out);
void ReadTopicSink(Reader& r, const YAML::Node& parent, const std::string& path,
                   TopicSinkConfig& out);

// A service kind's block.
void ReadSpec(Reader& r, const YAML::Node& node, const std::string& path, IngestionConfig& out);
void ReadSpec(Reader& r, const YAML::Node& node, const std::string& path, EnrichmentConfig& out);
void ReadSpec(Reader& r, const YAML::Node& node, const std::string& path, BigQueryConfig& out);
void ReadSpec(Reader& r, const YAML::Node& node, const std::string& path, IceStoreConfig& out);

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

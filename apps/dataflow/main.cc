// The dataflow program: runs dataflow's services. Subcommands:
//   dataflow run CONFIG.yaml        run the services a config describes until SIGINT/SIGTERM
//   dataflow validate CONFIG.yaml   check a config, print every error with its path
//   dataflow test FILE.test.yaml…   feed a test file's messages through its config, in process,
//                                   and check what comes out
//   dataflow schema                 print the config's JSON Schema (draft-07)
//   dataflow demo [--devices N] [--messages N] [--rate R] [--out DIR] [--mqtt-url URL] [--bench]
//   dataflow loadgen mqtt|pubsub …  simulated device readings at a rate and count
//   dataflow version           (or dataflow --version)
// Exit codes: 0 success, 1 a run that failed or did not stop cleanly, 2 bad usage or config.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>

#include "config.h"
#include "config_schema.h"
#include "dataflow/messagepipeline/log_format.h"
#include "dataflow/messagepipeline/logging.h"
#include "dataflow/version.h"
#include "demo.h"
#include "loadgen.h"
#include "runner.h"
#include "test_runner.h"

namespace {

// A line about the config on stderr: as it always was in the text format, a log line of
// that severity in the JSON format (so every line a JSON collector reads is JSON).
void ReportConfigLine(spdlog::level::level_enum severity, const std::string& text) {
  if (dataflow::CurrentLogFormat() == dataflow::LogFormat::kJson) {
    dataflow::Announce(severity, text);
  } else {
    std::fprintf(stderr, "%s\n", text.c_str());
  }
}

// Loads and checks a config; prints every error. nullopt if it is not valid.
std::optional<dataflow::app::ProgramConfig> LoadOrReport(const std::string& path) {
  auto loaded = dataflow::app::LoadConfigFile(path);
  for (const auto& e : loaded.errors) {
    ReportConfigLine(spdlog::level::err, path + ": " + e.ToString());
  }
  for (const auto& w : loaded.warnings) {
    ReportConfigLine(spdlog::level::warn, path + ": warning: " + w.ToString());
  }
  if (!loaded.ok()) {
    ReportConfigLine(spdlog::level::err,
                     path + ": " + std::to_string(loaded.errors.size()) + " error(s)");
    return std::nullopt;
  }
  return std::move(loaded.config);
}

}  // namespace

int main(int argc, char** argv) {
  // Before any thread exists, so every thread inherits the mask and `run` takes the
  // signals synchronously.
  dataflow::app::BlockStopSignals();
  CLI::App app{"dataflow: consume, transform, enrich and sink events with at-least-once delivery"};
  app.require_subcommand(1);
  // --version answers before the subcommand requirement is checked (CLI11 throws
  // CallForVersion while parsing).
  app.set_version_flag("--version", "dataflow " DATAFLOW_VERSION);
  std::string log_level = "warn";
  CLI::Option* log_level_opt =
      app.add_option("--log-level", log_level,
                     "trace|debug|info|warn|error|off (run: the config's log_level unless given)")
          ->capture_default_str();
  // Text unless asked: the format does not change with where stderr goes. Deployments that
  // need JSON (the container image, Kubernetes, Cloud Run) set DATAFLOW_LOG_FORMAT=json.
  std::string log_format = "text";
  app.add_option("--log-format", log_format,
                 "text|json: json is one object per line with Cloud Logging's severity, "
                 "message and time plus the line's fields")
      ->envname("DATAFLOW_LOG_FORMAT")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();

  dataflow::app::DemoOptions demo;
  CLI::App* demo_cmd = dataflow::app::AddDemoCommand(app, demo);
  dataflow::app::LoadgenOptions loadgen;
  CLI::App* loadgen_cmd = dataflow::app::AddLoadgenCommand(app, loadgen);

  std::string config_path;
  CLI::App* run_cmd = app.add_subcommand(
      "run",
      "Run the services described in a YAML config until SIGINT/SIGTERM, then stop them "
      "gracefully (docs/configuration.md; DATAFLOW__<PATH> variables override values)");
  run_cmd->add_option("config", config_path, "the config file")->required();
  std::string validate_path;
  CLI::App* validate_cmd =
      app.add_subcommand("validate", "Check a config and print every error with its path");
  validate_cmd->add_option("config", validate_path, "the config file")->required();

  std::vector<std::string> test_paths;
  CLI::App* test_cmd = app.add_subcommand(
      "test",
      "Run test files: each case's messages go through the config's services in this process "
      "(Pub/Sub, MQTT, caches and sinks replaced by in-process stand-ins) and the outputs are "
      "checked against the case's expectations (docs/configuration.md)");
  test_cmd->add_option("files", test_paths, "FILE.test.yaml files")->required();

  CLI::App* schema_cmd = app.add_subcommand(
      "schema", "Print the config file's JSON Schema (draft-07), for editors and linters");

  CLI::App* version_cmd = app.add_subcommand("version", "Print the version");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  (void)dataflow::SetLogFormat(log_format);  // one of the two names (checked above)
  // The demo's live progress line would be broken up by warnings; its summary reports them.
  if (*demo_cmd && log_level_opt->count() == 0) log_level = "error";
  // A test's report says what went wrong; the services' own lines (a dead letter the case
  // expects is logged as an error) only with --log-level.
  if (*test_cmd && log_level_opt->count() == 0) log_level = "off";
  if (!dataflow::SetLogLevel(log_level)) {
    std::fprintf(stderr, "dataflow: unknown --log-level \"%s\"\n", log_level.c_str());
    return 2;
  }
  if (*version_cmd) {
    std::printf("dataflow %s\n", DATAFLOW_VERSION);
    return 0;
  }
  if (*schema_cmd) {
    std::printf("%s\n", dataflow::app::ConfigJsonSchema().dump(2).c_str());
    return 0;
  }
  if (*demo_cmd) return dataflow::app::RunDemo(demo);
  if (*loadgen_cmd) return dataflow::app::RunLoadgen(loadgen);
  if (*test_cmd) {
    int worst = 0;
    for (const auto& path : test_paths) worst = std::max(worst, dataflow::app::RunTestFile(path));
    return worst;
  }
  if (*validate_cmd) {
    auto config = LoadOrReport(validate_path);
    if (!config) return 2;
    std::printf("%s: ok, %zu service(s)\n", validate_path.c_str(), config->services.size());
    for (const auto& line : dataflow::app::Describe(*config)) std::printf("  %s\n", line.c_str());
    return 0;
  }
  if (*run_cmd) {
    auto config = LoadOrReport(config_path);
    if (!config) return 2;
    // --log-level wins over the config's log_level.
    if (log_level_opt->count() == 0 && !dataflow::SetLogLevel(config->log_level)) {
      std::fprintf(stderr, "%s: log_level: unknown level \"%s\"\n", config_path.c_str(),
                   config->log_level.c_str());
      return 2;
    }
    return dataflow::app::RunProgram(*config);
  }
  return 2;
}

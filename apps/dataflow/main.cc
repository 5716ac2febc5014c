// The dataflow program: runs dataflow's services. Subcommands:
//   dataflow demo [--devices N] [--messages N] [--rate R] [--out DIR] [--mqtt-url URL]
//   dataflow version
// Exit codes: 0 success, 1 a run that failed or lost messages, 2 bad usage.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "dataflow/messagepipeline/logging.h"
#include "demo.h"

int main(int argc, char** argv) {
  CLI::App app{"dataflow: consume, transform, enrich and sink events with at-least-once delivery"};
  app.require_subcommand(1);
  std::string log_level = "warn";
  CLI::Option* log_level_opt =
      app.add_option("--log-level", log_level, "trace|debug|info|warn|error|off")
          ->capture_default_str();

  dataflow::app::DemoOptions demo;
  CLI::App* demo_cmd = app.add_subcommand(
      "demo",
      "Run the whole pipeline in one process: simulated devices → MQTT → ingestion → "
      "enrichment → SQLite warehouse and gzip JSONL archive");
  demo_cmd->add_option("--devices", demo.devices, "simulated devices")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  demo_cmd->add_option("--messages", demo.messages_per_device, "readings per device")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  demo_cmd->add_option("--rate", demo.rate, "messages/s over all devices (0: as fast as acked)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  demo_cmd->add_option("--out", demo.out_dir, "directory for the registry, warehouse, archive")
      ->capture_default_str();
  demo_cmd->add_option("--mqtt-url", demo.mqtt_url,
                       "use this MQTT broker instead of starting a local Mosquitto");
  demo_cmd->add_option("--timeout", demo.timeout_seconds, "seconds to wait for the sinks")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();

  CLI::App* version_cmd = app.add_subcommand("version", "Print the version");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  // The demo's live progress line would be broken up by warnings; its summary reports them.
  if (*demo_cmd && log_level_opt->count() == 0) log_level = "error";
  if (!dataflow::SetLogLevel(log_level)) {
    std::fprintf(stderr, "dataflow: unknown --log-level \"%s\"\n", log_level.c_str());
    return 2;
  }
  if (*version_cmd) {
    std::printf("dataflow %s\n", DATAFLOW_VERSION);
    return 0;
  }
  if (*demo_cmd) return dataflow::app::RunDemo(demo);
  return 2;
}

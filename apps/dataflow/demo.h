// `dataflow demo`: the whole architecture in one process with embedded defaults; with
// --bench, also its end-to-end throughput and latency on this machine.
#pragma once

#include <CLI/CLI.hpp>
#include <cstddef>
#include <string>

namespace dataflow::app {

struct DemoOptions {
  int devices = 10;
  int messages_per_device = 100;
  double rate = 0;                        // messages/s over all devices; 0: as fast as acknowledged
  std::string out_dir = "dataflow-demo";  // registry, warehouse, archive
  std::string mqtt_url;                   // empty: start a local Mosquitto
  int timeout_seconds = 120;
  // Also report messages/s and the latency from MQTT publish to SQLite row.
  bool bench = false;
};

// The load `--bench` uses unless --devices / --messages are given.
inline constexpr int kBenchDevices = 20;
inline constexpr int kBenchMessagesPerDevice = 500;

// Adds the `demo` subcommand with its options to `app`; parsing fills `options`, which must
// outlive the parse. Returns the subcommand.
CLI::App* AddDemoCommand(CLI::App& app, DemoOptions& options);

// Runs the demo and prints progress and a summary; returns the process exit code.
int RunDemo(const DemoOptions& options);

}  // namespace dataflow::app

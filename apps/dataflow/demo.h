// `dataflow demo`: the whole architecture in one process with embedded defaults.
#pragma once

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
};

// Runs the demo and prints progress and a summary; returns the process exit code.
int RunDemo(const DemoOptions& options);

}  // namespace dataflow::app

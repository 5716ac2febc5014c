// The latency probe of `dataflow demo --bench`: MQTT publish to the row in SQLite.
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

namespace dataflow::app {

// Watches the warehouse while the pipeline runs: for every new row that carries its device's
// send time (sent_at), how long it took to become visible to a reader (MQTT publish →
// pipeline → SQLite commit → this poll, which adds up to its 5 ms period); and the span from
// the first send to the last row seen, on the same clock as the send times.
class LatencyProbe {
 public:
  LatencyProbe(std::filesystem::path db, std::string table);
  ~LatencyProbe() { Stop(); }
  void Stop();

  struct Summary {
    std::size_t samples = 0;
    double p50_ms = 0, p99_ms = 0, max_ms = 0;
    double seconds = 0;  // first send → last row seen
  };
  // After Stop().
  Summary Summarise();

 private:
  void Run(const std::stop_token& st);

  const std::filesystem::path db_;
  const std::string table_;
  std::vector<double> latencies_ms_;  // probe thread, then Summarise()
  std::optional<std::chrono::system_clock::time_point> first_sent_;
  std::chrono::system_clock::time_point last_seen_;
  std::jthread thread_;  // last: starts once the members above exist
};

}  // namespace dataflow::app

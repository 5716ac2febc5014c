// Device readings for the end-to-end tests, shared by the emulator run (pipeline_e2e_test.cc)
// and the run against Google's services (gcp_e2e_test.cc). Each reading carries a unique
// number n (its temperature, and device n % devices), so rows and archive lines can be
// matched to what was sent: loss shows as a missing number, duplicates (allowed:
// at-least-once) as a count above one.
// Header-only and here rather than in tests/support: it needs Paho, icestore and
// messagepipeline, which the server fixtures there do not link.
#pragma once

#include <absl/status/status.h>
#include <absl/strings/str_cat.h>
#include <mqtt/async_client.h>

#include <cstddef>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "dataflow/icestore/archival.h"
#include "dataflow/icestore/gzip.h"
#include "dataflow/messagepipeline/message.h"

namespace dataflow::testing {

inline std::string DeviceId(int i) { return "device-" + std::to_string(i); }

// The readings table as the shipped config/local.yaml declares it (docs/bqstore.md): the
// `schema:` key of its bigquery service, read from the file so the tests check what ships
// (service keys indented six spaces, as in the configs the tests generate). Needs
// DATAFLOW_SOURCE_DIR.
inline std::string LocalReadingsSchemaYaml() {
  std::ifstream in(std::string(DATAFLOW_SOURCE_DIR) + "/config/local.yaml");
  std::string line;
  std::string block;
  while (std::getline(in, line)) {
    if (block.empty() && line != "      schema:") continue;
    if (!block.empty() && line.rfind("        - ", 0) != 0) break;
    block += line + "\n";
  }
  return block;
}
inline const std::string kReadingsSchemaYaml = LocalReadingsSchemaYaml();

struct SeenReadings {
  std::map<int, int> copies;  // reading number → times seen
  std::size_t total = 0;
  [[nodiscard]] std::size_t distinct() const { return copies.size(); }
  [[nodiscard]] std::size_t duplicates() const { return total - copies.size(); }
  void Add(int n) {
    ++copies[n];
    ++total;
  }
};

// Publishes readings n = first..first+count-1 at QoS 1 to `broker_url`, each on
// "<topic_root>/device-<n % devices>/telemetry" as {"deviceId", "temperature": n, ...}.
inline void PublishReadings(const std::string& broker_url, const std::string& client_id,
                            const std::string& topic_root, int first, int count, int devices) {
  mqtt::async_client client(broker_url, client_id);
  client.connect(mqtt::connect_options_builder().clean_session(true).finalize())->wait();
  std::vector<mqtt::delivery_token_ptr> tokens;
  for (int n = first; n < first + count; ++n) {
    const int device = n % devices;
    const nlohmann::json body = {
        {"deviceId", DeviceId(device)}, {"temperature", n}, {"humidity", 50}, {"seq", n}};
    tokens.push_back(client.publish(mqtt::make_message(
        topic_root + "/" + DeviceId(device) + "/telemetry", body.dump(), 1, false)));
    if (tokens.size() >= 10) {  // Paho's in-flight window
      for (auto& t : tokens) t->wait();
      tokens.clear();
    }
  }
  for (auto& t : tokens) t->wait();
  client.disconnect()->wait();
}

// Adds the readings of one archive object (gzip of JSONL archival lines, each holding a
// message envelope whose payload is a reading) to `seen`; with `keys_out`, each reading's
// batch key too. An error names what in the object could not be read.
inline absl::Status AddArchivedReadings(std::string_view gzip_bytes, SeenReadings& seen,
                                        std::multimap<int, std::string>* keys_out = nullptr) {
  auto text = icestore::GzipDecompress(gzip_bytes);
  if (!text.ok())
    return absl::InvalidArgumentError(absl::StrCat("not gzip: ", text.status().message()));
  std::istringstream lines(*text);
  for (std::string line; std::getline(lines, line);) {
    auto data = icestore::DecodeArchivalLine(line);
    if (!data.ok()) return data.status();
    auto envelope = messagepipeline::DecodeMessageData(data->original_payload);
    if (!envelope.ok()) return envelope.status();
    const auto body = nlohmann::json::parse(envelope->payload, nullptr, false);
    if (!body.is_object() || !body.contains("temperature") || !body["temperature"].is_number()) {
      return absl::InvalidArgumentError("not a reading: " + envelope->payload);
    }
    const int n = body["temperature"].get<int>();
    seen.Add(n);
    if (keys_out) keys_out->emplace(n, data->batch_key);
  }
  return absl::OkStatus();
}

}  // namespace dataflow::testing

// The device-telemetry model the program's services and demo share: the metadata a device
// registry holds (DeviceInfo), the warehouse row (Reading) and the enriched-envelope → row
// transformer. (A registry file is read by the enrichment service's json_file cache.)
#pragma once

#include <absl/status/statusor.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "dataflow/bqstore/row.h"
#include "dataflow/messagepipeline/message.h"
#include "dataflow/messagepipeline/transformer.h"

namespace dataflow::app {

struct DeviceInfo {
  std::string name;
  std::string location;
};
void to_json(nlohmann::json& j, const DeviceInfo& d);
void from_json(const nlohmann::json& j, DeviceInfo& d);

// The warehouse row: the reading plus what enrichment added.
struct Reading {
  std::string device_id;
  double temperature = 0;
  double humidity = 0;
  std::optional<std::string> device_name;
  std::optional<std::string> location;
  bqstore::Timestamp published_at{};
  // When the device sent it (the payload's "sentAt"): for end-to-end latency.
  std::optional<bqstore::Timestamp> sent_at;
};
DATAFLOW_DESCRIBE(Reading, device_id, temperature, humidity, device_name, location, published_at,
                  sent_at);

// Enriched envelope (JSON payload {"deviceId", "temperature", "humidity"?, "sentAt"?}), or a
// raw reading by `format` (messagepipeline::DecodeInput) → Reading; what does not parse is a
// permanent error (dead-lettered where the service has a
// sink). A "sentAt" that is not an RFC 3339 time only leaves sent_at unset: it is
// diagnostic, not worth losing the reading over.
messagepipeline::TransformResult<Reading> ToReading(
    const messagepipeline::Message& m,
    messagepipeline::InputFormat format = messagepipeline::InputFormat::kAuto);

}  // namespace dataflow::app

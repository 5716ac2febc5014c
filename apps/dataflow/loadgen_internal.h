// What the pieces of the load generator share: the command (loadgen.cc) checks the options
// before it prints anything, and the publishers (loadgen_publish.cc) check them again for
// callers that skip the command (the demo, tests); the in-flight cap is also the CLI range.
#pragma once

#include <absl/status/status.h>

#include <string>

#include "loadgen.h"

namespace dataflow::app::loadgen_internal {

// MQTT packet ids are 16 bits, so no broker can have more QoS 1/2 messages of one client in
// flight.
inline constexpr int kMaxInFlight = 65535;

absl::Status ValidateMqtt(const MqttLoadOptions& o);
absl::Status ValidatePubsub(const PubsubLoadOptions& o);

// The project to publish to: --project, else $GOOGLE_CLOUD_PROJECT (empty when neither).
std::string PubsubProject(const PubsubLoadOptions& o);

}  // namespace dataflow::app::loadgen_internal

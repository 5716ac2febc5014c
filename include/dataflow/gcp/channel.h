// gRPC channels to Google APIs, chosen the way Google's own clients choose them:
//   1. an explicit endpoint in the options wins (TLS + Google credentials, or plaintext when
//      `insecure` is set, e.g. an emulator named in a config file);
//   2. else, if the emulator variable named by `emulator_host_env` (PUBSUB_EMULATOR_HOST,
//      FIRESTORE_EMULATOR_HOST, BIGQUERY_EMULATOR_HOST, ...) is set and non-empty, a
//      plaintext channel to that host:port with no credentials;
//   3. else the service's default endpoint with Google default credentials (ADC:
//      GOOGLE_APPLICATION_CREDENTIALS service-account JSON, gcloud user credentials, or
//      the metadata server).
// Free functions; thread-safe. Channels are thread-safe and meant to be shared.
#pragma once

#include <grpcpp/channel.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace dataflow::gcp {

struct ChannelOptions {
  // host:port used when neither `endpoint` nor the emulator variable is set,
  // e.g. "pubsub.googleapis.com:443".
  std::string default_endpoint;
  // Explicit host:port; overrides the emulator variable and the default endpoint.
  std::string endpoint;
  // With `endpoint`: plaintext, no credentials (an emulator or a local test server).
  bool insecure = false;
  // Name of the environment variable that points at an emulator; empty: none.
  std::string emulator_host_env;
  // Channels with different ids never share a TCP connection; give each of several
  // parallel streams its own id so they are not multiplexed over one connection.
  int channel_id = 0;
  // Largest message the channel accepts (Pub/Sub pull responses can exceed gRPC's 4 MiB).
  int max_receive_message_bytes = 64 * 1024 * 1024;
  // HTTP/2 keepalive pings so a dead peer is noticed on idle streams.
  std::chrono::milliseconds keepalive_time{std::chrono::seconds(30)};
  std::string user_agent = "dataflow-cpp/0.1";
};

// Where a channel built from `options` would connect, and how.
struct ResolvedEndpoint {
  std::string target;     // host:port
  bool insecure = false;  // plaintext without credentials
  bool emulator = false;  // came from the emulator variable
};

// Applies the rules above without creating anything. InvalidArgument when no endpoint can
// be determined or the chosen one is not host:port.
absl::StatusOr<ResolvedEndpoint> ResolveEndpoint(const ChannelOptions& options);

// Creates the channel (lazily connecting). FailedPrecondition when a secure channel is
// needed but no Google default credentials can be found; the message says which emulator
// variable would avoid that.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const ChannelOptions& options);

// Whether an endpoint named in a config (`endpoint`, host:port) may be reached in plaintext
// without credentials: only when its host is this machine (loopback, see
// dataflow/messagepipeline/loopback.h) or the emulator variable `emulator_host_env` is set and
// non-empty (the program is pointed at emulators, e.g. in a compose network). Otherwise the
// channel must be TLS with Google credentials: a plaintext channel to another host would carry
// the data, and any token, in the clear.
bool PlaintextAllowed(std::string_view endpoint, std::string_view emulator_host_env);

}  // namespace dataflow::gcp

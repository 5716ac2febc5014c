#include "dataflow/gcp/channel.h"

#include <grpc/grpc.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <cstdlib>
#include <string_view>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "dataflow/messagepipeline/logging.h"
#include "dataflow/messagepipeline/loopback.h"

namespace dataflow::gcp {
namespace {

absl::string_view AV(std::string_view s) { return {s.data(), s.size()}; }

// host:port with a numeric port; "[v6]:port" allowed. A scheme ("http://") is a common
// mistake in emulator variables, and gRPC would treat it as a resolver name.
absl::Status ValidateHostPort(std::string_view target, std::string_view source) {
  auto colon = target.rfind(':');
  bool ok = !target.empty() && colon != std::string_view::npos && colon > 0 &&
            colon + 1 < target.size() && target.find("://") == std::string_view::npos;
  if (ok) {
    for (char c : target.substr(colon + 1)) {
      if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) ok = false;
    }
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat(AV(source), ": \"", AV(target), "\" is not host:port (e.g. localhost:8085)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ResolvedEndpoint> ResolveEndpoint(const ChannelOptions& options) {
  if (!options.endpoint.empty()) {
    if (auto s = ValidateHostPort(options.endpoint, "endpoint"); !s.ok()) return s;
    return ResolvedEndpoint{.target = options.endpoint, .insecure = options.insecure};
  }
  if (!options.emulator_host_env.empty()) {
    const char* host = std::getenv(options.emulator_host_env.c_str());
    if (host != nullptr && *host != '\0') {
      if (auto s = ValidateHostPort(host, options.emulator_host_env); !s.ok()) return s;
      return ResolvedEndpoint{.target = host, .insecure = true, .emulator = true};
    }
  }
  if (options.default_endpoint.empty()) {
    return absl::InvalidArgumentError(
        "no endpoint: set ChannelOptions.endpoint or default_endpoint" +
        (options.emulator_host_env.empty()
             ? std::string()
             : absl::StrCat(", or the ", options.emulator_host_env, " environment variable")));
  }
  if (auto s = ValidateHostPort(options.default_endpoint, "default_endpoint"); !s.ok()) return s;
  return ResolvedEndpoint{.target = options.default_endpoint};
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const ChannelOptions& options) {
  auto resolved = ResolveEndpoint(options);
  if (!resolved.ok()) return resolved.status();

  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  args.SetMaxSendMessageSize(options.max_receive_message_bytes);
  // Each channel gets its own connection; otherwise gRPC shares subchannels between
  // channels with equal arguments and parallel streams end up on one TCP connection.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt("dataflow.channel_id", options.channel_id);
  if (options.keepalive_time.count() > 0) {
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, static_cast<int>(options.keepalive_time.count()));
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20000);
  }
  // gRPC's reconnect backoff grows to 120 s by default; after an outage (an emulator or
  // proxy restart) a service should be back within seconds.
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5000);
  if (!options.user_agent.empty()) args.SetUserAgentPrefix(options.user_agent);

  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (resolved->insecure) {
    creds = grpc::InsecureChannelCredentials();
  } else {
    creds = grpc::GoogleDefaultCredentials();
    if (creds == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          "no Google default credentials for ", resolved->target,
          ": set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, run on GCP",
          options.emulator_host_env.empty()
              ? std::string()
              : absl::StrCat(", or set ", options.emulator_host_env, " to use an emulator")));
    }
  }
  Log()->debug("gcp channel target={} insecure={} emulator={} channel_id={}", resolved->target,
               resolved->insecure, resolved->emulator, options.channel_id);
  return grpc::CreateCustomChannel(resolved->target, creds, args);
}

bool PlaintextAllowed(std::string_view endpoint, std::string_view emulator_host_env) {
  if (!emulator_host_env.empty()) {
    const char* set = std::getenv(std::string(emulator_host_env).c_str());
    if (set != nullptr && *set != '\0') return true;
  }
  return IsLoopbackHost(HostOfHostPort(endpoint));
}

}  // namespace dataflow::gcp

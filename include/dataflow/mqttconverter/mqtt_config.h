// MqttClientOptions: how an MqttConsumer reaches its broker and what it subscribes to.
//
// A plain aggregate with the Go library's fields and defaults, plus the topic mappings that
// give each MQTT message its route. LoadMqttClientOptionsFromEnv() fills it from the same
// environment variables as the Go library; every validation error names the offending
// variable or field. The free functions are pure and thread-safe.
#pragma once

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dataflow/messagepipeline/environment.h"

namespace dataflow::mqttconverter {

// One subscription and the route name its messages carry. `topic` is an MQTT filter with
// `+`/`#` wildcards, optionally a shared subscription `$share/<group>/<filter>`.
struct TopicMapping {
  std::string name;
  std::string topic;
  int qos = 1;
};

// When the broker gets the QoS 1 PUBACK (QoS 2: PUBREC) for a message.
enum class AckMode {
  // When the pipeline acks the Message: a crash before that means redelivery, not loss.
  kAfterPipelineAck,
  // As soon as it arrives (what Paho and mosquitto_sub do): at-most-once past this point.
  kOnReceipt,
};

struct MqttClientOptions {
  std::string broker_url = "tcp://localhost:1883";  // tcp://, ssl://, ws://, wss://
  // Empty: "<client_id_prefix><random>" so every copy of a service is unique on the broker.
  std::string client_id;
  std::string client_id_prefix = "dataflow-ingestion-";
  std::string username;
  std::string password;
  std::chrono::seconds keep_alive{10};
  std::chrono::seconds connect_timeout{10};
  // TLS (ssl:// and wss://).
  std::string ca_cert_file;
  std::string client_cert_file;
  std::string client_key_file;
  bool insecure_skip_verify = false;  // tests only: no server certificate check
  std::vector<TopicMapping> topic_mappings;

  // false: a persistent session. The broker keeps the subscriptions and queues QoS 1
  // messages while the consumer is away; needs an explicit client_id to resume it.
  bool clean_session = true;
  // kAfterPipelineAck needs clean_session=false for unacked messages to survive a
  // disconnect; see docs/mqtt.md "Delivery".
  AckMode ack_mode = AckMode::kAfterPipelineAck;
  // Automatic reconnect: exponential backoff with jitter between these bounds.
  std::chrono::seconds reconnect_min_backoff{1};
  std::chrono::seconds reconnect_max_backoff{30};
  // A SUBACK refusing a filter (0x80) fails the connection, which is re-made with the
  // backoff above; after this many refusals in a row the consumer gives up: Done() resolves
  // with an error naming the broker and the filter. (A refusal at Start() fails Start.)
  int max_subscribe_refusals = 5;
  // A nacked message goes back into the channel after min * 2^(attempt-1), capped at max,
  // jittered over the upper half (never below min), so a failing sink is not hammered.
  std::chrono::milliseconds redelivery_min_backoff{100};
  std::chrono::milliseconds redelivery_max_backoff{10'000};
  // How long one socket write (PUBACKs, pings...) may wait for a broker that stops reading;
  // on expiry the connection is treated as failed and re-made.
  std::chrono::milliseconds write_timeout{10'000};
  // The consumer's channel: a full channel stops it reading from the socket.
  std::size_t channel_capacity = 1000;
  // The largest MQTT packet accepted, fixed header included (MQTT 5's "Maximum Packet Size";
  // 3.1.1 cannot tell the broker, so it is enforced here, as soon as the fixed header is
  // read). An oversize PUBLISH is skipped without being buffered, counted
  // (stats().oversize_skipped), logged with its topic and size, and at QoS 1/2 acknowledged
  // so the broker does not resend it; any other oversize packet is a protocol error. The
  // default, 4 MiB, is far above device telemetry and below what the Pub/Sub sink can take
  // (10 MB per request, and the message envelope base64-encodes the payload). At most
  // 268435460 (MQTT's own maximum).
  std::size_t max_packet_bytes = 4 << 20;
  // Payload bytes of received messages not yet acked (in the channel, in the pipeline or
  // waiting for a local redelivery): past it the reader stops reading the socket, as with a
  // full channel, so the channel is bounded in bytes as well as in messages. A single
  // message larger than this still passes when nothing else is held.
  std::size_t max_outstanding_bytes = 64 << 20;
};

// Checks the config; InvalidArgument naming the field on failure.
absl::Status ValidateMqttClientOptions(const MqttClientOptions& config);

// Reads MQTT_BROKER_URL, MQTT_CLIENT_ID, MQTT_CLIENT_ID_PREFIX, MQTT_USERNAME, MQTT_PASSWORD,
// MQTT_KEEP_ALIVE_SECONDS, MQTT_CONNECT_TIMEOUT_SECONDS, MQTT_CA_CERT_FILE,
// MQTT_CLIENT_CERT_FILE, MQTT_CLIENT_KEY_FILE, MQTT_INSECURE_SKIP_VERIFY, MQTT_CLEAN_SESSION,
// MQTT_ACK_MODE (pipeline|receipt), MQTT_WRITE_TIMEOUT_SECONDS, MQTT_MAX_SUBSCRIBE_REFUSALS,
// MQTT_REDELIVERY_MIN_BACKOFF_MS, MQTT_REDELIVERY_MAX_BACKOFF_MS, MQTT_MAX_PACKET_BYTES,
// MQTT_MAX_OUTSTANDING_BYTES, MQTT_TOPIC (one mapping named
// "default") and MQTT_TOPIC_MAPPINGS
// ("name=filter[@qos];name=filter[@qos]"), over `base`. Unset variables keep base's values.
// Errors are InvalidArgument and name the variable.
// `lookup` empty: the process environment.
absl::StatusOr<MqttClientOptions> LoadMqttClientOptionsFromEnv(
    MqttClientOptions base = {}, const messagepipeline::EnvLookup& lookup = {});

// MQTT filter matching (`+` one level, `#` the rest); `$share/<group>/` is stripped first.
// Topics starting with '$' are not matched by a leading wildcard, as the spec says.
bool TopicMatches(std::string_view filter, std::string_view topic);
// "pipeline" / "receipt" and back; ParseAckMode is false for any other text.
bool ParseAckMode(std::string_view text, AckMode* out);
std::string_view AckModeName(AckMode mode);
// The filter without a `$share/<group>/` prefix.
std::string_view StripSharePrefix(std::string_view filter);
// The first mapping (in config order) whose filter matches `topic`, or nullptr.
const TopicMapping* FindRoute(const std::vector<TopicMapping>& mappings, std::string_view topic);

}  // namespace dataflow::mqttconverter

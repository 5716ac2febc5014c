// MqttConsumer: a MessageConsumer that subscribes to an MQTT broker, over a small MQTT 3.1.1
// client of its own (src/mqttconverter/mqtt_codec.h, mqtt_transport.h) because no Debian
// MQTT library lets the application choose when the PUBACK goes out (docs/mqtt.md).
//
// Every TopicMapping becomes a subscription. Each MQTT message becomes a Message with the
// payload bytes, a generated id, publish_time = receive time, and the attributes
//   route_name  the name of the first mapping, in config order, whose filter matches the
//               message's topic (absent if none does, e.g. a stale persistent subscription);
//   mqtt_topic  the topic it was published to;   mqtt_qos  the QoS it arrived with.
// Overlapping filters make the broker send a message once per matching subscription; each
// copy carries the first matching route.
//
// Delivery: one thread per consumer reads the socket and hands each message to a bounded
// channel; a full channel, or max_outstanding_bytes of payload not yet acked, blocks it,
// so the socket stops being read and the broker holds the rest (backpressure). A packet over
// max_packet_bytes is never buffered: an oversize PUBLISH is read past in bounded chunks,
// counted, logged and (QoS 1/2) acknowledged in order with the others; any other oversize
// packet ends the connection as a protocol error. Keep-alive pings go out from another thread
// meanwhile. The connection is re-made with exponential backoff and jitter, and every subscription
// is renewed on each (re)connect. The SUBACK must match the SUBSCRIBE (packet id, one code per
// filter) or the connection is dropped; a refused filter drops it too (IsConnected() false),
// and max_subscribe_refusals refusals in a row end the consumer: Done() resolves with an
// error naming the broker and the filter. Every write goes through one writer thread per
// connection, with write_timeout per write: a broker that stops reading fails the
// connection instead of blocking Ack(), Nack() or Stop().
//
// Ack/Nack and the PUBACK (ack_mode kAfterPipelineAck, the default): the QoS 1 PUBACK (QoS 2:
// PUBREC) is sent only when the pipeline acks the message, in arrival order as MQTT requires
// (an acked message waits for the PUBACKs of earlier ones).
//   Ack   releases the PUBACK (once every earlier message of the connection is acked too).
//   Nack  redelivers locally while connected: after a backoff growing with the attempt
//         (redelivery_min_backoff doubling to redelivery_max_backoff, jittered), the message
//         goes back into the channel with delivery_attempt + 1 and its PUBACK stays withheld
//         until it is acked.
// A message whose PUBACK was not sent when the connection ends (Stop, crash, lost
// connection) stays with the broker: with clean_session=false the broker redelivers it to
// the next connection with the same client_id (DUP, delivery_attempt >= 2; counted in
// stats().left_with_broker); with clean_session=true the broker drops it, and if it was
// nacked or never processed it is logged and counted in stats().lost. Acks that arrive after
// their connection ended are not sent on a new one. Stop() waits (until its deadline) for the
// pipeline to settle what it has, so those PUBACKs still go out; acknowledgements it could
// not write by the deadline make it return DeadlineExceeded saying how many. kOnReceipt
// acknowledges on arrival instead (at-most-once past that point). See docs/mqtt.md. Thread-safe.
#pragma once

#include <absl/status/statusor.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "dataflow/messagepipeline/consumer.h"
#include "dataflow/metrics/registration.h"
#include "dataflow/mqttconverter/mqtt_config.h"

namespace dataflow::mqttconverter {

struct MqttConsumerStats {
  std::uint64_t received = 0;  // messages that arrived from the broker
  std::uint64_t acked = 0;
  std::uint64_t nacked = 0;
  std::uint64_t redelivered = 0;  // nacked messages put back into the channel
  // Not processed and not coming back (logged): nacked or undeliverable after Stop() with a
  // clean session, at QoS 0 or with ack_mode kOnReceipt.
  std::uint64_t lost = 0;
  std::uint64_t unrouted = 0;  // matched no mapping (delivered without route_name)
  std::uint64_t connects = 0;  // successful connects, including reconnects
  // QoS 1/2 messages whose PUBACK/PUBREC was never sent when their connection ended, with
  // clean_session=false: the broker redelivers them to the next connection of this client id.
  std::uint64_t left_with_broker = 0;
  // PUBLISHes over max_packet_bytes, skipped unread (QoS 1/2: acknowledged; logged).
  std::uint64_t oversize_skipped = 0;
  // Now: payload bytes of received messages not yet acked (bounded by max_outstanding_bytes).
  std::uint64_t outstanding_bytes = 0;
};

class MqttConsumer : public messagepipeline::MessageConsumer {
 public:
  // Validates the config and creates the (not yet connected) client.
  static absl::StatusOr<std::unique_ptr<MqttConsumer>> Create(MqttClientOptions config);
  ~MqttConsumer() override;

  // Connects (waiting up to connect_timeout) and subscribes to every mapping; returns at the
  // SUBACK, or at the first message if a persistent session's backlog comes before it (a
  // refusal in that SUBACK then counts as a failed connection, as on a reconnect). A refused
  // or unreachable broker is an error (Unavailable), a refused subscription
  // PermissionDenied, a malformed SUBACK Unavailable; later losses are retried.
  absl::Status Start() override;
  // Returns near `deadline` even if the broker stopped reading; DeadlineExceeded (naming the
  // count) if acknowledgements of pipeline-acked messages could not be written by then.
  absl::Status Stop(messagepipeline::Deadline deadline) override;
  messagepipeline::BoundedQueue<messagepipeline::Message>& Messages() override;
  std::shared_future<absl::Status> Done() override;
  [[nodiscard]] bool IsConnected() const override;

  [[nodiscard]] MqttConsumerStats stats() const;
  [[nodiscard]] const std::string& client_id() const;

  // Exports stats() as the dataflow_mqtt_* families (mqtt_metrics.h), labelled `labels`, on
  // every scrape of `telemetry` until this consumer is destroyed; a second call replaces
  // the first. Not concurrently with itself.
  void RegisterMetrics(metrics::Telemetry& telemetry, const metrics::Labels& labels);

 private:
  class Impl;  // src/mqttconverter/mqtt_consumer.cc
  explicit MqttConsumer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
  metrics::Registration metrics_;  // after impl_: removed before it goes
};

}  // namespace dataflow::mqttconverter

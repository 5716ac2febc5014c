// MqttConsumer: a MessageConsumer that subscribes to an MQTT broker (Eclipse Paho C++).
//
// Every TopicMapping becomes a subscription. Each MQTT message becomes a Message with the
// payload bytes, a generated id, publish_time = receive time, and the attributes
//   route_name  the name of the first mapping, in config order, whose filter matches the
//               message's topic (absent if none does, e.g. a stale persistent subscription);
//   mqtt_topic  the topic it was published to;   mqtt_qos  the QoS it arrived with.
// Overlapping filters make the broker send a message once per matching subscription; each
// copy carries the first matching route.
//
// Delivery: Paho reads on its own thread and hands each message to a bounded channel; a full
// channel blocks that thread, so the socket stops being read and the broker holds the rest
// (backpressure). Paho C serves every client in a process from one receive thread, so a
// blocked consumer stalls all Paho clients of the process (run one MqttConsumer per process),
// and a stall longer than 1.5 x keep_alive lets the broker drop the connection, which is
// then re-established. The connection is re-established automatically with exponential backoff
// and every subscription is renewed on each (re)connect. With clean_session=false the broker
// keeps QoS 1 messages that arrive while the consumer is away.
//
// Ack/Nack and the PUBACK: the installed Paho (C 1.3.12, C++ 1.2.0) has no manual
// acknowledgement; it sends the QoS 1 PUBACK when a message is received, before the
// application sees it. So the broker's redelivery cannot back the pipeline's acks. What this
// consumer does instead:
//   Ack   marks the message done (counted).
//   Nack  redelivers it locally: it goes back into the channel with delivery_attempt + 1,
//         as a broker redelivery would, while the consumer runs. A message nacked after
//         Stop() began, or not taken by the pipeline by the Stop deadline, can no longer be
//         redelivered: it is logged at error level with its id and counted in
//         stats().lost. A process crash loses the messages in the channel and in flight.
// See docs/mqtt.md. Thread-safe.
#pragma once

#include <absl/status/statusor.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "dataflow/messagepipeline/consumer.h"
#include "dataflow/mqttconverter/mqtt_config.h"

namespace dataflow::mqttconverter {

struct MqttConsumerStats {
  std::uint64_t received = 0;  // messages that arrived from the broker
  std::uint64_t acked = 0;
  std::uint64_t nacked = 0;
  std::uint64_t redelivered = 0;  // nacked messages put back into the channel
  std::uint64_t lost = 0;         // could not be delivered or redelivered (logged)
  std::uint64_t unrouted = 0;     // matched no mapping (delivered without route_name)
  std::uint64_t connects = 0;     // successful connects, including reconnects
};

class MqttConsumer : public messagepipeline::MessageConsumer {
 public:
  // Validates the config and creates the (not yet connected) client.
  static absl::StatusOr<std::unique_ptr<MqttConsumer>> Create(MQTTClientConfig config);
  ~MqttConsumer() override;

  // Connects (waiting up to connect_timeout) and subscribes to every mapping. A refused or
  // unreachable broker is an error (Unavailable); later connection losses are retried.
  absl::Status Start() override;
  absl::Status Stop(messagepipeline::Deadline deadline) override;
  messagepipeline::BoundedQueue<messagepipeline::Message>& Messages() override;
  std::shared_future<absl::Status> Done() override;
  [[nodiscard]] bool IsConnected() const override;

  [[nodiscard]] MqttConsumerStats stats() const;
  [[nodiscard]] const std::string& client_id() const;

  class Impl;

 private:
  explicit MqttConsumer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

}  // namespace dataflow::mqttconverter

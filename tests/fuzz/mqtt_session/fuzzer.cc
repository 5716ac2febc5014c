// libFuzzer target for MqttConsumer's session state machine: the input's first byte picks
// the options (ack mode, session kind, QoS, read sizes), the rest is what the "broker" sends
// over one connection, fed through the transport seam (SetDialerForTesting) in reads of a
// few bytes up to whole. Whatever the bytes, the consumer must neither crash nor hang: Start
// returns, messages reach the channel and are acked or nacked by a worker, Stop returns.
// Everything the client writes must parse as whole packets of the types a client sends.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>

#include "dataflow/messagepipeline/logging.h"
#include "dataflow/mqttconverter/mqtt_consumer.h"
#include "mqtt_codec.h"
#include "mqtt_transport.h"

namespace mi = dataflow::mqttconverter::internal;
using dataflow::mqttconverter::MqttClientOptions;
using dataflow::mqttconverter::MqttConsumer;

namespace {

// The broker side of one connection: serves the input, checks what the client writes.
// `exhausted` turns true once the connection is over: input used up, or shut down.
class ScriptedTransport : public mi::Transport {
 public:
  ScriptedTransport(std::string in, std::size_t chunk, std::atomic<bool>& exhausted)
      : in_(std::move(in)), chunk_(chunk), exhausted_(exhausted) {}

  absl::StatusOr<std::size_t> Read(char* buf, std::size_t size, mi::Deadline) override {
    if (shut_.load()) return absl::UnavailableError("shut down");
    if (pos_ == in_.size()) {
      exhausted_.store(true);
      return absl::UnavailableError("connection closed by the broker");
    }
    const std::size_t n = std::min({size, chunk_, in_.size() - pos_});
    std::memcpy(buf, in_.data() + pos_, n);
    pos_ += n;
    return n;
  }

  absl::Status Write(std::string_view data, mi::Deadline) override {
    if (shut_.load()) return absl::UnavailableError("shut down");
    std::lock_guard lock(mu_);
    out_.append(data);
    std::string_view rest = out_;
    while (true) {
      mi::RawPacket p;
      auto n = mi::ParsePacket(rest, p);
      if (!n.ok()) std::abort();  // the client wrote a malformed packet
      if (*n == 0) break;
      switch (p.type) {
        case mi::PacketType::kConnect:
        case mi::PacketType::kSubscribe:
        case mi::PacketType::kUnsubscribe:
        case mi::PacketType::kPingreq:
        case mi::PacketType::kDisconnect:
          break;
        case mi::PacketType::kPuback:
        case mi::PacketType::kPubrec:
        case mi::PacketType::kPubrel:
        case mi::PacketType::kPubcomp: {
          auto id = mi::ParsePacketId(p);
          if (!id.ok() || *id == 0) std::abort();  // acks carry the PUBLISH's nonzero id
          break;
        }
        default:
          std::abort();  // not a packet a client sends
      }
      rest.remove_prefix(*n);
    }
    // Whole packets only: each Write call carries complete packets.
    if (!rest.empty()) std::abort();
    out_.clear();
    return absl::OkStatus();
  }

  // The consumer shuts the transport down when the connection ends (a protocol error
  // included), before the input is used up.
  void Shutdown() override {
    shut_.store(true);
    exhausted_.store(true);
  }

 private:
  const std::string in_;
  const std::size_t chunk_;
  std::size_t pos_ = 0;  // reader thread only
  std::atomic<bool>& exhausted_;
  std::atomic<bool> shut_{false};
  std::mutex mu_;
  std::string out_;
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  dataflow::SetLogLevel("off");  // the consumer logs every protocol error it meets
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::uint8_t knobs = data[0];
  std::string stream(reinterpret_cast<const char*>(data) + 1, size - 1);
  static constexpr std::size_t kChunks[] = {1, 3, 7, 64, 100, 1000, 65536, 1 << 20};

  std::atomic<bool> exhausted{false};
  std::atomic<int> dials{0};
  mi::SetDialerForTesting(
      [&](std::string_view, const mi::TlsOptions&, mi::Deadline,
          const mi::WebSocketLimits&) -> absl::StatusOr<std::unique_ptr<mi::Transport>> {
        if (dials.fetch_add(1) > 0) {
          exhausted.store(true);
          return absl::UnavailableError("no second connection");
        }
        return std::unique_ptr<mi::Transport>(
            std::make_unique<ScriptedTransport>(stream, kChunks[knobs >> 5], exhausted));
      });

  MqttClientOptions config;
  config.broker_url = "tcp://fuzz:1883";
  config.keep_alive = std::chrono::seconds(0);
  config.connect_timeout = std::chrono::seconds(5);
  config.ack_mode = (knobs & 1) != 0 ? dataflow::mqttconverter::AckMode::kOnReceipt
                                     : dataflow::mqttconverter::AckMode::kAfterPipelineAck;
  config.clean_session = (knobs & 2) == 0;
  config.client_id = "fuzz";
  config.topic_mappings = {{.name = "a", .topic = "a/#", .qos = (knobs >> 2) % 3},
                           {.name = "b", .topic = "+/b", .qos = 1}};
  config.max_packet_bytes = 300;  // small: oversize PUBLISHes are skipped, others fail
  config.max_outstanding_bytes = 600;
  config.channel_capacity = 2;
  config.redelivery_min_backoff = std::chrono::milliseconds(1);
  config.redelivery_max_backoff = std::chrono::milliseconds(2);
  auto consumer = MqttConsumer::Create(config);
  if (!consumer.ok()) std::abort();

  if ((*consumer)->Start().ok()) {
    // The pipeline: acks, or nacks a first delivery whose payload starts with an odd byte.
    std::thread worker([&] {
      while (auto m = (*consumer)->Messages().Pop()) {
        const std::string& p = m->data.payload;
        if (m->delivery_attempt == 1 && !p.empty() && (p[0] & 1) != 0) {
          m->Nack();
        } else {
          m->Ack();
        }
      }
    });
    while (!exhausted.load()) std::this_thread::yield();
    (*consumer)
        ->Stop(std::chrono::steady_clock::now() + std::chrono::milliseconds(200))
        .IgnoreError();
    worker.join();
    const auto stats = (*consumer)->stats();
    if (stats.outstanding_bytes != 0) std::abort();  // every message was settled
  }
  consumer->reset();
  mi::SetDialerForTesting({});
  return 0;
}

// Cost per message of our Pub/Sub code without the network: publish (batching, proto
// building, futures) and consume (decode into Message, flow control, channel, ack batching)
// against a loopback fake stub. Where our client can be slow, this is where it shows.
#include <benchmark/benchmark.h>

#include <atomic>
#include <condition_variable>
#include <mutex>

#include "dataflow/pubsub/consumer.h"
#include "dataflow/pubsub/producer.h"

namespace dataflow::pubsub {
namespace {

const std::string kPayload(1024, 'x');

// Answers every RPC at once; StreamingPull yields endless 100-message responses.
class LoopbackStream : public PullStream {
 public:
  bool Write(const v1::StreamingPullRequest&) override { return true; }
  bool Read(v1::StreamingPullResponse* r) override {
    if (cancelled_) return false;
    r->Clear();
    for (int i = 0; i < 100; ++i) {
      auto* rm = r->add_received_messages();
      rm->set_ack_id("ack-" + std::to_string(next_++));
      auto* m = rm->mutable_message();
      m->set_data(kPayload);
      m->set_message_id(rm->ack_id());
      (*m->mutable_attributes())["device"] = "d1";
      m->mutable_publish_time()->set_seconds(1700000000);
    }
    return true;
  }
  void Cancel() override { cancelled_ = true; }
  absl::Status Finish() override { return absl::CancelledError("cancelled"); }

 private:
  std::atomic<bool> cancelled_{false};
  std::uint64_t next_ = 0;
};

class LoopbackStub : public PubsubStub {
 public:
  absl::StatusOr<v1::PublishResponse> Publish(const v1::PublishRequest& request,
                                              std::chrono::milliseconds) override {
    v1::PublishResponse r;
    for (int i = 0; i < request.messages_size(); ++i) r.add_message_ids("id");
    return r;
  }
  absl::Status Acknowledge(const v1::AcknowledgeRequest&) override { return {}; }
  absl::Status ModifyAckDeadline(const v1::ModifyAckDeadlineRequest&) override { return {}; }
  std::unique_ptr<PullStream> StreamingPull(std::chrono::milliseconds) override {
    return std::make_unique<LoopbackStream>();
  }
  absl::StatusOr<v1::Topic> CreateTopic(const v1::Topic& t) override { return t; }
  absl::Status DeleteTopic(const std::string&) override { return {}; }
  absl::StatusOr<v1::Subscription> CreateSubscription(const v1::Subscription& s) override {
    return s;
  }
  absl::StatusOr<v1::Subscription> GetSubscription(const std::string&) override {
    return v1::Subscription();
  }
  absl::Status DeleteSubscription(const std::string&) override { return {}; }
};

void BM_PublishNoNetwork(benchmark::State& state) {
  auto producer = *GooglePubsubProducer::Create(std::make_shared<LoopbackStub>(),
                                                {.project_id = "p", .topic_id = "t"});
  std::vector<std::future<GooglePubsubProducer::Result>> fs;
  fs.reserve(1000);
  for (auto _ : state) {
    fs.push_back(producer->PublishRaw(kPayload, {{"device", "d1"}}));
    if (fs.size() == 1000) {
      for (auto& f : fs) benchmark::DoNotOptimize(f.get());
      fs.clear();
    }
  }
  for (auto& f : fs) benchmark::DoNotOptimize(f.get());
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(kPayload.size()));
}
BENCHMARK(BM_PublishNoNetwork)->UseRealTime();

void BM_ConsumeAndAckNoNetwork(benchmark::State& state) {
  auto consumer = *GooglePubsubConsumer::Create(std::make_shared<LoopbackStub>(),
                                                {.project_id = "p", .subscription_id = "s"});
  if (!consumer->Start().ok()) {
    state.SkipWithError("start failed");
    return;
  }
  for (auto _ : state) {
    auto m = consumer->Messages().Pop();
    if (!m) {
      state.SkipWithError("channel closed");
      break;
    }
    benchmark::DoNotOptimize(m->data.payload.data());
    m->Ack();
  }
  state.SetItemsProcessed(state.iterations());
  (void)consumer->Stop(std::chrono::steady_clock::now() + std::chrono::seconds(5));
  // Stop closed the channel; settle what is left in it, as a service's drain would.
  while (auto m = consumer->Messages().Pop()) m->Nack();
}
BENCHMARK(BM_ConsumeAndAckNoNetwork)->UseRealTime();

}  // namespace
}  // namespace dataflow::pubsub

BENCHMARK_MAIN();

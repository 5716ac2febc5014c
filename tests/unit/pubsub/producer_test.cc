// GooglePubsubProducer against a fake stub: batching, retries, ordering, shutdown.
#include "dataflow/pubsub/producer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <vector>

namespace dataflow::pubsub {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;

class FakeStub : public PubsubStub {
 public:
  // Publish fails with `fail_with` for the first `failures` calls.
  absl::StatusCode fail_with = absl::StatusCode::kUnavailable;
  std::atomic<int> failures{0};
  std::atomic<bool> fail_forever{false};

  absl::StatusOr<v1::PublishResponse> Publish(const v1::PublishRequest& request,
                                              milliseconds) override {
    {
      std::lock_guard lock(mu);
      ++calls;
      const auto& key = request.messages(0).ordering_key();
      if (!key.empty() && ++in_flight[key] > 1) overlapping = true;
    }
    absl::StatusOr<v1::PublishResponse> out;
    if (fail_forever || failures.fetch_sub(1) > 0) {
      out = absl::Status(fail_with, "injected");
    } else {
      v1::PublishResponse r;
      std::lock_guard lock(mu);
      batch_sizes.push_back(request.messages_size());
      for (const auto& m : request.messages()) {
        r.add_message_ids(std::to_string(next_id++));
        order.push_back(m.data());
      }
      out = r;
    }
    std::lock_guard lock(mu);
    const auto& key = request.messages(0).ordering_key();
    if (!key.empty()) --in_flight[key];
    return out;
  }
  absl::Status Acknowledge(const v1::AcknowledgeRequest&) override { return {}; }
  absl::Status ModifyAckDeadline(const v1::ModifyAckDeadlineRequest&) override { return {}; }
  std::unique_ptr<PullStream> StreamingPull() override { return nullptr; }
  absl::StatusOr<v1::Topic> CreateTopic(const v1::Topic& t) override { return t; }
  absl::Status DeleteTopic(const std::string&) override { return {}; }
  absl::StatusOr<v1::Subscription> CreateSubscription(const v1::Subscription& s) override {
    return s;
  }
  absl::StatusOr<v1::Subscription> GetSubscription(const std::string&) override {
    return v1::Subscription();
  }
  absl::Status DeleteSubscription(const std::string&) override { return {}; }

  std::mutex mu;
  int calls = 0;
  int next_id = 1;
  bool overlapping = false;
  std::map<std::string, int> in_flight;
  std::vector<int> batch_sizes;
  std::vector<std::string> order;
};

ProducerOptions Options() {
  return {.project_id = "p",
          .topic_id = "t",
          .backoff = {.initial = milliseconds(1), .maximum = milliseconds(5)}};
}

TEST(Producer, RejectsBadOptions) {
  auto stub = std::make_shared<FakeStub>();
  auto o = Options();
  o.max_batch_messages = 0;
  EXPECT_EQ(GooglePubsubProducer::Create(stub, o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o = Options();
  o.max_batch_bytes = 20'000'000;
  EXPECT_FALSE(GooglePubsubProducer::Create(stub, o).ok());
  EXPECT_FALSE(GooglePubsubProducer::Create(nullptr, Options()).ok());
  unsetenv("GOOGLE_CLOUD_PROJECT");
  o = Options();
  o.project_id = "";
  EXPECT_EQ(GooglePubsubProducer::Create(stub, o).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(Producer, BatchesByCountAndFlushesTheRest) {
  auto stub = std::make_shared<FakeStub>();
  auto o = Options();
  o.max_batch_delay = seconds(60);
  auto p = *GooglePubsubProducer::Create(stub, o);
  std::vector<std::future<GooglePubsubProducer::Result>> fs;
  for (int i = 0; i < 250; ++i) fs.push_back(p->PublishRaw("x"));
  ASSERT_TRUE(p->Flush(steady_clock::now() + seconds(10)).ok());
  std::set<std::string> ids;
  for (auto& f : fs) {
    auto r = f.get();
    ASSERT_TRUE(r.ok());
    ids.insert(*r);
  }
  EXPECT_EQ(ids.size(), 250u);
  std::lock_guard lock(stub->mu);
  std::multiset<int> sizes(stub->batch_sizes.begin(), stub->batch_sizes.end());
  EXPECT_EQ(sizes, (std::multiset<int>{50, 100, 100}));
}

TEST(Producer, BatchesByBytes) {
  auto stub = std::make_shared<FakeStub>();
  auto o = Options();
  o.max_batch_bytes = 10'000;
  o.max_batch_delay = seconds(60);
  auto p = *GooglePubsubProducer::Create(stub, o);
  std::vector<std::future<GooglePubsubProducer::Result>> fs;
  for (int i = 0; i < 10; ++i) fs.push_back(p->PublishRaw(std::string(3000, 'a')));
  ASSERT_TRUE(p->Flush(steady_clock::now() + seconds(10)).ok());
  for (auto& f : fs) ASSERT_TRUE(f.get().ok());
  std::lock_guard lock(stub->mu);
  for (int n : stub->batch_sizes) EXPECT_LE(n, 4);  // 4 x 3000+ bytes would exceed 10000
  EXPECT_GE(stub->batch_sizes.size(), 3u);
}

TEST(Producer, SendsAfterTheDelayWithoutAFlush) {
  auto stub = std::make_shared<FakeStub>();
  auto o = Options();
  o.max_batch_delay = milliseconds(10);
  auto p = *GooglePubsubProducer::Create(stub, o);
  auto f = p->PublishRaw("lonely");
  ASSERT_EQ(f.wait_for(seconds(10)), std::future_status::ready);
  EXPECT_TRUE(f.get().ok());
}

TEST(Producer, RetriesRetryableErrors) {
  auto stub = std::make_shared<FakeStub>();
  stub->failures = 3;
  auto p = *GooglePubsubProducer::Create(stub, Options());
  auto r = p->PublishRaw("x").get();
  EXPECT_TRUE(r.ok()) << r.status();
  std::lock_guard lock(stub->mu);
  EXPECT_EQ(stub->calls, 4);
}

TEST(Producer, PermanentErrorFailsAtOnce) {
  auto stub = std::make_shared<FakeStub>();
  stub->fail_with = absl::StatusCode::kPermissionDenied;
  stub->failures = 1;
  auto p = *GooglePubsubProducer::Create(stub, Options());
  auto r = p->PublishRaw("x").get();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied);
  std::lock_guard lock(stub->mu);
  EXPECT_EQ(stub->calls, 1);
}

TEST(Producer, OrderingKeyBatchesAreSequentialAndInOrder) {
  auto stub = std::make_shared<FakeStub>();
  auto o = Options();
  o.max_batch_messages = 3;
  auto p = *GooglePubsubProducer::Create(stub, o);
  std::vector<std::future<GooglePubsubProducer::Result>> fs;
  for (int i = 0; i < 60; ++i) fs.push_back(p->PublishRaw(std::to_string(i), {}, "k"));
  for (auto& f : fs) ASSERT_TRUE(f.get().ok());
  std::lock_guard lock(stub->mu);
  EXPECT_FALSE(stub->overlapping);
  ASSERT_EQ(stub->order.size(), 60u);
  for (int i = 0; i < 60; ++i) EXPECT_EQ(stub->order[i], std::to_string(i));
}

TEST(Producer, StopPastTheDeadlineFailsEveryPendingPublish) {
  auto stub = std::make_shared<FakeStub>();
  stub->fail_forever = true;
  auto o = Options();
  o.max_concurrent_batches = 1;
  o.max_batch_messages = 1;
  o.retry_timeout = seconds(3600);
  auto p = *GooglePubsubProducer::Create(stub, o);
  std::vector<std::future<GooglePubsubProducer::Result>> fs;
  for (int i = 0; i < 5; ++i) fs.push_back(p->PublishRaw("x"));
  auto s = p->Stop(steady_clock::now() + milliseconds(200));
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded);
  for (auto& f : fs) {
    ASSERT_EQ(f.wait_for(seconds(10)), std::future_status::ready);
    EXPECT_FALSE(f.get().ok());
  }
  EXPECT_EQ(p->PublishRaw("late").get().status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(Producer, RejectsOversizedMessagesAndMissingTopic) {
  auto stub = std::make_shared<FakeStub>();
  auto p = *GooglePubsubProducer::Create(stub, Options());
  EXPECT_EQ(p->PublishRaw(std::string(11'000'000, 'a')).get().status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(p->Publish("", OutgoingMessage{.payload = "x"}).get().status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(DeadLetterSink, PublishesPayloadWithDeadLetterAttributes) {
  auto stub = std::make_shared<FakeStub>();
  std::shared_ptr<GooglePubsubProducer> p = *GooglePubsubProducer::Create(stub, Options());
  PubsubDeadLetterSink sink(p, "dead");
  messagepipeline::Message m(messagepipeline::MessageData{.id = "1", .payload = "poison"},
                             {{"a", "b"}});
  EXPECT_TRUE(sink.Send(m, absl::InvalidArgumentError("bad json"), "enrichment").ok());
  std::lock_guard lock(stub->mu);
  ASSERT_EQ(stub->order.size(), 1u);
  EXPECT_EQ(stub->order[0], "poison");
}

}  // namespace
}  // namespace dataflow::pubsub

// The Pub/Sub clients against Google's Pub/Sub emulator, started once for this binary.
#include "dataflow_testing/pubsub_emulator.h"

#include <absl/strings/escaping.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_split.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "dataflow/messagepipeline/dead_letter.h"
#include "dataflow/messagepipeline/errors.h"
#include "dataflow/messagepipeline/logging.h"
#include "dataflow/messagepipeline/streaming_service.h"
#include "dataflow/pubsub/admin.h"
#include "dataflow/pubsub/consumer.h"
#include "dataflow/pubsub/producer.h"

namespace dataflow::pubsub {
namespace {

using messagepipeline::Message;
using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;

constexpr char kProject[] = "dataflow-test";
testing::PubsubEmulator* g_emulator = nullptr;

class EmulatorEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    if (testing::FindPubsubEmulator().empty()) return;  // tests skip with the reason
    auto e = testing::PubsubEmulator::Start();
    ASSERT_TRUE(e.ok()) << e.status();
    emulator_ = *std::move(e);
    g_emulator = emulator_.get();
    setenv("PUBSUB_EMULATOR_HOST", g_emulator->host().c_str(), 1);
    setenv("GOOGLE_CLOUD_PROJECT", kProject, 1);
  }
  void TearDown() override {
    g_emulator = nullptr;
    emulator_.reset();
  }

 private:
  std::unique_ptr<testing::PubsubEmulator> emulator_;
};
const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new EmulatorEnvironment);

// Pops one message or nothing within `timeout`.
std::optional<Message> PopFor(messagepipeline::BoundedQueue<Message>& q, milliseconds timeout) {
  std::vector<Message> out;
  q.PopBatchUntil(out, 1, steady_clock::now() + timeout);
  if (out.empty()) return std::nullopt;
  return std::move(out.front());
}

class PubsubEmulatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (g_emulator == nullptr) GTEST_SKIP() << testing::PubsubEmulatorMissingReason();
    auto stub = MakePubsubStub();
    ASSERT_TRUE(stub.ok()) << stub.status();
    stub_ = *stub;
    static std::atomic<int> counter{0};
    id_ = std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "-" +
          std::to_string(counter++);
    ASSERT_TRUE(CreateResources().ok());
  }
  absl::Status CreateResources() {
    if (auto s = CreateTopic(*stub_, kProject, topic()); !s.ok()) return s;
    return CreateSubscription(*stub_, kProject, sub(), topic(), {.ack_deadline = seconds(10)});
  }
  std::string topic() const { return "t-" + id_; }
  std::string sub() const { return "s-" + id_; }

  std::unique_ptr<GooglePubsubProducer> Producer(ProducerOptions o = {}) {
    o.topic_id = topic();
    auto p = GooglePubsubProducer::Create(stub_, o);
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? *std::move(p) : nullptr;
  }
  std::unique_ptr<GooglePubsubConsumer> Consumer(ConsumerOptions o = {}) {
    if (o.subscription_id.empty()) o.subscription_id = sub();
    auto c = GooglePubsubConsumer::Create(stub_, o);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *std::move(c) : nullptr;
  }
  void PublishRaw(const std::vector<std::string>& payloads) {
    auto p = Producer();
    std::vector<std::future<GooglePubsubProducer::Result>> fs;
    for (const auto& s : payloads) fs.push_back(p->PublishRaw(s));
    for (auto& f : fs) ASSERT_TRUE(f.get().ok());
  }

  std::shared_ptr<PubsubStub> stub_;
  std::string id_;
};

TEST_F(PubsubEmulatorTest, RoundTripWithAttributesAndEnvelope) {
  auto producer = Producer();
  messagepipeline::MessageData data{.id = "original-id", .payload = std::string("he\0llo", 6)};
  auto id = producer->Publish(data, {{"device", "d1"}, {"kind", "reading"}}).get();
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_FALSE(id->empty());

  auto consumer = Consumer();
  ASSERT_TRUE(consumer->Start().ok());
  auto m = PopFor(consumer->Messages(), seconds(20));
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->data.id, *id);  // the server's id
  EXPECT_EQ(m->attributes.at("device"), "d1");
  EXPECT_EQ(m->attributes.at("kind"), "reading");
  EXPECT_GT(m->data.publish_time.time_since_epoch().count(), 0);
  auto decoded = messagepipeline::DecodeMessageData(m->data.payload);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->id, "original-id");
  EXPECT_EQ(decoded->payload, std::string("he\0llo", 6));
  m->Ack();
  EXPECT_TRUE(consumer->Stop(steady_clock::now() + seconds(5)).ok());
}

TEST_F(PubsubEmulatorTest, NackIsRedelivered) {
  PublishRaw({"again"});
  auto consumer = Consumer({.ack_deadline = seconds(60)});
  ASSERT_TRUE(consumer->Start().ok());
  auto first = PopFor(consumer->Messages(), seconds(20));
  ASSERT_TRUE(first.has_value());
  std::string id = first->data.id;
  first->Nack();
  // The consumer's deadline is 60 s, so only the nack can bring it back this soon.
  auto second = PopFor(consumer->Messages(), seconds(20));
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->data.id, id);
  EXPECT_EQ(second->data.payload, "again");
  second->Ack();
}

TEST_F(PubsubEmulatorTest, AckedIsNotRedeliveredAfterTheDeadline) {
  PublishRaw({"once"});
  auto consumer = Consumer({.ack_deadline = seconds(10)});
  ASSERT_TRUE(consumer->Start().ok());
  auto m = PopFor(consumer->Messages(), seconds(20));
  ASSERT_TRUE(m.has_value());
  m->Ack();
  // Past the 10 s deadline an unacked message would be back.
  EXPECT_FALSE(PopFor(consumer->Messages(), seconds(13)).has_value());
  EXPECT_GE(consumer->stats().acks_sent, 1u);
}

TEST_F(PubsubEmulatorTest, LeaseExtensionKeepsASlowMessage) {
  PublishRaw({"slow"});
  auto consumer = Consumer({.ack_deadline = seconds(10)});
  ASSERT_TRUE(consumer->Start().ok());
  auto m = PopFor(consumer->Messages(), seconds(20));
  ASSERT_TRUE(m.has_value());
  // Held unsettled for longer than the deadline: extensions must keep it leased.
  EXPECT_FALSE(PopFor(consumer->Messages(), seconds(13)).has_value());
  EXPECT_GE(consumer->stats().extensions_sent, 1u);
  m->Ack();
}

// Forwards to the real stub and records what the server accepted: the acked ids and the
// nacks (deadline-0 modacks).
class RecordingStub : public PubsubStub {
 public:
  explicit RecordingStub(std::shared_ptr<PubsubStub> inner) : inner_(std::move(inner)) {}
  absl::StatusOr<v1::PublishResponse> Publish(const v1::PublishRequest& r,
                                              milliseconds t) override {
    return inner_->Publish(r, t);
  }
  absl::Status Acknowledge(const v1::AcknowledgeRequest& r) override {
    absl::Status s = inner_->Acknowledge(r);
    if (s.ok()) {
      std::lock_guard lock(mu_);
      acked_ids_.insert(acked_ids_.end(), r.ack_ids().begin(), r.ack_ids().end());
    }
    return s;
  }
  absl::Status ModifyAckDeadline(const v1::ModifyAckDeadlineRequest& r) override {
    absl::Status s = inner_->ModifyAckDeadline(r);
    if (s.ok() && r.ack_deadline_seconds() == 0) nacked_ += r.ack_ids_size();
    return s;
  }
  std::unique_ptr<PullStream> StreamingPull(std::chrono::milliseconds timeout) override {
    return inner_->StreamingPull(timeout);
  }
  absl::StatusOr<v1::Topic> CreateTopic(const v1::Topic& t) override {
    return inner_->CreateTopic(t);
  }
  absl::Status DeleteTopic(const std::string& t) override { return inner_->DeleteTopic(t); }
  absl::StatusOr<v1::Subscription> CreateSubscription(const v1::Subscription& s) override {
    return inner_->CreateSubscription(s);
  }
  absl::StatusOr<v1::Subscription> GetSubscription(const std::string& n) override {
    return inner_->GetSubscription(n);
  }
  absl::Status DeleteSubscription(const std::string& n) override {
    return inner_->DeleteSubscription(n);
  }
  std::vector<std::string> acked_ids() {
    std::lock_guard lock(mu_);
    return acked_ids_;
  }
  std::atomic<int> nacked_{0};

 private:
  std::shared_ptr<PubsubStub> inner_;
  std::mutex mu_;
  std::vector<std::string> acked_ids_;
};

TEST_F(PubsubEmulatorTest, StopNacksMessagesNotHandedOverAndTheyComeBackPromptly) {
  PublishRaw({"a", "b", "c", "d", "e"});
  auto recording = std::make_shared<RecordingStub>(stub_);
  // The longest deadline Pub/Sub allows: within this test only a nack brings a message back.
  auto c = GooglePubsubConsumer::Create(
      recording, {.subscription_id = sub(), .channel_capacity = 1, .ack_deadline = seconds(600)});
  ASSERT_TRUE(c.ok());
  auto consumer = *std::move(c);
  ASSERT_TRUE(consumer->Start().ok());
  ASSERT_TRUE(
      ::dataflow::testing::WaitFor([&] { return consumer->stats().received >= 5; }, seconds(20)));
  // The pipeline takes one and acks it before Stop; the reader then fills the channel (one
  // slot) with the next and holds the other three.
  std::set<std::string> acked;
  auto first = PopFor(consumer->Messages(), seconds(20));
  ASSERT_TRUE(first.has_value());
  acked.insert(first->data.payload);
  first->Ack();
  ASSERT_TRUE(
      ::dataflow::testing::WaitFor([&] { return consumer->Messages().size() == 1; }, seconds(20)));
  ASSERT_TRUE(consumer->Stop(steady_clock::now() + seconds(10)).ok());
  EXPECT_TRUE(consumer->Messages().closed());
  // The one in the closed channel is drained and acked after Stop, as a pipeline would.
  auto drained = PopFor(consumer->Messages(), milliseconds(0));
  ASSERT_TRUE(drained.has_value());
  acked.insert(drained->data.payload);
  drained->Ack();
  EXPECT_FALSE(PopFor(consumer->Messages(), milliseconds(0)).has_value());
  ASSERT_TRUE(::dataflow::testing::WaitFor([&] { return recording->acked_ids().size() >= 2; },
                                           seconds(10)));
  EXPECT_GE(recording->nacked_.load(), 3);
  // Were an ack not applied, nacking its id now would bring that message straight back.
  v1::ModifyAckDeadlineRequest renack;
  renack.set_subscription(SubscriptionName(kProject, sub()));
  for (const auto& id : recording->acked_ids()) renack.add_ack_ids(id);
  (void)stub_->ModifyAckDeadline(renack);

  // A new consumer gets exactly the three nacked messages, long before the 600 s deadline.
  auto next = Consumer({.ack_deadline = seconds(60)});
  ASSERT_TRUE(next->Start().ok());
  std::set<std::string> back;
  std::vector<Message> held;
  while (back.size() < 3) {
    auto m = PopFor(next->Messages(), seconds(20));
    ASSERT_TRUE(m.has_value()) << "redelivered so far: " << back.size();
    EXPECT_FALSE(acked.contains(m->data.payload)) << m->data.payload << " was acked";
    back.insert(m->data.payload);
    held.push_back(*std::move(m));
  }
  std::set<std::string> all{"a", "b", "c", "d", "e"};
  for (const auto& p : acked) all.erase(p);
  EXPECT_EQ(back, all);
  // Nothing else is outstanding on the subscription: no acked message comes back.
  EXPECT_FALSE(PopFor(next->Messages(), seconds(1)).has_value());
  for (auto& m : held) m.Ack();
}

TEST_F(PubsubEmulatorTest, ProducerBatchesAndFlushes) {
  auto producer = Producer({.max_batch_messages = 10, .max_batch_delay = seconds(30)});
  std::vector<std::future<GooglePubsubProducer::Result>> fs;
  for (int i = 0; i < 25; ++i) fs.push_back(producer->PublishRaw("m" + std::to_string(i)));
  // Two full batches go at once; the last five wait for the 30 s delay or a flush.
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(fs[i].get().ok());
  EXPECT_EQ(fs[24].wait_for(milliseconds(200)), std::future_status::timeout);
  ASSERT_TRUE(producer->Flush(steady_clock::now() + seconds(20)).ok());
  std::set<std::string> server_ids;
  for (int i = 20; i < 25; ++i) {
    ASSERT_EQ(fs[i].wait_for(milliseconds(0)), std::future_status::ready);
    auto r = fs[i].get();
    ASSERT_TRUE(r.ok());
    server_ids.insert(*r);
  }
  EXPECT_EQ(server_ids.size(), 5u);
  ASSERT_TRUE(producer->Stop(steady_clock::now() + seconds(5)).ok());
  EXPECT_EQ(producer->PublishRaw("late").get().status().code(),
            absl::StatusCode::kFailedPrecondition);

  auto consumer = Consumer();
  ASSERT_TRUE(consumer->Start().ok());
  std::set<std::string> got;
  while (got.size() < 25) {
    auto m = PopFor(consumer->Messages(), seconds(20));
    ASSERT_TRUE(m.has_value()) << got.size();
    got.insert(m->data.payload);
    m->Ack();
  }
}

TEST_F(PubsubEmulatorTest, MissingSubscriptionIsAClearError) {
  auto consumer = Consumer({.subscription_id = "does-not-exist"});
  absl::Status s = consumer->Start();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  EXPECT_NE(s.message().find("projects/dataflow-test/subscriptions/does-not-exist"),
            std::string::npos)
      << s;
  auto done = consumer->Done();
  ASSERT_EQ(done.wait_for(seconds(5)), std::future_status::ready);
  EXPECT_EQ(done.get().code(), absl::StatusCode::kNotFound);
}

TEST_F(PubsubEmulatorTest, StreamingServiceProcessesEachMessageOnce) {
  constexpr int kN = 300;
  std::vector<std::string> payloads;
  for (int i = 0; i < kN; ++i) payloads.push_back("p" + std::to_string(i));
  PublishRaw(payloads);

  std::shared_ptr<GooglePubsubConsumer> consumer = Consumer({.ack_deadline = seconds(60)});
  std::mutex mu;
  std::map<std::string, int> seen;
  auto service = messagepipeline::StreamingService<std::string>::Create(
      {.common = {.name = "it"}}, consumer,
      [](const Message& m) -> absl::StatusOr<std::optional<std::string>> {
        return std::optional<std::string>(m.data.payload);
      },
      [&](Message&, std::string& payload) {
        std::lock_guard lock(mu);
        ++seen[payload];
        return absl::OkStatus();
      });
  ASSERT_TRUE(service.ok()) << service.status();
  ASSERT_TRUE((*service)->Start().ok());
  ASSERT_TRUE(::dataflow::testing::WaitFor(
      [&] {
        std::lock_guard lock(mu);
        return seen.size() == kN;
      },
      seconds(60)));
  ASSERT_TRUE((*service)->Stop(seconds(10)).ok());
  for (const auto& [payload, count] : seen) EXPECT_EQ(count, 1) << payload;
  // Every message was acked to the server (acks go out in batches, shortly after).
  EXPECT_TRUE(::dataflow::testing::WaitFor(
      [&] { return consumer->stats().acks_sent >= static_cast<std::size_t>(kN); }, seconds(10)));
  EXPECT_EQ(consumer->stats().nacks_sent, 0u);
}

// Stores what it is given (Send is called from the service's workers).
class RecordingDeadLetters : public messagepipeline::DeadLetterSink {
 public:
  absl::Status Send(const Message& message, const absl::Status& reason, std::string_view) override {
    std::lock_guard lock(mu);
    payloads.push_back(message.data.payload);
    attempts.push_back(message.delivery_attempt);
    reasons.push_back(reason);
    return absl::OkStatus();
  }
  std::mutex mu;
  std::vector<std::string> payloads;
  std::vector<int> attempts;
  std::vector<absl::Status> reasons;
};

// A subscription without a dead-letter policy, where the server reports no delivery attempt:
// the consumer counts them, so a message that always fails with a transient error is
// dead-lettered once it has been tried max_delivery_attempts times instead of looping.
TEST_F(PubsubEmulatorTest, AlwaysFailingMessageIsDeadLetteredAfterMaxDeliveryAttempts) {
  PublishRaw({"poison"});
  std::shared_ptr<GooglePubsubConsumer> consumer = Consumer({.ack_deadline = seconds(10)});
  auto dead = std::make_shared<RecordingDeadLetters>();
  std::mutex mu;
  std::vector<int> tried;  // delivery_attempt of each processing
  auto service = messagepipeline::StreamingService<std::string>::Create(
      {.common = {.name = "poison", .dead_letter = dead, .max_delivery_attempts = 3}}, consumer,
      [](const Message& m) -> absl::StatusOr<std::optional<std::string>> {
        return std::optional<std::string>(m.data.payload);
      },
      [&](Message& m, std::string&) {
        std::lock_guard lock(mu);
        tried.push_back(m.delivery_attempt);
        return absl::UnavailableError("the sink is down");  // transient: nacked
      });
  ASSERT_TRUE(service.ok()) << service.status();
  ASSERT_TRUE((*service)->Start().ok());
  ASSERT_TRUE(::dataflow::testing::WaitFor(
      [&] {
        std::lock_guard lock(dead->mu);
        return !dead->payloads.empty();
      },
      seconds(60)));
  // Acked once dead-lettered: it must not come back.
  EXPECT_TRUE(
      ::dataflow::testing::WaitFor([&] { return consumer->stats().acks_sent == 1; }, seconds(10)));
  ASSERT_TRUE((*service)->Stop(seconds(10)).ok());
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(tried, (std::vector<int>{1, 2, 3}));
  }
  std::lock_guard lock(dead->mu);
  EXPECT_EQ(dead->payloads, std::vector<std::string>{"poison"});
  EXPECT_EQ(dead->attempts, std::vector<int>{4});
  EXPECT_EQ(consumer->stats().delivery_counts, 0u);
}

// The emulator ends a stream at its gRPC deadline; the consumer opens the next one at once
// and the messages it received on the ended stream are still acked (by Acknowledge), so
// nothing comes back and nothing is lost across several renewals.
TEST_F(PubsubEmulatorTest, KeepsReceivingAcrossStreamRenewalsEveryMessageOnce) {
  auto sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(1000);
  Log()->sinks().push_back(sink);
  auto consumer = Consumer({.ack_deadline = seconds(10), .max_stream_duration = seconds(2)});
  ASSERT_TRUE(consumer->Start().ok());
  auto producer = Producer();
  std::map<std::string, int> seen;
  constexpr int kRounds = 4, kPerRound = 5;
  for (int r = 0; r < kRounds; ++r) {
    std::vector<std::future<GooglePubsubProducer::Result>> fs;
    for (int i = 0; i < kPerRound; ++i) {
      fs.push_back(producer->PublishRaw(absl::StrCat("r", r, "-", i)));
    }
    for (auto& f : fs) ASSERT_TRUE(f.get().ok());
    std::vector<Message> held;
    while (held.size() < kPerRound) {
      auto m = PopFor(consumer->Messages(), seconds(20));
      ASSERT_TRUE(m.has_value()) << "round " << r << " renewals "
                                 << consumer->stats().stream_renewals;
      ++seen[m->data.payload];
      held.push_back(std::move(*m));
    }
    // Ack them only after the stream they came on has ended.
    const auto renewals = consumer->stats().stream_renewals;
    ASSERT_TRUE(::dataflow::testing::WaitFor(
        [&] { return consumer->stats().stream_renewals > renewals; }, seconds(10)));
    for (auto& m : held) m.Ack();
  }
  // An ack the server dropped would bring its message back after the 10 s lease.
  if (auto m = PopFor(consumer->Messages(), seconds(12)); m.has_value()) {
    ++seen[m->data.payload];
  }
  EXPECT_TRUE(consumer->Stop(steady_clock::now() + seconds(5)).ok());
  auto& sinks = Log()->sinks();
  sinks.erase(std::remove(sinks.begin(), sinks.end(), sink), sinks.end());
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(kRounds * kPerRound));
  for (const auto& [payload, count] : seen) EXPECT_EQ(count, 1) << payload;
  const auto stats = consumer->stats();
  EXPECT_GE(stats.stream_renewals, static_cast<std::size_t>(kRounds));
  EXPECT_EQ(stats.reconnects, 0u);
  EXPECT_EQ(stats.nacks_sent, 0u);
  for (const auto& line : sink->last_formatted()) {
    EXPECT_EQ(line.find("pubsub stream ended"), std::string::npos) << line;
  }
}

// Publish rejects a request with INVALID_ARGUMENT for one bad message in it: that message
// fails for good (services dead-letter it), the others in its batch go through. The
// emulator does not enforce the 1024-byte attribute value limit (the unit test covers that
// with the fake stub) but rejects an empty message (no data, no attributes), as Pub/Sub does.
TEST_F(PubsubEmulatorTest, InvalidArgumentFromPublishIsPermanentForTheBadMessageOnly) {
  auto producer = Producer({.max_batch_delay = seconds(60)});
  auto good = producer->PublishRaw("good");
  auto bad = producer->PublishRaw("");
  ASSERT_TRUE(producer->Flush(steady_clock::now() + seconds(20)).ok());
  auto r = bad.get();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  EXPECT_TRUE(messagepipeline::IsPermanent(r.status())) << r.status();
  EXPECT_TRUE(good.get().ok());
  auto consumer = Consumer();
  ASSERT_TRUE(consumer->Start().ok());
  auto m = PopFor(consumer->Messages(), seconds(20));
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->data.payload, "good");
  m->Ack();
}

TEST_F(PubsubEmulatorTest, ReconnectsAfterTheEmulatorRestarts) {
  // The restarted emulator has no state, and a NOT_FOUND subscription rightly stops the
  // consumer: the backoff must outlast the restart plus the recreation below, even on a
  // loaded machine (2 s did not, in CI). Jitter makes the first attempt 8-16 s away.
  auto consumer = Consumer(
      {.reconnect_backoff = {.initial = seconds(16), .maximum = seconds(16), .multiplier = 1.0}});
  ASSERT_TRUE(consumer->Start().ok());
  PublishRaw({"before"});
  auto m = PopFor(consumer->Messages(), seconds(20));
  ASSERT_TRUE(m.has_value());
  m->Ack();
  ASSERT_TRUE(
      ::dataflow::testing::WaitFor([&] { return consumer->stats().acks_sent >= 1; }, seconds(10)));

  g_emulator->process().Kill();
  ASSERT_TRUE(::dataflow::testing::WaitFor([&] { return !consumer->IsConnected(); }, seconds(20)));
  ASSERT_TRUE(g_emulator->process().Restart().ok());
  // The emulator keeps no state; recreate before the consumer's next attempt (8-16 s away),
  // on a fresh channel (the old one may still be in its reconnect backoff).
  auto fresh = MakePubsubStub({.channel_id = 1});
  ASSERT_TRUE(fresh.ok());
  stub_ = *fresh;
  ASSERT_TRUE(CreateResources().ok());
  PublishRaw({"after-1", "after-2"});
  std::set<std::string> got;
  while (got.size() < 2) {
    auto n = PopFor(consumer->Messages(), seconds(30));
    ASSERT_TRUE(n.has_value()) << "reconnects=" << consumer->stats().reconnects;
    got.insert(n->data.payload);
    n->Ack();
  }
  EXPECT_EQ(got, (std::set<std::string>{"after-1", "after-2"}));
  EXPECT_GE(consumer->stats().reconnects, 1u);
  EXPECT_EQ(consumer->Done().wait_for(milliseconds(0)), std::future_status::timeout);
}

// Runs the Node.js cross-check script; its stdout, or nullopt if it failed.
std::optional<std::string> RunNode(const std::string& args) {
  std::string node = ::dataflow::testing::FindExecutable("node");
  if (node.empty()) return std::nullopt;
  std::string cmd =
      "METADATA_SERVER_DETECTION=none " + node + " " DATAFLOW_NODE_CROSSCHECK " " + args;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return std::nullopt;
  std::string out;
  std::array<char, 4096> buf{};
  while (std::size_t n = fread(buf.data(), 1, buf.size(), p)) out.append(buf.data(), n);
  if (pclose(p) != 0) return std::nullopt;
  return out;
}

TEST_F(PubsubEmulatorTest, OfficialNodeClientReadsWhatWePublishAndViceVersa) {
  if (::dataflow::testing::FindExecutable("node").empty()) GTEST_SKIP() << "node not found";
  constexpr int kN = 20;
  auto producer = Producer();
  std::map<std::string, std::string> sent;  // server id -> payload
  for (int i = 0; i < kN; ++i) {
    std::string payload = "cpp-" + std::to_string(i) + std::string("\0\xff", 2);
    auto id = producer->PublishRaw(payload, {{"from", "cpp"}}).get();
    ASSERT_TRUE(id.ok());
    sent[*id] = payload;
  }
  auto out = RunNode(absl::StrCat("read ", kProject, " ", sub(), " ", kN));
  ASSERT_TRUE(out.has_value()) << "node read failed";
  std::map<std::string, std::string> read;
  for (absl::string_view line : absl::StrSplit(*out, '\n', absl::SkipEmpty())) {
    auto j = nlohmann::json::parse(std::string(line));
    std::string data;
    ASSERT_TRUE(absl::Base64Unescape(j.at("data").get<std::string>(), &data));
    EXPECT_EQ(j.at("attributes").at("from"), "cpp");
    read[j.at("id").get<std::string>()] = data;
  }
  EXPECT_EQ(read, sent);

  auto ids = RunNode(absl::StrCat("publish ", kProject, " ", topic(), " ", kN));
  ASSERT_TRUE(ids.has_value()) << "node publish failed";
  auto consumer = Consumer();
  ASSERT_TRUE(consumer->Start().ok());
  std::set<std::string> got;
  while (got.size() < static_cast<std::size_t>(kN)) {
    auto m = PopFor(consumer->Messages(), seconds(20));
    ASSERT_TRUE(m.has_value()) << got.size();
    EXPECT_EQ(m->attributes.at("from"), "node");
    EXPECT_EQ(m->data.payload, "node-" + m->attributes.at("index"));
    EXPECT_NE(ids->find(m->data.id), std::string::npos);
    got.insert(m->data.payload);
    m->Ack();
  }
}

TEST_F(PubsubEmulatorTest, FlowControlCapsOutstandingMessages) {
  std::vector<std::string> payloads;
  for (int i = 0; i < 30; ++i) payloads.push_back("f" + std::to_string(i));
  PublishRaw(payloads);
  auto consumer = Consumer({.max_outstanding_messages = 5, .ack_deadline = seconds(60)});
  ASSERT_TRUE(consumer->Start().ok());
  std::vector<Message> held;
  for (int i = 0; i < 5; ++i) {
    auto m = PopFor(consumer->Messages(), seconds(20));
    ASSERT_TRUE(m.has_value());
    held.push_back(*std::move(m));
  }
  // Nothing acked: the server may not send more than 5 while these are outstanding.
  EXPECT_FALSE(PopFor(consumer->Messages(), seconds(2)).has_value());
  for (auto& m : held) m.Ack();
  std::set<std::string> got;
  for (auto& m : held) got.insert(m.data.payload);
  while (got.size() < 30) {
    auto m = PopFor(consumer->Messages(), seconds(20));
    ASSERT_TRUE(m.has_value()) << got.size();
    got.insert(m->data.payload);
    m->Ack();
  }
}

TEST_F(PubsubEmulatorTest, FlowControlCapsOutstandingBytes) {
  constexpr int kN = 20;
  constexpr std::size_t kPayload = 1000;
  constexpr std::size_t kCap = 4 * kPayload;  // about three messages with their metadata
  std::vector<std::string> payloads;
  for (int i = 0; i < kN; ++i) {
    std::string p = "b" + std::to_string(i);
    p.resize(kPayload, '.');
    payloads.push_back(p);
  }
  PublishRaw(payloads);
  auto consumer = Consumer({.max_outstanding_bytes = kCap, .ack_deadline = seconds(60)});
  ASSERT_TRUE(consumer->Start().ok());
  auto& q = consumer->Messages();
  std::vector<Message> held;  // popped, not yet acked: outstanding in the pipeline
  std::set<std::string> got;
  int acked = 0;
  std::size_t most_held = 0;
  bool capped = false;
  while (acked < kN) {
    // Until the reader waits for room, or has handed over all it received.
    ASSERT_TRUE(::dataflow::testing::WaitFor(
        [&] {
          auto st = consumer->stats();
          return st.streams_waiting_for_flow_control > 0 ||
                 st.received == st.outstanding_messages + static_cast<std::size_t>(acked);
        },
        seconds(20)));
    capped = capped || consumer->stats().streams_waiting_for_flow_control > 0;
    while (auto m = PopFor(q, milliseconds(0))) held.push_back(*std::move(m));
    if (held.empty()) {
      auto m = PopFor(q, seconds(20));
      ASSERT_TRUE(m.has_value()) << "acked " << acked;
      held.push_back(*std::move(m));
    }
    const auto st = consumer->stats();
    EXPECT_LE(st.outstanding_bytes, kCap);
    const std::size_t held_bytes =
        std::accumulate(held.begin(), held.end(), std::size_t{0},
                        [](std::size_t n, const Message& m) { return n + m.data.payload.size(); });
    EXPECT_LE(held_bytes, kCap) << held.size() << " messages held";
    most_held = std::max(most_held, held.size());
    got.insert(held.front().data.payload);
    held.front().Ack();
    held.erase(held.begin());
    ++acked;
  }
  EXPECT_EQ(got.size(), static_cast<std::size_t>(kN));
  // The emulator sends more than the cap (it ignores the stream's limits): the client held
  // the rest back.
  EXPECT_TRUE(capped);
  EXPECT_GE(most_held, 2u);
  EXPECT_LT(most_held, static_cast<std::size_t>(kN));
}

TEST_F(PubsubEmulatorTest, SimplePublisherDeliversAndCountsFailuresWithoutThrowing) {
  auto publisher = GoogleSimplePublisher::Create(stub_, {.topic_id = topic()});
  ASSERT_TRUE(publisher.ok()) << publisher.status();
  for (int i = 0; i < 5; ++i) (*publisher)->Publish("s" + std::to_string(i), {{"i", "x"}});
  ASSERT_TRUE((*publisher)->Stop(steady_clock::now() + seconds(20)).ok());
  EXPECT_EQ((*publisher)->failures(), 0u);
  auto consumer = Consumer();
  ASSERT_TRUE(consumer->Start().ok());
  std::set<std::string> got;
  while (got.size() < 5) {
    auto m = PopFor(consumer->Messages(), seconds(20));
    ASSERT_TRUE(m.has_value()) << got.size();
    EXPECT_EQ(m->attributes.at("i"), "x");
    got.insert(m->data.payload);
    m->Ack();
  }
  EXPECT_EQ(got, (std::set<std::string>{"s0", "s1", "s2", "s3", "s4"}));

  // A topic that does not exist: NOT_FOUND from the server, counted and logged.
  auto log = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(64);
  Log()->sinks().push_back(log);
  const std::string missing = "missing-" + id_;
  auto failing = GoogleSimplePublisher::Create(stub_, {.topic_id = missing});
  ASSERT_TRUE(failing.ok());
  EXPECT_NO_THROW((*failing)->Publish("lost"));
  (void)(*failing)->Stop(steady_clock::now() + seconds(20));
  Log()->sinks().pop_back();
  EXPECT_EQ((*failing)->failures(), 1u);
  bool logged = false;
  for (const auto& line : log->last_formatted()) {
    logged = logged || (line.find("fire-and-forget publish failed") != std::string::npos &&
                        line.find(missing) != std::string::npos);
  }
  EXPECT_TRUE(logged);
}

}  // namespace
}  // namespace dataflow::pubsub

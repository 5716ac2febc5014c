// ServiceGroup: start order (sinks first), stop order (upstream first), the drain of an
// in-process input before its reader stops, and what a stop reports.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>

#include "dataflow/messagepipeline/in_process_broker.h"
#include "dataflow/messagepipeline/service.h"
#include "dataflow/messagepipeline/streaming_service.h"
#include "scripted_consumer.h"

namespace dataflow::messagepipeline {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

// Records Start/Stop/FlushPromptly calls into a log shared by the test's services.
class RecordingService final : public Service {
 public:
  RecordingService(std::string name, std::vector<std::string>* log, std::mutex* mu,
                   absl::Status start_result = absl::OkStatus())
      : name_(std::move(name)), log_(log), mu_(mu), start_result_(std::move(start_result)) {}
  absl::Status Start() override {
    Record("start " + name_);
    return start_result_;
  }
  absl::Status Stop(Deadline) override {
    Record("stop " + name_);
    return absl::OkStatus();
  }
  ServiceMetrics metrics() const override { return {}; }
  void FlushPromptly() override { Record("flush " + name_); }

 private:
  void Record(std::string entry) {
    std::lock_guard lock(*mu_);
    log_->push_back(std::move(entry));
  }
  std::string name_;
  std::vector<std::string>* log_;
  std::mutex* mu_;
  absl::Status start_result_;
};

TEST(ServiceGroupTest, StartsSinksFirstAndStopsUpstreamFirst) {
  std::vector<std::string> log;
  std::mutex mu;
  ServiceGroup group;
  for (const char* name : {"ingest", "enrich", "store"}) {
    group.Add({.name = name,
               .kind = "test",
               .service = std::make_shared<RecordingService>(name, &log, &mu),
               .close_after_stop = {[&log, &mu, name = std::string(name)](Deadline) {
                 std::lock_guard lock(mu);
                 log.push_back("close " + name);
                 return absl::OkStatus();
               }}});
  }
  ASSERT_TRUE(group.Start().ok());
  ASSERT_TRUE(group.Stop(Clock::now() + std::chrono::seconds(5)).ok());
  EXPECT_THAT(log, ElementsAre("start store", "start enrich", "start ingest", "flush ingest",
                               "flush enrich", "flush store", "stop ingest", "close ingest",
                               "stop enrich", "close enrich", "stop store", "close store"));
  // Stopping again does nothing.
  EXPECT_TRUE(group.Stop(Clock::now()).ok());
  EXPECT_EQ(log.size(), 12u);
}

TEST(ServiceGroupTest, AFailedStartStopsOnlyWhatStartedAndNamesTheService) {
  std::vector<std::string> log;
  std::mutex mu;
  ServiceGroup group;
  group.Add({.name = "ingest", .service = std::make_shared<RecordingService>("ingest", &log, &mu)});
  group.Add({.name = "enrich",
             .service = std::make_shared<RecordingService>("enrich", &log, &mu,
                                                           absl::UnavailableError("no cache"))});
  group.Add({.name = "store", .service = std::make_shared<RecordingService>("store", &log, &mu)});
  const absl::Status started = group.Start();
  EXPECT_EQ(started.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(started.message(), "enrich: no cache");
  EXPECT_THAT(log, ElementsAre("start store", "start enrich", "flush store", "stop store"));
}

TEST(ServiceGroupTest, FailureNamesTheConsumerThatEnded) {
  auto running = std::make_shared<testing::ScriptedConsumer>();
  auto ended = std::make_shared<testing::ScriptedConsumer>();
  std::vector<std::string> log;
  std::mutex mu;
  ServiceGroup group;
  group.Add({.name = "a",
             .service = std::make_shared<RecordingService>("a", &log, &mu),
             .consumer = running});
  group.Add({.name = "b",
             .service = std::make_shared<RecordingService>("b", &log, &mu),
             .consumer = ended});
  ASSERT_TRUE(group.Start().ok());
  EXPECT_TRUE(group.Failure().ok());
  ASSERT_TRUE(ended->Stop(Clock::now()).ok());  // ends by itself, as far as the group knows
  const absl::Status failure = group.Failure();
  EXPECT_EQ(failure.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(failure.message(), "b: its consumer ended");
}

// A reader of an in-process topic, gated: each message waits until the test opens the gate.
struct GatedReader {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  std::atomic<int> processed{0};
  std::shared_ptr<StreamingService<std::string>> service;

  GatedReader(const std::shared_ptr<InProcessBroker>& broker, const std::string& subscription) {
    auto consumer = broker->NewConsumer(subscription, {.channel_capacity = 2});
    EXPECT_TRUE(consumer.ok()) << consumer.status();
    auto created = StreamingService<std::string>::Create(
        {.common = {.name = "reader", .num_workers = 1}}, *consumer,
        [](const Message& m) -> TransformResult<std::string> { return m.data.payload; },
        [this](Message&, std::string&) {
          std::unique_lock lock(mu);
          cv.wait(lock, [this] { return open; });
          processed.fetch_add(1);
          return absl::OkStatus();
        });
    EXPECT_TRUE(created.ok()) << created.status();
    service = *std::move(created);
  }
  void Open() {
    std::lock_guard lock(mu);
    open = true;
    cv.notify_all();
  }
};

std::shared_ptr<InProcessBroker> BrokerWithBacklog(int messages) {
  auto broker = InProcessBroker::Create();
  EXPECT_TRUE(broker->CreateTopic("t").ok());
  EXPECT_TRUE(broker->CreateSubscription("s", "t").ok());
  for (int i = 0; i < messages; ++i) {
    EXPECT_TRUE(broker->Publish("t", {.payload = std::to_string(i)}).ok());
  }
  return broker;
}

TEST(ServiceGroupTest, StopDrainsTheInProcessInputBeforeStoppingItsReader) {
  constexpr int kMessages = 50;
  auto broker = BrokerWithBacklog(kMessages);
  GatedReader reader(broker, "s");
  ServiceGroup group({.broker = broker});
  group.Add({.name = "reader", .service = reader.service, .in_process_input = "s"});
  ASSERT_TRUE(group.Start().ok());
  // The backlog is still at the broker (the reader holds at most a few) when the stop begins;
  // stopping the reader at once would leave it there.
  auto stopped = std::async(std::launch::async,
                            [&] { return group.Stop(Clock::now() + std::chrono::seconds(60)); });
  reader.Open();
  const absl::Status s = stopped.get();
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(reader.processed.load(), kMessages);
  auto stats = broker->Stats("s");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->acked, static_cast<std::uint64_t>(kMessages));
}

// A service that nacks what it holds when stopped, as one stopped past its deadline does.
class NackingService final : public Service {
 public:
  absl::Status Start() override { return absl::OkStatus(); }
  absl::Status Stop(Deadline) override {
    nacked_ += 3;
    return absl::OkStatus();
  }
  ServiceMetrics metrics() const override { return {.nacked = nacked_}; }

 private:
  std::uint64_t nacked_ = 1;  // before the stop: not counted as nacked while stopping
};

TEST(ServiceGroupTest, AStopReportsNackedAndLeftMessages) {
  auto broker = BrokerWithBacklog(20);  // nobody reads "s"
  ServiceGroup group({.broker = broker, .subscriptions = {"s"}});
  group.Add({.name = "reader", .service = std::make_shared<NackingService>()});
  ASSERT_TRUE(group.Start().ok());
  const absl::Status s = group.Stop(Clock::now() + std::chrono::seconds(5));
  EXPECT_EQ(s.code(), absl::StatusCode::kAborted);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("reader: 3 messages nacked while stopping (the broker redelivers)"));
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("20 messages left unacknowledged in in-process subscriptions"));
}

}  // namespace
}  // namespace dataflow::messagepipeline

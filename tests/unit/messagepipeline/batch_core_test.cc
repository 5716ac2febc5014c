#include "dataflow/messagepipeline/batch_core.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>

#include "dataflow_testing/server_process.h"
#include "scripted_consumer.h"

namespace dataflow::messagepipeline {
namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

// An accumulator that holds nothing and counts the loop's rounds (each asks next_flush() once)
// and the interval flushes it is given.
class CountingAccumulator final : public BatchAccumulator<Message> {
 public:
  static constexpr auto kInterval = 20ms;

  void Add(Message item) override { item.Ack(); }
  [[nodiscard]] std::size_t MaxTake() const override { return 16; }
  [[nodiscard]] SteadyClock::time_point next_flush() const override {
    rounds.fetch_add(1);
    return next_flush_;
  }
  void MaybeFlush(SteadyClock::time_point now) override {
    if (now < next_flush_) return;
    flushes.fetch_add(1);
    next_flush_ = now + kInterval;
  }
  [[nodiscard]] SteadyClock::time_point OldestIdleCut() const override {
    return SteadyClock::time_point::max();
  }
  void CutIdle(SteadyClock::time_point /*opened_by*/) override {}
  void Close() override {}

  mutable std::atomic<int> rounds{0};
  std::atomic<int> flushes{0};

 private:
  SteadyClock::time_point next_flush_ = SteadyClock::now() + kInterval;
};

// With flush_when_idle and no input at all, the interval flush still runs, and the loop
// waits for it between rounds. It used to skip MaybeFlush on an idle round, so once the
// interval had passed, the wait (bounded by the past next_flush) returned at once on every
// round: a busy loop that took most of a core from an idle archive sink.
TEST(BatchCore, AnIdlePromptLoopRunsTheIntervalFlushAndWaitsForIt) {
  auto consumer = std::make_shared<testing::ScriptedConsumer>();
  CountingAccumulator accumulator;
  BatchCore<Message> core(
      {.common = {.name = "idle", .num_workers = 1}, .flush_when_idle = true}, consumer,
      [](Message& m, std::vector<Message>& out) { out.push_back(std::move(m)); });
  ASSERT_TRUE(consumer->Start().ok());
  ASSERT_TRUE(core.Start(&accumulator).ok());

  EXPECT_TRUE(dataflow::testing::WaitFor([&] { return accumulator.flushes.load() >= 5; }, 10s));
  const int flushes = accumulator.flushes.load();
  const int rounds = accumulator.rounds.load();
  // About one round per flush (a spurious wake-up adds one); a busy loop makes thousands.
  EXPECT_LE(rounds, 3 * (flushes + 1)) << "flushes " << flushes;

  ASSERT_TRUE(consumer->Stop(SteadyClock::now() + 10s).ok());
  ASSERT_TRUE(core.Stop(SteadyClock::now() + 10s).ok());
}

}  // namespace
}  // namespace dataflow::messagepipeline

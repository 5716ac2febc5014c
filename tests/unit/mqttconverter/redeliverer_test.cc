// Redeliverer: a nacked message goes back after a backoff that doubles with the attempt that
// failed (never below the minimum, capped at the maximum), carrying the next attempt number,
// so the service's DeliveryPolicy gives up on a poison message after max_delivery_attempts
// and the PUBACKs queued behind it go out. Time is a FakeClock moved by the test.
#include "redeliverer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <condition_variable>
#include <deque>
#include <mutex>

#include "ack_sequencer.h"
#include "dataflow/messagepipeline/dead_letter.h"
#include "dataflow/messagepipeline/service_core.h"
#include "fake_broker.h"

namespace dataflow::mqttconverter::internal {
namespace {

using std::chrono::milliseconds;
using testing::Decode;
using ::testing::ElementsAre;
using testing::FakeClock;
using ::testing::IsEmpty;
using ::testing::Pair;

constexpr milliseconds kMin{100};
constexpr milliseconds kMax{1000};

std::shared_ptr<Delivery> NewDelivery(const std::string& payload, int attempt = 1) {
  auto d = std::make_shared<Delivery>();
  d->data.id = payload;
  d->data.payload = payload;
  d->attempt = attempt;
  return d;
}

// The backoff before redelivery n (1-based): min * 2^(n-1) capped at max, jittered over its
// upper half, never below min.
std::pair<milliseconds, milliseconds> Bounds(int n) {
  milliseconds upper = kMin;
  for (int i = 1; i < n && upper < kMax; ++i) upper *= 2;
  upper = std::min(upper, kMax);
  return {std::max(kMin, upper / 2), upper};
}

TEST(RedelivererTest, BackoffGrowsWithTheAttemptAndHandsOverOnlyWhenDue) {
  FakeClock clock;
  std::vector<std::shared_ptr<Delivery>> handed;
  Redeliverer r(
      {.min_backoff = kMin, .max_backoff = kMax},
      [&](std::shared_ptr<Delivery> d) { handed.push_back(std::move(d)); }, clock.Fn());
  for (int attempt = 1; attempt <= 7; ++attempt) {
    auto d = NewDelivery("m", attempt);
    ASSERT_TRUE(r.Add(d));
    const auto due = r.NextDue();
    ASSERT_TRUE(due.has_value());
    const auto delay = std::chrono::duration_cast<milliseconds>(*due - clock.Now());
    const auto [lo, hi] = Bounds(attempt);
    EXPECT_GE(delay, lo) << "attempt " << attempt;
    EXPECT_LE(delay, hi) << "attempt " << attempt;
    clock.Advance(delay - milliseconds(1));
    EXPECT_EQ(r.HandDue(), 0u) << "handed over before its backoff ended, attempt " << attempt;
    clock.Advance(milliseconds(1));
    EXPECT_EQ(r.HandDue(), 1u) << "attempt " << attempt;
    ASSERT_EQ(handed.size(), static_cast<std::size_t>(attempt));
    EXPECT_EQ(handed.back()->attempt, attempt);  // the consumer counts the next one
  }
}

TEST(RedelivererTest, EarliestDueFirstAndNothingAfterClose) {
  FakeClock clock;
  std::vector<std::string> handed;
  Redeliverer r(
      {.min_backoff = kMin, .max_backoff = kMax},
      [&](std::shared_ptr<Delivery> d) { handed.push_back(d->data.id); }, clock.Fn());
  auto late = NewDelivery("late", 6);  // >= 500 ms
  auto soon = NewDelivery("soon", 1);  // exactly 100 ms
  ASSERT_TRUE(r.Add(late));
  ASSERT_TRUE(r.Add(soon));
  clock.Advance(kMin);
  EXPECT_EQ(r.HandDue(), 1u);
  EXPECT_THAT(handed, ElementsAre("soon"));
  r.Close();
  auto refused = NewDelivery("refused");
  EXPECT_FALSE(r.Add(refused));
  ASSERT_NE(refused, nullptr);  // left with the caller, who settles it
  const auto left = r.Stop();
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0]->data.id, "late");
}

// With its own thread and the real clock: the one place a wait is needed, awaited as a
// condition.
TEST(RedelivererTest, ThreadHandsOverWhenDue) {
  std::mutex mu;
  std::condition_variable cv;
  int handed = 0;
  Redeliverer r({.min_backoff = milliseconds(1), .max_backoff = milliseconds(2)},
                [&](std::shared_ptr<Delivery>) {
                  std::lock_guard lock(mu);
                  ++handed;
                  cv.notify_all();
                });
  r.Start();
  for (int i = 0; i < 3; ++i) {
    auto d = NewDelivery("m");
    ASSERT_TRUE(r.Add(d));
  }
  std::unique_lock lock(mu);
  EXPECT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return handed == 3; }));
  lock.unlock();
  EXPECT_THAT(r.Stop(), IsEmpty());
}

class RecordingDeadLetter : public messagepipeline::DeadLetterSink {
 public:
  absl::Status Send(const messagepipeline::Message& m, const absl::Status&,
                    std::string_view) override {
    sent.emplace_back(m.data.id, m.delivery_attempt);
    return absl::OkStatus();
  }
  std::vector<std::pair<std::string, int>> sent;
};

// The whole local loop without a socket: a poison message among good ones on one connection.
// The pipeline (DeliveryPolicy, max_delivery_attempts 3) nacks it; the redeliverer sends it
// round again after each backoff with the next attempt number; at attempt 4 the policy
// dead-letters and acks it, which releases the PUBACKs of the good ones, in arrival order.
TEST(RedelivererTest, PoisonMessageIsDeadLetteredAfterMaxAttemptsAndReleasesLaterPubacks) {
  FakeClock clock;
  AckSequencer sequencer;
  std::string wire;  // acknowledgements released to the broker
  std::deque<std::shared_ptr<Delivery>> channel;
  auto dead_letter = std::make_shared<RecordingDeadLetter>();
  messagepipeline::ServiceCounters counters;
  messagepipeline::DeliveryPolicy policy(
      {.source = "test", .dead_letter = dead_letter, .max_delivery_attempts = 3}, &counters);
  Redeliverer redeliverer(
      {.min_backoff = kMin, .max_backoff = kMax},
      [&](std::shared_ptr<Delivery> d) {
        d->attempt += 1;  // what MqttConsumer does on redelivery
        channel.push_back(std::move(d));
      },
      clock.Fn());
  // The pipeline's worker: the poison message always fails, the others succeed.
  auto process = [&](std::shared_ptr<Delivery> d) {
    messagepipeline::Message m(
        d->data, {},
        messagepipeline::MakeAckHandler(
            [&, d] { wire += sequencer.Settle(d->seq, AckSequencer::State::kAcked).bytes; },
            [&, d]() mutable { ASSERT_TRUE(redeliverer.Add(d)); }));
    m.delivery_attempt = d->attempt;
    if (policy.SettleIfExhausted(m)) return;
    if (d->data.payload == "poison") {
      policy.Fail(m, absl::InternalError("cannot parse"), messagepipeline::FailureStage::kProcess);
    } else {
      policy.Succeed(m);
    }
  };
  for (std::string payload : {"good-1", "poison", "good-2", "good-3"}) {
    auto d = NewDelivery(payload);
    d->seq = sequencer.Track(static_cast<std::uint16_t>(channel.size() + 1), 1);
    channel.push_back(std::move(d));
  }
  int redeliveries = 0;
  while (true) {
    while (!channel.empty()) {
      auto d = std::move(channel.front());
      channel.pop_front();
      process(std::move(d));
    }
    const auto due = redeliverer.NextDue();
    if (!due.has_value()) break;
    ASSERT_LT(redeliveries, 10) << "the poison message is retried forever";
    // Held back while it is retried: only the PUBACK before it went out.
    EXPECT_THAT(Decode(wire), ElementsAre(Pair(PacketType::kPuback, 1)));
    clock.Advance(*due - clock.Now());
    ASSERT_EQ(redeliverer.HandDue(), 1u);
    ++redeliveries;
  }
  EXPECT_EQ(redeliveries, 3);
  EXPECT_THAT(dead_letter->sent, ElementsAre(Pair("poison", 4)));
  EXPECT_THAT(Decode(wire),
              ElementsAre(Pair(PacketType::kPuback, 1), Pair(PacketType::kPuback, 2),
                          Pair(PacketType::kPuback, 3), Pair(PacketType::kPuback, 4)));
  EXPECT_EQ(sequencer.unreleased(), 0u);
}

}  // namespace
}  // namespace dataflow::mqttconverter::internal

// GooglePubsubConsumer against a fake stub: the Stop deadline, ack/nack/extension retries
// bounded by the lease, nacks at Stop, and streams renewed at their max_stream_duration.
#include "dataflow/pubsub/consumer.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "dataflow/messagepipeline/logging.h"
#include "fake_stub.h"

namespace dataflow::pubsub {
namespace {

using messagepipeline::Message;
using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;
using testing::FakeStub;

ConsumerOptions Options() {
  return {.project_id = "p",
          .subscription_id = "s",
          .ack_flush_interval = milliseconds(5),
          .settle_backoff = {.initial = milliseconds(1), .maximum = milliseconds(5)}};
}

std::unique_ptr<GooglePubsubConsumer> Start(std::shared_ptr<FakeStub> stub,
                                            ConsumerOptions o = Options()) {
  auto c = GooglePubsubConsumer::Create(std::move(stub), std::move(o));
  EXPECT_TRUE(c.ok()) << c.status();
  if (!c.ok()) return nullptr;
  EXPECT_TRUE((*c)->Start().ok());
  return *std::move(c);
}

std::optional<Message> Pop(GooglePubsubConsumer& c) {
  std::vector<Message> out;
  c.Messages().PopBatchUntil(out, 1, steady_clock::now() + seconds(30));
  if (out.empty()) return std::nullopt;
  return std::move(out.front());
}

// Polls `pred` (state the fake stub does not signal) until it holds; false after 30 s.
template <typename Pred>
bool Eventually(Pred pred) {
  const auto give_up = steady_clock::now() + seconds(30);
  while (!pred()) {
    if (steady_clock::now() > give_up) return false;
    std::this_thread::sleep_for(milliseconds(1));
  }
  return true;
}

bool Contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// Runs Stop on another thread so that a Stop that never returns fails the test instead of
// hanging it.
absl::Status StopWithin(GooglePubsubConsumer& c, milliseconds deadline) {
  auto f = std::async(std::launch::async,
                      [&c, deadline] { return c.Stop(steady_clock::now() + deadline); });
  if (f.wait_for(seconds(60)) != std::future_status::ready) {
    ADD_FAILURE() << "Stop() did not return";
    std::abort();  // the thread still references `c`
  }
  return f.get();
}

TEST(Consumer, StopHalfClosesNacksWhatWasNotHandedOverAndFlushesAcks) {
  auto stub = std::make_shared<FakeStub>();
  auto o = Options();
  o.channel_capacity = 1;
  auto c = Start(stub, o);
  stub->Deliver("m", 4);
  auto first = Pop(*c);
  ASSERT_TRUE(first.has_value());
  first->Ack();
  // m1 fills the channel; m2 and m3 stay with the reader.
  ASSERT_TRUE(stub->Await([&] { return c->Messages().size() == 1; }));
  EXPECT_TRUE(StopWithin(*c, seconds(10)).ok());
  std::lock_guard lock(stub->mu);
  EXPECT_EQ(stub->acked, (std::vector<std::string>{"m0"}));  // flushed before Stop returned
  EXPECT_TRUE(Contains(stub->nacked, "m2"));
  EXPECT_TRUE(Contains(stub->nacked, "m3"));
  EXPECT_FALSE(Contains(stub->nacked, "m1"));  // in the channel, for the pipeline to drain
  EXPECT_EQ(stub->streams_open, 0);
}

// roles/pubsub.subscriber may consume but not read the subscription's configuration (the Go
// library dropped its existence check for this reason): a denied check is not a failure.
TEST(Consumer, ConsumesWhenTheSubscriptionCheckIsDenied) {
  auto stub = std::make_shared<FakeStub>();
  stub->get_subscription_error = absl::PermissionDeniedError("pubsub.subscriptions.get denied");
  auto c = Start(stub);
  ASSERT_NE(c, nullptr);
  stub->Deliver("m", 1);
  auto m = Pop(*c);
  ASSERT_TRUE(m.has_value());
  m->Ack();
  EXPECT_TRUE(StopWithin(*c, seconds(10)).ok());
  std::lock_guard lock(stub->mu);
  EXPECT_EQ(stub->acked, (std::vector<std::string>{"m0"}));
}

TEST(Consumer, AMissingSubscriptionStillFailsStart) {
  auto stub = std::make_shared<FakeStub>();
  stub->get_subscription_error = absl::NotFoundError("no such subscription");
  auto c = GooglePubsubConsumer::Create(stub, Options());
  ASSERT_TRUE(c.ok());
  const absl::Status started = (*c)->Start();
  EXPECT_EQ(started.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(started.message().find("is not usable"), std::string_view::npos) << started;
}

TEST(Consumer, StopReturnsByItsDeadlineWhenTheStreamHangs) {
  auto stub = std::make_shared<FakeStub>();
  stub->hang_streams = true;  // Read() ignores half-close and cancel
  auto c = Start(stub);
  // Not just opened: a stream opened after Stop() is dropped unread, so wait for the reader.
  ASSERT_TRUE(stub->Await([&] { return stub->readers_waiting == 1; }));
  absl::Status s = StopWithin(*c, milliseconds(100));
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_NE(s.message().find("1 stream(s) still open"), std::string::npos) << s;
  EXPECT_TRUE(c->Messages().closed());
  stub->Release();
  c.reset();  // the destructor does not wait on the stuck reader either
}

TEST(Consumer, StopReturnsByItsDeadlineWhenTheAckFlushHangs) {
  auto stub = std::make_shared<FakeStub>();
  stub->hang_settles = true;
  auto c = Start(stub);
  stub->Deliver("m", 1);
  auto m = Pop(*c);
  ASSERT_TRUE(m.has_value());
  m->Ack();
  ASSERT_TRUE(stub->Await([&] { return stub->ack_calls == 1; }));  // now stuck in it
  absl::Status s = StopWithin(*c, milliseconds(100));
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_NE(s.message().find("1 ack/nack id(s) not yet confirmed"), std::string::npos) << s;
  stub->Release();
  EXPECT_TRUE(stub->Await([&] { return stub->acked.size() == 1; }));
}

TEST(Consumer, FailedAcksAndNacksAreRetried) {
  auto stub = std::make_shared<FakeStub>();
  stub->ack_failures = 3;
  stub->modack_failures = 2;
  auto c = Start(stub);
  stub->Deliver("m", 2);
  auto a = Pop(*c);
  auto b = Pop(*c);
  ASSERT_TRUE(a.has_value() && b.has_value());
  a->Ack();
  b->Nack();
  ASSERT_TRUE(stub->Await([&] { return stub->acked.size() == 1 && stub->nacked.size() == 1; }));
  {
    std::lock_guard lock(stub->mu);
    EXPECT_EQ(stub->acked[0], "m0");
    EXPECT_EQ(stub->nacked[0], "m1");
    EXPECT_EQ(stub->ack_calls, 4);
  }
  auto stats = c->stats();
  EXPECT_EQ(stats.settle_retries, 5u);
  EXPECT_EQ(stats.settles_expired, 0u);
  EXPECT_TRUE(StopWithin(*c, seconds(10)).ok());
}

TEST(Consumer, NonRetryableAckFailureIsCountedNotRetried) {
  auto stub = std::make_shared<FakeStub>();
  stub->settle_fail_with = absl::StatusCode::kInvalidArgument;
  stub->ack_failures = 1;
  auto c = Start(stub);
  stub->Deliver("m", 1);
  auto m = Pop(*c);
  ASSERT_TRUE(m.has_value());
  m->Ack();
  ASSERT_TRUE(stub->Await([&] { return stub->ack_calls == 1; }));
  EXPECT_TRUE(StopWithin(*c, seconds(10)).ok());  // nothing left to retry
  EXPECT_EQ(c->stats().settles_failed, 1u);
  std::lock_guard lock(stub->mu);
  EXPECT_EQ(stub->ack_calls, 1);
}

TEST(Consumer, AckIsNotRetriedPastTheLease) {
  auto stub = std::make_shared<FakeStub>();
  stub->ack_fail_forever = true;
  std::atomic<std::int64_t> offset_ms{0};
  auto o = Options();
  o.ack_deadline = seconds(10);
  o.clock = [&] { return steady_clock::now() + milliseconds(offset_ms.load()); };
  auto c = Start(stub, o);
  stub->Deliver("m", 1);
  auto m = Pop(*c);
  ASSERT_TRUE(m.has_value());
  m->Ack();
  ASSERT_TRUE(stub->Await([&] { return stub->ack_calls >= 2; }));  // being retried
  // The lease (10 s from delivery, never extended) runs out: the server would redeliver the
  // message, and an ack for it can no longer be relied on.
  offset_ms = 11'000;
  ASSERT_TRUE(Eventually([&] { return c->stats().settles_expired == 1; }));
  // Given up: Stop has nothing left to send.
  EXPECT_TRUE(StopWithin(*c, seconds(10)).ok());
  EXPECT_EQ(c->stats().settles_expired, 1u);
}

TEST(Consumer, FailedExtensionIsRetriedBeforeTheLeaseRunsOut) {
  auto stub = std::make_shared<FakeStub>();
  stub->modack_failures = 2;
  std::atomic<std::int64_t> offset_ms{0};
  auto o = Options();
  o.ack_deadline = seconds(10);
  o.clock = [&] { return steady_clock::now() + milliseconds(offset_ms.load()); };
  auto c = Start(stub, o);
  stub->Deliver("m", 1);
  auto m = Pop(*c);
  ASSERT_TRUE(m.has_value());
  offset_ms = 6'000;  // past half the deadline: an extension is due
  ASSERT_TRUE(stub->Await([&] { return stub->extended.size() == 1; }));
  EXPECT_EQ(c->stats().settle_retries, 0u);  // extensions are rescheduled, not queued
  {
    std::lock_guard lock(stub->mu);
    EXPECT_EQ(stub->modack_calls, 3);
  }
  m->Ack();
  EXPECT_TRUE(StopWithin(*c, seconds(10)).ok());
}

// Captures the library's log lines while it lives.
class LogCapture {
 public:
  LogCapture() : sink_(std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(1000)) {
    Log()->sinks().push_back(sink_);
  }
  ~LogCapture() {
    auto& sinks = Log()->sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
  }
  bool Contains(const std::string& text) const {
    for (const auto& line : sink_->last_formatted()) {
      if (line.find(text) != std::string::npos) return true;
    }
    return false;
  }

 private:
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
};

TEST(Consumer, StreamEndingAtItsMaxDurationIsReopenedAtOnceAndItsMessagesStillSettle) {
  LogCapture log;
  auto stub = std::make_shared<FakeStub>();
  std::atomic<std::int64_t> offset_ms{0};
  auto o = Options();
  o.max_stream_duration = seconds(10);
  // A reconnect after an error would wait an hour: the renewal must not take that path.
  o.reconnect_backoff = {.initial = std::chrono::hours(1), .maximum = std::chrono::hours(1)};
  o.clock = [&] { return steady_clock::now() + milliseconds(offset_ms.load()); };
  auto c = Start(stub, o);
  stub->Deliver("a", 3);
  std::vector<Message> held;
  for (int i = 0; i < 3; ++i) {
    auto m = Pop(*c);
    ASSERT_TRUE(m.has_value());
    held.push_back(std::move(*m));
  }
  held[0].Ack();
  ASSERT_TRUE(stub->Await([&] { return stub->acked.size() == 1; }));
  // The stream reaches its planned end (2 s before its deadline): it is half-closed, but
  // this server keeps it open until its deadline, where gRPC ends it.
  stub->ignore_writes_done = true;
  offset_ms = 8'000;
  ASSERT_TRUE(stub->Await([&] { return stub->writes_done == 1; }));
  offset_ms = 10'000;
  stub->EndStreams(absl::DeadlineExceededError("Deadline Exceeded"));
  ASSERT_TRUE(stub->Await([&] { return stub->streams_opened == 2; }));
  stub->Deliver("b", 2);
  for (int i = 0; i < 2; ++i) {
    auto m = Pop(*c);
    ASSERT_TRUE(m.has_value());
    held.push_back(std::move(*m));
  }
  // The old stream's messages are still leased: a2's lease is extended past the renewal ...
  offset_ms = 16'000;
  ASSERT_TRUE(stub->Await([&] { return Contains(stub->extended, "a2"); }));
  // ... and acks of messages from the ended stream reach the server.
  for (std::size_t i = 1; i < held.size(); ++i) held[i].Ack();
  ASSERT_TRUE(stub->Await([&] { return stub->acked.size() == 5; }));
  stub->ignore_writes_done = false;
  EXPECT_TRUE(StopWithin(*c, seconds(10)).ok());
  auto stats = c->stats();
  EXPECT_EQ(stats.stream_renewals, 1u);
  EXPECT_EQ(stats.reconnects, 0u);
  EXPECT_EQ(stats.received, 5u);
  EXPECT_FALSE(log.Contains("pubsub stream ended"));
  std::lock_guard lock(stub->mu);
  auto acked = stub->acked;
  std::sort(acked.begin(), acked.end());
  EXPECT_EQ(acked, (std::vector<std::string>{"a0", "a1", "a2", "b0", "b1"}));
  EXPECT_TRUE(stub->nacked.empty());
  for (auto t : stub->stream_timeouts) EXPECT_EQ(t, seconds(10));
}

TEST(Consumer, StreamIsHalfClosedAtItsPlannedEndAndReopenedAtOnce) {
  LogCapture log;
  auto stub = std::make_shared<FakeStub>();
  std::atomic<std::int64_t> offset_ms{0};
  auto o = Options();
  o.max_stream_duration = seconds(10);
  o.reconnect_backoff = {.initial = std::chrono::hours(1), .maximum = std::chrono::hours(1)};
  o.clock = [&] { return steady_clock::now() + milliseconds(offset_ms.load()); };
  auto c = Start(stub, o);
  ASSERT_TRUE(stub->Await([&] { return stub->streams_opened == 1; }));
  stub->Deliver("a", 1);
  auto held = Pop(*c);
  ASSERT_TRUE(held.has_value());
  // Idle at its planned end, 2 s before its gRPC deadline (which the fake never enforces):
  // the client half-closes it, the server ends it cleanly (OK), and the next one opens.
  offset_ms = 8'000;
  ASSERT_TRUE(stub->Await([&] { return stub->streams_opened == 2; }));
  {
    std::lock_guard lock(stub->mu);
    EXPECT_EQ(stub->writes_done, 1);
  }
  // The next stream delivers, and the first stream's message still acks.
  stub->Deliver("b", 1);
  auto next = Pop(*c);
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->data.payload, "b0");
  held->Ack();
  next->Ack();
  ASSERT_TRUE(stub->Await([&] { return stub->acked.size() == 2; }));
  EXPECT_TRUE(StopWithin(*c, seconds(10)).ok());
  EXPECT_EQ(c->stats().stream_renewals, 1u);
  EXPECT_EQ(c->stats().reconnects, 0u);
  EXPECT_FALSE(log.Contains("pubsub stream ended"));
}

// Pops the next message and checks its delivery attempt.
void ExpectAttempt(GooglePubsubConsumer& c, const std::string& payload, int attempt) {
  auto m = Pop(c);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->data.payload, payload);
  EXPECT_EQ(m->delivery_attempt, attempt) << payload;
  m->Nack();
}

TEST(Consumer, DeliveryAttemptsAreCountedByTheConsumerWhenTheServerDoesNot) {
  auto stub = std::make_shared<FakeStub>();
  auto c = Start(stub);
  // No dead-letter policy: the server says 0 every time.
  for (int i = 1; i <= 3; ++i) {
    stub->Redeliver("m", "m-" + std::to_string(i));
    ExpectAttempt(*c, "m", i);
  }
  EXPECT_EQ(c->stats().delivery_counts, 1u);
  // The server's count wins when it gives one.
  stub->Redeliver("s", "s-1", 7);
  ExpectAttempt(*c, "s", 7);
  // An acked message is forgotten: a later copy (a redelivery after a lost ack) is attempt 1.
  stub->Redeliver("m", "m-4");
  auto m = Pop(*c);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->delivery_attempt, 4);
  m->Ack();
  EXPECT_EQ(c->stats().delivery_counts, 0u);
  stub->Redeliver("m", "m-5");
  ExpectAttempt(*c, "m", 1);
  EXPECT_TRUE(StopWithin(*c, seconds(10)).ok());
}

TEST(Consumer, DeliveryCountsAreBoundedForgettingTheLeastRecentlyDelivered) {
  auto stub = std::make_shared<FakeStub>();
  auto o = Options();
  o.delivery_count_capacity = 2;
  auto c = Start(stub, o);
  stub->Redeliver("x", "x-1");
  ExpectAttempt(*c, "x", 1);
  stub->Redeliver("y", "y-1");
  ExpectAttempt(*c, "y", 1);
  stub->Redeliver("x", "x-2");  // x is now the most recent: y goes first
  ExpectAttempt(*c, "x", 2);
  stub->Redeliver("z", "z-1");
  ExpectAttempt(*c, "z", 1);
  stub->Redeliver("y", "y-2");  // forgotten: counted afresh (and x, now the oldest, goes)
  ExpectAttempt(*c, "y", 1);
  stub->Redeliver("z", "z-2");
  ExpectAttempt(*c, "z", 2);
  EXPECT_EQ(c->stats().delivery_counts, 2u);
  EXPECT_EQ(c->stats().delivery_counts_evicted, 2u);
  EXPECT_TRUE(StopWithin(*c, seconds(10)).ok());
}

TEST(Consumer, DeliveryCountingCanBeTurnedOff) {
  auto stub = std::make_shared<FakeStub>();
  auto o = Options();
  o.delivery_count_capacity = 0;
  auto c = Start(stub, o);
  stub->Redeliver("m", "m-1");
  ExpectAttempt(*c, "m", 0);
  stub->Redeliver("m", "m-2");
  ExpectAttempt(*c, "m", 0);
  EXPECT_TRUE(StopWithin(*c, seconds(10)).ok());
}

TEST(Consumer, DeadlineExceededBeforeTheStreamsPlannedEndIsAnErrorWithBackoff) {
  auto stub = std::make_shared<FakeStub>();
  auto o = Options();
  o.max_stream_duration = seconds(10);
  o.reconnect_backoff = {.initial = milliseconds(1), .maximum = milliseconds(1)};
  auto c = Start(stub, o);
  ASSERT_TRUE(stub->Await([&] { return stub->streams_opened == 1; }));
  stub->EndStreams(absl::DeadlineExceededError("Deadline Exceeded"));
  ASSERT_TRUE(stub->Await([&] { return stub->streams_opened == 2; }));
  EXPECT_TRUE(StopWithin(*c, seconds(10)).ok());
  EXPECT_EQ(c->stats().reconnects, 1u);
  EXPECT_EQ(c->stats().stream_renewals, 0u);
}

TEST(Consumer, MaxStreamDurationIsZeroOrAtLeastOneSecond) {
  auto o = Options();
  o.max_stream_duration = milliseconds(500);
  EXPECT_EQ(GooglePubsubConsumer::Create(std::make_shared<FakeStub>(), o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o.max_stream_duration = milliseconds(0);  // no deadline
  auto stub = std::make_shared<FakeStub>();
  auto c = Start(stub, o);
  ASSERT_TRUE(stub->Await([&] { return stub->readers_waiting == 1; }));
  EXPECT_TRUE(StopWithin(*c, seconds(10)).ok());
  std::lock_guard lock(stub->mu);
  EXPECT_EQ(stub->stream_timeouts, (std::vector<milliseconds>{milliseconds(0)}));
  EXPECT_EQ(stub->writes_done, 1);  // by Stop only
}

}  // namespace
}  // namespace dataflow::pubsub

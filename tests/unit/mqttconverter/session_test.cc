// Session over the TransportFactory seam, against the in-memory FakeBroker (no socket) and a
// FakeClock: keep-alive pings and dead-connection detection, and SUBACK checks across
// reconnects. Waits are for conditions (what the broker side saw), never fixed sleeps.
#include "session.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <optional>

#include "fake_broker.h"
#include "keep_alive.h"

namespace dataflow::mqttconverter::internal {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::BrokerSide;
using testing::FakeBroker;
using testing::FakeClock;
using ::testing::HasSubstr;

class RecordingListener : public SessionListener {
 public:
  void OnPublish(const std::shared_ptr<Connection>&, const Publish&) override {}
  void OnGiveUp(const absl::Status& status) override {
    std::lock_guard lock(mu_);
    give_up_ = status;
    cv_.notify_all();
  }
  std::optional<absl::Status> AwaitGiveUp() {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, seconds(10), [&] { return give_up_.has_value(); });
    return give_up_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<absl::Status> give_up_;
};

SessionOptions Options() {
  return {.broker_url = "tcp://fake:1883",
          .client_id = "session-test",
          .keep_alive = seconds(0),
          .filters = {{.filter = "a/#", .qos = 1}},
          .reconnect_min_backoff = milliseconds(1),
          .reconnect_max_backoff = milliseconds(2)};
}

TEST(KeepAliveTest, PingAfterHalfTheKeepAliveWithoutWritesAndOnlyWhenTheWriterIsIdle) {
  const seconds ka(10);
  const std::int64_t s = 1'000'000'000;
  EXPECT_FALSE(CheckKeepAlive(ka, {.now_ns = 5 * s - 1}).ping);
  EXPECT_TRUE(CheckKeepAlive(ka, {.now_ns = 5 * s}).ping);
  EXPECT_FALSE(CheckKeepAlive(ka, {.now_ns = 5 * s, .writer_idle = false}).ping);
  EXPECT_FALSE(CheckKeepAlive(seconds(0), {.now_ns = 100 * s}).ping);
}

TEST(KeepAliveTest, DeadAfterOneAndAHalfKeepAlivesOfSilenceUnlessTheReaderIsBlocked) {
  const seconds ka(10);
  const std::int64_t s = 1'000'000'000;
  EXPECT_FALSE(CheckKeepAlive(ka, {.now_ns = 15 * s, .last_write_ns = 15 * s}).dead);
  EXPECT_TRUE(CheckKeepAlive(ka, {.now_ns = 15 * s + 1, .last_write_ns = 15 * s}).dead);
  // Writing is not hearing from the broker.
  EXPECT_TRUE(CheckKeepAlive(ka, {.now_ns = 20 * s, .last_write_ns = 20 * s}).dead);
  EXPECT_FALSE(CheckKeepAlive(ka, {.now_ns = 20 * s, .last_read_ns = 10 * s}).dead);
  // The reader waits for room in the channel: the broker's bytes are not being read.
  EXPECT_FALSE(CheckKeepAlive(ka, {.now_ns = 20 * s, .reader_blocked = true}).dead);
  EXPECT_FALSE(CheckKeepAlive(seconds(0), {.now_ns = 100 * s}).dead);
}

// The reader has consumed everything the broker sent and waits for more.
bool Drained(BrokerSide& c) { return c.readers_waiting > 0 && c.to_client.empty(); }

// The writer stamps its last write after the transport took it: wait for that before the
// clock moves on, or the stamp lands at the new time.
void AwaitWriterIdle(Session& session) {
  session.CurrentConnection()->Flush(RealNow() + seconds(10));
}

TEST(SessionTest, PingsWhenIdleAndDropsTheConnectionWhenPingrespStopsComing) {
  FakeClock clock;
  auto broker = std::make_shared<FakeBroker>(std::vector<std::vector<std::uint8_t>>{{1}});
  RecordingListener listener;
  SessionOptions options = Options();
  options.keep_alive = seconds(1);
  Session session(options, broker, listener, clock.Fn());
  session.Start();
  auto first = session.WaitFirstResult(seconds(10));
  ASSERT_TRUE(first.has_value());
  ASSERT_TRUE(first->ok()) << *first;
  auto c = broker->Connection(0);
  ASSERT_NE(c, nullptr);
  const auto ping = PacketType::kPingreq;
  ASSERT_TRUE(c->Await([&] { return Drained(*c); }));  // CONNACK, SUBACK read at t0
  AwaitWriterIdle(session);                             // CONNECT, SUBSCRIBE written at t0

  // t0+0.5: nothing written for half the keep-alive: PINGREQ; the PINGRESP is read.
  clock.Advance(milliseconds(500));
  ASSERT_TRUE(c->Await([&] { return c->Count(ping) >= 1 && Drained(*c); }));
  AwaitWriterIdle(session);
  // t0+1.9: 1.4 s since that PINGRESP (not 1.5 x keep-alive): alive, and pinging again.
  clock.Advance(milliseconds(1400));
  ASSERT_TRUE(c->Await([&] { return c->Count(ping) >= 2 && Drained(*c); }));
  AwaitWriterIdle(session);
  // t0+2.4: a third ping on the same connection shows it survived t0+1.9, when it had been
  // silent for 1.9 s had the PINGRESP not counted.
  clock.Advance(milliseconds(500));
  ASSERT_TRUE(c->Await([&] { return c->Count(ping) >= 3 || c->shut_down; }));
  {
    std::lock_guard lock(c->mu);
    EXPECT_FALSE(c->shut_down) << "dropped although the broker answered every PINGREQ";
    EXPECT_EQ(broker->connections(), 1u);
    c->answer_pings = false;
  }
  ASSERT_TRUE(c->Await([&] { return Drained(*c); }));
  AwaitWriterIdle(session);
  // t0+4.0: 1.6 s since the last PINGRESP: the connection is dead, dropped and re-made.
  clock.Advance(milliseconds(1600));
  EXPECT_TRUE(c->Await([&] { return c->shut_down; })) << "a silent broker was not detected";
  EXPECT_NE(broker->Connection(1), nullptr) << "the session did not reconnect";
  EXPECT_GE(session.stats().connects, 1u);
  session.Stop();
}

TEST(SessionTest, RefusedSubscriptionAfterReconnectIsNotReadyAndGivesUpAfterTheLimit) {
  auto broker =
      std::make_shared<FakeBroker>(std::vector<std::vector<std::uint8_t>>{{1}, {0x80}, {0x80}});
  RecordingListener listener;
  SessionOptions options = Options();
  options.max_subscribe_refusals = 2;
  Session session(options, broker, listener);
  session.Start();
  auto first = session.WaitFirstResult(seconds(10));
  ASSERT_TRUE(first.has_value());
  ASSERT_TRUE(first->ok()) << *first;
  EXPECT_TRUE(session.IsConnected());

  broker->Connection(0)->Close();  // the broker drops the connection; the session reconnects
  auto c1 = broker->Connection(1);
  ASSERT_NE(c1, nullptr);
  EXPECT_TRUE(c1->Await([&] { return c1->shut_down; }))
      << "a connection whose subscription was refused stayed open";
  EXPECT_FALSE(session.IsConnected());
  // A second refusal in a row reaches max_subscribe_refusals: the session gives up.
  auto gave_up = listener.AwaitGiveUp();
  ASSERT_TRUE(gave_up.has_value());
  EXPECT_EQ(gave_up->code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(gave_up->message(), HasSubstr("refused subscription to 'a/#'"));
  EXPECT_THAT(gave_up->message(), HasSubstr("2 times in a row"));
  EXPECT_FALSE(session.IsConnected());
  EXPECT_EQ(broker->connections(), 3u);
  session.Stop();
}

TEST(SessionTest, SubackThatDoesNotMatchTheSubscribeFailsTheFirstConnection) {
  // Two codes for one filter.
  auto broker = std::make_shared<FakeBroker>(std::vector<std::vector<std::uint8_t>>{{1, 1}});
  RecordingListener listener;
  Session session(Options(), broker, listener);
  session.Start();
  auto first = session.WaitFirstResult(seconds(10));
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(first->message(), HasSubstr("2 return codes for 1 topic filters"));
  EXPECT_FALSE(session.IsConnected());
  session.Stop();
}

TEST(SessionTest, RefusedSubscriptionAtStartIsPermissionDenied) {
  auto broker = std::make_shared<FakeBroker>(std::vector<std::vector<std::uint8_t>>{{0x80}});
  RecordingListener listener;
  Session session(Options(), broker, listener);
  session.Start();
  auto first = session.WaitFirstResult(seconds(10));
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->code(), absl::StatusCode::kPermissionDenied);
  EXPECT_FALSE(session.IsConnected());
  session.Stop();
}

}  // namespace
}  // namespace dataflow::mqttconverter::internal

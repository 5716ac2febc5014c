// StreamReader over the FakeStub: its state transitions (reading, handing over, renewing at
// the planned end, backoff after an error, stopping on a permanent error or Stop()), and a
// stream opened after Stop() left unused.
#include "stream_reader.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "fake_stub.h"

namespace dataflow::pubsub {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::FakeStub;
using State = StreamReader::State;

SteadyClock::time_point In30s() { return SteadyClock::now() + seconds(30); }

// A reader on its own thread, with a fake clock and the callbacks recorded.
class ReaderHarness {
 public:
  explicit ReaderHarness(std::shared_ptr<SubscriberStub> stub,
                         std::chrono::milliseconds max_stream_duration = seconds(10),
                         messagepipeline::BackoffOptions backoff =
                             {.initial = std::chrono::hours(1), .maximum = std::chrono::hours(1)})
      : reader(std::move(stub),
               {.subscription = "projects/p/subscriptions/s",
                .client_id = "test",
                .max_stream_duration = max_stream_duration,
                .reconnect_backoff = backoff,
                .clock = [this] { return SteadyClock::now() + milliseconds(offset_ms.load()); }},
               {.on_response =
                    [this](v1::StreamingPullResponse& r) {
                      if (in_handover) in_handover();
                      std::lock_guard lock(mu);
                      states_in_handover.push_back(reader.state());
                      for (const auto& m : r.received_messages()) received.push_back(m.ack_id());
                    },
                .on_stream_end = [this] { ++streams_ended; },
                .on_permanent_error =
                    [this](absl::Status s) {
                      std::lock_guard lock(mu);
                      permanent_error = std::move(s);
                    }}) {}
  ~ReaderHarness() {
    reader.Stop();
    reader.Cancel();
    if (thread.joinable()) thread.join();
  }
  void Start() {
    thread = std::thread([this] { reader.Run(); });
  }

  std::atomic<std::int64_t> offset_ms{0};
  std::function<void()> in_handover;  // set before Start()
  std::mutex mu;
  std::vector<State> states_in_handover;
  std::vector<std::string> received;
  std::atomic<int> streams_ended{0};
  absl::Status permanent_error;
  StreamReader reader;  // after the fields its callbacks use
  std::thread thread;
};

TEST(StreamReader, ReadsHandsOverAndReturnsToReading) {
  auto stub = std::make_shared<FakeStub>();
  ReaderHarness h(stub);
  EXPECT_EQ(h.reader.state(), State::kIdle);
  h.Start();
  ASSERT_TRUE(stub->Await([&] { return stub->readers_waiting == 1; }));
  EXPECT_EQ(h.reader.state(), State::kReading);
  EXPECT_TRUE(h.reader.connected());
  stub->Deliver("m", 2);
  ASSERT_TRUE(stub->Await([&] { return stub->responses.empty() && stub->readers_waiting == 1; }));
  ASSERT_TRUE(h.reader.WaitFor(State::kReading, In30s()));
  std::lock_guard lock(h.mu);
  EXPECT_EQ(h.states_in_handover, (std::vector<State>{State::kHandingOver}));
  EXPECT_EQ(h.received, (std::vector<std::string>{"m0", "m1"}));
}

TEST(StreamReader, RenewsAtThePlannedEndWithoutBackoff) {
  auto stub = std::make_shared<FakeStub>();
  ReaderHarness h(stub);  // a reconnect would wait an hour
  h.Start();
  ASSERT_TRUE(stub->Await([&] { return stub->readers_waiting == 1; }));
  h.reader.HalfCloseIfDue();  // not yet: planned end is 8 s (2 s before the 10 s deadline)
  EXPECT_EQ(h.reader.state(), State::kReading);
  h.offset_ms = 8'000;
  stub->ignore_writes_done = true;  // the server ends it later: kRenewing is observable
  h.reader.HalfCloseIfDue();
  EXPECT_EQ(h.reader.state(), State::kRenewing);
  h.reader.HalfCloseIfDue();  // once only
  stub->EndStreams(absl::OkStatus());
  ASSERT_TRUE(stub->Await([&] { return stub->streams_opened == 2 && stub->readers_waiting == 1; }));
  EXPECT_EQ(h.reader.state(), State::kReading);
  EXPECT_EQ(h.reader.stats().stream_renewals, 1u);
  EXPECT_EQ(h.reader.stats().reconnects, 0u);
  EXPECT_EQ(h.streams_ended, 1);
  std::lock_guard lock(stub->mu);
  EXPECT_EQ(stub->writes_done, 1);
}

TEST(StreamReader, AReaderBusyAtThePlannedEndHalfClosesItselfAfterTheHandover) {
  auto stub = std::make_shared<FakeStub>();
  stub->ignore_writes_done = true;
  ReaderHarness h(stub);
  h.in_handover = [&] {
    h.offset_ms = 8'000;
    h.reader.HalfCloseIfDue();  // busy: left to the reader
  };
  h.Start();
  stub->Deliver("m", 1);
  ASSERT_TRUE(stub->Await([&] { return stub->writes_done == 1; }));
  EXPECT_EQ(h.reader.state(), State::kRenewing);
  std::lock_guard lock(h.mu);
  EXPECT_EQ(h.states_in_handover, (std::vector<State>{State::kHandingOver}));
}

TEST(StreamReader, ARetryableErrorBacksOffThenReconnects) {
  auto stub = std::make_shared<FakeStub>();
  ReaderHarness slow(stub);
  slow.Start();
  ASSERT_TRUE(stub->Await([&] { return stub->readers_waiting == 1; }));
  stub->EndStreams(absl::UnavailableError("gone"));
  ASSERT_TRUE(slow.reader.WaitFor(State::kBackoff, In30s()));
  EXPECT_EQ(slow.reader.stats().reconnects, 1u);
  EXPECT_FALSE(slow.reader.connected());
  {
    std::lock_guard lock(stub->mu);
    EXPECT_EQ(stub->streams_opened, 1);  // waiting its hour
  }
  slow.reader.Stop();  // wakes the backoff
  ASSERT_TRUE(slow.reader.WaitFor(State::kStopped, In30s()));

  auto stub2 = std::make_shared<FakeStub>();
  ReaderHarness fast(stub2, seconds(10), {.initial = milliseconds(1), .maximum = milliseconds(1)});
  fast.Start();
  ASSERT_TRUE(stub2->Await([&] { return stub2->readers_waiting == 1; }));
  stub2->EndStreams(absl::UnavailableError("gone"));
  ASSERT_TRUE(
      stub2->Await([&] { return stub2->streams_opened == 2 && stub2->readers_waiting == 1; }));
  EXPECT_EQ(fast.reader.state(), State::kReading);
  EXPECT_EQ(fast.reader.stats().reconnects, 1u);
  EXPECT_EQ(fast.reader.stats().stream_renewals, 0u);
}

TEST(StreamReader, APermanentErrorStopsTheReader) {
  auto stub = std::make_shared<FakeStub>();
  ReaderHarness h(stub, seconds(10), {.initial = milliseconds(1), .maximum = milliseconds(1)});
  h.Start();
  ASSERT_TRUE(stub->Await([&] { return stub->readers_waiting == 1; }));
  stub->EndStreams(absl::NotFoundError("no such subscription"));
  ASSERT_TRUE(h.reader.WaitFor(State::kStopped, In30s()));
  h.thread.join();  // Run() returned
  std::lock_guard lock(h.mu);
  EXPECT_EQ(h.permanent_error.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(h.permanent_error.message().find("projects/p/subscriptions/s"), std::string::npos);
  std::lock_guard stub_lock(stub->mu);
  EXPECT_EQ(stub->streams_opened, 1);
}

TEST(StreamReader, StopHalfClosesAnIdleStreamAndCancelEndsOneTheServerKeeps) {
  auto stub = std::make_shared<FakeStub>();
  stub->ignore_writes_done = true;
  ReaderHarness h(stub);
  h.Start();
  ASSERT_TRUE(stub->Await([&] { return stub->readers_waiting == 1; }));
  h.reader.Stop();
  EXPECT_EQ(h.reader.state(), State::kClosing);
  ASSERT_TRUE(stub->Await([&] { return stub->writes_done == 1; }));
  EXPECT_FALSE(h.reader.WaitFor(State::kStopped, SteadyClock::now()));
  h.reader.Cancel();
  ASSERT_TRUE(h.reader.WaitFor(State::kStopped, In30s()));
  EXPECT_EQ(h.streams_ended, 1);
  std::lock_guard lock(stub->mu);
  EXPECT_EQ(stub->streams_opened, 1);
  EXPECT_EQ(stub->writes_done, 1);
}

TEST(StreamReader, StopBeforeRunOpensNoStream) {
  auto stub = std::make_shared<FakeStub>();
  ReaderHarness h(stub);
  h.reader.Stop();
  EXPECT_EQ(h.reader.state(), State::kStopped);
  h.reader.Run();  // returns at once
  std::lock_guard lock(stub->mu);
  EXPECT_EQ(stub->streams_opened, 0);
}

// Stops the reader while its StreamingPull call is under way, as Stop() racing a (re)connect.
class StopDuringOpenStub : public FakeStub {
 public:
  std::unique_ptr<PullStream> StreamingPull(std::chrono::milliseconds timeout) override {
    if (reader != nullptr) reader->Stop();
    return FakeStub::StreamingPull(timeout);
  }
  StreamReader* reader = nullptr;
};

TEST(StreamReader, AStreamOpenedAfterStopIsNotUsed) {
  auto stub = std::make_shared<StopDuringOpenStub>();
  ReaderHarness h(stub);
  stub->reader = &h.reader;
  h.Start();
  ASSERT_TRUE(h.reader.WaitFor(State::kStopped, In30s()));
  h.thread.join();
  std::lock_guard lock(stub->mu);
  EXPECT_EQ(stub->streams_opened, 1);
  EXPECT_EQ(stub->streams_open, 0);     // dropped
  EXPECT_EQ(stub->readers_waiting, 0);  // never read
  EXPECT_EQ(stub->writes_done, 0);      // nor half-closed: it was never written
  EXPECT_EQ(h.streams_ended, 0);
}

TEST(StreamReader, StopDuringAHandoverIsHalfClosedByTheReaderAfterIt) {
  auto stub = std::make_shared<FakeStub>();
  std::promise<void> entered, release;
  auto release_future = release.get_future().share();
  StreamReader* reader_ptr = nullptr;
  StreamReader reader(
      stub,
      {.subscription = "projects/p/subscriptions/s",
       .client_id = "t",
       .reconnect_backoff = {.initial = milliseconds(1), .maximum = milliseconds(1)}},
      {.on_response =
           [&](v1::StreamingPullResponse&) {
             entered.set_value();
             release_future.wait();
           },
       .on_stream_end = [] {},
       .on_permanent_error = [](absl::Status) {}});
  reader_ptr = &reader;
  std::thread t([&] { reader_ptr->Run(); });
  stub->Deliver("m", 1);
  entered.get_future().wait();
  EXPECT_EQ(reader.state(), State::kHandingOver);
  reader.Stop();  // busy: not half-closed by this thread
  {
    std::lock_guard lock(stub->mu);
    EXPECT_EQ(stub->writes_done, 0);
  }
  EXPECT_EQ(reader.state(), State::kHandingOver);
  release.set_value();
  ASSERT_TRUE(reader.WaitFor(State::kStopped, In30s()));
  t.join();
  std::lock_guard lock(stub->mu);
  EXPECT_EQ(stub->writes_done, 1);
}

}  // namespace
}  // namespace dataflow::pubsub

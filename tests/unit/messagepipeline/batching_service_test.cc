#include "dataflow/messagepipeline/batching_service.h"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <stdexcept>

#include "dataflow/messagepipeline/errors.h"
#include "dataflow/messagepipeline/streaming_service.h"
#include "dataflow_testing/server_process.h"
#include "scripted_consumer.h"

namespace dataflow::messagepipeline {
namespace {

using testing::Outcome;
using testing::ScriptedConsumer;
using namespace std::chrono_literals;

TransformResult<std::string> Transform(const Message& m) {
  if (m.data.payload == "skip") return Skip<std::string>();
  if (m.data.payload == "err") return absl::UnavailableError("transient");
  return std::optional<std::string>(m.data.payload);
}

// Records the size of every batch it is given.
struct BatchRecorder {
  std::mutex mu;
  std::vector<std::size_t> sizes;
  std::vector<std::string> payloads;

  BatchProcessor<std::string> Processor(absl::Status result = absl::OkStatus()) {
    return [this, result](std::span<ProcessableItem<std::string>> batch) {
      std::lock_guard lock(mu);
      sizes.push_back(batch.size());
      for (auto& item : batch) payloads.push_back(item.payload);
      return result;
    };
  }
  std::vector<std::size_t> Sizes() {
    std::lock_guard lock(mu);
    return sizes;
  }
};

TEST(BatchingService, FlushesFullBatchesAndTheRestOnStop) {
  auto consumer = std::make_shared<ScriptedConsumer>();
  BatchRecorder rec;
  auto service = BatchingService<std::string>::Create(
      {.common = {.num_workers = 2}, .batch_size = 10, .flush_interval = std::chrono::hours(1)},
      consumer, Transform, rec.Processor());
  ASSERT_TRUE(service.ok()) << service.status();
  ASSERT_TRUE((*service)->Start().ok());
  for (int i = 0; i < 25; ++i) consumer->Feed("m" + std::to_string(i), "v");
  ASSERT_TRUE(dataflow::testing::WaitFor([&] { return rec.Sizes().size() >= 2; }, 10s));
  EXPECT_EQ(rec.Sizes(), (std::vector<std::size_t>{10, 10}));  // the 5 left wait for stop
  ASSERT_TRUE((*service)->Stop(10s).ok());
  EXPECT_EQ(rec.Sizes(), (std::vector<std::size_t>{10, 10, 5}));
  EXPECT_EQ(consumer->count(Outcome::kAcked), 25u);
  const ServiceMetrics m = (*service)->metrics();
  EXPECT_EQ(m.batches, 3u);
  EXPECT_EQ(m.batched_messages, 25u);
}

TEST(BatchingService, FlushesAPartialBatchOnTheInterval) {
  auto consumer = std::make_shared<ScriptedConsumer>();
  BatchRecorder rec;
  auto service = BatchingService<std::string>::Create({.batch_size = 100, .flush_interval = 50ms},
                                                      consumer, Transform, rec.Processor());
  ASSERT_TRUE(service.ok());
  ASSERT_TRUE((*service)->Start().ok());
  for (int i = 0; i < 3; ++i) consumer->Feed("m" + std::to_string(i), "v");
  // No stop yet: only the interval can flush these three.
  ASSERT_TRUE(
      dataflow::testing::WaitFor([&] { return consumer->count(Outcome::kAcked) == 3; }, 10s));
  EXPECT_EQ(rec.Sizes(), (std::vector<std::size_t>{3}));
  ASSERT_TRUE((*service)->Stop(10s).ok());
}

TEST(BatchingService, FlushWhenIdleWritesAPartialBatchWithoutWaitingForTheInterval) {
  auto consumer = std::make_shared<ScriptedConsumer>();
  BatchRecorder rec;
  auto service = BatchingService<std::string>::Create(
      {.batch_size = 100, .flush_interval = std::chrono::hours(1), .flush_when_idle = true},
      consumer, Transform, rec.Processor());
  ASSERT_TRUE(service.ok());
  ASSERT_TRUE((*service)->Start().ok());
  for (int i = 0; i < 3; ++i) consumer->Feed("m" + std::to_string(i), "v");
  // Neither the size (100) nor the interval (1 h) nor a stop can flush these: only idleness.
  ASSERT_TRUE(
      dataflow::testing::WaitFor([&] { return consumer->count(Outcome::kAcked) == 3; }, 10s));
  std::size_t flushed = 0;
  for (std::size_t n : rec.Sizes()) flushed += n;
  EXPECT_EQ(flushed, 3u);
  ASSERT_TRUE((*service)->Stop(10s).ok());
}

// With idle_linger, an idle cut waits until the batch's first message has waited that long:
// a message that arrives meanwhile joins the batch instead of following in a second one.
TEST(BatchingService, AnIdleCutWaitsForTheLingerAndFlushPromptlyEndsIt) {
  auto consumer = std::make_shared<ScriptedConsumer>();
  BatchRecorder rec;
  std::atomic<int> transformed{0};
  auto counting = [&](const Message& m) {
    auto out = Transform(m);
    transformed.fetch_add(1);
    return out;
  };
  auto service = BatchingService<std::string>::Create({.common = {.num_workers = 1},
                                                       .batch_size = 2,
                                                       .flush_interval = std::chrono::hours(1),
                                                       .flush_when_idle = true,
                                                       .idle_linger = std::chrono::hours(1)},
                                                      consumer, counting, rec.Processor());
  ASSERT_TRUE(service.ok()) << service.status();
  ASSERT_TRUE((*service)->Start().ok());
  consumer->Feed("m0", "v");
  ASSERT_TRUE(dataflow::testing::WaitFor([&] { return transformed.load() == 1; }, 10s));
  consumer->Feed("m1", "v");  // without the linger, m0 would have been cut alone by now
  ASSERT_TRUE(
      dataflow::testing::WaitFor([&] { return consumer->count(Outcome::kAcked) == 2; }, 10s));
  EXPECT_EQ(rec.Sizes(), (std::vector<std::size_t>{2}));

  // A stopping pipeline's FlushPromptly cuts at once, lingering no more.
  consumer->Feed("m2", "v");
  ASSERT_TRUE(dataflow::testing::WaitFor([&] { return transformed.load() == 3; }, 10s));
  (*service)->FlushPromptly();
  ASSERT_TRUE(
      dataflow::testing::WaitFor([&] { return consumer->count(Outcome::kAcked) == 3; }, 10s));
  EXPECT_EQ(rec.Sizes(), (std::vector<std::size_t>{2, 1}));
  ASSERT_TRUE((*service)->Stop(10s).ok());
}

TEST(BatchingService, ANegativeIdleLingerIsRefused) {
  auto service = BatchingService<std::string>::Create(
      {.common = {.name = "sink"}, .flush_when_idle = true, .idle_linger = -1ms},
      std::make_shared<ScriptedConsumer>(), Transform, BatchRecorder{}.Processor());
  ASSERT_FALSE(service.ok());
  EXPECT_EQ(service.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(service.status().message().find("sink: idle_linger must be >= 0"), std::string::npos)
      << service.status();
}

TEST(BatchingService, AFailedBatchNacksEveryMessageInIt) {
  auto consumer = std::make_shared<ScriptedConsumer>();
  BatchRecorder rec;
  auto service = BatchingService<std::string>::Create(
      {.batch_size = 4, .flush_interval = std::chrono::hours(1)}, consumer, Transform,
      rec.Processor(absl::UnavailableError("warehouse down")));
  ASSERT_TRUE(service.ok());
  ASSERT_TRUE((*service)->Start().ok());
  for (int i = 0; i < 4; ++i) consumer->Feed("m" + std::to_string(i), "v");
  ASSERT_TRUE((*service)->Stop(10s).ok());
  EXPECT_EQ(consumer->count(Outcome::kNacked), 4u);
  EXPECT_EQ((*service)->metrics().processing_errors, 1u);
}

TEST(BatchingService, APermanentBatchErrorIsIsolatedToTheRowThatCausesIt) {
  auto consumer = std::make_shared<ScriptedConsumer>();
  auto dlq = std::make_shared<testing::RecordingDeadLetterSink>();
  std::mutex mu;
  std::vector<std::string> stored;
  // A sink that rejects a whole batch with a permanent error when any row is "poison", as a
  // warehouse does for one invalid row (and stores nothing of that batch).
  auto service = BatchingService<std::string>::Create(
      {.common = {.num_workers = 1, .dead_letter = dlq},
       .batch_size = 16,
       .flush_interval = std::chrono::hours(1)},
      consumer, Transform, [&](std::span<ProcessableItem<std::string>> batch) {
        for (auto& item : batch) {
          if (item.payload == "poison") return PermanentError("row is invalid for the table");
        }
        std::lock_guard lock(mu);
        for (auto& item : batch) stored.push_back(item.original.data.id);
        return absl::OkStatus();
      });
  ASSERT_TRUE(service.ok());
  ASSERT_TRUE((*service)->Start().ok());
  for (int i = 0; i < 16; ++i) {
    consumer->Feed("m" + std::to_string(i), i == 11 ? "poison" : "good");
  }
  ASSERT_TRUE((*service)->Stop(10s).ok());
  EXPECT_EQ(stored.size(), 15u) << "every good row is stored";
  EXPECT_EQ(consumer->count(Outcome::kAcked), 16u);
  ASSERT_EQ(dlq->letters().size(), 1u);
  EXPECT_EQ(dlq->letters()[0].id, "m11");
  EXPECT_EQ((*service)->metrics().dead_lettered, 1u);
  EXPECT_EQ((*service)->metrics().processed, 15u);
}

TEST(BatchingService, FlushPromptlyCutsPartialBatchesWithoutWaitingForTheInterval) {
  auto consumer = std::make_shared<ScriptedConsumer>();
  BatchRecorder rec;
  auto service = BatchingService<std::string>::Create(
      {.common = {.num_workers = 1}, .batch_size = 10, .flush_interval = std::chrono::hours(1)},
      consumer, Transform, rec.Processor());
  ASSERT_TRUE(service.ok());
  ASSERT_TRUE((*service)->Start().ok());
  for (int i = 0; i < 3; ++i) consumer->Feed("a" + std::to_string(i), "v");
  EXPECT_FALSE(dataflow::testing::WaitFor([&] { return !rec.Sizes().empty(); }, 200ms))
      << "held for the flush interval";
  (*service)->FlushPromptly();  // as a stopping pipeline does
  ASSERT_TRUE(dataflow::testing::WaitFor([&] { return rec.Sizes().size() == 1; }, 10s));
  EXPECT_EQ(rec.Sizes()[0], 3u);
  EXPECT_EQ(consumer->count(Outcome::kAcked), 3u);
  // And what arrives later goes out as soon as nothing more is waiting.
  consumer->Feed("late", "v");
  ASSERT_TRUE(dataflow::testing::WaitFor([&] { return rec.Sizes().size() == 2; }, 10s));
  ASSERT_TRUE((*service)->Stop(10s).ok());
  EXPECT_EQ(consumer->count(Outcome::kAcked), 4u);
}

TEST(BatchingService, MessagesTheProcessorSettlesItselfAreCountedByOutcome) {
  auto consumer = std::make_shared<ScriptedConsumer>();
  auto service = BatchingService<std::string>::Create(
      {.batch_size = 4, .flush_interval = std::chrono::hours(1)}, consumer, Transform,
      [](std::span<ProcessableItem<std::string>> batch) {
        // A sink that rejects one row and settles the rest itself, as bqstore does.
        for (auto& item : batch) {
          item.original.data.id == "m1" ? item.original.Nack() : item.original.Ack();
        }
        return absl::OkStatus();
      });
  ASSERT_TRUE(service.ok());
  ASSERT_TRUE((*service)->Start().ok());
  for (int i = 0; i < 4; ++i) consumer->Feed("m" + std::to_string(i), "v");
  ASSERT_TRUE((*service)->Stop(10s).ok());
  EXPECT_EQ(consumer->outcome("m1"), Outcome::kNacked);
  const ServiceMetrics m = (*service)->metrics();
  EXPECT_EQ(m.processed, 3u);
  EXPECT_EQ(m.nacked, 1u);
}

TEST(BatchingService, AThrowingProcessorNacksTheBatch) {
  auto consumer = std::make_shared<ScriptedConsumer>();
  auto service = BatchingService<std::string>::Create(
      {.batch_size = 2, .flush_interval = std::chrono::hours(1)}, consumer, Transform,
      [](std::span<ProcessableItem<std::string>>) -> absl::Status {
        throw std::runtime_error("boom");
      });
  ASSERT_TRUE(service.ok());
  ASSERT_TRUE((*service)->Start().ok());
  consumer->Feed("a", "v");
  consumer->Feed("b", "v");
  ASSERT_TRUE((*service)->Stop(10s).ok());
  EXPECT_EQ(consumer->outcome("a"), Outcome::kNacked);
  EXPECT_EQ(consumer->outcome("b"), Outcome::kNacked);
}

TEST(BatchingService, WhatTheProcessorSettledItselfIsLeftAlone) {
  auto consumer = std::make_shared<ScriptedConsumer>();
  auto service = BatchingService<std::string>::Create(
      {.batch_size = 3, .flush_interval = std::chrono::hours(1)}, consumer, Transform,
      [](std::span<ProcessableItem<std::string>> batch) {
        for (auto& item : batch) {
          if (item.payload == "reject") item.original.Nack();  // e.g. a row the sink refused
        }
        return absl::OkStatus();
      });
  ASSERT_TRUE(service.ok());
  ASSERT_TRUE((*service)->Start().ok());
  consumer->Feed("a", "v");
  consumer->Feed("b", "reject");
  consumer->Feed("c", "v");
  ASSERT_TRUE((*service)->Stop(10s).ok());
  EXPECT_EQ(consumer->outcome("a"), Outcome::kAcked);
  EXPECT_EQ(consumer->outcome("b"), Outcome::kNacked);
  EXPECT_EQ(consumer->outcome("c"), Outcome::kAcked);
  EXPECT_EQ(consumer->settle_calls("b"), 1);
}

TEST(BatchingService, TransformOutcomesAreSettledBeforeBatching) {
  auto consumer = std::make_shared<ScriptedConsumer>();
  BatchRecorder rec;
  auto service = BatchingService<std::string>::Create(
      {.batch_size = 10, .flush_interval = std::chrono::hours(1)}, consumer, Transform,
      rec.Processor());
  ASSERT_TRUE(service.ok());
  ASSERT_TRUE((*service)->Start().ok());
  consumer->Feed("s", "skip");
  consumer->Feed("e", "err");
  consumer->Feed("k", "keep");
  ASSERT_TRUE((*service)->Stop(10s).ok());
  EXPECT_EQ(consumer->outcome("s"), Outcome::kAcked);
  EXPECT_EQ(consumer->outcome("e"), Outcome::kNacked);
  EXPECT_EQ(consumer->outcome("k"), Outcome::kAcked);
  EXPECT_EQ(rec.payloads, std::vector<std::string>{"keep"});
}

TEST(BatchingService, FactoryRejectsBadArguments) {
  auto consumer = std::make_shared<ScriptedConsumer>();
  BatchRecorder rec;
  using Svc = BatchingService<std::string>;
  auto check = [](absl::StatusOr<std::unique_ptr<Svc>> r, const char* mentions) {
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(mentions), absl::string_view::npos) << r.status();
  };
  check(Svc::Create({.batch_size = 0}, consumer, Transform, rec.Processor()), "batch_size");
  check(Svc::Create({.flush_interval = 0ms}, consumer, Transform, rec.Processor()),
        "flush_interval");
  check(Svc::Create({.common = {.num_workers = 0}}, consumer, Transform, rec.Processor()),
        "num_workers");
  // An empty name is the kind's default.
  check(Svc::Create({}, nullptr, Transform, rec.Processor()), "batching-service: consumer");
  check(Svc::Create({}, consumer, nullptr, rec.Processor()), "transformer");
  check(Svc::Create({}, consumer, Transform, nullptr), "processor");
}

TEST(BatchingService, GoDefaults) {
  BatchingServiceOptions o;
  EXPECT_EQ(o.common.num_workers, 5);
  EXPECT_EQ(o.batch_size, 100u);
  EXPECT_EQ(o.flush_interval, std::chrono::minutes(1));
  EXPECT_EQ(StreamingServiceOptions{}.common.num_workers, 5);
}

TEST(BatchingService, StopPastTheDeadlineNacksThePendingBatch) {
  auto consumer = std::make_shared<ScriptedConsumer>();
  std::atomic<int> calls{0};
  BatchingService<std::string>* raw = nullptr;
  auto service = BatchingService<std::string>::Create(
      {.common = {.num_workers = 1}, .batch_size = 2, .flush_interval = std::chrono::hours(1)},
      consumer, Transform, [&](std::span<ProcessableItem<std::string>>) {
        if (calls++ == 0) {
          EXPECT_TRUE(
              dataflow::testing::WaitFor([&] { return raw->draining_past_deadline(); }, 30s, 1ms));
        }
        return absl::OkStatus();
      });
  ASSERT_TRUE(service.ok());
  raw = service->get();
  for (int i = 0; i < 6; ++i) consumer->Feed("m" + std::to_string(i), "v");
  ASSERT_TRUE((*service)->Start().ok());
  absl::Status stopped = (*service)->Stop(100ms);
  EXPECT_EQ(stopped.code(), absl::StatusCode::kDeadlineExceeded) << stopped;
  EXPECT_EQ(calls.load(), 1);  // only the batch in flight at the deadline was processed
  EXPECT_EQ(consumer->count(Outcome::kAcked), 2u);
  EXPECT_EQ(consumer->count(Outcome::kNacked), 4u);
  EXPECT_EQ(consumer->count(Outcome::kPending), 0u);
}

TEST(BatchingService, ManyMessagesAreEachSettledExactlyOnce) {
  auto consumer = std::make_shared<ScriptedConsumer>(512);
  std::atomic<int> in_batches{0};
  auto service = BatchingService<std::string>::Create(
      {.common = {.num_workers = 4}, .batch_size = 64, .flush_interval = 5ms}, consumer, Transform,
      [&](std::span<ProcessableItem<std::string>> batch) {
        in_batches += static_cast<int>(batch.size());
        return absl::OkStatus();
      });
  ASSERT_TRUE(service.ok());
  ASSERT_TRUE((*service)->Start().ok());
  constexpr int kMessages = 20000;
  for (int i = 0; i < kMessages; ++i) consumer->Feed("m" + std::to_string(i), "v");
  ASSERT_TRUE((*service)->Stop(60s).ok());
  EXPECT_EQ(in_batches.load(), kMessages);
  EXPECT_EQ(consumer->count(Outcome::kAcked), static_cast<std::size_t>(kMessages));
  for (int i = 0; i < kMessages; i += 97) {
    ASSERT_EQ(consumer->settle_calls("m" + std::to_string(i)), 1);
  }
}

}  // namespace
}  // namespace dataflow::messagepipeline

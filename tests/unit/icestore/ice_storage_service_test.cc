// End to end over the in-process broker: publish → IceStorageService → LocalDirectoryUploader,
// then read every object back.
#include "dataflow/icestore/ice_storage_service.h"

#include <absl/time/time.h>
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "archive_reader.h"
#include "dataflow/icestore/local_directory_uploader.h"
#include "dataflow/messagepipeline/in_process_broker.h"
#include "dataflow_testing/server_process.h"

namespace dataflow::icestore {
namespace {

using messagepipeline::Clock;
using messagepipeline::InProcessBroker;
using messagepipeline::MessageData;
using testing::WaitFor;
using namespace std::chrono_literals;

Clock::time_point Day(int d) {
  return absl::ToChronoTime(
      absl::FromCivil(absl::CivilSecond(2025, 6, d, 10, 0, 0), absl::UTCTimeZone()));
}

struct Fixture {
  std::shared_ptr<InProcessBroker> broker;
  std::shared_ptr<messagepipeline::MessageConsumer> consumer;
  std::filesystem::path dir;
  std::shared_ptr<LocalDirectoryUploader> local;

  explicit Fixture(const std::string& name, messagepipeline::InProcessBrokerOptions opts = {}) {
    broker = InProcessBroker::Create(opts);
    EXPECT_TRUE(broker->CreateTopic("t").ok());
    EXPECT_TRUE(broker->CreateSubscription("s", "t").ok());
    consumer = *broker->NewConsumer("s");
    dir = test::FreshDir(name);
    local = std::shared_ptr<LocalDirectoryUploader>(
        std::move(*LocalDirectoryUploader::Create({.root = dir.string(), .prefix = "ice"})));
  }
  ~Fixture() { std::filesystem::remove_all(dir); }

  // Publishes n messages spread over 2 days and 3 locations (one via the attribute);
  // returns id → expected batch key.
  std::map<std::string, std::string> Publish(int n, const std::string& tag) {
    std::map<std::string, std::string> expected;
    for (int i = 0; i < n; ++i) {
      const int day = 15 + i % 2;
      const std::string loc = "loc-" + std::to_string(i % 3);
      MessageData data{.id = tag + "-" + std::to_string(i),
                       .payload = std::string(100, static_cast<char>('a' + i % 26)),
                       .publish_time = Day(day)};
      messagepipeline::Attributes attrs;
      if (i % 3 == 0) {
        attrs["location"] = loc;
      } else {
        data.enrichment_data = {{"location", loc}};
      }
      expected[data.id] = "2025/06/" + std::to_string(day) + "/" + loc;
      EXPECT_TRUE(broker->Publish("t", data, attrs).ok());
    }
    return expected;
  }

  // Every record once, under ice/<its key>/, with the key the publisher implied.
  void ExpectArchivedExactlyOnce(const std::map<std::string, std::string>& expected) {
    std::vector<std::string> errors;
    auto objects = test::ReadArchive(dir, &errors);
    for (const auto& e : errors) ADD_FAILURE() << e;
    std::map<std::string, int> seen;
    for (const auto& obj : objects) {
      ASSERT_FALSE(obj.records.empty()) << obj.name;
      for (const auto& rec : obj.records) {
        ++seen[rec.id];
        EXPECT_TRUE(obj.name.starts_with("ice/" + rec.batch_key + "/")) << obj.name;
        auto it = expected.find(rec.id);
        ASSERT_NE(it, expected.end()) << rec.id;
        EXPECT_EQ(rec.batch_key, it->second);
        EXPECT_EQ(rec.original_payload.size(), 100u);
      }
    }
    EXPECT_EQ(seen.size(), expected.size());
    for (const auto& [id, count] : seen) EXPECT_EQ(count, 1) << id;
  }
};

// Fails every upload while `down` is set: the stand-in for a storage server that is stopped.
class SwitchableUploader : public DataUploader {
 public:
  explicit SwitchableUploader(std::shared_ptr<DataUploader> next) : next_(std::move(next)) {}
  absl::StatusOr<std::string> Upload(const ObjectGroup& group) override {
    if (down) {
      ++failures;
      return absl::UnavailableError("storage is down");
    }
    return next_->Upload(group);
  }
  std::atomic<bool> down{false};
  std::atomic<int> failures{0};

 private:
  std::shared_ptr<DataUploader> next_;
};

TEST(IceStorageService, CreateValidates) {
  Fixture f("validate");
  auto no_consumer = IceStorageService::Create({}, nullptr, f.local);
  // An empty name is the kind's default.
  EXPECT_EQ(no_consumer.status().message(), "icestore: consumer is null") << no_consumer.status();
  EXPECT_FALSE(IceStorageService::Create({}, f.consumer, nullptr).ok());
  EXPECT_FALSE(IceStorageService::Create({}, f.consumer, f.local, nullptr).ok());
  EXPECT_FALSE(IceStorageService::Create({.common = {.num_workers = 0}}, f.consumer, f.local).ok());
  EXPECT_FALSE(
      IceStorageService::Create({.common = {.max_delivery_attempts = -1}}, f.consumer, f.local)
          .ok());
  auto bad = IceStorageService::Create({.batcher = {.batch_size = 0}}, f.consumer, f.local);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("batch_size"), std::string::npos) << bad.status();
}

TEST(IceStorageService, EveryMessageLandsInExactlyOneObjectUnderItsKey) {
  Fixture f("e2e");
  auto service = IceStorageService::Create(
      {.common = {.num_workers = 3}, .batcher = {.batch_size = 25, .flush_interval = 1h}},
      f.consumer, f.local);
  ASSERT_TRUE(service.ok()) << service.status();
  ASSERT_TRUE((*service)->Start().ok());
  auto expected = f.Publish(600, "e2e");
  // 6 keys x 100 messages, batch 25: every message goes out on size alone.
  ASSERT_TRUE(WaitFor([&] { return f.broker->Stats("s")->acked == 600; }, 30s));
  ASSERT_TRUE((*service)->Stop(10s).ok());
  EXPECT_EQ((*service)->objects_written(), 24u);
  f.ExpectArchivedExactlyOnce(expected);
  auto m = (*service)->metrics();
  EXPECT_EQ(m.received, 600u);
  EXPECT_EQ(m.processed, 600u);
  EXPECT_EQ(m.nacked, 0u);
}

TEST(IceStorageService, StopFlushesPartialBatches) {
  Fixture f("stop");
  auto service = IceStorageService::Create(
      {.common = {.num_workers = 2}, .batcher = {.batch_size = 1000, .flush_interval = 1h}},
      f.consumer, f.local);
  ASSERT_TRUE(service.ok());
  ASSERT_TRUE((*service)->Start().ok());
  auto expected = f.Publish(42, "stop");
  ASSERT_TRUE(WaitFor([&] { return (*service)->metrics().received == 42; }, 20s));
  // Far below batch_size and the interval an hour away: nothing may be written yet.
  EXPECT_EQ((*service)->objects_written(), 0u);
  EXPECT_EQ(f.broker->Stats("s")->acked, 0u);
  ASSERT_TRUE((*service)->Stop(10s).ok());
  EXPECT_EQ(f.broker->Stats("s")->acked, 42u);
  EXPECT_EQ((*service)->objects_written(), 6u);  // one per key
  f.ExpectArchivedExactlyOnce(expected);
}

TEST(IceStorageService, FlushPromptlyCutsOpenBatchesWhileRunning) {
  Fixture f("prompt");
  auto service = IceStorageService::Create(
      {.common = {.num_workers = 2}, .batcher = {.batch_size = 1000, .flush_interval = 1h}},
      f.consumer, f.local);
  ASSERT_TRUE(service.ok());
  ASSERT_TRUE((*service)->Start().ok());
  auto expected = f.Publish(42, "prompt");
  ASSERT_TRUE(WaitFor([&] { return (*service)->metrics().received == 42; }, 20s));
  EXPECT_EQ(f.broker->Stats("s")->acked, 0u);
  (*service)->FlushPromptly();  // as a stopping pipeline does, before it stops anything
  ASSERT_TRUE(WaitFor([&] { return f.broker->Stats("s")->acked == 42; }, 20s));
  EXPECT_EQ((*service)->objects_written(), 6u);
  ASSERT_TRUE((*service)->Stop(10s).ok());
  f.ExpectArchivedExactlyOnce(expected);
}

TEST(IceStorageService, FlushWhenIdleCutsOpenBatchesWithoutWaitingForTheInterval) {
  Fixture f("idle");
  auto service = IceStorageService::Create({.common = {.num_workers = 2},
                                            .batcher = {.batch_size = 1000, .flush_interval = 1h},
                                            .flush_when_idle = true},
                                           f.consumer, f.local);
  ASSERT_TRUE(service.ok());
  ASSERT_TRUE((*service)->Start().ok());
  auto expected = f.Publish(42, "idle");
  // Neither the size (1000) nor the interval (1 h) nor a stop can flush these: only idleness.
  ASSERT_TRUE(WaitFor([&] { return f.broker->Stats("s")->acked == 42; }, 20s));
  EXPECT_GE((*service)->objects_written(), 6u);
  ASSERT_TRUE((*service)->Stop(10s).ok());
  f.ExpectArchivedExactlyOnce(expected);
}

TEST(IceStorageService, TheIntervalFlushesIdleBatchesWhileRunning) {
  Fixture f("interval");
  auto service = IceStorageService::Create(
      {.common = {.num_workers = 2}, .batcher = {.batch_size = 1000, .flush_interval = 100ms}},
      f.consumer, f.local);
  ASSERT_TRUE(service.ok());
  ASSERT_TRUE((*service)->Start().ok());
  auto expected = f.Publish(30, "interval");
  // Only the interval can flush these: batch_size is never reached.
  ASSERT_TRUE(WaitFor([&] { return f.broker->Stats("s")->acked == 30; }, 20s));
  EXPECT_GE((*service)->objects_written(), 6u);
  ASSERT_TRUE((*service)->Stop(10s).ok());
  f.ExpectArchivedExactlyOnce(expected);
}

TEST(IceStorageService, FailedUploadsNackAndRedeliveryArchivesEverything) {
  Fixture f("redeliver", {.min_redelivery_backoff = 20ms});
  auto switchable = std::make_shared<SwitchableUploader>(f.local);
  switchable->down = true;
  auto service = IceStorageService::Create(
      {.common = {.num_workers = 2}, .batcher = {.batch_size = 10, .flush_interval = 100ms}},
      f.consumer, switchable);
  ASSERT_TRUE(service.ok());
  ASSERT_TRUE((*service)->Start().ok());
  auto expected = f.Publish(200, "redeliver");
  ASSERT_TRUE(WaitFor([&] { return f.broker->Stats("s")->nacked >= 200; }, 20s));
  EXPECT_EQ(f.broker->Stats("s")->acked, 0u);  // nothing acked while storage is down
  EXPECT_GT(switchable->failures.load(), 0);
  switchable->down = false;  // the server is back
  ASSERT_TRUE(WaitFor([&] { return f.broker->Stats("s")->acked == 200; }, 30s));
  ASSERT_TRUE((*service)->Stop(10s).ok());
  auto stats = *f.broker->Stats("s");
  EXPECT_EQ(stats.pending + stats.outstanding, 0u);
  f.ExpectArchivedExactlyOnce(expected);  // failed uploads leave no objects behind
  EXPECT_GE((*service)->metrics().nacked, 200u);
}

TEST(IceStorageService, TransformErrorsNackSkipsAckAndHostileKeysAreSanitised) {
  Fixture f("transform");
  messagepipeline::MessageTransformer<ArchivalData> transformer =
      [](const messagepipeline::Message& m) -> messagepipeline::TransformResult<ArchivalData> {
    if (m.data.payload == "skip") return messagepipeline::Skip<ArchivalData>();
    if (m.data.payload == "bad") return absl::InvalidArgumentError("bad payload");
    return std::optional<ArchivalData>(
        ArchivalData{.id = m.data.id, .batch_key = "../../escape", .original_payload = "x"});
  };
  auto service =
      IceStorageService::Create({.common = {.num_workers = 1}, .batcher = {.batch_size = 1}},
                                f.consumer, f.local, transformer);
  ASSERT_TRUE(service.ok());
  ASSERT_TRUE((*service)->Start().ok());
  for (const char* p : {"skip", "bad", "ok"}) {
    ASSERT_TRUE(f.broker->Publish("t", MessageData{.id = p, .payload = p}).ok());
  }
  ASSERT_TRUE(WaitFor(
      [&] {
        auto s = *f.broker->Stats("s");
        return s.acked == 2 && s.nacked >= 1;
      },
      10s));
  ASSERT_TRUE((*service)->Stop(10s).ok());
  std::vector<std::string> errors;
  auto objects = test::ReadArchive(f.dir, &errors);
  EXPECT_TRUE(errors.empty());
  ASSERT_EQ(objects.size(), 1u);
  EXPECT_TRUE(objects[0].name.starts_with("ice/escape/")) << objects[0].name;
  EXPECT_FALSE(std::filesystem::exists(f.dir.parent_path() / "escape"));
  auto m = (*service)->metrics();
  EXPECT_EQ(m.skipped, 1u);
  EXPECT_GE(m.transform_errors, 1u);
}

// Acks what reaches the dead-letter subscription, counting it: an in-process dead letter is
// stored (and its message acked) only once the dead-letter topic's subscribers acked it.
struct DeadLetterReader {
  explicit DeadLetterReader(InProcessBroker& broker) : consumer(*broker.NewConsumer("dead-sub")) {
    EXPECT_TRUE(consumer->Start().ok());
    thread = std::jthread([this] {
      while (auto m = consumer->Messages().Pop()) {
        m->Ack();
        ++count;
      }
    });
  }
  ~DeadLetterReader() { (void)consumer->Stop(std::chrono::steady_clock::now()); }
  std::shared_ptr<messagepipeline::MessageConsumer> consumer;
  std::atomic<std::size_t> count{0};
  std::jthread thread;  // last: joined before the rest goes
};

// Waits until `n` dead letters were stored and the source has acked `acked`; false on timeout.
bool WaitForDeadLetters(InProcessBroker& broker, const DeadLetterReader& dead, std::size_t n,
                        std::uint64_t acked) {
  return WaitFor(
      [&] {
        auto src = broker.Stats("s");
        return src.ok() && dead.count == n && src->acked == acked && src->outstanding == 0 &&
               src->pending == 0;
      },
      10s);
}

TEST(IceStorageService, BadLocationsAndOverlongKeysAreDeadLetteredAndTheRestArchived) {
  Fixture f("badkeys");
  ASSERT_TRUE(f.broker->CreateTopic("dead").ok());
  ASSERT_TRUE(f.broker->CreateSubscription("dead-sub", "dead").ok());
  DeadLetterReader dead(*f.broker);
  auto service = IceStorageService::Create(
      {.common = {.num_workers = 2, .dead_letter = f.broker->NewDeadLetterSink("dead")},
       .batcher = {.batch_size = 10, .flush_interval = 50ms}},
      f.consumer, f.local);
  ASSERT_TRUE(service.ok()) << service.status();
  ASSERT_TRUE((*service)->Start().ok());
  std::map<std::string, std::string> expected;
  for (int i = 0; i < 3; ++i) {
    const std::string id = "good-" + std::to_string(i);
    ASSERT_TRUE(
        f.broker
            ->Publish(
                "t",
                MessageData{.id = id, .payload = std::string(100, 'g'), .publish_time = Day(15)},
                {{"location", "loc-a"}})
            .ok());
    expected[id] = "2025/06/15/loc-a";
  }
  // Over max_batch_key_bytes (256 by default), and past NAME_MAX as a directory name.
  ASSERT_TRUE(f.broker
                  ->Publish("t", MessageData{.id = "long", .payload = "x", .publish_time = Day(15)},
                            {{"location", std::string(300, 'x')}})
                  .ok());
  ASSERT_TRUE(f.broker
                  ->Publish("t",
                            MessageData{.id = "climb", .payload = "x", .publish_time = Day(15)},
                            {{"location", "../../etc"}})
                  .ok());
  ASSERT_TRUE(WaitForDeadLetters(*f.broker, dead, 2, 5))
      << "dead " << dead.count << " acked " << f.broker->Stats("s")->acked;
  ASSERT_TRUE((*service)->Stop(10s).ok());
  EXPECT_EQ(f.broker->Stats("s")->nacked, 0u);  // no redelivery loop
  EXPECT_EQ((*service)->metrics().dead_lettered, 2u);
  f.ExpectArchivedExactlyOnce(expected);  // the good ones, and nothing under a bad key
}

TEST(IceStorageService, AGroupTheUploaderRefusesPermanentlyIsDeadLettered) {
  Fixture f("refused");
  ASSERT_TRUE(f.broker->CreateTopic("dead").ok());
  ASSERT_TRUE(f.broker->CreateSubscription("dead-sub", "dead").ok());
  DeadLetterReader dead(*f.broker);
  // A custom key within a raised cap, but with a segment the filesystem refuses.
  messagepipeline::MessageTransformer<ArchivalData> transformer =
      [](const messagepipeline::Message& m) -> messagepipeline::TransformResult<ArchivalData> {
    return std::optional<ArchivalData>(ArchivalData{
        .id = m.data.id, .batch_key = "k/" + std::string(300, 'y'), .original_payload = "x"});
  };
  auto service = IceStorageService::Create(
      {.common = {.num_workers = 1, .dead_letter = f.broker->NewDeadLetterSink("dead")},
       .batcher = {.batch_size = 2, .flush_interval = 50ms},
       .max_batch_key_bytes = 1000},
      f.consumer, f.local, transformer);
  ASSERT_TRUE(service.ok()) << service.status();
  ASSERT_TRUE((*service)->Start().ok());
  for (const char* id : {"a", "b"}) {
    ASSERT_TRUE(f.broker->Publish("t", MessageData{.id = id, .payload = id}).ok());
  }
  ASSERT_TRUE(WaitForDeadLetters(*f.broker, dead, 2, 2))
      << "dead " << dead.count << " nacked " << f.broker->Stats("s")->nacked;
  ASSERT_TRUE((*service)->Stop(10s).ok());
  EXPECT_EQ(f.broker->Stats("s")->nacked, 0u);
  EXPECT_EQ((*service)->objects_written(), 0u);
}

}  // namespace
}  // namespace dataflow::icestore

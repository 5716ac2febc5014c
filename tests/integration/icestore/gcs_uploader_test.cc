// GcsBatchUploader against a real GCS JSON API server: the firebase-tools Cloud Storage
// emulator, started offline on a loopback port for this binary.
#include "dataflow/icestore/gcs_uploader.h"

#include <absl/time/time.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <cstdlib>
#include <map>

#include "dataflow/icestore/archival.h"
#include "dataflow/icestore/ice_storage_service.h"
#include "dataflow/messagepipeline/errors.h"
#include "dataflow/messagepipeline/in_process_broker.h"
#include "dataflow_testing/gcs_fake_server.h"
#include "dataflow_testing/storage_emulator.h"

namespace dataflow::icestore {
namespace {

using messagepipeline::InProcessBroker;
using messagepipeline::MessageData;
using testing::StorageEmulator;
using testing::WaitFor;
using namespace std::chrono_literals;

constexpr char kBucket[] = "icestore-test";

StorageEmulator* emulator = nullptr;

class EmulatorEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    auto e = StorageEmulator::Start();
    ASSERT_TRUE(e.ok()) << e.status();
    owned_ = std::move(*e);
    emulator = owned_.get();
  }
  void TearDown() override {
    emulator = nullptr;
    owned_.reset();
  }

 private:
  std::unique_ptr<StorageEmulator> owned_;
};
const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new EmulatorEnvironment);

GcsUploaderOptions Options(const std::string& prefix) {
  return {.bucket = kBucket,
          .prefix = prefix,
          .endpoint = "http://" + emulator->host(),
          .max_attempts = 2,
          .initial_backoff = 20ms,
          .max_backoff = 50ms,
          .request_timeout = 10s};
}

// name → records, for every object under prefix; fails the test on any unreadable line.
std::map<std::string, std::vector<ArchivalData>> ReadObjects(const std::string& prefix) {
  std::map<std::string, std::vector<ArchivalData>> out;
  auto names = emulator->List(kBucket, prefix + "/");
  EXPECT_TRUE(names.ok()) << names.status();
  if (!names.ok()) return out;
  for (const auto& name : *names) {
    auto bytes = emulator->Download(kBucket, name);
    EXPECT_TRUE(bytes.ok()) << bytes.status();
    if (!bytes.ok()) continue;
    auto text = GzipDecompress(*bytes);
    EXPECT_TRUE(text.ok()) << name << ": " << text.status();
    if (!text.ok()) continue;
    auto& records = out[name];
    std::size_t start = 0;
    while (start < text->size()) {
      const std::size_t end = text->find('\n', start);
      EXPECT_NE(end, std::string::npos) << name;
      if (end == std::string::npos) break;
      auto rec = DecodeArchivalLine(std::string_view(*text).substr(start, end - start));
      EXPECT_TRUE(rec.ok()) << name << ": " << rec.status();
      if (rec.ok()) records.push_back(*rec);
      start = end + 1;
    }
  }
  return out;
}

std::string Lines(int n, const std::string& key, std::size_t payload_bytes = 50) {
  std::string jsonl;
  for (int i = 0; i < n; ++i) {
    jsonl += EncodeArchivalLine({.id = "id-" + std::to_string(i),
                                 .batch_key = key,
                                 .original_payload = std::string(payload_bytes, 'p')});
  }
  return jsonl;
}

TEST(GcsBatchUploader, CreateValidates) {
  EXPECT_EQ(GcsBatchUploader::Create({.bucket = ""}).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto o = Options("v");
  o.chunk_size = 1000;
  EXPECT_NE(GcsBatchUploader::Create(o).status().message().find("262144"), std::string::npos);
  o = Options("../up");
  EXPECT_FALSE(GcsBatchUploader::Create(o).ok());
  ::unsetenv("STORAGE_EMULATOR_HOST");
  auto no_token = GcsBatchUploader::Create({.bucket = kBucket});
  EXPECT_NE(no_token.status().message().find("token_provider"), std::string::npos);
}

TEST(GcsBatchUploader, HonoursStorageEmulatorHost) {
  ::setenv("STORAGE_EMULATOR_HOST", emulator->host().c_str(), 1);
  auto up = GcsBatchUploader::Create({.bucket = kBucket, .prefix = "envhost"});
  ::unsetenv("STORAGE_EMULATOR_HOST");
  ASSERT_TRUE(up.ok()) << up.status();
  EXPECT_EQ((*up)->endpoint(), "http://" + emulator->host());
  auto name = (*up)->Upload({.batch_key = "2025/01/01", .jsonl = Lines(3, "2025/01/01")});
  ASSERT_TRUE(name.ok()) << name.status();
  EXPECT_EQ(ReadObjects("envhost")[*name].size(), 3u);
}

TEST(GcsBatchUploader, SimpleAndResumableUploadsLandUnderTheirKeys) {
  auto simple = GcsBatchUploader::Create(Options("modes"));
  auto o = Options("modes");
  o.resumable_threshold = 0;  // every object through a (single-chunk) resumable session
  auto resumable = GcsBatchUploader::Create(o);
  ASSERT_TRUE(simple.ok() && resumable.ok());
  auto a = (*simple)->Upload({.batch_key = "2025/06/15/loc-a", .jsonl = Lines(10, "k")});
  auto b = (*resumable)->Upload({.batch_key = "2025/06/15/loc-b", .jsonl = Lines(20, "k", 4000)});
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_TRUE(a->starts_with("modes/2025/06/15/loc-a/")) << *a;
  EXPECT_TRUE(b->starts_with("modes/2025/06/15/loc-b/")) << *b;
  auto objects = ReadObjects("modes");
  ASSERT_EQ(objects.size(), 2u);
  EXPECT_EQ(objects[*a].size(), 10u);
  EXPECT_EQ(objects[*b].size(), 20u);
  EXPECT_EQ(objects[*b][19].original_payload.size(), 4000u);
  EXPECT_EQ((*simple)->Upload({.batch_key = "../x", .jsonl = "{}\n"}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// The Go README configures `prefix: "archive/"`: objects land under "archive/<key>/", the
// same names a prefix without the slash gives, never "archive//<key>/".
TEST(GcsBatchUploader, APrefixWithATrailingSlashNamesNoEmptySegment) {
  auto up = GcsBatchUploader::Create(Options("slashed/"));
  ASSERT_TRUE(up.ok()) << up.status();
  auto name = (*up)->Upload({.batch_key = "2025/06/15/loc-a", .jsonl = Lines(3, "k")});
  ASSERT_TRUE(name.ok()) << name.status();
  EXPECT_TRUE(name->starts_with("slashed/2025/06/15/loc-a/")) << *name;
  auto listed = emulator->List(kBucket, "slashed/");
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->front(), *name);
  EXPECT_EQ(ReadObjects("slashed")[*name].size(), 3u);
}

TEST(GcsBatchUploader, UnreachableServerIsUnavailableNotACrash) {
  auto o = Options("down");
  o.endpoint = "http://127.0.0.1:" + std::to_string(testing::FreeTcpPort());
  auto up = GcsBatchUploader::Create(o);
  ASSERT_TRUE(up.ok());
  auto r = (*up)->Upload({.batch_key = "k", .jsonl = "{}\n"});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_NE(r.status().message().find("2 attempts"), std::string::npos) << r.status();
  EXPECT_FALSE(messagepipeline::IsPermanent(r.status()));  // the server may come back
}

// The emulator's gaps, against the strict wire-level fake.
GcsUploaderOptions FakeOptions(const testing::GcsFakeServer& fake) {
  return {.bucket = kBucket,
          .prefix = "fake",
          .gzip = {.level = 1},
          .endpoint = fake.endpoint(),
          .resumable_threshold = 256 * 1024,
          .chunk_size = 256 * 1024,
          .max_attempts = 3,
          .initial_backoff = 5ms,
          .max_backoff = 20ms};
}

// Incompressible-ish JSONL so the gzip object spans several 256 KiB chunks.
std::string BigJsonl() {
  std::string jsonl;
  std::uint64_t x = 88172645463325252ull;
  for (int i = 0; i < 600; ++i) {
    std::string payload(1500, ' ');
    for (char& c : payload) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      c = static_cast<char>(x);
    }
    jsonl += EncodeArchivalLine(
        {.id = "big-" + std::to_string(i), .batch_key = "k", .original_payload = payload});
  }
  return jsonl;
}

TEST(GcsFake, MultiChunkResumableUploadResumesAfterFailedChunks) {
  testing::GcsFakeServer fake;
  fake.CreateBucket(kBucket);
  auto up = GcsBatchUploader::Create(FakeOptions(fake));
  ASSERT_TRUE(up.ok()) << up.status();
  const std::string jsonl = BigJsonl();
  fake.fail_next_chunks = 2;  // two chunk PUTs fail: the uploader must ask and resume
  auto name = (*up)->Upload({.batch_key = "2025/06/15", .jsonl = jsonl, .records = 600});
  ASSERT_TRUE(name.ok()) << name.status();
  bool found = false;
  const std::string stored = fake.Object(kBucket, *name, &found);
  ASSERT_TRUE(found);
  EXPECT_GT(stored.size(), 3u * 256 * 1024);  // really several chunks
  EXPECT_GE(fake.chunk_puts.load(), 4);
  auto back = GzipDecompress(stored);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, jsonl);
  EXPECT_EQ(fake.fail_next_chunks.load(), 0);
}

TEST(GcsFake, LostReplyRetryHitsThePreconditionAndCountsAsWritten) {
  testing::GcsFakeServer fake;
  fake.CreateBucket(kBucket);
  auto up = GcsBatchUploader::Create(FakeOptions(fake));
  ASSERT_TRUE(up.ok());
  fake.lose_next_media_reply = 1;  // stored, but the client sees a 503 and retries
  auto name = (*up)->Upload({.batch_key = "k", .jsonl = Lines(5, "k"), .records = 5});
  ASSERT_TRUE(name.ok()) << name.status();
  EXPECT_EQ(fake.preconditions_failed.load(), 1);  // ifGenerationMatch=0 stopped an overwrite
  EXPECT_EQ(fake.Names(kBucket).size(), 1u);
}

TEST(GcsFake, A4xxIsPermanentAndNotRetriedA5xxIsTransient) {
  testing::GcsFakeServer fake;
  fake.CreateBucket(kBucket);
  auto up = GcsBatchUploader::Create(FakeOptions(fake));
  ASSERT_TRUE(up.ok());
  // An object name over GCS's 1024-byte limit: 400, whatever the number of attempts.
  const std::string key(1100, 'k');
  auto bad = (*up)->Upload({.batch_key = key, .jsonl = Lines(1, "k"), .records = 1});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument) << bad.status();
  EXPECT_TRUE(messagepipeline::IsPermanent(bad.status())) << bad.status();
  EXPECT_EQ(fake.create_requests.load(), 1);  // not retried
  // 503 on every chunk until the attempts run out: transient.
  fake.fail_next_chunks = 100;
  auto o = FakeOptions(fake);
  o.resumable_threshold = 0;
  auto resumable = GcsBatchUploader::Create(o);
  ASSERT_TRUE(resumable.ok());
  auto down = (*resumable)->Upload({.batch_key = "k", .jsonl = Lines(1, "k"), .records = 1});
  EXPECT_FALSE(down.ok());
  EXPECT_FALSE(messagepipeline::IsPermanent(down.status())) << down.status();
}

TEST(GcsFake, MissingBucketIsNotFoundAndBucketCreationIsStrict) {
  testing::GcsFakeServer fake;
  auto up = GcsBatchUploader::Create(FakeOptions(fake));
  ASSERT_TRUE(up.ok());
  auto r = (*up)->Upload({.batch_key = "k", .jsonl = Lines(1, "k"), .records = 1});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound) << r.status();
  // A missing bucket is the deployment's fault, not the data's: creating it fixes the upload.
  EXPECT_FALSE(messagepipeline::IsPermanent(r.status())) << r.status();
  httplib::Client client("127.0.0.1", fake.port());
  auto created = client.Post("/storage/v1/b?project=p", "{\"name\":\"nb\"}", "application/json");
  ASSERT_TRUE(created);
  EXPECT_EQ(created->status, 200);
  auto again = client.Post("/storage/v1/b?project=p", "{\"name\":\"nb\"}", "application/json");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 409);
  auto unknown = client.Get("/storage/v1/b/nb/o/x/acl");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 501);
}

struct Pipeline {
  std::shared_ptr<InProcessBroker> broker;
  std::unique_ptr<IceStorageService> service;
  std::map<std::string, std::string> expected;  // id → key

  Pipeline(const std::string& prefix, int batch_size) {
    broker = InProcessBroker::Create({.min_redelivery_backoff = 50ms});
    EXPECT_TRUE(broker->CreateTopic("t").ok());
    EXPECT_TRUE(broker->CreateSubscription("s", "t").ok());
    std::shared_ptr<DataUploader> up = std::move(*GcsBatchUploader::Create(Options(prefix)));
    // No attempt cap: these tests are about redelivery through an outage, and with the default
    // of 5 attempts and a 50 ms backoff a slow emulator restart would have the messages given
    // up on (dropped, as there is no dead-letter topic) before the server is back.
    service = std::move(*IceStorageService::Create(
        {.common = {.num_workers = 2, .max_delivery_attempts = 0},
         .batcher = {.batch_size = static_cast<std::size_t>(batch_size), .flush_interval = 200ms}},
        *broker->NewConsumer("s"), up));
  }
  void Publish(int n) {
    const auto t = absl::ToChronoTime(
        absl::FromCivil(absl::CivilSecond(2025, 6, 15, 8, 0, 0), absl::UTCTimeZone()));
    for (int i = 0; i < n; ++i) {
      const std::string loc = "site-" + std::to_string(i % 4);
      MessageData d{.id = "m" + std::to_string(i),
                    .payload = "{\"n\":" + std::to_string(i) + "}",
                    .publish_time = t,
                    .enrichment_data = {{"location", loc}}};
      expected[d.id] = "2025/06/15/" + loc;
      EXPECT_TRUE(broker->Publish("t", d).ok());
    }
  }
  void ExpectExactlyOnce(const std::string& prefix) {
    std::map<std::string, int> seen;
    for (const auto& [name, records] : ReadObjects(prefix)) {
      for (const auto& r : records) {
        ++seen[r.id];
        EXPECT_EQ(r.batch_key, expected[r.id]);
        EXPECT_TRUE(name.starts_with(prefix + "/" + r.batch_key + "/")) << name;
      }
    }
    EXPECT_EQ(seen.size(), expected.size());
    for (const auto& [id, n] : seen) EXPECT_EQ(n, 1) << id;
  }
};

TEST(IceStorageOverGcs, EveryMessageLandsOnceUnderItsKey) {
  Pipeline p("e2e", 25);
  ASSERT_TRUE(p.service->Start().ok());
  p.Publish(300);
  ASSERT_TRUE(WaitFor([&] { return p.broker->Stats("s")->acked == 300; }, 30s));
  ASSERT_TRUE(p.service->Stop(10s).ok());
  p.ExpectExactlyOnce("e2e");
}

// Last: it stops and restarts the emulator (which loses its objects on restart).
TEST(IceStorageOverGcs, ServerStoppedNacksThenRedeliveryArchivesEverything) {
  Pipeline p("outage", 20);
  emulator->process().Stop();
  ASSERT_TRUE(p.service->Start().ok());
  p.Publish(100);
  ASSERT_TRUE(WaitFor([&] { return p.broker->Stats("s")->nacked >= 100; }, 30s));
  EXPECT_EQ(p.broker->Stats("s")->acked, 0u);
  ASSERT_TRUE(emulator->process().Restart().ok());
  ASSERT_TRUE(WaitFor([&] { return p.broker->Stats("s")->acked == 100; }, 40s));
  ASSERT_TRUE(p.service->Stop(10s).ok());
  auto stats = *p.broker->Stats("s");
  EXPECT_EQ(stats.pending + stats.outstanding, 0u);
  p.ExpectExactlyOnce("outage");
}

}  // namespace
}  // namespace dataflow::icestore

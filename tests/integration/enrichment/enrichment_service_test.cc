// EnrichmentService on real servers: Google's Pub/Sub emulator in and out, and the cache
// chain InMemoryLruCache → RedisCache (a real redis-server) → Firestore (Google's Firestore
// emulator) seeded with device documents. All three servers are started once for this binary;
// each test uses its own topics, subscriptions, Firestore collection and Redis key prefix.
//
// Messages carry {"deviceId": ...} in a JSON payload (JsonPayloadKey) and a "seq" attribute,
// which travels with the output envelope and identifies each message on the way out.
#include "dataflow/enrichment/enrichment_service.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "dataflow/cache/firestore.h"
#include "dataflow/cache/lru_cache.h"
#include "dataflow/cache/redis_cache.h"
#include "dataflow/enrichment/enricher.h"
#include "dataflow/pubsub/admin.h"
#include "dataflow/pubsub/consumer.h"
#include "dataflow/pubsub/producer.h"
#include "dataflow_testing/firestore_emulator.h"
#include "dataflow_testing/pubsub_emulator.h"
#include "dataflow_testing/redis_server.h"
#include "dataflow_testing/server_process.h"

namespace dataflow::enrichment {
namespace {

namespace mp = messagepipeline;
using dataflow::testing::WaitFor;
using messagepipeline::Message;
using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;

constexpr char kProject[] = "enrichment-it";
constexpr int kDevices = 21;  // dev-0 (hot) and dev-1..dev-20

struct Device {
  std::string name;
  std::string location;
  int floor = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Device, name, location, floor)

nlohmann::json DeviceDoc(int i) {
  return {{"name", "Sensor " + std::to_string(i)},
          {"location", "building-" + std::to_string(i % 4)},
          {"floor", i % 7}};
}

// Every other message is for dev-0, so it stays in the LRU; the rest cycle through
// dev-1..dev-20, more keys than a small LRU holds, so those lookups reach Redis.
std::string DeviceFor(int seq) {
  return "dev-" + std::to_string(seq % 2 == 0 ? 0 : 1 + (seq / 2) % 20);
}

dataflow::testing::PubsubEmulator* g_pubsub = nullptr;
dataflow::testing::FirestoreEmulator* g_firestore = nullptr;
dataflow::testing::RedisServer* g_redis = nullptr;

class Servers : public ::testing::Environment {
 public:
  void SetUp() override {
    if (dataflow::testing::FindPubsubEmulator().empty()) return;  // the tests skip
    auto pubsub = dataflow::testing::PubsubEmulator::Start();
    ASSERT_TRUE(pubsub.ok()) << pubsub.status();
    pubsub_ = *std::move(pubsub);
    auto firestore = dataflow::testing::FirestoreEmulator::Start();
    ASSERT_TRUE(firestore.ok()) << firestore.status();
    firestore_ = *std::move(firestore);
    auto redis = dataflow::testing::RedisServer::Start();
    ASSERT_TRUE(redis.ok()) << redis.status();
    redis_ = *std::move(redis);
    // The clients find the emulators through the variables Google's clients use.
    ::setenv("PUBSUB_EMULATOR_HOST", pubsub_->host().c_str(), 1);
    ::setenv("FIRESTORE_EMULATOR_HOST", firestore_->host().c_str(), 1);
    ::setenv("GOOGLE_CLOUD_PROJECT", kProject, 1);
    g_pubsub = pubsub_.get();
    g_firestore = firestore_.get();
    g_redis = redis_.get();
  }
  void TearDown() override {
    g_pubsub = nullptr;
    g_firestore = nullptr;
    g_redis = nullptr;
    redis_.reset();
    firestore_.reset();
    pubsub_.reset();
  }

 private:
  std::unique_ptr<dataflow::testing::PubsubEmulator> pubsub_;
  std::unique_ptr<dataflow::testing::FirestoreEmulator> firestore_;
  std::unique_ptr<dataflow::testing::RedisServer> redis_;
};
const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new Servers);

using Lru = cache::InMemoryLruCache<std::string, Device>;
using Redis = cache::RedisCache<std::string, Device>;
using Firestore = cache::Firestore<std::string, Device>;

class EnrichmentServiceIT : public ::testing::Test {
 protected:
  void SetUp() override {
    if (g_pubsub == nullptr) GTEST_SKIP() << dataflow::testing::PubsubEmulatorMissingReason();
    static std::atomic<int> counter{0};
    id_ = std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "-" +
          std::to_string(counter++);
    auto stub = pubsub::MakePubsubStub();
    ASSERT_TRUE(stub.ok()) << stub.status();
    stub_ = *stub;
    for (const auto& [topic, sub] : {std::pair{In(), InSub()}, std::pair{Out(), OutSub()}}) {
      ASSERT_TRUE(pubsub::CreateTopic(*stub_, kProject, topic).ok());
      ASSERT_TRUE(pubsub::CreateSubscription(*stub_, kProject, sub, topic).ok());
    }
    auto docs = cache::MakeFirestoreDocumentStub(FirestoreOptions());
    ASSERT_TRUE(docs.ok()) << docs.status();
    docs_ = *docs;
    for (int i = 0; i < kDevices; ++i) {
      ASSERT_TRUE(docs_->Set("dev-" + std::to_string(i), DeviceDoc(i)).ok());
    }
    auto feeder = pubsub::GooglePubsubProducer::Create(
        stub_, {.project_id = kProject, .max_batch_delay = milliseconds(5)});
    ASSERT_TRUE(feeder.ok()) << feeder.status();
    feeder_ = *std::move(feeder);
  }

  void TearDown() override {
    if (service_) {
      EXPECT_TRUE(service_->Stop(seconds(10)).ok());
    }
    if (producer_) {
      EXPECT_TRUE(producer_->Stop(steady_clock::now() + seconds(10)).ok());
    }
    if (reader_) (void)reader_->Stop(steady_clock::now() + seconds(10));
    if (feeder_) (void)feeder_->Stop(steady_clock::now() + seconds(10));
  }

  std::string In() const { return "in-" + id_; }
  std::string InSub() const { return "in-sub-" + id_; }
  std::string Out() const { return "out-" + id_; }
  std::string OutSub() const { return "out-sub-" + id_; }
  cache::FirestoreOptions FirestoreOptions() const {
    return {.project_id = kProject, .collection_name = "devices-" + id_};
  }

  // The chain LRU (max_size entries, one shard so eviction is plain LRU) → Redis → Firestore.
  void BuildChain(std::size_t lru_size) {
    auto firestore = Firestore::Create(FirestoreOptions());
    ASSERT_TRUE(firestore.ok()) << firestore.status();
    firestore_ = *std::move(firestore);
    auto redis = Redis::Create({.addr = g_redis->addr(),
                                .cache_ttl = std::chrono::minutes(5),
                                .key_prefix = id_ + ":",
                                .retry_interval = milliseconds(100)},
                               firestore_);
    ASSERT_TRUE(redis.ok()) << redis.status();
    redis_ = *std::move(redis);
    auto lru = Lru::Create({.max_size = lru_size, .shards = 1}, redis_);
    ASSERT_TRUE(lru.ok()) << lru.status();
    lru_ = *std::move(lru);
  }

  // Starts the service: Pub/Sub in → enrich through the chain → PublishEnvelope to Out().
  // Every message handed to the publisher is recorded by its seq first.
  void StartService(EnricherOptions policy, std::size_t lru_size = 8) {
    BuildChain(lru_size);
    auto enricher = MakeEnricher<std::string, Device>(lru_, JsonPayloadKey("deviceId"),
                                                      JsonApplier<Device>(), policy);
    ASSERT_TRUE(enricher.ok()) << enricher.status();
    StartServiceWith(*enricher);
  }
  void StartServiceWith(std::shared_ptr<MessageEnricher> enricher) {
    auto consumer = pubsub::GooglePubsubConsumer::Create(
        stub_, {.project_id = kProject, .subscription_id = InSub()});
    ASSERT_TRUE(consumer.ok()) << consumer.status();
    auto producer = pubsub::GooglePubsubProducer::Create(
        stub_, {.project_id = kProject, .max_batch_delay = milliseconds(10)});
    ASSERT_TRUE(producer.ok()) << producer.status();
    producer_ = *std::move(producer);
    auto publish = mp::PublishEnvelope(producer_, Out());
    auto service = EnrichmentService::CreateAsync(
        {.common = {.name = "enrichment-it"}}, *std::move(consumer), enricher,
        [this, publish](mp::Message& m, mp::Completion done) {
          {
            std::lock_guard lock(mu_);
            ++handed_to_publisher_[m.attributes.at("seq")];
          }
          publish(m, std::move(done));
        });
    ASSERT_TRUE(service.ok()) << service.status();
    service_ = *std::move(service);
    ASSERT_TRUE(service_->Start().ok());
  }

  // Publishes raw payloads to In(), seq = first_seq, first_seq + 1, ...; waits until stored.
  void Feed(const std::vector<std::string>& payloads, int first_seq = 0) {
    std::vector<std::future<pubsub::GooglePubsubProducer::Result>> published;
    for (std::size_t i = 0; i < payloads.size(); ++i) {
      published.push_back(feeder_->Publish(
          In(), mp::OutgoingMessage{
                    .payload = payloads[i],
                    .attributes = {{"seq", std::to_string(first_seq + static_cast<int>(i))}}}));
    }
    for (auto& f : published) ASSERT_TRUE(f.get().ok());
  }
  // Readings for DeviceFor(seq), seq in [first, first + n).
  void FeedReadings(int first, int n) {
    std::vector<std::string> payloads;
    for (int seq = first; seq < first + n; ++seq) {
      payloads.push_back(nlohmann::json{{"deviceId", DeviceFor(seq)}, {"temp", 20.5}}.dump());
    }
    Feed(payloads, first);
  }

  // Reads Out() (acking) until every seq in `expected` has come out, or `timeout`.
  bool AwaitOutput(const std::set<std::string>& expected, milliseconds timeout = seconds(45)) {
    if (!reader_) {
      auto reader = pubsub::GooglePubsubConsumer::Create(
          stub_, {.project_id = kProject, .subscription_id = OutSub()});
      EXPECT_TRUE(reader.ok()) << reader.status();
      if (!reader.ok()) return false;
      reader_ = *std::move(reader);
      EXPECT_TRUE(reader_->Start().ok());
    }
    auto missing = [&] {
      for (const auto& seq : expected) {
        if (!out_.contains(seq)) return true;
      }
      return false;
    };
    const auto deadline = steady_clock::now() + timeout;
    std::vector<mp::Message> batch;
    while (missing() && steady_clock::now() < deadline) {
      reader_->Messages().PopBatchUntil(batch, 100, steady_clock::now() + milliseconds(100));
      for (auto& m : batch) {
        auto envelope = mp::DecodeMessageData(m.data.payload);
        EXPECT_TRUE(envelope.ok()) << envelope.status();
        if (envelope.ok()) {
          const std::string& seq = m.attributes.at("seq");
          if (out_.contains(seq)) ++duplicates_;
          out_[seq] = *std::move(envelope);
        }
        m.Ack();
      }
      batch.clear();
    }
    return !missing();
  }

  int HandedToPublisher(const std::string& seq) {
    std::lock_guard lock(mu_);
    auto it = handed_to_publisher_.find(seq);
    return it == handed_to_publisher_.end() ? 0 : it->second;
  }
  std::size_t DistinctHandedToPublisher() {
    std::lock_guard lock(mu_);
    return handed_to_publisher_.size();
  }

  // Checks the envelope of `seq` carries dev-<index>'s document and the payload unchanged.
  void ExpectEnriched(int seq, int index, const std::string& payload) {
    const std::string key = std::to_string(seq);
    ASSERT_TRUE(out_.contains(key)) << key;
    const mp::MessageData& d = out_.at(key);
    EXPECT_EQ(d.enrichment_data, DeviceDoc(index)) << "seq " << seq;
    EXPECT_EQ(d.payload, payload) << "seq " << seq;
  }

  static std::set<std::string> Seqs(int first, int n) {
    std::set<std::string> s;
    for (int i = first; i < first + n; ++i) s.insert(std::to_string(i));
    return s;
  }
  static std::string Reading(int seq) {
    return nlohmann::json{{"deviceId", DeviceFor(seq)}, {"temp", 20.5}}.dump();
  }
  static int IndexOf(const std::string& device) { return std::stoi(device.substr(4)); }

  std::string id_;
  std::shared_ptr<pubsub::PubsubStub> stub_;
  std::shared_ptr<cache::FirestoreDocumentStub> docs_;
  std::shared_ptr<pubsub::GooglePubsubProducer> feeder_;
  std::shared_ptr<pubsub::GooglePubsubProducer> producer_;
  std::shared_ptr<Firestore> firestore_;
  std::shared_ptr<Redis> redis_;
  std::shared_ptr<Lru> lru_;
  std::unique_ptr<EnrichmentService> service_;
  std::unique_ptr<pubsub::GooglePubsubConsumer> reader_;
  std::map<std::string, mp::MessageData> out_;  // by seq
  int duplicates_ = 0;                          // at-least-once: allowed, counted for messages
  std::mutex mu_;
  std::map<std::string, int> handed_to_publisher_;  // seq → times
};

TEST_F(EnrichmentServiceIT, EveryMessageComesOutWithItsDevicesMetadata) {
  StartService({});
  constexpr int kN = 200;
  FeedReadings(0, kN);
  ASSERT_TRUE(AwaitOutput(Seqs(0, kN)));
  for (int seq = 0; seq < kN; ++seq) ExpectEnriched(seq, IndexOf(DeviceFor(seq)), Reading(seq));
  EXPECT_EQ(out_.size(), static_cast<std::size_t>(kN));
  EXPECT_GE(service_->enrichment_metrics().enriched, static_cast<std::uint64_t>(kN));
  // Every tier answered: dev-0 from the LRU, the cycling devices from Redis after their first
  // lookup, and Firestore exactly once per device (the LRU's single flight and Redis's write-back
  // keep every later lookup off it).
  EXPECT_GT(lru_->Stats().hits, 0u);
  EXPECT_GT(redis_->Stats().hits, 0u);
  EXPECT_EQ(redis_->Stats().fallback_calls, static_cast<std::uint64_t>(kDevices));
  EXPECT_EQ(redis_->Stats().backend_errors, 0u);
}

TEST_F(EnrichmentServiceIT, UnknownDevicesAreSkippedByDefault) {
  StartService({});  // on_not_found = skip
  constexpr int kN = 60;
  std::vector<std::string> payloads;
  std::set<std::string> known;
  for (int seq = 0; seq < kN; ++seq) {
    const bool ghost = seq % 6 == 5;
    payloads.push_back(
        nlohmann::json{{"deviceId", ghost ? "ghost-" + std::to_string(seq) : DeviceFor(seq)}}
            .dump());
    if (!ghost) known.insert(std::to_string(seq));
  }
  Feed(payloads);
  // Every input settled, as processed or skipped (both acks); only then can we say what was
  // not published, and the recorder sees every publish before it happens.
  ASSERT_TRUE(WaitFor(
      [&] {
        const auto m = service_->metrics();
        return m.processed + m.skipped >= kN;
      },
      seconds(45)));
  EXPECT_EQ(service_->metrics().skipped, static_cast<std::uint64_t>(kN / 6));
  for (int seq = 5; seq < kN; seq += 6) {
    EXPECT_EQ(HandedToPublisher(std::to_string(seq)), 0) << "ghost seq " << seq << " published";
  }
  EXPECT_EQ(DistinctHandedToPublisher(), known.size());
  EXPECT_EQ(service_->enrichment_metrics().not_found, static_cast<std::uint64_t>(kN / 6));
  EXPECT_EQ(service_->metrics().nacked, 0u);
  ASSERT_TRUE(AwaitOutput(known));
  for (const auto& seq : known) {
    EXPECT_EQ(out_.at(seq).enrichment_data, DeviceDoc(IndexOf(DeviceFor(std::stoi(seq))))) << seq;
  }
}

TEST_F(EnrichmentServiceIT, UnknownDevicesPassUnenrichedWithThatPolicy) {
  StartService({.on_not_found = FailurePolicy::kPassUnenriched});
  constexpr int kN = 60;
  std::vector<std::string> payloads;
  for (int seq = 0; seq < kN; ++seq) {
    const bool ghost = seq % 6 == 5;
    payloads.push_back(
        nlohmann::json{{"deviceId", ghost ? "ghost-" + std::to_string(seq) : DeviceFor(seq)}}
            .dump());
  }
  Feed(payloads);
  ASSERT_TRUE(AwaitOutput(Seqs(0, kN)));
  for (int seq = 0; seq < kN; ++seq) {
    const mp::MessageData& d = out_.at(std::to_string(seq));
    EXPECT_EQ(d.payload, payloads[seq]);
    if (seq % 6 == 5) {
      EXPECT_TRUE(d.enrichment_data.is_null()) << seq << ": " << d.enrichment_data.dump();
    } else {
      EXPECT_EQ(d.enrichment_data, DeviceDoc(IndexOf(DeviceFor(seq)))) << seq;
    }
  }
  EXPECT_EQ(service_->enrichment_metrics().not_found, static_cast<std::uint64_t>(kN / 6));
}

TEST_F(EnrichmentServiceIT, UnknownDevicesAreNackedUntilTheirDocumentExists) {
  StartService({.on_not_found = FailurePolicy::kNack});
  constexpr int kN = 30;
  std::vector<std::string> payloads;
  for (int seq = 0; seq < kN; ++seq) {
    payloads.push_back(
        nlohmann::json{{"deviceId", seq % 5 == 4 ? "dev-late" : DeviceFor(seq)}}.dump());
  }
  Feed(payloads);
  // Each late message is nacked at least once (and redelivered, and nacked again) ...
  ASSERT_TRUE(WaitFor([&] { return service_->metrics().nacked >= kN / 5 * 2; }, seconds(45)));
  for (int seq = 4; seq < kN; seq += 5) {
    EXPECT_EQ(HandedToPublisher(std::to_string(seq)), 0) << "seq " << seq;
  }
  // ... until the device is registered: nothing negative is cached, so the next redelivery
  // finds it in Firestore and comes out enriched.
  const nlohmann::json late = {{"name", "Late sensor"}, {"location", "annex"}, {"floor", 9}};
  ASSERT_TRUE(docs_->Set("dev-late", late).ok());
  ASSERT_TRUE(AwaitOutput(Seqs(0, kN)));
  for (int seq = 0; seq < kN; ++seq) {
    const mp::MessageData& d = out_.at(std::to_string(seq));
    EXPECT_EQ(d.enrichment_data, seq % 5 == 4 ? late : DeviceDoc(IndexOf(DeviceFor(seq)))) << seq;
  }
  EXPECT_GE(service_->enrichment_metrics().not_found, static_cast<std::uint64_t>(kN / 5 * 2));
}

TEST_F(EnrichmentServiceIT, RedisKilledMidRunLosesNothing) {
  // Later tests need Redis again, whatever happens here.
  struct RestartRedis {
    ~RestartRedis() { EXPECT_TRUE(g_redis->process().Restart().ok()); }
  };
  // A 4-entry LRU: most lookups go to Redis, so its death is felt at once.
  StartService({.on_error = FailurePolicy::kNack}, /*lru_size=*/4);
  constexpr int kHalf = 150;
  FeedReadings(0, kHalf);
  // Mid-run: Redis has served some lookups of the first half.
  ASSERT_TRUE(WaitFor([&] { return redis_->Stats().hits >= 5; }, seconds(45)));
  const auto before = redis_->Stats();
  RestartRedis restart_at_exit;
  g_redis->process().Kill();
  // The second half is fed after the kill, so each of its L1 misses meets a dead Redis.
  FeedReadings(kHalf, kHalf);
  ASSERT_TRUE(AwaitOutput(Seqs(0, 2 * kHalf)));
  for (int seq = 0; seq < 2 * kHalf; ++seq) {
    ExpectEnriched(seq, IndexOf(DeviceFor(seq)), Reading(seq));
  }
  const auto after = redis_->Stats();
  EXPECT_GT(after.backend_errors + after.skipped, before.backend_errors + before.skipped)
      << "the dead Redis was noticed";
  // Firestore answered while Redis was away: more than one read per device.
  EXPECT_GT(after.fallback_calls, static_cast<std::uint64_t>(kDevices));
  EXPECT_EQ(service_->enrichment_metrics().fetch_errors, 0u) << "no lookup failed";
}

TEST_F(EnrichmentServiceIT, PoisonedRedisValueIsAnEnrichmentErrorNotACrash) {
  // The runner's chain holds any JSON (V = nlohmann::json), and its LRU and applier copy each
  // value: a value nested 100 000 deep would overflow the stack on every lookup, a crash loop
  // under redelivery. Redis is the last tier here, so nothing can replace the poisoned value:
  // it must be a lookup error (on_error policy) for the messages that need it, and only them.
  using JsonRedis = cache::RedisCache<std::string, nlohmann::json>;
  using JsonLru = cache::InMemoryLruCache<std::string, nlohmann::json>;
  const std::string prefix = id_ + ":";
  auto writer = cache::MakeRedisStub({.addr = g_redis->addr()});
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE((*writer)
                  ->Set(prefix + "dev-poison",
                        std::string(100'000, '[') + std::string(100'000, ']'), milliseconds(0))
                  .ok());
  ASSERT_TRUE((*writer)->Set(prefix + "dev-good", DeviceDoc(3).dump(), milliseconds(0)).ok());
  auto redis = JsonRedis::Create({.addr = g_redis->addr(), .key_prefix = prefix});
  ASSERT_TRUE(redis.ok()) << redis.status();
  std::shared_ptr<JsonRedis> redis_layer = *std::move(redis);
  auto lru = JsonLru::Create({.max_size = 8, .shards = 1}, redis_layer);
  ASSERT_TRUE(lru.ok()) << lru.status();
  std::shared_ptr<JsonLru> lru_layer = *std::move(lru);
  auto enricher = MakeEnricher<std::string, nlohmann::json>(
      lru_layer, JsonPayloadKey("deviceId"), JsonApplier<nlohmann::json>(), {});  // skip
  ASSERT_TRUE(enricher.ok()) << enricher.status();
  StartServiceWith(*enricher);

  const std::vector<std::string> payloads = {
      R"({"deviceId":"dev-poison"})", R"({"deviceId":"dev-good"})", R"({"deviceId":"dev-poison"})",
      R"({"deviceId":"dev-good"})"};
  Feed(payloads);
  ASSERT_TRUE(WaitFor(
      [&] {
        const auto m = service_->metrics();
        return m.processed + m.skipped >= 4;
      },
      seconds(45)));
  EXPECT_EQ(service_->metrics().skipped, 2u);
  ASSERT_TRUE(AwaitOutput({"1", "3"}));
  EXPECT_EQ(out_.at("1").enrichment_data, DeviceDoc(3));
  EXPECT_EQ(out_.at("3").enrichment_data, DeviceDoc(3));
  EXPECT_EQ(HandedToPublisher("0"), 0);
  EXPECT_EQ(HandedToPublisher("2"), 0);
  EXPECT_EQ(service_->enrichment_metrics().fetch_errors, 2u);
  EXPECT_EQ(service_->enrichment_metrics().enriched, 2u);
  EXPECT_GE(redis_layer->Stats().decode_errors, 1u);
  EXPECT_EQ(service_->metrics().nacked, 0u);
}

TEST_F(EnrichmentServiceIT, MalformedPayloadsPassOnUnenriched) {
  // JsonPayloadKey finds no key in these, and a message without a key passes on unenriched
  // whatever the lookup policies say; the transform stage accepts every message, so nothing
  // is dead-lettered or nacked.
  StartService({.on_not_found = FailurePolicy::kNack, .on_error = FailurePolicy::kNack});
  const std::vector<std::string> payloads = {
      "not json {",                    // not JSON
      R"({"temp": 21.5})",             // no deviceId
      R"({"deviceId": 7})",            // not a string
      R"({"deviceId": ""})",           // empty
      R"(["deviceId", "dev-1"])",      // not an object
      std::string("\x00\xff\x10", 3),  // binary
      Reading(1),                      // a good one alongside
  };
  Feed(payloads);
  ASSERT_TRUE(AwaitOutput(Seqs(0, static_cast<int>(payloads.size()))));
  for (std::size_t i = 0; i + 1 < payloads.size(); ++i) {
    const mp::MessageData& d = out_.at(std::to_string(i));
    EXPECT_EQ(d.payload, payloads[i]) << i;
    EXPECT_TRUE(d.enrichment_data.is_null()) << i << ": " << d.enrichment_data.dump();
  }
  ExpectEnriched(6, 1, Reading(1));
  EXPECT_EQ(service_->enrichment_metrics().no_key, payloads.size() - 1);
  EXPECT_EQ(service_->metrics().nacked, 0u);
  EXPECT_EQ(service_->metrics().dead_lettered, 0u);
}

}  // namespace
}  // namespace dataflow::enrichment

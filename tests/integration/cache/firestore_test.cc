// Firestore fetcher, FirestorePresenceCache and the LRU -> Redis -> Firestore chain against
// the real Firestore emulator and a real redis-server, both started for this binary.
#include "dataflow/cache/firestore.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <string>

#include "dataflow/cache/firestore_value.h"
#include "dataflow/cache/lru_cache.h"
#include "dataflow/cache/redis_cache.h"
#include "dataflow/messagepipeline/errors.h"
#include "dataflow_testing/firestore_emulator.h"
#include "dataflow_testing/redis_server.h"

namespace dataflow::cache {
namespace {

using ::dataflow::testing::FirestoreEmulator;
using ::dataflow::testing::RedisServer;
using ::dataflow::testing::WaitFor;
using ::testing::HasSubstr;

constexpr char kProject[] = "cache-test";

struct UserProfile {
  std::string name;
  std::string email;
  std::vector<std::string> tags;
  std::map<std::string, int> scores;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(UserProfile, name, email, tags, scores)

FirestoreEmulator* g_firestore = nullptr;
RedisServer* g_redis = nullptr;

class Servers : public ::testing::Environment {
 public:
  void SetUp() override {
    auto firestore = FirestoreEmulator::Start();
    ASSERT_TRUE(firestore.ok()) << firestore.status();
    firestore_ = *std::move(firestore);
    g_firestore = firestore_.get();
    // The fetcher must find the emulator through the same variable Google's clients use.
    ::setenv("FIRESTORE_EMULATOR_HOST", firestore_->host().c_str(), 1);
    auto redis = RedisServer::Start();
    ASSERT_TRUE(redis.ok()) << redis.status();
    redis_ = *std::move(redis);
    g_redis = redis_.get();
  }
  void TearDown() override {
    redis_.reset();
    firestore_.reset();
  }

 private:
  std::unique_ptr<FirestoreEmulator> firestore_;
  std::unique_ptr<RedisServer> redis_;
};
const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new Servers);

std::string Collection() { return ::testing::UnitTest::GetInstance()->current_test_info()->name(); }
FirestoreOptions Config() { return {.project_id = kProject, .collection_name = Collection()}; }

TEST(FirestoreTest, ConfigIsValidated) {
  EXPECT_EQ(MakeFirestoreDocumentStub({.project_id = kProject}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      MakeFirestoreDocumentStub({.project_id = kProject, .collection_name = "a/b"}).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeFirestoreDocumentStub({.project_id = "bad/project", .collection_name = "c"})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(FirestoreTest, FetchDecodesFieldsAndNotFoundIsDistinct) {
  auto stub = *MakeFirestoreDocumentStub(Config());
  ASSERT_TRUE(stub->Set("u1", {{"name", "Ada"},
                               {"email", "ada@example.com"},
                               {"tags", {"admin", "ops"}},
                               {"scores", {{"go", 3}, {"cpp", 5}}}})
                  .ok());
  auto fetcher = *Firestore<std::string, UserProfile>::Create(Config());
  auto user = fetcher->Fetch("u1");
  ASSERT_TRUE(user.ok()) << user.status();
  EXPECT_EQ(user->name, "Ada");
  EXPECT_THAT(user->tags, ::testing::ElementsAre("admin", "ops"));
  EXPECT_EQ(user->scores.at("cpp"), 5);

  auto missing = fetcher->Fetch("nobody");
  EXPECT_TRUE(absl::IsNotFound(missing.status())) << missing.status();
  EXPECT_EQ(fetcher->Fetch("a/b").status().code(), absl::StatusCode::kInvalidArgument);

  // A document whose shape does not fit V is a clear error, not a crash.
  ASSERT_TRUE(stub->Set("odd", {{"name", 42}}).ok());
  auto odd = fetcher->Fetch("odd");
  EXPECT_EQ(odd.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(FirestoreTest, InvalidDocumentIdsArePermanentErrorsAndValidOnesStillWork) {
  auto stub = *MakeFirestoreDocumentStub(Config());
  auto fetcher = *Firestore<std::string, UserProfile>::Create(Config());
  auto presence = *FirestorePresenceCache<std::string, UserProfile>::Create(Config());
  const std::vector<std::string> bad = {"a/b",
                                        ".",
                                        "..",
                                        "__reserved__",
                                        "____",
                                        std::string(1501, 'x'),
                                        "",
                                        "bad\xff",
                                        "cut \xc3",
                                        "\xed\xa0\x80surrogate",
                                        "\xc0\xafoverlong"};
  for (const std::string& id : bad) {
    const absl::Status fetched = fetcher->Fetch(id).status();
    EXPECT_EQ(fetched.code(), absl::StatusCode::kInvalidArgument) << id << ": " << fetched;
    EXPECT_TRUE(messagepipeline::IsPermanent(fetched)) << id << ": " << fetched;
    EXPECT_TRUE(messagepipeline::IsPermanent(presence->Set(id, {"n", "e", {}, {}}))) << id;
    EXPECT_TRUE(messagepipeline::IsPermanent(presence->Delete(id))) << id;
    EXPECT_TRUE(messagepipeline::IsPermanent(stub->Get(id).status())) << id;
  }
  // Near the rules but valid: the emulator stores and returns them.
  for (const std::string& id : {std::string("_x_"), std::string("__x"), std::string("..."),
                                std::string("zürich"), std::string(1500, 'v')}) {
    const absl::Status set = stub->Set(id, {{"name", "ok"},
                                            {"email", id.substr(0, 8)},
                                            {"tags", nlohmann::json::array()},
                                            {"scores", nlohmann::json::object()}});
    ASSERT_TRUE(set.ok()) << id << ": " << set;
    auto back = fetcher->Fetch(id);
    ASSERT_TRUE(back.ok()) << id << ": " << back.status();
    EXPECT_EQ(back->name, "ok");
  }
  // A missing document is NotFound and not permanent: it may be written later.
  const absl::Status missing = fetcher->Fetch("not-yet").status();
  EXPECT_TRUE(absl::IsNotFound(missing)) << missing;
  EXPECT_FALSE(messagepipeline::IsPermanent(missing));
}

TEST(FirestoreTest, ValueMappingRoundTrips) {
  const nlohmann::json fields = {{"null", nullptr},
                                 {"bool", true},
                                 {"int", -7},
                                 {"big", 1LL << 40},
                                 {"double", 2.5},
                                 {"string", "s"},
                                 {"array", {1, "x"}},
                                 {"map", {{"inner", {{"deep", false}}}}},
                                 {"empty", nlohmann::json::array()}};
  auto stub = *MakeFirestoreDocumentStub(Config());
  ASSERT_TRUE(stub->Set("doc", fields).ok());
  auto back = stub->Get("doc");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, fields);

  EXPECT_EQ(stub->Set("bad", nlohmann::json::array({1})).code(),
            absl::StatusCode::kInvalidArgument);
  auto nested = stub->Set("bad", {{"a", {{1, 2}}}});
  EXPECT_EQ(nested.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(nested.message(), HasSubstr("array"));
  EXPECT_EQ(stub->Set("bad", {{"u", std::numeric_limits<std::uint64_t>::max()}}).code(),
            absl::StatusCode::kInvalidArgument);

  google::firestore::v1::Value ts;
  ts.mutable_timestamp_value()->set_seconds(0);
  EXPECT_EQ(*FirestoreValueToJson(ts), "1970-01-01T00:00:00+00:00");
  ts.mutable_timestamp_value()->set_seconds(-62135596800);  // Firestore's earliest
  EXPECT_EQ(*FirestoreValueToJson(ts), "0001-01-01T00:00:00+00:00");
}

TEST(FirestoreTest, TooDeepDocumentIsAnErrorNotACrash) {
  // A value nested 100 000 deep, as a (hand-built) RPC answer could hold: refused before any
  // json is built. Built and destroyed iteratively: protobuf's own destructor recurses.
  google::firestore::v1::Value deep;
  google::firestore::v1::Value* v = &deep;
  for (int i = 0; i < 100'000; ++i) v = v->mutable_array_value()->add_values();
  auto got = FirestoreValueToJson(deep);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(got.status().message(), HasSubstr("deeper than the limit"));
  while (deep.has_array_value() && deep.array_value().values_size() > 0) {
    google::firestore::v1::Value inner = std::move(*deep.mutable_array_value()->mutable_values(0));
    deep = std::move(inner);
  }

  // Through the emulator: Firestore refuses documents nested past its own limit, far below
  // ours, so the server's answers are safe; the check above is for what a stub could return.
  auto stub = *MakeFirestoreDocumentStub(Config());
  nlohmann::json fields = "leaf";
  for (int i = 0; i < kCacheValueJsonLimits.max_depth; ++i) fields = {{"m", std::move(fields)}};
  auto refused = stub->Set("deep", fields);  // "... contains an invalid nested entity"
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument) << refused;
}

TEST(FirestorePresenceCacheTest, SetFetchDelete) {
  auto presence = *FirestorePresenceCache<std::string, UserProfile>::Create(Config());
  EXPECT_TRUE(absl::IsNotFound(presence->Fetch("u").status()));
  ASSERT_TRUE(presence->Set("u", {"U", "online", {}, {}}).ok());
  EXPECT_EQ(presence->Fetch("u")->email, "online");
  ASSERT_TRUE(presence->Delete("u").ok());
  EXPECT_TRUE(absl::IsNotFound(presence->Fetch("u").status()));
  EXPECT_TRUE(presence->Delete("u").ok());
  // A value that is not a JSON object cannot be a document.
  auto scalar = *FirestorePresenceCache<std::string, int>::Create(Config());
  EXPECT_EQ(scalar->Set("n", 5).code(), absl::StatusCode::kInvalidArgument);
}

// The chain from the package docs: LRU -> Redis (TTL) -> Firestore.
TEST(ChainTest, LruRedisFirestore) {
  ASSERT_TRUE(g_firestore->Reset(kProject).ok());
  auto docs = *MakeFirestoreDocumentStub(Config());
  for (const char* id : {"user-1", "user-2"}) {
    ASSERT_TRUE(docs->Set(id, {{"name", id},
                               {"email", std::string(id) + "@example.com"},
                               {"tags", nlohmann::json::array()},
                               {"scores", nlohmann::json::object()}})
                    .ok());
  }
  std::shared_ptr<Firestore<std::string, UserProfile>> firestore =
      *Firestore<std::string, UserProfile>::Create(Config());
  std::shared_ptr<RedisCache<std::string, UserProfile>> redis =
      *RedisCache<std::string, UserProfile>::Create({.addr = g_redis->addr(),
                                                     .cache_ttl = std::chrono::milliseconds(2000),
                                                     .key_prefix = "chain:"},
                                                    firestore);
  auto lru =
      *InMemoryLruCache<std::string, UserProfile>::Create({.max_size = 1, .shards = 1}, redis);

  // 1. First fetch reaches Firestore and is written back to Redis and the LRU.
  EXPECT_EQ(lru->Fetch("user-1")->email, "user-1@example.com");
  EXPECT_EQ(redis->Stats().fallback_calls, 1u);
  EXPECT_EQ(redis->Stats().misses, 1u);
  // 2. Second fetch is an L1 hit: Redis is not asked.
  EXPECT_EQ(lru->Fetch("user-1")->name, "user-1");
  EXPECT_EQ(lru->Stats().hits, 1u);
  EXPECT_EQ(redis->Stats().hits + redis->Stats().misses, 1u);
  // 3. user-2 evicts user-1 from the one-entry LRU; user-1 then comes from Redis.
  ASSERT_TRUE(lru->Fetch("user-2").ok());
  EXPECT_EQ(lru->Stats().evictions, 1u);
  EXPECT_EQ(lru->Fetch("user-1")->name, "user-1");
  EXPECT_EQ(redis->Stats().hits, 1u);
  EXPECT_EQ(redis->Stats().fallback_calls, 2u);  // user-1 and user-2 only
  // 4. After Redis's TTL, an L1 miss reaches Firestore again.
  auto raw = *MakeRedisStub({.addr = g_redis->addr()});
  ASSERT_TRUE(
      WaitFor([&] { return !raw->Get("chain:user-1")->has_value(); }, std::chrono::seconds(10)));
  lru->Delete("user-1");
  EXPECT_EQ(lru->Fetch("user-1")->name, "user-1");
  EXPECT_EQ(redis->Stats().fallback_calls, 3u);
  // A key nowhere in the chain is NotFound at the top.
  EXPECT_TRUE(absl::IsNotFound(lru->Fetch("user-404").status()));
}

}  // namespace
}  // namespace dataflow::cache

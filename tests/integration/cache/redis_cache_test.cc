// RedisCache and RedisPresenceCache against a real redis-server started for this binary.
#include "dataflow/cache/redis_cache.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "../../unit/cache/counting_fetcher.h"
#include "dataflow/cache/lru_cache.h"
#include "dataflow_testing/redis_server.h"

namespace dataflow::cache {
namespace {

using ::dataflow::testing::FreeTcpPort;
using ::dataflow::testing::RedisServer;
using ::dataflow::testing::WaitFor;
using ::testing::HasSubstr;

struct Profile {
  std::string name;
  int level = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Profile, name, level)

using Source = testing::CountingFetcher<std::string, Profile>;
using Cache = RedisCache<std::string, Profile>;

RedisServer* g_redis = nullptr;

class RedisEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    auto server = RedisServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    g_redis = server_.get();
  }
  void TearDown() override {
    g_redis = nullptr;
    server_.reset();
  }

 private:
  std::unique_ptr<RedisServer> server_;
};
const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new RedisEnvironment);

// Unique keys per test: the server is shared by the whole binary.
std::string Prefix() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return std::string(info->name()) + ":";
}

RedisOptions Config() {
  return {.addr = g_redis->addr(),
          .key_prefix = Prefix(),
          .retry_interval = std::chrono::milliseconds(50)};
}

TEST(RedisStubTest, ConnectCheckNamesTheProblem) {
  const int closed_port = FreeTcpPort();
  auto refused = MakeRedisStub({.addr = "127.0.0.1:" + std::to_string(closed_port)});
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(refused.status().message(), HasSubstr(std::to_string(closed_port)));

  EXPECT_EQ(MakeRedisStub({.addr = "no-port"}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeRedisStub({.addr = "127.0.0.1:99999"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeRedisStub({.addr = g_redis->addr(), .pool_size = 0}).status().code(),
            absl::StatusCode::kInvalidArgument);

  auto bad_db = MakeRedisStub({.addr = g_redis->addr(), .db = 9999});
  EXPECT_EQ(bad_db.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad_db.status().message(), HasSubstr("SELECT"));

  // This server has no password: AUTH is refused, and the error says so.
  auto bad_auth = MakeRedisStub({.addr = g_redis->addr(), .password = "secret"});
  EXPECT_EQ(bad_auth.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(bad_auth.status().message(), HasSubstr("AUTH"));

  auto cache = Cache::Create({.addr = "127.0.0.1:" + std::to_string(closed_port)});
  EXPECT_EQ(cache.status().code(), absl::StatusCode::kUnavailable);
}

TEST(RedisCacheTest, MissGoesToFallbackAndWritesBackWithTtl) {
  auto source = std::make_shared<Source>();
  source->Put("u1", {"Ada", 3});
  RedisOptions config = Config();
  config.cache_ttl = std::chrono::milliseconds(300);
  auto cache = Cache::Create(config, source);
  ASSERT_TRUE(cache.ok()) << cache.status();
  EXPECT_EQ((*cache)->Fetch("u1")->name, "Ada");
  EXPECT_EQ(source->calls(), 1);

  auto stub = *MakeRedisStub(config);
  auto stored = stub->Get(Prefix() + "u1");
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_EQ(**stored, R"({"level":3,"name":"Ada"})");

  EXPECT_EQ((*cache)->Fetch("u1")->level, 3);
  EXPECT_EQ(source->calls(), 1);  // served by Redis
  EXPECT_EQ((*cache)->Stats().hits, 1u);

  // The TTL expires the value in Redis; the next fetch reaches the source again.
  ASSERT_TRUE(
      WaitFor([&] { return !stub->Get(Prefix() + "u1")->has_value(); }, std::chrono::seconds(10)));
  EXPECT_EQ((*cache)->Fetch("u1")->name, "Ada");
  EXPECT_EQ(source->calls(), 2);
}

TEST(RedisCacheTest, NotFoundWithAndWithoutFallback) {
  auto alone = *Cache::Create(Config());
  EXPECT_TRUE(absl::IsNotFound(alone->Fetch("nobody").status()));
  auto source = std::make_shared<Source>();
  auto cache = *Cache::Create(Config(), source);
  EXPECT_TRUE(absl::IsNotFound(cache->Fetch("nobody").status()));
  source->FailWith(absl::PermissionDeniedError("source says no"));
  EXPECT_EQ(cache->Fetch("nobody").status().code(), absl::StatusCode::kPermissionDenied);
}

TEST(RedisCacheTest, WriteAndDelete) {
  auto cache = *Cache::Create(Config());
  ASSERT_TRUE(cache->Write("k", {"K", 1}).ok());
  EXPECT_EQ(cache->Fetch("k")->name, "K");
  ASSERT_TRUE(cache->Delete("k").ok());
  EXPECT_TRUE(absl::IsNotFound(cache->Fetch("k").status()));
  ASSERT_TRUE(cache->Close().ok());
  EXPECT_EQ(cache->Fetch("k").status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(RedisCacheTest, CorruptBytesGiveDecodeErrorOrFallback) {
  auto stub = *MakeRedisStub(Config());
  ASSERT_TRUE(stub->Set(Prefix() + "bad", std::string("\xff\xfe{not json", 11),
                        std::chrono::milliseconds(0))
                  .ok());
  ASSERT_TRUE(stub->Set(Prefix() + "shape", R"({"name": 42})", std::chrono::milliseconds(0)).ok());

  auto alone = *Cache::Create(Config());
  auto bad = alone->Fetch("bad");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(bad.status().message(), HasSubstr(Prefix() + "bad"));
  auto shape = alone->Fetch("shape");
  EXPECT_EQ(shape.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(alone->Stats().decode_errors, 2u);

  // With a fallback the caller gets the source's value and Redis is repaired.
  auto source = std::make_shared<Source>();
  source->Put("bad", {"Fixed", 7});
  auto cache = *Cache::Create(Config(), source);
  auto fixed = cache->Fetch("bad");
  ASSERT_TRUE(fixed.ok()) << fixed.status();
  EXPECT_EQ(fixed->name, "Fixed");
  EXPECT_EQ(cache->Stats().decode_errors, 1u);
  EXPECT_EQ(cache->Fetch("bad")->level, 7);
  EXPECT_EQ(source->calls(), 1);
  EXPECT_EQ(cache->Stats().hits, 1u);
}

TEST(RedisCacheTest, ConcurrentFetchesShareASmallPool) {
  auto source = std::make_shared<Source>();
  for (int i = 0; i < 50; ++i) source->Put(std::to_string(i), {"n" + std::to_string(i), i});
  RedisOptions config = Config();
  config.pool_size = 3;
  auto cache = *Cache::Create(config, source);
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 12; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        const int k = (i + t * 5) % 50;
        auto v = cache->Fetch(std::to_string(k));
        if (!v.ok() || v->level != k) wrong.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(cache->Stats().backend_errors, 0u);
  EXPECT_GE(cache->Stats().hits, 12u * 200u - 50u * 12u);
}

// LRU over Redis: 100 concurrent L1 misses on one key make one Redis lookup and one source call.
TEST(RedisCacheTest, SingleFlightThroughTheChain) {
  auto source = std::make_shared<Source>();
  source->Put("hot", {"Hot", 1});
  source->CloseGate();
  std::shared_ptr<Cache> redis = *Cache::Create(Config(), source);
  auto lru = *InMemoryLruCache<std::string, Profile>::Create({.max_size = 100}, redis);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 100; ++i) {
    threads.emplace_back([&] { ok.fetch_add(lru->Fetch("hot").ok() ? 1 : 0); });
  }
  ASSERT_TRUE(WaitFor([&] { return lru->Stats().misses == 100 && source->waiting() == 1; },
                      std::chrono::seconds(20)));
  source->OpenGate();
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 100);
  EXPECT_EQ(source->calls(), 1);
  EXPECT_EQ(redis->Stats().misses, 1u);
}

TEST(RedisCacheTest, RedisKilledMidTestFallsBackAndRecovers) {
  auto source = std::make_shared<Source>();
  for (const char* k : {"a", "b", "c"}) source->Put(k, {k, 1});
  auto cache = *Cache::Create(Config(), source);
  ASSERT_TRUE(cache->Fetch("a").ok());
  ASSERT_TRUE(cache->Fetch("a").ok());
  ASSERT_EQ(cache->Stats().hits, 1u);

  g_redis->process().Kill();
  // Every fetch is still answered, from the source.
  for (int i = 0; i < 20; ++i) {
    for (const char* k : {"a", "b", "c"}) {
      auto v = cache->Fetch(k);
      ASSERT_TRUE(v.ok()) << v.status();
      EXPECT_EQ(v->name, k);
    }
  }
  EXPECT_GE(cache->Stats().backend_errors, 1u);
  EXPECT_EQ(cache->Stats().hits, 1u);
  const int calls_while_down = source->calls();
  EXPECT_GE(calls_while_down, 61);

  ASSERT_TRUE(g_redis->process().Restart().ok());
  // Back up (empty): a fetch writes "b" back, and a later one is a Redis hit again.
  ASSERT_TRUE(WaitFor(
      [&] {
        EXPECT_TRUE(cache->Fetch("b").ok());
        return cache->Stats().hits > 1;
      },
      std::chrono::seconds(20)));
}

TEST(RedisPresenceCacheTest, SetFetchDeleteAndTtl) {
  auto presence = RedisPresenceCache<std::string, Profile>::Create(Config());
  ASSERT_TRUE(presence.ok()) << presence.status();
  auto& p = **presence;
  EXPECT_TRUE(absl::IsNotFound(p.Fetch("user").status()));
  ASSERT_TRUE(p.Set("user", {"online", 1}).ok());
  EXPECT_EQ(p.Fetch("user")->name, "online");
  ASSERT_TRUE(p.Delete("user").ok());
  EXPECT_TRUE(absl::IsNotFound(p.Fetch("user").status()));
  EXPECT_TRUE(p.Delete("user").ok());

  RedisOptions config = Config();
  config.cache_ttl = std::chrono::milliseconds(100);
  auto expiring = *RedisPresenceCache<std::string, Profile>::Create(config);
  ASSERT_TRUE(expiring->Set("session", {"s", 2}).ok());
  EXPECT_TRUE(expiring->Fetch("session").ok());
  EXPECT_TRUE(WaitFor([&] { return absl::IsNotFound(expiring->Fetch("session").status()); },
                      std::chrono::seconds(10)));

  // Another instance sees the same state: the point of a shared presence cache.
  ASSERT_TRUE(p.Set("shared", {"x", 3}).ok());
  auto other = *RedisPresenceCache<std::string, Profile>::Create(Config());
  EXPECT_EQ(other->Fetch("shared")->level, 3);
}

}  // namespace
}  // namespace dataflow::cache

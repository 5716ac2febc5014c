// Codec, InMemoryCache and InMemoryPresenceCache.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "counting_fetcher.h"
#include "dataflow/cache/codec.h"
#include "dataflow/cache/in_memory_cache.h"

namespace demo {
struct UserProfile {
  std::string name;
  std::string email;
  int age = 0;
  bool operator==(const UserProfile&) const = default;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(UserProfile, name, email, age)

struct DeviceId {
  int site;
  int number;
};
std::string ToCacheKey(const DeviceId& id) {
  return std::to_string(id.site) + "/" + std::to_string(id.number);
}
}  // namespace demo

namespace dataflow::cache {
namespace {

using ::testing::HasSubstr;

TEST(JsonCodecTest, RoundTripsAUserType) {
  demo::UserProfile user{"Ada", "ada@example.com", 36};
  auto bytes = JsonCodec<demo::UserProfile>::Encode(user);
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(*bytes, R"({"age":36,"email":"ada@example.com","name":"Ada"})");
  auto back = JsonCodec<demo::UserProfile>::Decode(*bytes);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, user);
}

TEST(JsonCodecTest, CorruptBytesAreDataLoss) {
  auto got = JsonCodec<demo::UserProfile>::Decode("\xff\x00garbage{");
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(got.status().message(), HasSubstr("not valid JSON"));
}

TEST(JsonCodecTest, WrongShapeIsInvalidArgument) {
  auto got = JsonCodec<demo::UserProfile>::Decode(R"({"name": 5})");
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(got.status().message(), HasSubstr("does not decode"));
}

TEST(JsonCodecTest, InvalidUtf8IsReplacedNotThrown) {
  auto bytes =
      JsonCodec<std::string>::Encode(std::string("a\xff"
                                                 "b"));
  ASSERT_TRUE(bytes.ok());
  EXPECT_TRUE(JsonCodec<std::string>::Decode(*bytes).ok());
}

std::string NestedArrays(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

TEST(JsonCodecTest, TooDeepValueIsDataLossNotACrash) {
  // A poisoned Redis value: nlohmann's copy recurses, so 100 000 levels would blow the stack
  // on the first copy of the decoded value (the LRU and the applier both copy it).
  auto got = JsonCodec<nlohmann::json>::Decode(NestedArrays(100'000));
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(got.status().message(), HasSubstr("deeper than the limit of 62"));
  EXPECT_EQ(JsonCodec<demo::UserProfile>::Decode(NestedArrays(100'000)).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(JsonCodecTest, ValueDepthLimitLeavesRoomInTheEnvelope) {
  // Merged into enrichmentData, a value gains up to two levels: 62 + 2 is the envelope's 64.
  EXPECT_EQ(kCacheValueJsonLimits.max_depth + 2, messagepipeline::kDefaultJsonMaxDepth);
  EXPECT_TRUE(JsonCodec<nlohmann::json>::Decode(NestedArrays(62)).ok());
  EXPECT_FALSE(JsonCodec<nlohmann::json>::Decode(NestedArrays(63)).ok());
  // Another limit is the codec's second argument.
  using Shallow = JsonCodec<nlohmann::json, messagepipeline::JsonLimits{.max_depth = 2}>;
  EXPECT_TRUE(Shallow::Decode("[[1]]").ok());
  EXPECT_FALSE(Shallow::Decode("[[[1]]]").ok());
  using Small = JsonCodec<nlohmann::json, messagepipeline::JsonLimits{.max_bytes = 4}>;
  EXPECT_THAT(Small::Decode("[1,2]").status().message(), HasSubstr("exceeds the limit"));
}

TEST(KeyStringTest, StringsIntegersAndAdlKeys) {
  EXPECT_EQ(KeyString(std::string("abc")), "abc");
  EXPECT_EQ(KeyString(42), "42");
  EXPECT_EQ(KeyString(std::int64_t{-7}), "-7");
  EXPECT_EQ(KeyString(demo::DeviceId{3, 9}), "3/9");
}

using Source = testing::CountingFetcher<std::string, demo::UserProfile>;

TEST(InMemoryCacheTest, WithoutFallbackMissIsNotFound) {
  auto cache = InMemoryCache<std::string, demo::UserProfile>::Create();
  ASSERT_TRUE(cache.ok());
  EXPECT_TRUE(absl::IsNotFound((*cache)->Fetch("x").status()));
  (*cache)->Write("x", {"X", "x@x", 1});
  EXPECT_EQ((*cache)->Fetch("x")->name, "X");
}

TEST(InMemoryCacheTest, FallbackWriteBack) {
  auto source = std::make_shared<Source>();
  source->Put("u1", {"Ada", "ada@example.com", 36});
  auto cache = *InMemoryCache<std::string, demo::UserProfile>::Create(source);
  EXPECT_EQ(cache->Fetch("u1")->email, "ada@example.com");
  source->Remove("u1");  // now only the cache has it
  EXPECT_EQ(cache->Fetch("u1")->email, "ada@example.com");
  EXPECT_EQ(source->calls(), 1);
  EXPECT_EQ(cache->Size(), 1u);
}

TEST(InMemoryCacheTest, FallbackNotFoundAndErrorsPassThroughUncached) {
  auto source = std::make_shared<Source>();
  auto cache = *InMemoryCache<std::string, demo::UserProfile>::Create(source);
  EXPECT_TRUE(absl::IsNotFound(cache->Fetch("u").status()));
  source->FailWith(absl::UnavailableError("db down"));
  EXPECT_EQ(cache->Fetch("u").status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(cache->Size(), 0u);
}

TEST(InMemoryCacheTest, ChainsIntoAnotherCache) {
  auto source = std::make_shared<Source>();
  source->Put("u", {"U", "u@u", 2});
  std::shared_ptr<InMemoryCache<std::string, demo::UserProfile>> l2 =
      *InMemoryCache<std::string, demo::UserProfile>::Create(source);
  auto l1 = *InMemoryCache<std::string, demo::UserProfile>::Create(l2);
  EXPECT_EQ(l1->Fetch("u")->name, "U");
  EXPECT_EQ(l1->Size(), 1u);
  EXPECT_EQ(l2->Size(), 1u);
  l1->Delete("u");
  EXPECT_EQ(l1->Fetch("u")->name, "U");
  EXPECT_EQ(source->calls(), 1);  // second time served by l2
}

TEST(InMemoryCacheTest, ClosedFails) {
  auto cache = *InMemoryCache<std::string, demo::UserProfile>::Create();
  EXPECT_TRUE(cache->Close().ok());
  EXPECT_EQ(cache->Fetch("x").status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(InMemoryCacheTest, ConcurrentReadersAndWriters) {
  auto source = std::make_shared<Source>();
  for (int i = 0; i < 64; ++i) source->Put(std::to_string(i), {std::to_string(i), "", i});
  auto cache = *InMemoryCache<std::string, demo::UserProfile>::Create(source);
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        const int k = (i + t) % 64;
        if (i % 50 == 0) cache->Delete(std::to_string(k));
        auto v = cache->Fetch(std::to_string(k));
        if (!v.ok() || v->age != k) wrong.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST(InMemoryPresenceCacheTest, SetFetchDelete) {
  auto presence = *InMemoryPresenceCache<std::string, demo::UserProfile>::Create();
  EXPECT_TRUE(absl::IsNotFound(presence->Fetch("u").status()));
  ASSERT_TRUE(presence->Set("u", {"U", "online", 1}).ok());
  EXPECT_EQ(presence->Fetch("u")->email, "online");
  ASSERT_TRUE(presence->Set("u", {"U", "away", 1}).ok());
  EXPECT_EQ(presence->Fetch("u")->email, "away");
  ASSERT_TRUE(presence->Delete("u").ok());
  EXPECT_TRUE(absl::IsNotFound(presence->Fetch("u").status()));
  EXPECT_TRUE(presence->Delete("u").ok());
  ASSERT_TRUE(presence->Close().ok());
  EXPECT_EQ(presence->Set("u", {}).code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace dataflow::cache

#include "dataflow/cache/chain_builder.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "counting_fetcher.h"

namespace dataflow::cache {
namespace {

using ::testing::HasSubstr;

TEST(BuildCacheChain, AnLruInFrontOfTheSourceAnswersRepeatsFromMemory) {
  auto source = std::make_shared<testing::CountingFetcher<std::string, std::string>>();
  source->Put("k", "v");
  auto chain = BuildCacheChain<std::string, std::string>(
      {.lru = LruCacheOptions{.max_size = 10}, .source = source});
  ASSERT_TRUE(chain.ok()) << chain.status();
  ASSERT_NE(chain->lru, nullptr);
  EXPECT_EQ(chain->redis, nullptr);
  EXPECT_EQ(*chain->fetcher->Fetch("k"), "v");
  EXPECT_EQ(*chain->fetcher->Fetch("k"), "v");
  EXPECT_EQ(source->calls(), 1);
  EXPECT_EQ(chain->lru->Stats().hits, 1u);
}

TEST(BuildCacheChain, WithoutLayersTheSourceIsTheChain) {
  auto source = std::make_shared<testing::CountingFetcher<std::string, std::string>>();
  auto chain = BuildCacheChain<std::string, std::string>({.source = source});
  ASSERT_TRUE(chain.ok());
  EXPECT_EQ(chain->fetcher, source);
}

TEST(BuildCacheChain, ALayerThatCannotBeMadeIsNamed) {
  auto lru = BuildCacheChain<std::string, std::string>({.lru = LruCacheOptions{.max_size = 0}});
  ASSERT_FALSE(lru.ok());
  EXPECT_THAT(lru.status().message(), HasSubstr("cache.lru: "));
  // Nothing listens on port 1.
  auto redis =
      BuildCacheChain<std::string, std::string>({.redis = RedisOptions{.addr = "127.0.0.1:1"}});
  ASSERT_FALSE(redis.ok());
  EXPECT_THAT(redis.status().message(), HasSubstr("cache.redis (127.0.0.1:1): "));
}

}  // namespace
}  // namespace dataflow::cache

#include "dataflow/messagepipeline/registry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "dataflow/messagepipeline/errors.h"

namespace dataflow::messagepipeline {
namespace {

using ::testing::ElementsAre;

TEST(Registry, CreatesWithTheFactoryOfTheName) {
  Registry<int, int> doublers("doubler");
  doublers.Register("twice", [](int x) -> absl::StatusOr<int> { return 2 * x; });
  doublers.Register("thrice", [](int x) -> absl::StatusOr<int> { return 3 * x; });
  EXPECT_EQ(*doublers.Create("twice", 5), 10);
  EXPECT_EQ(*doublers.Create("thrice", 5), 15);
  EXPECT_THAT(doublers.Names(), ElementsAre("thrice", "twice"));
  doublers.Register("twice", [](int x) -> absl::StatusOr<int> { return x + x + 1; });
  EXPECT_EQ(*doublers.Create("twice", 5), 11);  // replaced
}

TEST(Registry, AnUnknownNameIsNotFoundListingTheKnownOnes) {
  Registry<int> sources("source backend", "build with the dev preset");
  sources.Register("local", []() -> absl::StatusOr<int> { return 1; });
  sources.Register("pubsub", []() -> absl::StatusOr<int> { return 2; });
  sources.Unregister("pubsub");
  auto made = sources.Create("pubsub");
  ASSERT_FALSE(made.ok());
  EXPECT_EQ(made.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(made.status().message(),
            "unknown source backend \"pubsub\" (this build has: local); build with the dev "
            "preset");
  EXPECT_EQ(Registry<int>("x").Create("y").status().message(),
            "unknown x \"y\" (this build has: none)");
}

TEST(Registry, AFactoryErrorIsReturnedAsIs) {
  Registry<int> failing("thing");
  failing.Register("bad", []() -> absl::StatusOr<int> { return absl::UnavailableError("down"); });
  EXPECT_EQ(failing.Create("bad").status(), absl::UnavailableError("down"));
}

TEST(Annotate, PrefixesTheMessageAndKeepsCodeAndPermanence) {
  const absl::Status annotated = Annotate(PermanentError("bad row"), "services[0] (store)");
  EXPECT_EQ(annotated.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(annotated.message(), "services[0] (store): bad row");
  EXPECT_TRUE(IsPermanent(annotated));
  EXPECT_FALSE(IsPermanent(Annotate(absl::InternalError("x"), "y")));
  EXPECT_TRUE(Annotate(absl::OkStatus(), "y").ok());
}

}  // namespace
}  // namespace dataflow::messagepipeline

// The booleans every config reader accepts, and the process-environment lookup.
#include "dataflow/messagepipeline/environment.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace dataflow::messagepipeline {
namespace {

TEST(ParseBoolTest, AcceptsTheUsualSpellingsInAnyCase) {
  for (const char* yes : {"true", "TRUE", "True", "yes", "Yes", "on", "ON", "1"}) {
    EXPECT_EQ(ParseBool(yes), true) << yes;
  }
  for (const char* no : {"false", "FALSE", "no", "No", "off", "OFF", "0"}) {
    EXPECT_EQ(ParseBool(no), false) << no;
  }
}

TEST(ParseBoolTest, RejectsAnythingElse) {
  for (const char* other : {"", "2", "tru", "y", "n", "enabled", " true", "true "}) {
    EXPECT_EQ(ParseBool(other), std::nullopt) << "'" << other << "'";
  }
}

TEST(ProcessEnvironmentTest, ReadsSetVariablesAndReportsUnsetOnes) {
  ASSERT_EQ(::setenv("DATAFLOW_ENVIRONMENT_TEST_VAR", "value", 1), 0);
  ::unsetenv("DATAFLOW_ENVIRONMENT_TEST_UNSET");
  const EnvLookup env = ProcessEnvironment();
  EXPECT_EQ(env("DATAFLOW_ENVIRONMENT_TEST_VAR"), "value");
  EXPECT_EQ(env("DATAFLOW_ENVIRONMENT_TEST_UNSET"), std::nullopt);
}

}  // namespace
}  // namespace dataflow::messagepipeline

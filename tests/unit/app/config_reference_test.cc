// docs/configuration.md's key tables are the config's blocks (config_keys.h): the section
// between the config-reference markers must be what ConfigReference() renders. After changing
// a table, regenerate the section with
//   DATAFLOW_UPDATE_DOCS=1 build/dev/tests/unit/app/app_config_reference_test
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "config_keys.h"

namespace dataflow::app {
namespace {

constexpr const char* kBegin =
    "<!-- config-reference:begin (generated from apps/dataflow/config_keys.h's blocks; see "
    "tests/unit/app/config_reference_test.cc) -->\n";
constexpr const char* kEnd = "<!-- config-reference:end -->";

TEST(ConfigReference, TheDocListsEveryKeyOfTheTables) {
  const std::string path = std::string(DATAFLOW_SOURCE_DIR) + "/docs/configuration.md";
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  std::string doc = text.str();
  const std::size_t begin = doc.find(kBegin);
  const std::size_t end = doc.find(kEnd);
  ASSERT_NE(begin, std::string::npos) << path << " lacks the begin marker: " << kBegin;
  ASSERT_NE(end, std::string::npos) << path << " lacks the end marker";
  ASSERT_LT(begin, end);
  const std::size_t from = begin + std::string(kBegin).size();
  const std::string expected = "\n" + ConfigReference();
  const std::string actual = doc.substr(from, end - from);
  if (actual != expected && std::getenv("DATAFLOW_UPDATE_DOCS") != nullptr) {
    doc.replace(from, end - from, expected);
    std::ofstream(path) << doc;
    GTEST_SKIP() << "rewrote " << path;
  }
  EXPECT_EQ(actual, expected) << "docs/configuration.md's generated key tables are stale; run "
                                 "DATAFLOW_UPDATE_DOCS=1 app_config_reference_test";
}

}  // namespace
}  // namespace dataflow::app

// A fresh, empty directory for the running test: <tmp>/<prefix>-<pid>-<test name>, so the
// tests of one binary, and binaries run in parallel (ctest -j), never share one. Call it from
// a test or its SetUp (it names the current test); the test removes the directory.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <string_view>

namespace dataflow::testing {

inline std::filesystem::path FreshTestDir(std::string_view prefix) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() /
      (std::string(prefix) + "-" + std::to_string(::getpid()) + "-" +
       ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace dataflow::testing

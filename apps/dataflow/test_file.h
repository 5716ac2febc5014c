// `dataflow test`'s test files (test_file.cc: ParseTestFile, JsonMatches and MatchAll of
// test_runner.h) beside the run (test_runner.cc).
#pragma once

#include <absl/status/status.h>

#include <string>

namespace dataflow::app {

// InvalidArgument "<path>: <what>": a test file or case that cannot be run as written.
absl::Status TestFileError(const std::string& path, const std::string& what);

}  // namespace dataflow::app

#include "process/child_process.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "dataflow_testing/server_process.h"
#include "dataflow_testing/test_dir.h"

namespace dataflow::process {
namespace {

using ::testing::HasSubstr;
using testing::WaitFor;
namespace fs = std::filesystem;

class ChildProcessTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::FreshTestDir("dataflow-child-process-test"); }
  void TearDown() override { fs::remove_all(dir_); }

  static std::string Slurp(const fs::path& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  fs::path dir_;
};

// Gone, or a zombie waiting for a reaper that is not ours (its parent, the leader, is dead).
bool Ended(pid_t pid) {
  if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string pid_field, comm, state;
  return stat >> pid_field >> comm >> state && state == "Z";
}

TEST_F(ChildProcessTest, StopEndsTheWholeProcessGroup) {
  const fs::path pid_file = dir_ / "grandchild.pid";
  // The shell ignores SIGTERM, so only the group's SIGKILL ends it; its child would outlive
  // it if only the leader were signalled.
  auto child = ChildProcess::Start(
      {.argv = {"sh", "-c",
                "trap '' TERM; sleep 300 & echo $! > " + pid_file.string() + "; wait; wait"},
       .log_path = (dir_ / "log").string()});
  ASSERT_TRUE(child.ok()) << child.status();
  ASSERT_TRUE(WaitFor([&] { return !Slurp(pid_file).empty(); }, std::chrono::seconds(10)));
  const pid_t grandchild = std::stoi(Slurp(pid_file));
  EXPECT_TRUE((*child)->running());

  (*child)->Stop(std::chrono::milliseconds(200));
  EXPECT_FALSE((*child)->running());
  EXPECT_EQ((*child)->exit_code(), 128 + SIGKILL);
  EXPECT_TRUE(WaitFor([&] { return Ended(grandchild); }, std::chrono::seconds(10)));
}

TEST_F(ChildProcessTest, ExitCodeOfAFinishedProcessAndOfAKill) {
  auto exits =
      ChildProcess::Start({.argv = {"sh", "-c", "exit 3"}, .log_path = (dir_ / "a").string()});
  ASSERT_TRUE(exits.ok()) << exits.status();
  EXPECT_EQ((*exits)->exit_code(), -1);
  ASSERT_TRUE(WaitFor([&] { return !(*exits)->running(); }, std::chrono::seconds(10)));
  EXPECT_EQ((*exits)->exit_code(), 3);

  auto sleeper = ChildProcess::Start({.argv = {"sleep", "300"}, .log_path = (dir_ / "b").string()});
  ASSERT_TRUE(sleeper.ok()) << sleeper.status();
  (*sleeper)->Kill();
  EXPECT_EQ((*sleeper)->exit_code(), 128 + SIGKILL);
  (*sleeper)->Stop();  // idempotent after Kill
  EXPECT_EQ((*sleeper)->exit_code(), 128 + SIGKILL);

  auto polite = ChildProcess::Start({.argv = {"sleep", "300"}, .log_path = (dir_ / "c").string()});
  ASSERT_TRUE(polite.ok()) << polite.status();
  (*polite)->Stop();
  EXPECT_EQ((*polite)->exit_code(), 128 + SIGTERM);
}

TEST_F(ChildProcessTest, LogIsAppendedOrTruncatedAndEnvironmentIsAdded) {
  const std::string log = (dir_ / "log").string();
  for (int i = 0; i < 2; ++i) {
    auto child = ChildProcess::Start({"sh", "-c", "echo line; echo err >&2"}, log);  // appends
    ASSERT_TRUE(child.ok()) << child.status();
    ASSERT_TRUE(WaitFor([&] { return !(*child)->running(); }, std::chrono::seconds(10)));
  }
  EXPECT_EQ(Slurp(log), "line\nerr\nline\nerr\n");

  auto child = ChildProcess::Start({.argv = {"sh", "-c", "echo \"$DATAFLOW_CHILD_TEST\""},
                                    .env = {{"DATAFLOW_CHILD_TEST", "from the parent"}},
                                    .log_path = log});
  ASSERT_TRUE(child.ok()) << child.status();
  ASSERT_TRUE(WaitFor([&] { return !(*child)->running(); }, std::chrono::seconds(10)));
  EXPECT_EQ(Slurp(log), "from the parent\n");
}

TEST_F(ChildProcessTest, MissingProgramIsAClearError) {
  auto child = ChildProcess::Start({"dataflow-no-such-program", "x"}, (dir_ / "log").string());
  ASSERT_FALSE(child.ok());
  EXPECT_EQ(child.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(child.status().message(), HasSubstr("dataflow-no-such-program: cannot start"));
  EXPECT_FALSE(ChildProcess::Start({}, (dir_ / "log").string()).ok());
}

TEST_F(ChildProcessTest, LoopbackPorts) {
  const int port = FreeLoopbackPort();
  ASSERT_GT(port, 0);
  EXPECT_FALSE(LoopbackPortAnswers(port));  // nothing listens on a port just found free
}

}  // namespace
}  // namespace dataflow::process

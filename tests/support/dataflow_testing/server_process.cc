#include "dataflow_testing/server_process.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <thread>

namespace dataflow::testing {

int FreeTcpPort() { return process::FreeLoopbackPort(); }

bool TcpConnects(int port) { return process::LoopbackPortAnswers(port); }

int HttpGetStatus(int port, const std::string& path, std::string* body) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(1, 0);
  client.set_read_timeout(2, 0);
  auto result = client.Get(path);
  if (!result) return -1;
  if (body) *body = result->body;
  return result->status;
}

bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
             std::chrono::milliseconds poll) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(poll);
  }
}

std::string FindExecutable(const std::string& name) {
  if (name.find('/') != std::string::npos) return ::access(name.c_str(), X_OK) == 0 ? name : "";
  const char* path = std::getenv("PATH");
  if (!path) return "";
  std::string all(path);
  std::size_t start = 0;
  while (start <= all.size()) {
    std::size_t end = all.find(':', start);
    if (end == std::string::npos) end = all.size();
    std::string candidate = all.substr(start, end - start) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return "";
}

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::Start(Options options) {
  if (options.argv.empty()) return absl::InvalidArgumentError("ServerProcess: empty argv");
  std::unique_ptr<ServerProcess> server(new ServerProcess(std::move(options)));
  if (auto s = server->Spawn(); !s.ok()) return s;
  return server;
}

absl::Status ServerProcess::Spawn() {
  const std::string exe = FindExecutable(options_.argv[0]);
  if (exe.empty()) {
    return absl::FailedPreconditionError(
        options_.name + ": executable not found: " + options_.argv[0] + " (run scripts/setup.sh)");
  }
  static std::atomic<int> counter{0};
  log_paths_.push_back((std::filesystem::temp_directory_path() /
                        ("dataflow-" + options_.name + "-" + std::to_string(::getpid()) + "-" +
                         std::to_string(counter++) + ".log"))
                           .string());
  const std::string& log_path = log_paths_.back();

  auto child = process::ChildProcess::Start(
      {.executable = exe, .argv = options_.argv, .env = options_.env, .log_path = log_path});
  if (!child.ok()) {
    return absl::InternalError(options_.name +
                               ": spawn failed: " + std::string(child.status().message()));
  }
  child_ = *std::move(child);
  if (!options_.ready) return absl::OkStatus();
  bool exited = false;
  const bool ready = WaitFor(
      [&] {
        if (!child_->running()) {
          exited = true;
          return true;
        }
        return options_.ready();
      },
      options_.ready_timeout, std::chrono::milliseconds(50));
  if (exited) {
    child_.reset();
    return absl::UnavailableError(options_.name + ": exited before becoming ready; see " +
                                  log_path);
  }
  if (!ready) {
    Stop();
    return absl::DeadlineExceededError(options_.name + ": not ready in time; see " + log_path);
  }
  return absl::OkStatus();
}

namespace {

// A failed test keeps every server log for its diagnosis; so does DATAFLOW_KEEP_SERVER_LOGS.
bool KeepServerLogs() {
  if (std::getenv("DATAFLOW_KEEP_SERVER_LOGS") != nullptr) return true;
  const ::testing::UnitTest& run = *::testing::UnitTest::GetInstance();
  const ::testing::TestInfo* current = run.current_test_info();
  return run.failed_test_count() > 0 || run.ad_hoc_test_result().Failed() ||
         (current != nullptr && current->result()->Failed());
}

}  // namespace

ServerProcess::~ServerProcess() {
  Stop();
  if (KeepServerLogs()) return;
  std::error_code ignored;
  for (const std::string& path : log_paths_) std::filesystem::remove(path, ignored);
}

void ServerProcess::Stop(std::chrono::milliseconds grace) {
  if (!child_) return;
  child_->Stop(grace);
  last_exit_code_ = child_->exit_code();
  child_.reset();
}

void ServerProcess::Kill() {
  if (!child_) return;
  child_->Kill();
  last_exit_code_ = child_->exit_code();
  child_.reset();
}

absl::Status ServerProcess::Restart() {
  Stop();
  return Spawn();
}

}  // namespace dataflow::testing

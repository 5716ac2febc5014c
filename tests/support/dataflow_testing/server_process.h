// Test harness: real servers as child processes on free loopback ports.
//
// ServerProcess starts a command in its own process group (process::ChildProcess, the code
// the program uses for its own children), waits until a readiness probe succeeds, and on
// Stop() signals the whole group (Java emulators fork children), so only the processes a
// test started are ever killed. Output goes to a log file in the temp directory whose path is
// printed when the server fails to come up; the destructor removes the logs of every start
// unless a test of the binary failed by then (or DATAFLOW_KEEP_SERVER_LOGS is set), so passing
// runs leave nothing behind.
#pragma once

#include <absl/status/statusor.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "process/child_process.h"

namespace dataflow::testing {

// A TCP port on 127.0.0.1 that was free a moment ago.
int FreeTcpPort();
// True if a TCP connection to 127.0.0.1:port succeeds.
bool TcpConnects(int port);
// HTTP GET on 127.0.0.1:port; the status code, or -1 if no answer.
int HttpGetStatus(int port, const std::string& path, std::string* body = nullptr);
// Polls `condition` until it holds or `timeout` passes.
bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
             std::chrono::milliseconds poll = std::chrono::milliseconds(20));
// Absolute path of an executable on PATH, or empty.
std::string FindExecutable(const std::string& name);

class ServerProcess {
 public:
  struct Options {
    std::string name;                        // for logs and errors
    std::vector<std::string> argv;           // argv[0] is looked up on PATH
    std::map<std::string, std::string> env;  // added to the environment
    std::function<bool()> ready;             // readiness probe
    std::chrono::milliseconds ready_timeout = std::chrono::seconds(60);
  };

  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(Options options);
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // SIGTERM to the process group, then SIGKILL after a grace period. Idempotent.
  void Stop(std::chrono::milliseconds grace = std::chrono::seconds(5));
  // SIGKILL to the process group at once (crash tests).
  void Kill();
  // Starts the same command again (after Stop/Kill) and waits until ready.
  absl::Status Restart();
  [[nodiscard]] pid_t pid() const { return child_ ? child_->pid() : -1; }
  // The log of the latest start.
  [[nodiscard]] const std::string& log_path() const { return log_paths_.back(); }
  // How the last Stop()/Kill() found it ended: its exit code, 128 + signal if a signal
  // ended it, -1 before the first stop.
  [[nodiscard]] int last_exit_code() const { return last_exit_code_; }

 private:
  explicit ServerProcess(Options options) : options_(std::move(options)) {}
  absl::Status Spawn();

  Options options_;
  std::unique_ptr<process::ChildProcess> child_;
  std::vector<std::string> log_paths_;  // one per Spawn (never empty), removed by the destructor
  int last_exit_code_ = -1;
};

}  // namespace dataflow::testing

// A child process in its own process group, for the program (the demo's Mosquitto) and the
// test harness (tests/support: Redis, Mosquitto, the emulators): stdin from /dev/null,
// stdout and stderr into a log file, and stopped with its whole group, so nothing it forked
// (the emulators' Java children) is left running. Internal: not part of the library.
#pragma once

#include <absl/status/statusor.h>
#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace dataflow::process {

// A TCP port on 127.0.0.1 that was free a moment ago; -1 if none could be had.
int FreeLoopbackPort();
// True if a TCP connection to 127.0.0.1:port succeeds.
bool LoopbackPortAnswers(int port);

struct ChildProcessOptions {
  std::string executable;                  // a path, or a name looked up on PATH; empty: argv[0]
  std::vector<std::string> argv;           // as the process sees it
  std::map<std::string, std::string> env;  // added to the environment (replacing a name)
  std::string log_path;                    // stdout and stderr
  bool append_log = false;                 // else the log is truncated
};

class ChildProcess {
 public:
  // FailedPrecondition "<argv[0]>: cannot start: <reason>" when it cannot be started.
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(ChildProcessOptions options);
  // argv, output appended to `log_path`.
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(std::vector<std::string> argv,
                                                             const std::string& log_path);
  // Stop() with its default grace.
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // False once the process has exited (it is then reaped).
  [[nodiscard]] bool running();
  // SIGTERM to the group, up to `grace` for the process to exit, then SIGKILL to the group
  // (what outlives the leader). Idempotent.
  void Stop(std::chrono::milliseconds grace = std::chrono::seconds(2));
  // SIGKILL to the group at once (crash tests). Idempotent.
  void Kill();
  [[nodiscard]] pid_t pid() const { return pid_; }
  // Once reaped: its exit code, or 128 + the signal that ended it; -1 before.
  [[nodiscard]] int exit_code() const { return exit_code_; }

 private:
  explicit ChildProcess(pid_t pid) : pid_(pid) {}
  // Reaps the process if it has exited (blocking: waits for it); true once reaped.
  bool Reap(bool block);

  const pid_t pid_;
  bool reaped_ = false;
  bool stopped_ = false;
  int exit_code_ = -1;
};

}  // namespace dataflow::process

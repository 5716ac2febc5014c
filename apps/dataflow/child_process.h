// A server the program starts for itself (the demo's Mosquitto): its own process group,
// stopped with the group on destruction so nothing is left running.
#pragma once

#include <absl/status/statusor.h>
#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

namespace dataflow::app {

class ChildProcess {
 public:
  // Starts argv (argv[0] looked up on PATH), output appended to `log_path`.
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(std::vector<std::string> argv,
                                                             const std::string& log_path);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  [[nodiscard]] bool running() const;

 private:
  explicit ChildProcess(pid_t pid) : pid_(pid) {}
  pid_t pid_;
};

// A TCP port on 127.0.0.1 that was free a moment ago; -1 if none could be had.
int FreeLoopbackPort();
bool LoopbackPortAnswers(int port);

}  // namespace dataflow::app

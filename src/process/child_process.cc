#include "process/child_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <thread>

extern char** environ;

namespace dataflow::process {

int FreeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

bool LoopbackPortAnswers(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return ok;
}

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Start(std::vector<std::string> argv,
                                                                  const std::string& log_path) {
  return Start({.argv = std::move(argv), .log_path = log_path, .append_log = true});
}

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Start(ChildProcessOptions options) {
  if (options.argv.empty()) return absl::InvalidArgumentError("ChildProcess: empty argv");
  std::vector<char*> args;
  for (auto& a : options.argv) args.push_back(a.data());
  args.push_back(nullptr);
  // The inherited environment, with `env` replacing what it names.
  std::vector<std::string> env_strings;
  char** envp = environ;
  std::vector<char*> env_pointers;
  if (!options.env.empty()) {
    for (char** e = environ; *e; ++e) {
      std::string kv(*e);
      if (!options.env.contains(kv.substr(0, kv.find('=')))) env_strings.push_back(kv);
    }
    for (const auto& [k, v] : options.env) env_strings.push_back(k + "=" + v);
    for (auto& s : env_strings) env_pointers.push_back(s.data());
    env_pointers.push_back(nullptr);
    envp = env_pointers.data();
  }

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, options.log_path.c_str(),
                                   O_WRONLY | O_CREAT | (options.append_log ? O_APPEND : O_TRUNC),
                                   0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);  // its own group, so Stop() reaches its children
  pid_t pid = -1;
  const std::string& file = options.executable.empty() ? options.argv[0] : options.executable;
  const int rc = ::posix_spawnp(&pid, file.c_str(), &actions, &attr, args.data(), envp);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return absl::FailedPreconditionError(file + ": cannot start: " + std::strerror(rc));
  }
  return std::unique_ptr<ChildProcess>(new ChildProcess(pid));
}

ChildProcess::~ChildProcess() { Stop(); }

bool ChildProcess::Reap(bool block) {
  if (reaped_) return true;
  int status = 0;
  const pid_t r = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
  if (r == 0) return false;
  reaped_ = true;
  if (r == pid_) {
    if (WIFEXITED(status)) exit_code_ = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) exit_code_ = 128 + WTERMSIG(status);
  }
  return true;
}

bool ChildProcess::running() { return !Reap(/*block=*/false); }

void ChildProcess::Stop(std::chrono::milliseconds grace) {
  if (stopped_) return;
  stopped_ = true;
  ::kill(-pid_, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (!Reap(/*block=*/false) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // bounded grace period
  }
  // The group may hold children that outlive the leader (emulator wrappers): kill them all.
  ::kill(-pid_, SIGKILL);
  Reap(/*block=*/true);
}

void ChildProcess::Kill() {
  if (stopped_) return;
  stopped_ = true;
  ::kill(-pid_, SIGKILL);
  Reap(/*block=*/true);
}

}  // namespace dataflow::process

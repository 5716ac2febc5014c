// An LD_PRELOAD shim for durability tests: wraps fsync() and fdatasync() and, for a file
// descriptor that is a directory,
//   - appends "<directory path> <ok|failed>" to the file named by DATAFLOW_FSYNC_SHIM_LOG;
//   - fails with EIO when DATAFLOW_FSYNC_SHIM_FAIL_DIRS=1.
// Other descriptors go to the real function. Without the variables it changes nothing.
// (strace would show the same, but is not installed everywhere the tests run.)
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

using SyncFn = int (*)(int);

bool IsDirectory(int fd) {
  struct stat st {};
  return fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
}

// Logs and decides for a directory descriptor; -1 (errno set) to fail, 0 to go on.
int OnDirectory(int fd) {
  const char* fail_env = std::getenv("DATAFLOW_FSYNC_SHIM_FAIL_DIRS");
  const bool fail = fail_env != nullptr && std::strcmp(fail_env, "1") == 0;
  if (const char* log = std::getenv("DATAFLOW_FSYNC_SHIM_LOG"); log != nullptr) {
    char link[64];
    char path[PATH_MAX + 1];
    std::snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    const ssize_t n = readlink(link, path, PATH_MAX);
    path[n < 0 ? 0 : n] = '\0';
    // O_APPEND: one write per line, so lines of concurrent callers do not interleave.
    const int out = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (out >= 0) {
      char line[PATH_MAX + 16];
      const int len = std::snprintf(line, sizeof(line), "%s %s\n", path, fail ? "failed" : "ok");
      (void)!write(out, line, static_cast<std::size_t>(len));
      close(out);
    }
  }
  if (fail) {
    errno = EIO;
    return -1;
  }
  return 0;
}

int Wrap(const char* name, int fd) {
  if (IsDirectory(fd) && OnDirectory(fd) != 0) return -1;
  auto real = reinterpret_cast<SyncFn>(dlsym(RTLD_NEXT, name));
  return real == nullptr ? (errno = ENOSYS, -1) : real(fd);
}

}  // namespace

extern "C" int fsync(int fd) { return Wrap("fsync", fd); }
extern "C" int fdatasync(int fd) { return Wrap("fdatasync", fd); }

#include "dataflow/icestore/local_directory_uploader.h"

#include <absl/strings/str_cat.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "dataflow/icestore/archival.h"
#include "dataflow/messagepipeline/errors.h"

namespace dataflow::icestore {
namespace {

// Errors that the same path can never get past: the filesystem refuses the name itself
// (too long, invalid bytes for it). Everything else (ENOSPC, EIO, EDQUOT, EACCES, EROFS, a
// file in the way: ENOTDIR, ...) is about the machine, not the data, and can clear up, so
// it stays transient and the group is redelivered.
bool PermanentErrno(int err) {
  switch (err) {
    case ENAMETOOLONG:
    case EINVAL:
    case EILSEQ:
      return true;
    default:
      return false;
  }
}

absl::Status ErrnoError(std::string_view what, const std::string& path, int err) {
  std::string message = absl::StrCat(std::string(what), " ", path, ": ", std::strerror(err));
  if (PermanentErrno(err)) {
    return messagepipeline::MarkPermanent(absl::InvalidArgumentError(message));
  }
  return absl::UnavailableError(message);
}

absl::Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("write", path, errno);
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return absl::OkStatus();
}

// fsync of a directory: makes the entries in it (a renamed file, a new subdirectory) durable.
absl::Status SyncDirectory(const std::filesystem::path& dir) {
  const std::string path = dir.empty() ? std::string(".") : dir.string();
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("open directory", path, errno);
  absl::Status s;
  if (::fsync(fd) != 0) s = ErrnoError("fsync directory", path, errno);
  ::close(fd);
  return s;
}

}  // namespace

absl::Status LocalDirectoryUploader::MakeDirectories(const std::filesystem::path& dir) {
  {
    // Most objects go to a directory an earlier upload made (and synced): skip the mkdir and
    // stat of every level (measured: ~5 failing mkdirs per object otherwise).
    std::lock_guard lock(durable_mu_);
    if (made_.contains(dir.string())) return absl::OkStatus();
  }
  const std::filesystem::path root(options_.root);
  std::filesystem::path at = root;
  std::vector<std::filesystem::path> chain{root};
  for (const auto& part : dir.lexically_relative(root)) {
    if (part == ".") continue;
    at /= part;
    chain.push_back(at);
  }
  for (const std::filesystem::path& p : chain) {
    if (::mkdir(p.c_str(), 0755) != 0) {
      const int err = errno;
      struct stat st {};
      if (err != EEXIST) return ErrnoError("mkdir", p.string(), err);
      if (::stat(p.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
        return ErrnoError("mkdir", p.string(), ENOTDIR);
      }
    }
    if (!options_.fsync) continue;
    {
      std::lock_guard lock(durable_mu_);
      if (durable_.contains(p.string())) continue;
    }
    // Whether this call or another worker (or an earlier run) created it, its entry in the
    // parent is durable only once the parent is synced; and it must be, before an object
    // under it is acknowledged.
    if (auto s = SyncDirectory(p); !s.ok()) return s;
    if (auto s = SyncDirectory(p.parent_path()); !s.ok()) return s;
    std::lock_guard lock(durable_mu_);
    durable_.insert(p.string());
  }
  std::lock_guard lock(durable_mu_);
  made_.insert(dir.string());
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<LocalDirectoryUploader>> LocalDirectoryUploader::Create(
    LocalDirectoryUploaderOptions options) {
  if (options.root.empty()) {
    return absl::InvalidArgumentError("LocalDirectoryUploader: root directory is empty");
  }
  if (auto s = ValidatePrefix(options.prefix); !s.ok()) return s;
  if (auto s = ValidateGzipOptions(options.gzip); !s.ok()) return s;
  std::error_code ec;
  std::filesystem::create_directories(options.root, ec);
  if (ec || !std::filesystem::is_directory(options.root)) {
    return absl::InvalidArgumentError(absl::StrCat("LocalDirectoryUploader: cannot create root ",
                                                   options.root, ": ", ec.message()));
  }
  return std::unique_ptr<LocalDirectoryUploader>(new LocalDirectoryUploader(std::move(options)));
}

absl::StatusOr<std::string> LocalDirectoryUploader::Upload(const ObjectGroup& group) {
  auto object = PrepareObject(group, options_.prefix, options_.gzip);
  if (!object.ok()) return object.status();
  const std::string& name = object->name;
  const std::filesystem::path final_path = std::filesystem::path(options_.root) / name;
  const std::filesystem::path dir = final_path.parent_path();
  // A dot file in the same directory: same filesystem, so the rename is atomic, and
  // readers globbing *.jsonl.gz never pick it up.
  const std::string tmp = (dir / ("." + final_path.filename().string() + ".tmp")).string();
  int fd = -1;
  for (int attempt = 0; fd < 0; ++attempt) {
    if (auto s = MakeDirectories(dir); !s.ok()) return s;
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) break;
    const int err = errno;
    if (err != ENOENT || attempt > 0) return ErrnoError("open", tmp, err);
    // Someone removed a directory MakeDirectories remembers: make (and sync) them all again.
    std::lock_guard lock(durable_mu_);
    made_.clear();
    durable_.clear();
  }
  absl::Status s = WriteAll(fd, object->gzipped, tmp);
  if (s.ok() && options_.fsync && ::fsync(fd) != 0) s = ErrnoError("fsync", tmp, errno);
  if (::close(fd) != 0 && s.ok()) s = ErrnoError("close", tmp, errno);
  if (s.ok() && ::rename(tmp.c_str(), final_path.c_str()) != 0) {
    s = ErrnoError("rename", tmp, errno);
  }
  if (!s.ok()) {
    ::unlink(tmp.c_str());
    return s;
  }
  if (options_.fsync) {
    // The rename is durable only once the directory entry is; if that cannot be made sure,
    // the upload fails and the group is redelivered (the object, complete, stays: a later
    // attempt writes another one, and readers tolerate duplicates: at-least-once).
    if (auto synced = SyncDirectory(dir); !synced.ok()) return synced;
  }
  return name;
}

}  // namespace dataflow::icestore

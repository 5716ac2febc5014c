// RedisStub: the few Redis commands the caches use, behind a small interface.
//
// MakeRedisStub() returns the hiredis implementation: a pool of blocking connections
// (created on demand up to pool_size, reused, dropped after an I/O error), AUTH and SELECT
// on connect, connect/command timeouts. Its creation PINGs the server, so a wrong address
// or password fails at start-up with a clear error. The caches hold the degradation
// logic (fallback while Redis is down); a stub only reports Unavailable. Other backends
// or test doubles can implement RedisStub. Thread-safe.
#pragma once

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace dataflow::cache {

// As the Go library's RedisOptions (addr, password, db, cache_ttl), plus pool and timeouts.
struct RedisOptions {
  std::string addr = "localhost:6379";  // host:port
  std::string password;                 // empty: no AUTH
  int db = 0;                           // SELECT db
  // TTL of values RedisCache writes back; zero stores them without expiry.
  std::chrono::milliseconds cache_ttl{0};
  std::string key_prefix;  // prepended to every key, e.g. "users:"
  int pool_size = 16;      // most connections open at once; callers beyond it wait
  std::chrono::milliseconds connect_timeout{1000};
  std::chrono::milliseconds command_timeout{1000};
  // After a failed command, the cache skips Redis (straight to the fallback) for this long
  // before trying again, so a dead server costs one timeout, not one per fetch.
  std::chrono::milliseconds retry_interval{500};
};

class RedisStub {
 public:
  virtual ~RedisStub() = default;
  // The bytes under `key`, or nullopt if absent. Unavailable if Redis cannot be reached.
  virtual absl::StatusOr<std::optional<std::string>> Get(std::string_view key) = 0;
  // SET key value [PX ttl]; ttl zero: no expiry.
  virtual absl::Status Set(std::string_view key, std::string_view value,
                           std::chrono::milliseconds ttl) = 0;
  virtual absl::Status Del(std::string_view key) = 0;
  virtual absl::Status Ping() = 0;
  // Closes idle connections; later calls fail with FailedPrecondition.
  virtual void Close() = 0;
};

// Validates `config`, connects and PINGs (InvalidArgument for a bad config, Unavailable or
// PermissionDenied with the address in the message when the server cannot be used).
absl::StatusOr<std::shared_ptr<RedisStub>> MakeRedisStub(const RedisOptions& config);

}  // namespace dataflow::cache

// Fetcher<K,V>: the read-through contract every cache layer and source of truth implements.
//
// A cache holds an optional fallback Fetcher; on a miss it asks the fallback, writes the
// value back into itself and returns it, so layers chain (LRU -> Redis -> Firestore).
// Fetch distinguishes a miss from a failure: absl::NotFoundError means "no such key"
// anywhere down the chain; any other non-OK code means a backend failed.
// Implementations in this package are thread-safe: Fetch may be called from many threads.
#pragma once

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <memory>

namespace dataflow::cache {

template <typename K, typename V>
class Fetcher {
 public:
  virtual ~Fetcher() = default;
  // The value for `key`; NotFound if it does not exist, other codes for failures.
  virtual absl::StatusOr<V> Fetch(const K& key) = 0;
  // Releases this layer's resources; later Fetch calls fail with FailedPrecondition.
  // Does not close the fallback: whoever created a layer closes it. Idempotent.
  virtual absl::Status Close() = 0;
};

// A Fetcher owned jointly by the layers that fall back to it.
template <typename K, typename V>
using FetcherPtr = std::shared_ptr<Fetcher<K, V>>;

// Ephemeral state with no source of truth (e.g. who is online): written and deleted
// explicitly. Fetch of an absent key is NotFound. Thread-safe.
template <typename K, typename V>
class PresenceCache {
 public:
  virtual ~PresenceCache() = default;
  virtual absl::Status Set(const K& key, const V& value) = 0;
  virtual absl::StatusOr<V> Fetch(const K& key) = 0;
  // Deleting an absent key is not an error.
  virtual absl::Status Delete(const K& key) = 0;
  virtual absl::Status Close() = 0;
};

inline absl::Status ClosedError() { return absl::FailedPreconditionError("cache: closed"); }

}  // namespace dataflow::cache

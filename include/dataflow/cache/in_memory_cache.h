// InMemoryCache<K,V>: an unbounded in-memory Fetcher with an optional fallback.
//
// On a miss it asks the fallback, stores the value (write-back) and returns it. It never
// evicts, so it suits tests and small fixed key sets; use InMemoryLruCache as an L1 cache.
// Thread-safe: reads share a lock, writes take it exclusively. Concurrent misses on one key
// may each call the fallback (InMemoryLruCache has single-flight).
#pragma once

#include <absl/container/flat_hash_map.h>
#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <utility>

#include "dataflow/cache/fetcher.h"

namespace dataflow::cache {

template <typename K, typename V>
class InMemoryCache final : public Fetcher<K, V> {
 public:
  // `fallback` may be null: a miss is then NotFound.
  static absl::StatusOr<std::unique_ptr<InMemoryCache>> Create(
      FetcherPtr<K, V> fallback = nullptr) {
    return std::unique_ptr<InMemoryCache>(new InMemoryCache(std::move(fallback)));
  }

  absl::StatusOr<V> Fetch(const K& key) override {
    if (closed_.load(std::memory_order_acquire)) return ClosedError();
    {
      std::shared_lock lock(mu_);
      auto it = items_.find(key);
      if (it != items_.end()) return it->second;
    }
    if (fallback_ == nullptr) return absl::NotFoundError("cache: key not in memory");
    absl::StatusOr<V> value = fallback_->Fetch(key);
    if (value.ok()) Write(key, *value);
    return value;
  }

  // Stores or replaces a value.
  void Write(const K& key, V value) {
    std::unique_lock lock(mu_);
    items_.insert_or_assign(key, std::move(value));
  }
  void Delete(const K& key) {
    std::unique_lock lock(mu_);
    items_.erase(key);
  }
  [[nodiscard]] std::size_t Size() const {
    std::shared_lock lock(mu_);
    return items_.size();
  }

  absl::Status Close() override {
    closed_.store(true, std::memory_order_release);
    std::unique_lock lock(mu_);
    items_.clear();
    return absl::OkStatus();
  }

 private:
  explicit InMemoryCache(FetcherPtr<K, V> fallback) : fallback_(std::move(fallback)) {}

  const FetcherPtr<K, V> fallback_;
  std::atomic<bool> closed_{false};
  mutable std::shared_mutex mu_;
  absl::flat_hash_map<K, V> items_;
};

// InMemoryPresenceCache<K,V>: PresenceCache in process memory, for single-instance services
// and tests. Thread-safe.
template <typename K, typename V>
class InMemoryPresenceCache final : public PresenceCache<K, V> {
 public:
  static absl::StatusOr<std::unique_ptr<InMemoryPresenceCache>> Create() {
    return std::unique_ptr<InMemoryPresenceCache>(new InMemoryPresenceCache());
  }
  absl::Status Set(const K& key, const V& value) override {
    std::unique_lock lock(mu_);
    if (closed_) return ClosedError();
    items_.insert_or_assign(key, value);
    return absl::OkStatus();
  }
  absl::StatusOr<V> Fetch(const K& key) override {
    std::shared_lock lock(mu_);
    if (closed_) return ClosedError();
    auto it = items_.find(key);
    if (it == items_.end()) return absl::NotFoundError("presence: key not present");
    return it->second;
  }
  absl::Status Delete(const K& key) override {
    std::unique_lock lock(mu_);
    if (closed_) return ClosedError();
    items_.erase(key);
    return absl::OkStatus();
  }
  absl::Status Close() override {
    std::unique_lock lock(mu_);
    closed_ = true;
    items_.clear();
    return absl::OkStatus();
  }

 private:
  InMemoryPresenceCache() = default;
  std::shared_mutex mu_;
  bool closed_ = false;
  absl::flat_hash_map<K, V> items_;
};

}  // namespace dataflow::cache

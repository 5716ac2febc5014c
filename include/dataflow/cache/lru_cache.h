// InMemoryLRUCache<K,V>: a size-limited in-memory L1 cache with an optional fallback.
//
// Entries live in N shards chosen by key hash, each with its own lock and LRU list, so
// hits on different keys rarely contend; eviction is least-recently-used within a shard
// (the total never exceeds max_size). On a miss the fallback is called once per key no
// matter how many callers miss it at the same time (single-flight): the others wait and
// share its result. Found values are written back; with negative_ttl > 0 a NotFound is
// remembered for that long too. Other errors are never cached. Optional ttl expires
// entries. Thread-safe; Fetch may be called from any number of threads.
#pragma once

#include <absl/container/flat_hash_map.h>
#include <absl/hash/hash.h>
#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dataflow/cache/fetcher.h"

namespace dataflow::cache {

struct LRUCacheOptions {
  std::size_t max_size = 10000;  // entries, > 0
  int shards = 0;                // 0: min(16, max_size); at most max_size
  // Time to live of a cached value; zero keeps it until evicted.
  std::chrono::nanoseconds ttl{0};
  // How long a NotFound from the fallback is remembered; zero (default) never caches misses.
  std::chrono::nanoseconds negative_ttl{0};
};

struct LRUCacheStats {
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;          // lookups not answered from memory
  std::uint64_t fallback_calls = 0;  // single-flight leaders only
  std::uint64_t evictions = 0;
  std::size_t size = 0;
};

template <typename K, typename V>
class InMemoryLRUCache final : public Fetcher<K, V> {
 public:
  static absl::StatusOr<std::unique_ptr<InMemoryLRUCache>> Create(
      LRUCacheOptions options, FetcherPtr<K, V> fallback = nullptr) {
    if (options.max_size == 0) {
      return absl::InvalidArgumentError("InMemoryLRUCache: max_size must be > 0");
    }
    if (options.shards < 0 || static_cast<std::size_t>(options.shards) > options.max_size) {
      return absl::InvalidArgumentError(
          "InMemoryLRUCache: shards must be between 0 (auto) and max_size");
    }
    if (options.ttl.count() < 0 || options.negative_ttl.count() < 0) {
      return absl::InvalidArgumentError("InMemoryLRUCache: ttl and negative_ttl must be >= 0");
    }
    if (options.shards == 0) {
      options.shards = static_cast<int>(std::min<std::size_t>(16, options.max_size));
    }
    return std::unique_ptr<InMemoryLRUCache>(new InMemoryLRUCache(options, std::move(fallback)));
  }

  absl::StatusOr<V> Fetch(const K& key) override {
    if (closed_.load(std::memory_order_acquire)) return ClosedError();
    Shard& shard = ShardFor(key);
    std::shared_ptr<Flight> flight;
    bool leader = false;
    {
      std::lock_guard lock(shard.mu);
      auto it = shard.index.find(key);
      if (it != shard.index.end()) {
        auto entry = it->second;
        if (entry->expires == kNever || Clock::now() < entry->expires) {
          shard.lru.splice(shard.lru.begin(), shard.lru, entry);
          ++shard.hits;
          if (entry->value.has_value()) return *entry->value;
          return absl::NotFoundError("cache: key not found (cached miss)");
        }
        shard.index.erase(it);
        shard.lru.erase(entry);
      }
      ++shard.misses;
      if (fallback_ == nullptr) return absl::NotFoundError("cache: key not in LRU cache");
      auto [fit, inserted] = shard.flights.try_emplace(key);
      if (inserted) {
        fit->second = std::make_shared<Flight>();
        ++shard.fallback_calls;
      }
      leader = inserted;
      flight = fit->second;
    }
    if (!leader) {
      std::unique_lock lock(flight->mu);
      flight->cv.wait(lock, [&] { return flight->result.has_value(); });
      return *flight->result;
    }
    absl::StatusOr<V> result = CallFallback(key);
    {
      std::lock_guard lock(shard.mu);
      // Store and end the flight under one lock: a caller arriving now sees either the
      // flight or the stored entry, never neither.
      if (result.ok()) {
        InsertLocked(shard, key, *result, options_.ttl);
      } else if (absl::IsNotFound(result.status()) && options_.negative_ttl.count() > 0) {
        InsertLocked(shard, key, std::nullopt, options_.negative_ttl);
      }
      shard.flights.erase(key);
    }
    {
      std::lock_guard lock(flight->mu);
      flight->result = result;
    }
    flight->cv.notify_all();
    return result;
  }

  // Stores or replaces a value (marks it most recently used).
  void Write(const K& key, V value) {
    Shard& shard = ShardFor(key);
    std::lock_guard lock(shard.mu);
    InsertLocked(shard, key, std::optional<V>(std::move(value)), options_.ttl);
  }
  // Forgets a key (the next Fetch goes to the fallback).
  void Delete(const K& key) {
    Shard& shard = ShardFor(key);
    std::lock_guard lock(shard.mu);
    auto it = shard.index.find(key);
    if (it == shard.index.end()) return;
    shard.lru.erase(it->second);
    shard.index.erase(it);
  }

  [[nodiscard]] LRUCacheStats Stats() const {
    LRUCacheStats stats;
    for (const auto& shard : shards_) {
      std::lock_guard lock(shard->mu);
      stats.hits += shard->hits;
      stats.misses += shard->misses;
      stats.fallback_calls += shard->fallback_calls;
      stats.evictions += shard->evictions;
      stats.size += shard->index.size();
    }
    return stats;
  }
  [[nodiscard]] std::size_t Size() const { return Stats().size; }

  absl::Status Close() override {
    closed_.store(true, std::memory_order_release);
    for (auto& shard : shards_) {
      std::lock_guard lock(shard->mu);
      shard->index.clear();
      shard->lru.clear();
    }
    return absl::OkStatus();
  }

 private:
  using Clock = std::chrono::steady_clock;
  static constexpr Clock::time_point kNever = Clock::time_point::max();

  struct Entry {
    K key;
    std::optional<V> value;  // empty: a remembered NotFound
    Clock::time_point expires;
  };
  struct Flight {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<absl::StatusOr<V>> result;
  };
  // Own cache line per shard so two threads on two shards do not share one.
  struct alignas(64) Shard {
    mutable std::mutex mu;
    std::list<Entry> lru;  // front: most recently used
    absl::flat_hash_map<K, typename std::list<Entry>::iterator> index;
    absl::flat_hash_map<K, std::shared_ptr<Flight>> flights;
    std::size_t capacity = 0;
    std::uint64_t hits = 0, misses = 0, fallback_calls = 0, evictions = 0;
  };

  InMemoryLRUCache(const LRUCacheOptions& options, FetcherPtr<K, V> fallback)
      : options_(options), fallback_(std::move(fallback)) {
    const auto n = static_cast<std::size_t>(options.shards);
    for (std::size_t i = 0; i < n; ++i) {
      auto shard = std::make_unique<Shard>();
      // Spread max_size exactly: the first (max_size % n) shards take one more.
      shard->capacity = options.max_size / n + (i < options.max_size % n ? 1 : 0);
      shards_.push_back(std::move(shard));
    }
  }

  Shard& ShardFor(const K& key) {
    // Mix before reducing: the per-shard hash maps use the same hash's bits.
    const std::uint64_t h = static_cast<std::uint64_t>(absl::Hash<K>{}(key));
    const std::uint64_t mixed = (h * 0x9E3779B97F4A7C15ull) >> 32;
    return *shards_[mixed % shards_.size()];
  }

  absl::StatusOr<V> CallFallback(const K& key) {
    // A throwing user fetcher must not strand the callers waiting on this flight.
    try {
      return fallback_->Fetch(key);
    } catch (const std::exception& e) {
      return absl::InternalError(std::string("cache: fallback threw: ") + e.what());
    } catch (...) {
      return absl::InternalError("cache: fallback threw a non-standard exception");
    }
  }

  void InsertLocked(Shard& shard, const K& key, std::optional<V> value,
                    std::chrono::nanoseconds ttl) {
    const Clock::time_point expires =
        ttl.count() > 0 ? Clock::now() + std::chrono::duration_cast<Clock::duration>(ttl) : kNever;
    auto it = shard.index.find(key);
    if (it != shard.index.end()) {
      it->second->value = std::move(value);
      it->second->expires = expires;
      shard.lru.splice(shard.lru.begin(), shard.lru, it->second);
      return;
    }
    if (shard.index.size() >= shard.capacity) {
      shard.index.erase(shard.lru.back().key);
      shard.lru.pop_back();
      ++shard.evictions;
    }
    shard.lru.push_front(Entry{key, std::move(value), expires});
    shard.index.emplace(key, shard.lru.begin());
  }

  const LRUCacheOptions options_;
  const FetcherPtr<K, V> fallback_;
  std::atomic<bool> closed_{false};
  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace dataflow::cache

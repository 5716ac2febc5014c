// InMemoryLruCache<K,V>: a size-limited in-memory L1 cache with an optional fallback.
//
// Entries live in N shards chosen by key hash. Eviction is CLOCK (second chance), an
// approximation of least-recently-used: a hit only sets the entry's reference bit, and
// when a full shard needs room its clock hand clears set bits and evicts the first entry
// whose bit is clear, so an entry referenced since the hand last passed survives one
// that was not. The total never exceeds max_size. Hits take a shard's lock shared and
// write no shared cache line (internal/striped_lock.h), so hits from many threads scale;
// misses, writes and evictions take it exclusively. On a miss the fallback is called once per key
// no matter how many callers miss it at the same time (single-flight): the others wait and
// share its result. Found values are written back; with negative_ttl > 0 a NotFound is
// remembered for that long too. Other errors are never cached. Optional ttl expires
// entries. Thread-safe; Fetch may be called from any number of threads.
#pragma once

#include <absl/container/flat_hash_map.h>
#include <absl/hash/hash.h>
#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dataflow/cache/cache_metrics.h"
#include "dataflow/cache/fetcher.h"
#include "dataflow/cache/internal/striped_lock.h"
#include "dataflow/metrics/registration.h"

namespace dataflow::cache {

struct LruCacheOptions {
  std::size_t max_size = 10000;  // entries, > 0
  // 0: min(64, max(1, max_size / 64)), so small caches keep enough entries per shard for
  // the eviction order to mean something. At most max_size.
  int shards = 0;
  // Time to live of a cached value; zero keeps it until evicted.
  std::chrono::nanoseconds ttl{0};
  // How long a NotFound from the fallback is remembered; zero (default) never caches misses.
  std::chrono::nanoseconds negative_ttl{0};
};

struct LruCacheStats {
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;          // lookups not answered from memory
  std::uint64_t fallback_calls = 0;  // single-flight leaders only
  std::uint64_t evictions = 0;
  std::size_t size = 0;
};

template <typename K, typename V>
class InMemoryLruCache final : public Fetcher<K, V> {
 public:
  static absl::StatusOr<std::unique_ptr<InMemoryLruCache>> Create(
      LruCacheOptions options, FetcherPtr<K, V> fallback = nullptr) {
    if (options.max_size == 0) {
      return absl::InvalidArgumentError("InMemoryLruCache: max_size must be > 0");
    }
    if (options.shards < 0 || static_cast<std::size_t>(options.shards) > options.max_size) {
      return absl::InvalidArgumentError(
          "InMemoryLruCache: shards must be between 0 (auto) and max_size");
    }
    if (options.ttl.count() < 0 || options.negative_ttl.count() < 0) {
      return absl::InvalidArgumentError("InMemoryLruCache: ttl and negative_ttl must be >= 0");
    }
    if (options.shards == 0) {
      options.shards =
          static_cast<int>(std::clamp<std::size_t>(options.max_size / 64, 1, kMaxAutoShards));
    }
    return std::unique_ptr<InMemoryLruCache>(new InMemoryLruCache(options, std::move(fallback)));
  }

  absl::StatusOr<V> Fetch(const K& key) override {
    if (closed_.load(std::memory_order_acquire)) return ClosedError();
    Shard& shard = ShardFor(key);
    {
      const std::size_t stripe = shard.lock.CurrentStripe();
      SharedGuard guard(shard.lock, stripe);
      if (const Entry* entry = FindLive(shard, key)) {
        // Test first: once the bit is set, hits on a hot key only read its cache line.
        if (!entry->referenced.load(std::memory_order_relaxed)) {
          entry->referenced.store(true, std::memory_order_relaxed);
        }
        shard.lock.CountHit(stripe);
        return Answer(*entry);
      }
    }
    return FetchSlow(shard, key);
  }

  // Stores or replaces a value (marks it referenced).
  void Write(const K& key, V value) {
    Shard& shard = ShardFor(key);
    std::lock_guard lock(shard.lock);
    InsertLocked(shard, key, std::optional<V>(std::move(value)), options_.ttl);
  }
  // Forgets a key (the next Fetch goes to the fallback).
  void Delete(const K& key) {
    Shard& shard = ShardFor(key);
    std::lock_guard lock(shard.lock);
    auto it = shard.index.find(key);
    if (it != shard.index.end()) RemoveLocked(shard, it);
  }

  [[nodiscard]] LruCacheStats Stats() const {
    LruCacheStats stats;
    for (const auto& shard : shards_) {
      std::lock_guard lock(shard->lock);
      stats.hits += shard->hits + shard->lock.StripedHits();
      stats.misses += shard->misses;
      stats.fallback_calls += shard->fallback_calls;
      stats.evictions += shard->evictions;
      stats.size += shard->index.size();
    }
    return stats;
  }
  [[nodiscard]] std::size_t Size() const { return Stats().size; }

  // Exports Stats() as the dataflow_cache_* families (cache_metrics.h), labelled `labels`
  // and layer="lru", on every scrape of `telemetry` until this cache is destroyed; a second
  // call replaces the first. Not concurrently with itself.
  void RegisterMetrics(metrics::Telemetry& telemetry, const metrics::Labels& labels) {
    metrics_ = internal::RegisterLruCacheMetrics(telemetry, labels, [this] { return Stats(); });
  }

  absl::Status Close() override {
    closed_.store(true, std::memory_order_release);
    for (auto& shard : shards_) {
      std::lock_guard lock(shard->lock);
      shard->index.clear();
      shard->slots.clear();
      shard->free.clear();
      shard->hand = 0;
    }
    return absl::OkStatus();
  }

 private:
  using Clock = std::chrono::steady_clock;
  static constexpr Clock::time_point kNever = Clock::time_point::max();
  static constexpr std::size_t kMaxAutoShards = 64;

  using StripedLock = internal::StripedLock;
  using SharedGuard = internal::SharedGuard;

  struct Entry {
    K key;
    std::optional<V> value;  // empty: a remembered NotFound
    Clock::time_point expires = kNever;
    // Set by hits under the shared lock, cleared by the clock hand under the exclusive one.
    mutable std::atomic<bool> referenced{false};
  };
  struct Flight {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<absl::StatusOr<V>> result;
  };
  // Own cache lines per shard so two threads on two shards do not share one.
  struct alignas(64) Shard {
    mutable StripedLock lock;
    // Slots never move (deque), so the index holds positions; size() <= capacity.
    std::deque<Entry> slots;
    std::vector<std::uint32_t> free;  // positions of deleted or expired slots
    std::size_t hand = 0;             // the clock hand: next slot considered for eviction
    absl::flat_hash_map<K, std::uint32_t> index;
    // Misses being fetched; the Flight exists once a second caller waits on it.
    absl::flat_hash_map<K, std::shared_ptr<Flight>> flights;
    std::size_t capacity = 0;
    // Guarded by the exclusive lock; hits on the shared path are counted in the lock.
    std::uint64_t hits = 0, misses = 0, fallback_calls = 0, evictions = 0;
  };

  InMemoryLruCache(const LruCacheOptions& options, FetcherPtr<K, V> fallback)
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

  // The live, unexpired entry for key, or null. Needs the lock, shared or exclusive.
  static const Entry* FindLive(const Shard& shard, const K& key) {
    auto it = shard.index.find(key);
    if (it == shard.index.end()) return nullptr;
    const Entry& entry = shard.slots[it->second];
    if (entry.expires != kNever && Clock::now() >= entry.expires) return nullptr;
    return &entry;
  }
  static absl::StatusOr<V> Answer(const Entry& entry) {
    if (entry.value.has_value()) return *entry.value;
    return absl::NotFoundError("cache: key not found (cached miss)");
  }

  absl::StatusOr<V> FetchSlow(Shard& shard, const K& key) {
    std::shared_ptr<Flight> flight;
    {
      std::lock_guard lock(shard.lock);
      // Another caller may have stored or expired the entry since the shared look.
      auto it = shard.index.find(key);
      if (it != shard.index.end()) {
        Entry& entry = shard.slots[it->second];
        if (entry.expires == kNever || Clock::now() < entry.expires) {
          entry.referenced.store(true, std::memory_order_relaxed);
          ++shard.hits;
          return Answer(entry);
        }
        RemoveLocked(shard, it);
      }
      ++shard.misses;
      if (fallback_ == nullptr) return absl::NotFoundError("cache: key not in LRU cache");
      auto [fit, inserted] = shard.flights.try_emplace(key);
      if (inserted) {
        ++shard.fallback_calls;
      } else {
        // The first follower makes the flight, so a miss nobody waits on allocates none.
        if (fit->second == nullptr) fit->second = std::make_shared<Flight>();
        flight = fit->second;
      }
    }
    if (flight != nullptr) {
      std::unique_lock lock(flight->mu);
      flight->cv.wait(lock, [&] { return flight->result.has_value(); });
      return *flight->result;
    }
    absl::StatusOr<V> result = CallFallback(key);
    {
      std::lock_guard lock(shard.lock);
      // Store and end the flight under one lock: a caller arriving now sees either the
      // flight or the stored entry, never neither.
      if (result.ok()) {
        InsertLocked(shard, key, *result, options_.ttl);
      } else if (absl::IsNotFound(result.status()) && options_.negative_ttl.count() > 0) {
        InsertLocked(shard, key, std::nullopt, options_.negative_ttl);
      }
      auto fit = shard.flights.find(key);
      flight = std::move(fit->second);
      shard.flights.erase(fit);
    }
    if (flight != nullptr) {
      {
        std::lock_guard lock(flight->mu);
        flight->result = result;
      }
      flight->cv.notify_all();
    }
    return result;
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

  void RemoveLocked(Shard& shard, typename absl::flat_hash_map<K, std::uint32_t>::iterator it) {
    shard.slots[it->second].value.reset();  // free the value now, not at reuse
    shard.free.push_back(it->second);
    shard.index.erase(it);
  }

  // A slot to fill: a free one, a new one while below capacity, else the CLOCK victim.
  std::uint32_t SlotForInsertLocked(Shard& shard) {
    if (!shard.free.empty()) {
      const std::uint32_t pos = shard.free.back();
      shard.free.pop_back();
      return pos;
    }
    if (shard.slots.size() < shard.capacity) {
      shard.slots.emplace_back();
      return static_cast<std::uint32_t>(shard.slots.size() - 1);
    }
    // Every slot is live here. Ends within two turns: the first clears every bit it passes.
    for (;;) {
      const auto pos = static_cast<std::uint32_t>(shard.hand);
      shard.hand = (shard.hand + 1) % shard.slots.size();
      Entry& entry = shard.slots[pos];
      if (entry.referenced.load(std::memory_order_relaxed)) {
        entry.referenced.store(false, std::memory_order_relaxed);
        continue;
      }
      shard.index.erase(entry.key);
      ++shard.evictions;
      return pos;
    }
  }

  void InsertLocked(Shard& shard, const K& key, std::optional<V> value,
                    std::chrono::nanoseconds ttl) {
    const Clock::time_point expires =
        ttl.count() > 0 ? Clock::now() + std::chrono::duration_cast<Clock::duration>(ttl) : kNever;
    auto it = shard.index.find(key);
    if (it != shard.index.end()) {
      Entry& entry = shard.slots[it->second];
      entry.value = std::move(value);
      entry.expires = expires;
      entry.referenced.store(true, std::memory_order_relaxed);
      return;
    }
    const std::uint32_t pos = SlotForInsertLocked(shard);
    Entry& entry = shard.slots[pos];
    entry.key = key;
    entry.value = std::move(value);
    entry.expires = expires;
    // New entries start unreferenced: one that is never hit again goes at the hand's
    // first pass, and cannot push out an entry that is being hit.
    entry.referenced.store(false, std::memory_order_relaxed);
    shard.index.emplace(key, pos);
  }

  const LruCacheOptions options_;
  const FetcherPtr<K, V> fallback_;
  std::atomic<bool> closed_{false};
  std::vector<std::unique_ptr<Shard>> shards_;
  metrics::Registration metrics_;  // last: removed before the shards it reads go
};

}  // namespace dataflow::cache

// RedisCache<K,V>: a distributed read-through cache in Redis, and RedisPresenceCache<K,V>.
//
// Values are stored as the codec's bytes (JSON by default) under key_prefix + key. On a
// miss the fallback is asked and the value written back with RedisOptions::cache_ttl.
// Redis being down is not fatal: a failed command marks Redis unavailable for
// retry_interval, during which fetches go straight to the fallback (logged, rate-limited);
// after it Redis is tried again, so the cache recovers by itself. Bytes that do not decode
// (corrupt or written by something else) give a DataLoss/InvalidArgument error naming the
// key, or, with a fallback, a fallback fetch that overwrites them. Thread-safe.
#pragma once

#include <absl/status/status.h>
#include <absl/status/statusor.h>
#include <absl/strings/str_cat.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <utility>

#include "dataflow/cache/cache_metrics.h"
#include "dataflow/cache/codec.h"
#include "dataflow/cache/fetcher.h"
#include "dataflow/cache/redis_stub.h"
#include "dataflow/messagepipeline/logging.h"

namespace dataflow::cache {

struct RedisCacheStats {
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;          // key absent in Redis
  std::uint64_t decode_errors = 0;   // key present, bytes unusable
  std::uint64_t backend_errors = 0;  // Redis commands that failed
  std::uint64_t skipped = 0;         // fetches that bypassed Redis while it was down
  std::uint64_t fallback_calls = 0;
};

namespace internal {
// Remembers that Redis failed recently, so a dead server is not asked on every fetch.
class RedisHealth {
 public:
  explicit RedisHealth(std::chrono::milliseconds retry_interval) : retry_(retry_interval) {}
  [[nodiscard]] bool Usable() const { return Now() >= down_until_.load(std::memory_order_relaxed); }
  void Failed() { down_until_.store(Now() + retry_.count(), std::memory_order_relaxed); }

 private:
  static std::int64_t Now() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  const std::chrono::milliseconds retry_;
  std::atomic<std::int64_t> down_until_{0};
};
}  // namespace internal

template <typename K, typename V, typename Codec = JsonCodec<V>>
requires ValueCodec<Codec, V>
class RedisCache final : public Fetcher<K, V> {
 public:
  // Connects (PING) with `config`; fails with a clear error if Redis cannot be used.
  static absl::StatusOr<std::unique_ptr<RedisCache>> Create(const RedisOptions& config,
                                                            FetcherPtr<K, V> fallback = nullptr) {
    auto stub = MakeRedisStub(config);
    if (!stub.ok()) return stub.status();
    return Create(config, *std::move(stub), std::move(fallback));
  }
  // With any RedisStub implementation (the config supplies ttl, prefix, retry interval).
  static absl::StatusOr<std::unique_ptr<RedisCache>> Create(const RedisOptions& config,
                                                            std::shared_ptr<RedisStub> stub,
                                                            FetcherPtr<K, V> fallback = nullptr) {
    if (stub == nullptr) return absl::InvalidArgumentError("RedisCache: stub is null");
    if (config.cache_ttl.count() < 0) {
      return absl::InvalidArgumentError("RedisOptions.cache_ttl must be >= 0");
    }
    return std::unique_ptr<RedisCache>(
        new RedisCache(config, std::move(stub), std::move(fallback)));
  }

  absl::StatusOr<V> Fetch(const K& key) override {
    if (closed_.load(std::memory_order_acquire)) return ClosedError();
    const std::string redis_key = config_.key_prefix + KeyString(key);
    if (health_.Usable()) {
      auto got = stub_->Get(redis_key);
      if (got.ok() && got->has_value()) {
        absl::StatusOr<V> value = Codec::Decode(**got);
        if (value.ok()) {
          hits_.fetch_add(1, std::memory_order_relaxed);
          return value;
        }
        decode_errors_.fetch_add(1, std::memory_order_relaxed);
        absl::Status error(value.status().code(), absl::StrCat("redis key \"", redis_key,
                                                               "\": ", value.status().message()));
        if (decode_log_.Allow()) {
          Log()->warn("cache value in redis does not decode error=\"{}\" fallback={} suppressed={}",
                      error.ToString(), fallback_ != nullptr, decode_log_.suppressed());
        }
        if (fallback_ == nullptr) return error;
      } else if (got.ok()) {
        misses_.fetch_add(1, std::memory_order_relaxed);
      } else {
        OnBackendError(got.status());
        if (fallback_ == nullptr) return got.status();
      }
    } else {
      skipped_.fetch_add(1, std::memory_order_relaxed);
      if (fallback_ == nullptr) {
        return absl::UnavailableError(
            absl::StrCat("redis ", config_.addr, " is unavailable (recent failure)"));
      }
    }
    if (fallback_ == nullptr) return absl::NotFoundError("cache: key not in redis");
    fallback_calls_.fetch_add(1, std::memory_order_relaxed);
    absl::StatusOr<V> value = fallback_->Fetch(key);
    if (value.ok() && health_.Usable()) {
      // A failed write-back costs the next fetch a fallback call, nothing more.
      if (absl::Status s = WriteKey(redis_key, *value); !s.ok() && !absl::IsUnavailable(s)) {
        if (write_log_.Allow()) Log()->warn("redis write-back failed error=\"{}\"", s.ToString());
      }
    }
    return value;
  }

  // Stores a value with cache_ttl.
  absl::Status Write(const K& key, const V& value) {
    if (closed_.load(std::memory_order_acquire)) return ClosedError();
    return WriteKey(config_.key_prefix + KeyString(key), value);
  }
  absl::Status Delete(const K& key) {
    if (closed_.load(std::memory_order_acquire)) return ClosedError();
    return stub_->Del(config_.key_prefix + KeyString(key));
  }

  [[nodiscard]] RedisCacheStats Stats() const {
    return {hits_.load(),           misses_.load(),  decode_errors_.load(),
            backend_errors_.load(), skipped_.load(), fallback_calls_.load()};
  }

  // Exports Stats() as the dataflow_cache_* families (cache_metrics.h), labelled `labels`
  // and layer="redis", on every scrape of `telemetry` until this cache is destroyed; a second
  // call replaces the first. Not concurrently with itself.
  void RegisterMetrics(metrics::Telemetry& telemetry, const metrics::Labels& labels) {
    metrics_ = internal::RegisterRedisCacheMetrics(telemetry, labels, [this] { return Stats(); });
  }

  absl::Status Close() override {
    if (!closed_.exchange(true)) stub_->Close();
    return absl::OkStatus();
  }

 private:
  RedisCache(RedisOptions config, std::shared_ptr<RedisStub> stub, FetcherPtr<K, V> fallback)
      : config_(std::move(config)),
        stub_(std::move(stub)),
        fallback_(std::move(fallback)),
        health_(config_.retry_interval) {}

  absl::Status WriteKey(const std::string& redis_key, const V& value) {
    absl::StatusOr<std::string> bytes = Codec::Encode(value);
    if (!bytes.ok()) return bytes.status();
    absl::Status s = stub_->Set(redis_key, *bytes, config_.cache_ttl);
    if (!s.ok() && absl::IsUnavailable(s)) OnBackendError(s);
    return s;
  }

  void OnBackendError(const absl::Status& s) {
    backend_errors_.fetch_add(1, std::memory_order_relaxed);
    if (absl::IsUnavailable(s)) health_.Failed();
    if (down_log_.Allow()) {
      Log()->warn("redis unavailable, serving from fallback addr={} error=\"{}\" suppressed={}",
                  config_.addr, s.ToString(), down_log_.suppressed());
    }
  }

  const RedisOptions config_;
  const std::shared_ptr<RedisStub> stub_;
  const FetcherPtr<K, V> fallback_;
  internal::RedisHealth health_;
  std::atomic<bool> closed_{false};
  std::atomic<std::uint64_t> hits_{0}, misses_{0}, decode_errors_{0}, backend_errors_{0},
      skipped_{0}, fallback_calls_{0};
  LogRateLimit down_log_, decode_log_, write_log_;
  metrics::Registration metrics_;  // last: removed before the counters it reads go
};

// RedisPresenceCache<K,V>: PresenceCache shared by every instance of a service. Set writes
// with RedisOptions::cache_ttl (zero: no expiry), so state of a crashed instance can age out.
// No fallback: a Redis failure is returned to the caller. Thread-safe.
template <typename K, typename V, typename Codec = JsonCodec<V>>
requires ValueCodec<Codec, V>
class RedisPresenceCache final : public PresenceCache<K, V> {
 public:
  static absl::StatusOr<std::unique_ptr<RedisPresenceCache>> Create(const RedisOptions& config) {
    auto stub = MakeRedisStub(config);
    if (!stub.ok()) return stub.status();
    return Create(config, *std::move(stub));
  }
  static absl::StatusOr<std::unique_ptr<RedisPresenceCache>> Create(
      const RedisOptions& config, std::shared_ptr<RedisStub> stub) {
    if (stub == nullptr) return absl::InvalidArgumentError("RedisPresenceCache: stub is null");
    return std::unique_ptr<RedisPresenceCache>(new RedisPresenceCache(config, std::move(stub)));
  }

  absl::Status Set(const K& key, const V& value) override {
    if (closed_.load(std::memory_order_acquire)) return ClosedError();
    absl::StatusOr<std::string> bytes = Codec::Encode(value);
    if (!bytes.ok()) return bytes.status();
    return stub_->Set(config_.key_prefix + KeyString(key), *bytes, config_.cache_ttl);
  }
  absl::StatusOr<V> Fetch(const K& key) override {
    if (closed_.load(std::memory_order_acquire)) return ClosedError();
    const std::string redis_key = config_.key_prefix + KeyString(key);
    auto got = stub_->Get(redis_key);
    if (!got.ok()) return got.status();
    if (!got->has_value()) return absl::NotFoundError("presence: key not present");
    absl::StatusOr<V> value = Codec::Decode(**got);
    if (!value.ok()) {
      return absl::Status(value.status().code(), absl::StrCat("redis key \"", redis_key,
                                                              "\": ", value.status().message()));
    }
    return value;
  }
  absl::Status Delete(const K& key) override {
    if (closed_.load(std::memory_order_acquire)) return ClosedError();
    return stub_->Del(config_.key_prefix + KeyString(key));
  }
  absl::Status Close() override {
    if (!closed_.exchange(true)) stub_->Close();
    return absl::OkStatus();
  }

 private:
  RedisPresenceCache(RedisOptions config, std::shared_ptr<RedisStub> stub)
      : config_(std::move(config)), stub_(std::move(stub)) {}
  const RedisOptions config_;
  const std::shared_ptr<RedisStub> stub_;
  std::atomic<bool> closed_{false};
};

}  // namespace dataflow::cache

// Test source of truth: a map behind the Fetcher interface that counts calls, can fail on
// demand, and can hold callers at a gate (to line up concurrent misses).
#pragma once

#include <absl/container/flat_hash_map.h>
#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>

#include "dataflow/cache/fetcher.h"

namespace dataflow::cache::testing {

template <typename K, typename V>
class CountingFetcher final : public Fetcher<K, V> {
 public:
  void Put(const K& key, V value) {
    std::lock_guard lock(mu_);
    data_.insert_or_assign(key, std::move(value));
  }
  void Remove(const K& key) {
    std::lock_guard lock(mu_);
    data_.erase(key);
  }
  // Every Fetch returns `status` until cleared with OkStatus().
  void FailWith(absl::Status status) {
    std::lock_guard lock(mu_);
    fail_ = std::move(status);
  }
  // Fetch blocks until Open() while the gate is closed.
  void CloseGate() {
    std::lock_guard lock(mu_);
    gate_open_ = false;
  }
  void OpenGate() {
    {
      std::lock_guard lock(mu_);
      gate_open_ = true;
    }
    cv_.notify_all();
  }
  int calls() const { return calls_.load(); }
  int waiting() const { return waiting_.load(); }

  absl::StatusOr<V> Fetch(const K& key) override {
    calls_.fetch_add(1);
    std::unique_lock lock(mu_);
    waiting_.fetch_add(1);
    cv_.wait(lock, [&] { return gate_open_; });
    waiting_.fetch_sub(1);
    if (!fail_.ok()) return fail_;
    auto it = data_.find(key);
    if (it == data_.end()) return absl::NotFoundError("test source: no such key");
    return it->second;
  }
  absl::Status Close() override { return absl::OkStatus(); }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool gate_open_ = true;
  absl::Status fail_;
  absl::flat_hash_map<K, V> data_;
  std::atomic<int> calls_{0};
  std::atomic<int> waiting_{0};
};

}  // namespace dataflow::cache::testing

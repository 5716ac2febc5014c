// The lock of an InMemoryLruCache shard (lru_cache.h), apart because it knows nothing of
// keys and values: a reader-writer lock whose hits write no shared cache line.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#if defined(__linux__)
#include <sched.h>
#endif

namespace dataflow::cache::internal {

// A reader-writer lock whose readers each announce themselves in one of several
// cache-line-sized stripes (picked by the CPU they run on) instead of in one shared
// word, so concurrent readers on different CPUs never write the same cache line — a
// std::shared_mutex would bounce its counter between cores on every hit. Writers
// raise a flag and wait for every stripe to drain; readers that see the flag step back
// and queue on the writers' mutex. The flag/stripe handshake is Dekker-style, hence
// seq_cst. Readers hold it for a lookup and a copy, so writers only spin briefly.
class StripedLock {
 public:
  StripedLock() : stripes_(StripeCount()), slots_(new Slot[stripes_]) {}

  std::size_t CurrentStripe() const {
#if defined(__linux__)
    const int cpu = sched_getcpu();
    if (cpu >= 0) return static_cast<std::size_t>(cpu) & (stripes_ - 1);
#endif
    return std::hash<std::thread::id>{}(std::this_thread::get_id()) & (stripes_ - 1);
  }
  void lock_shared(std::size_t stripe) {
    for (;;) {
      slots_[stripe].readers.fetch_add(1, std::memory_order_seq_cst);
      if (!writer_.load(std::memory_order_seq_cst)) return;
      slots_[stripe].readers.fetch_sub(1, std::memory_order_release);
      // Writers hold the lock for one insert: wait a little by reading the flag, then
      // block behind them on their mutex rather than burn a core.
      if (!SpinWhile([&] { return writer_.load(std::memory_order_relaxed); })) {
        std::lock_guard wait(mu_);
      }
    }
  }
  void unlock_shared(std::size_t stripe) {
    slots_[stripe].readers.fetch_sub(1, std::memory_order_release);
  }
  void lock() {
    mu_.lock();
    writer_.store(true, std::memory_order_seq_cst);
    for (std::size_t i = 0; i < stripes_; ++i) {
      auto& readers = slots_[i].readers;
      while (!SpinWhile([&] { return readers.load(std::memory_order_seq_cst) != 0; })) {
        std::this_thread::yield();  // a reader was preempted inside its copy
      }
    }
  }
  void unlock() {
    writer_.store(false, std::memory_order_release);
    mu_.unlock();
  }
  // Hits are counted in the reader's own stripe, a line it has just written anyway.
  void CountHit(std::size_t stripe) { slots_[stripe].hits.fetch_add(1, std::memory_order_relaxed); }
  std::uint64_t StripedHits() const {
    std::uint64_t sum = 0;
    for (std::size_t i = 0; i < stripes_; ++i) {
      sum += slots_[i].hits.load(std::memory_order_relaxed);
    }
    return sum;
  }

 private:
  static constexpr std::size_t kMaxStripes = 64;

  // Spins while busy() for a bounded time; true if busy() turned false.
  template <typename Busy>
  static bool SpinWhile(Busy busy) {
    for (int i = 0; i < 256; ++i) {
      if (!busy()) return true;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    return !busy();
  }

  struct alignas(64) Slot {
    std::atomic<std::uint32_t> readers{0};
    std::atomic<std::uint64_t> hits{0};
  };
  static std::size_t StripeCount() {
    // A power of two, so picking a stripe is a mask rather than a division.
    return std::bit_ceil(
        std::clamp<std::size_t>(std::thread::hardware_concurrency(), 1, kMaxStripes));
  }

  const std::size_t stripes_;
  const std::unique_ptr<Slot[]> slots_;
  alignas(64) std::atomic<bool> writer_{false};
  std::mutex mu_;
};

// Holds a StripedLock shared, in one stripe, for a scope.
class SharedGuard {
 public:
  SharedGuard(StripedLock& lock, std::size_t stripe) : lock_(lock), stripe_(stripe) {
    lock_.lock_shared(stripe_);
  }
  ~SharedGuard() { lock_.unlock_shared(stripe_); }
  SharedGuard(const SharedGuard&) = delete;
  SharedGuard& operator=(const SharedGuard&) = delete;

 private:
  StripedLock& lock_;
  const std::size_t stripe_;
};

}  // namespace dataflow::cache::internal

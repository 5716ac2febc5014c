// Redeliverer: local redelivery of nacked messages. A nacked Delivery waits for a backoff that
// grows with the attempt that failed (RetryDelay: min doubling to max, jittered, never below
// min), then goes to `hand` (the consumer puts it back into the channel with the next
// attempt number). It keeps no attempt cap of its own: the attempt travels with the message
// as delivery_attempt, and the service's DeliveryPolicy gives up on it after
// max_delivery_attempts (dead-letters or drops it, and acks it), which releases the PUBACKs
// queued behind it.
//
// One thread (Start) hands deliveries over when due; tests call HandDue() with an injected
// clock instead. Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stop_token>
#include <thread>
#include <vector>

#include "delivery.h"
#include "timing.h"

namespace dataflow::mqttconverter::internal {

class Redeliverer {
 public:
  using Hand = std::function<void(std::shared_ptr<Delivery>)>;
  struct Options {
    std::chrono::milliseconds min_backoff{100};
    std::chrono::milliseconds max_backoff{10'000};
  };

  Redeliverer(Options options, Hand hand, NowFn now = RealNow);
  ~Redeliverer() { Stop(); }
  Redeliverer(const Redeliverer&) = delete;
  Redeliverer& operator=(const Redeliverer&) = delete;

  // Queues `d` (nacked after attempt d->attempt) to be handed over after its backoff. False,
  // leaving `d` with the caller to settle, once Close() was called.
  bool Add(std::shared_ptr<Delivery>& d);
  // Hands every delivery due by now() to `hand` (outside the lock); returns how many.
  std::size_t HandDue();
  // When the first queued delivery is due; nullopt if none is queued.
  std::optional<SteadyTime> NextDue();

  // Starts the thread that calls HandDue as deliveries fall due.
  void Start();
  // From now on Add refuses (the consumer is stopping); queued ones stay until Stop.
  void Close();
  // Closes, joins the thread and returns what was still queued.
  std::vector<std::shared_ptr<Delivery>> Stop();

 private:
  void Loop(std::stop_token st);

  const Options options_;
  const Hand hand_;
  const NowFn now_;
  std::mutex mu_;
  std::condition_variable_any cv_;
  bool closed_ = false;
  // Nacked messages by the time they go back into the channel.
  std::multimap<SteadyTime, std::shared_ptr<Delivery>> queue_;
  std::minstd_rand rng_{std::random_device{}()};  // under mu_
  std::jthread thread_;
};

}  // namespace dataflow::mqttconverter::internal

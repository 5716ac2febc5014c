// KeyAwareBatcher: groups encoded records by batch key and hands each group to a sink that
// uploads it as one object and settles its messages.
//
// A key's batch is cut when it reaches batch_size records, or when the next record would
// take its encoded (JSONL) bytes past max_object_bytes (counted on the bytes written, not
// on in-memory size, so objects never overshoot; a single record bigger than the cap gets
// an object of its own). Every batch is cut on the flush interval (MaybeFlush) and on
// FlushAll/Close. Memory is bounded: when the open batches together exceed
// max_buffered_bytes, the largest (oldest among equals) is cut early. Cut groups are
// uploaded by max_concurrent_uploads threads; Add() blocks while that many groups are
// queued behind them (backpressure), so at most 2 * max_concurrent_uploads groups are
// past the cut at once.
//
// CutIdle serves a caller that flushes when its input is idle: it cuts only the keys with no
// upload in flight, so a key being written keeps collecting records and is cut when its
// upload is done (group commit: under load objects grow to what arrives while one is written,
// instead of one tiny object per idle moment per upload thread).
//
// Thread-safety: Add, MaybeFlush, FlushAll, CutIdle, OldestIdleCut and Close are called from one
// thread (the service's batcher thread); the sink and on_uploaded run on the upload threads.
#pragma once

#include <absl/status/statusor.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "dataflow/icestore/uploader.h"
#include "dataflow/messagepipeline/bounded_queue.h"
#include "dataflow/messagepipeline/message.h"

namespace dataflow::icestore {

struct KeyAwareBatcherOptions {
  std::size_t batch_size = 100;                                        // records per key
  std::chrono::milliseconds flush_interval = std::chrono::minutes(1);  // the Go default
  std::size_t max_object_bytes = std::size_t{64} << 20;                // encoded, uncompressed
  std::size_t max_buffered_bytes = std::size_t{256} << 20;             // all open batches
  int max_concurrent_uploads = 4;
};

// A cut batch: the object to write and the messages to settle once it is written.
struct FlushedGroup {
  ObjectGroup object;
  std::vector<messagepipeline::Message> messages;
};

// Uploads the group and settles every message in it (ack on success, nack on failure).
// Messages it leaves unsettled are nacked by their destructor, never dropped.
using GroupSink = std::function<void(FlushedGroup& group)>;

class KeyAwareBatcher {
 public:
  // `on_uploaded` (optional) runs on an upload thread after each group's sink returned (e.g. to
  // wake the batcher thread, whose CutIdle may now cut that key).
  static absl::StatusOr<std::unique_ptr<KeyAwareBatcher>> Create(
      KeyAwareBatcherOptions options, GroupSink sink, std::function<void()> on_uploaded = {});
  ~KeyAwareBatcher();  // Close()
  KeyAwareBatcher(const KeyAwareBatcher&) = delete;
  KeyAwareBatcher& operator=(const KeyAwareBatcher&) = delete;

  // Adds one encoded line (ending in '\n') under `key`. May block for upload capacity.
  void Add(std::string key, std::string line, messagepipeline::Message message);
  // Cuts every open batch if the flush interval has passed since the last such flush.
  void MaybeFlush(std::chrono::steady_clock::time_point now);
  // When MaybeFlush next has work to do; for the caller's wait.
  [[nodiscard]] std::chrono::steady_clock::time_point next_flush() const { return next_flush_; }
  void FlushAll();
  // Cuts the open batches of keys with no upload in flight that were opened (got their first
  // record) at or before `opened_by`.
  void CutIdle(std::chrono::steady_clock::time_point opened_by =
                   std::chrono::steady_clock::time_point::max());
  // When the oldest batch CutIdle may cut was opened; time_point::max() when there is none.
  [[nodiscard]] std::chrono::steady_clock::time_point OldestIdleCut() const;
  // FlushAll, then waits for every upload to finish. Idempotent; Add after Close nacks.
  void Close();

  [[nodiscard]] std::size_t buffered_bytes() const { return buffered_bytes_; }
  [[nodiscard]] std::size_t open_batches() const { return open_.size(); }

 private:
  struct OpenBatch {
    FlushedGroup group;
    std::uint64_t sequence = 0;  // creation order, for "oldest"
    std::chrono::steady_clock::time_point opened;
  };

  KeyAwareBatcher(KeyAwareBatcherOptions options, GroupSink sink,
                  std::function<void()> on_uploaded);
  void Cut(const std::string& key);
  void Dispatch(FlushedGroup group);
  void UploadLoop();

  const KeyAwareBatcherOptions options_;
  const GroupSink sink_;
  const std::function<void()> on_uploaded_;
  std::unordered_map<std::string, OpenBatch> open_;
  std::size_t buffered_bytes_ = 0;
  std::uint64_t next_sequence_ = 0;
  std::chrono::steady_clock::time_point next_flush_;
  bool closed_ = false;
  // Groups cut and not yet through the sink, by key (upload threads decrement).
  mutable std::mutex uploading_mu_;
  std::unordered_map<std::string, int> uploading_;
  messagepipeline::BoundedQueue<FlushedGroup> ready_;
  std::vector<std::jthread> uploaders_;  // last: they use everything above
};

}  // namespace dataflow::icestore

#include "dataflow/icestore/key_aware_batcher.h"

#include <absl/strings/str_cat.h>

#include "dataflow/messagepipeline/logging.h"

namespace dataflow::icestore {

absl::StatusOr<std::unique_ptr<KeyAwareBatcher>> KeyAwareBatcher::Create(
    KeyAwareBatcherOptions options, GroupSink sink, std::function<void()> on_uploaded) {
  if (!sink) return absl::InvalidArgumentError("KeyAwareBatcher: sink is null");
  if (options.batch_size == 0) {
    return absl::InvalidArgumentError("KeyAwareBatcher: batch_size must be > 0");
  }
  if (options.flush_interval <= std::chrono::milliseconds::zero()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "KeyAwareBatcher: flush_interval must be > 0, got ", options.flush_interval.count(), "ms"));
  }
  if (options.max_object_bytes == 0) {
    return absl::InvalidArgumentError("KeyAwareBatcher: max_object_bytes must be > 0");
  }
  if (options.max_buffered_bytes < options.max_object_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("KeyAwareBatcher: max_buffered_bytes (", options.max_buffered_bytes,
                     ") must be >= max_object_bytes (", options.max_object_bytes, ")"));
  }
  if (options.max_concurrent_uploads <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("KeyAwareBatcher: max_concurrent_uploads must be > 0, got ",
                     options.max_concurrent_uploads));
  }
  return std::unique_ptr<KeyAwareBatcher>(
      new KeyAwareBatcher(options, std::move(sink), std::move(on_uploaded)));
}

KeyAwareBatcher::KeyAwareBatcher(KeyAwareBatcherOptions options, GroupSink sink,
                                 std::function<void()> on_uploaded)
    : options_(options),
      sink_(std::move(sink)),
      on_uploaded_(std::move(on_uploaded)),
      next_flush_(std::chrono::steady_clock::now() + options.flush_interval),
      ready_(static_cast<std::size_t>(options.max_concurrent_uploads)) {
  for (int i = 0; i < options_.max_concurrent_uploads; ++i) {
    uploaders_.emplace_back([this] { UploadLoop(); });
  }
}

KeyAwareBatcher::~KeyAwareBatcher() { Close(); }

void KeyAwareBatcher::Add(std::string key, std::string line, messagepipeline::Message message) {
  if (closed_) {
    message.Nack();  // defensive: the service never adds after Close
    return;
  }
  auto it = open_.find(key);
  if (it != open_.end() &&
      it->second.group.object.jsonl.size() + line.size() > options_.max_object_bytes) {
    Cut(key);  // cut before, so the object never goes past the cap
    it = open_.end();
  }
  if (it == open_.end()) {
    OpenBatch batch{.sequence = next_sequence_++, .opened = std::chrono::steady_clock::now()};
    it = open_.emplace(key, std::move(batch)).first;
    it->second.group.object.batch_key = key;
  }
  FlushedGroup& group = it->second.group;
  buffered_bytes_ += line.size();
  group.object.jsonl += line;
  group.object.records++;
  group.messages.push_back(std::move(message));
  if (group.object.records >= options_.batch_size ||
      group.object.jsonl.size() >= options_.max_object_bytes) {
    Cut(key);
  }
  // Bounded memory: cut the largest open batch (the oldest among equals) until under the cap.
  while (buffered_bytes_ > options_.max_buffered_bytes && !open_.empty()) {
    auto victim = open_.begin();
    for (auto o = open_.begin(); o != open_.end(); ++o) {
      const std::size_t a = o->second.group.object.jsonl.size();
      const std::size_t b = victim->second.group.object.jsonl.size();
      if (a > b || (a == b && o->second.sequence < victim->second.sequence)) victim = o;
    }
    const std::string victim_key = victim->first;
    Cut(victim_key);
  }
}

void KeyAwareBatcher::MaybeFlush(std::chrono::steady_clock::time_point now) {
  if (now < next_flush_) return;
  FlushAll();
}

void KeyAwareBatcher::FlushAll() {
  std::vector<std::string> keys;
  keys.reserve(open_.size());
  for (const auto& [key, batch] : open_) keys.push_back(key);
  for (const auto& key : keys) Cut(key);
  next_flush_ = std::chrono::steady_clock::now() + options_.flush_interval;
}

void KeyAwareBatcher::CutIdle(std::chrono::steady_clock::time_point opened_by) {
  std::vector<std::string> keys;
  {
    std::lock_guard lock(uploading_mu_);
    for (const auto& [key, batch] : open_) {
      if (batch.opened <= opened_by && !uploading_.contains(key)) keys.push_back(key);
    }
  }
  for (const auto& key : keys) Cut(key);
}

std::chrono::steady_clock::time_point KeyAwareBatcher::OldestIdleCut() const {
  auto oldest = std::chrono::steady_clock::time_point::max();
  std::lock_guard lock(uploading_mu_);
  for (const auto& [key, batch] : open_) {
    if (batch.opened < oldest && !uploading_.contains(key)) oldest = batch.opened;
  }
  return oldest;
}

void KeyAwareBatcher::Close() {
  if (closed_) return;
  FlushAll();
  closed_ = true;
  ready_.Close();
  uploaders_.clear();  // joins after the queue drained
}

void KeyAwareBatcher::Cut(const std::string& key) {
  auto node = open_.extract(key);
  if (node.empty()) return;
  buffered_bytes_ -= node.mapped().group.object.jsonl.size();
  Dispatch(std::move(node.mapped().group));
}

void KeyAwareBatcher::Dispatch(FlushedGroup group) {
  {
    std::lock_guard lock(uploading_mu_);
    ++uploading_[group.object.batch_key];
  }
  if (!ready_.Push(std::move(group))) {
    // Only if closed; the group's messages are nacked by their destructors. Defensive.
    for (auto& m : group.messages) m.Nack();
  }
}

void KeyAwareBatcher::UploadLoop() {
  while (std::optional<FlushedGroup> group = ready_.Pop()) {
    try {
      sink_(*group);
    } catch (const std::exception& e) {
      Log()->error("icestore group sink threw; nacking key={} records={} what=\"{}\"",
                   group->object.batch_key, group->messages.size(), e.what());
    }
    for (auto& m : group->messages) m.Nack();  // no-op for those the sink settled
    {
      std::lock_guard lock(uploading_mu_);
      auto it = uploading_.find(group->object.batch_key);
      if (it != uploading_.end() && --it->second == 0) uploading_.erase(it);
    }
    if (on_uploaded_) on_uploaded_();
  }
}

}  // namespace dataflow::icestore

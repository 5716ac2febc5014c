#include "dataflow/icestore/ice_storage_service.h"

#include <absl/strings/str_cat.h>

#include <atomic>

#include "dataflow/messagepipeline/errors.h"
#include "dataflow/messagepipeline/logging.h"

namespace dataflow::icestore {

using messagepipeline::Message;

struct IceStorageService::Impl {
  struct Pending {
    Message message;
    std::string key;
    std::string line;
  };

  Impl(IceStorageServiceOptions opts, messagepipeline::DeliveryPolicyOptions policy_options,
       std::shared_ptr<messagepipeline::MessageConsumer> consumer, std::shared_ptr<DataUploader> up,
       messagepipeline::MessageTransformer<ArchivalData> t)
      : options(std::move(opts)),
        transformer(std::move(t)),
        uploader(std::move(up)),
        policy(std::move(policy_options), &counters),
        // Room for a few batches so workers keep encoding while the batcher hands off.
        items(options.batcher.batch_size * 4),
        pool(options.name, std::move(consumer), options.num_workers, &policy) {}

  // Worker side: transform, sanitise the key, encode the line (in parallel, off the
  // batcher thread), and hand the batch over in one go.
  void HandleBatch(std::span<Message> batch) {
    std::vector<Pending> out;
    out.reserve(batch.size());
    pool.ForEach(batch, [&](Message& message) {
      std::optional<ArchivalData> transformed =
          messagepipeline::TransformOrSettle(message, transformer, policy, counters);
      if (!transformed) return;
      ArchivalData& data = *transformed;
      // Custom transformers too: no key may escape the prefix.
      absl::StatusOr<std::string> key =
          MakeSafeBatchKey(data.batch_key, options.max_batch_key_bytes);
      if (!key.ok()) {
        policy.Fail(message,
                    messagepipeline::PermanentError(
                        absl::StrCat(key.status().message(), " (max_batch_key_bytes)")),
                    messagepipeline::FailureStage::kTransform);
        return;
      }
      data.batch_key = *std::move(key);
      std::string line = EncodeArchivalLine(data);
      out.push_back(Pending{std::move(message), std::move(data.batch_key), std::move(line)});
    });
    const std::size_t pushed = items.PushAll(out);
    for (std::size_t i = pushed; i < out.size(); ++i) policy.Nack(out[i].message);  // defensive
  }

  void BatchLoop() {
    std::vector<Pending> taken;
    for (;;) {
      const bool prompt = prompt_flush.load(std::memory_order_acquire);
      // Prompt (flush_when_idle, or the pipeline is stopping): don't wait for more input while
      // holding lines.
      const auto until = prompt && batcher->HasIdleCut() ? std::chrono::steady_clock::now()
                                                         : batcher->next_flush();
      const std::size_t n = items.PopBatchUntil(taken, 256, until);
      for (Pending& p : taken) {
        if (pool.aborting()) {
          policy.Nack(p.message);
          pool.CountAbortNacks(1);
          continue;
        }
        batcher->Add(std::move(p.key), std::move(p.line), std::move(p.message));
      }
      taken.clear();
      if (n == 0 && items.closed_and_empty()) break;
      if (prompt && n == 0) {
        // Keys still uploading are cut when their upload is done (on_uploaded wakes us).
        batcher->CutIdle();
      } else {
        batcher->MaybeFlush(std::chrono::steady_clock::now());
      }
    }
    batcher->Close();  // flushes the rest and waits for every upload
  }

  // Upload thread: write the object, then settle the whole group by the result.
  void Upload(FlushedGroup& group) {
    if (pool.aborting()) {
      for (Message& m : group.messages) policy.Nack(m);
      pool.CountAbortNacks(group.messages.size());
      return;
    }
    counters.batches.fetch_add(1, std::memory_order_relaxed);
    counters.batched_messages.fetch_add(group.messages.size(), std::memory_order_relaxed);
    absl::StatusOr<std::string> written = absl::InternalError("not run");
    try {
      written = uploader->Upload(group.object);
    } catch (const std::exception& e) {
      written = absl::InternalError(absl::StrCat("uploader threw: ", e.what()));
    }
    if (written.ok()) {
      objects.fetch_add(1, std::memory_order_relaxed);
      for (Message& m : group.messages) policy.Succeed(m);
      return;
    }
    static LogRateLimit limit;
    if (messagepipeline::IsPermanent(written.status())) {
      // The object can never be written (e.g. a name the store refuses): retrying would loop.
      if (limit.Allow()) {
        Log()->warn(
            "icestore upload failed permanently; dead-lettering the group name={} key={} "
            "records={} error=\"{}\"",
            options.name, group.object.batch_key, group.messages.size(),
            written.status().ToString());
      }
      for (Message& m : group.messages) {
        policy.Fail(m, written.status(), messagepipeline::FailureStage::kProcess);
      }
      return;
    }
    counters.processing_errors.fetch_add(1, std::memory_order_relaxed);
    if (limit.Allow()) {
      Log()->warn(
          "icestore upload failed; nacking the group name={} key={} records={} error=\"{}\"",
          options.name, group.object.batch_key, group.messages.size(), written.status().ToString());
    }
    for (Message& m : group.messages) policy.Nack(m);
  }

  IceStorageServiceOptions options;
  messagepipeline::MessageTransformer<ArchivalData> transformer;
  std::shared_ptr<DataUploader> uploader;
  messagepipeline::ServiceCounters counters;
  messagepipeline::DeliveryPolicy policy;
  messagepipeline::BoundedQueue<Pending> items;
  std::atomic<bool> prompt_flush{options.flush_when_idle};
  std::atomic<std::uint64_t> objects{0};
  std::unique_ptr<KeyAwareBatcher> batcher;
  messagepipeline::WorkerPool pool;  // last: its threads use everything above
};

absl::StatusOr<std::unique_ptr<IceStorageService>> IceStorageService::Create(
    IceStorageServiceOptions options, std::shared_ptr<messagepipeline::MessageConsumer> consumer,
    std::shared_ptr<DataUploader> uploader,
    messagepipeline::MessageTransformer<ArchivalData> transformer) {
  if (!consumer) return absl::InvalidArgumentError(options.name + ": consumer is null");
  if (!uploader) return absl::InvalidArgumentError(options.name + ": uploader is null");
  if (!transformer) return absl::InvalidArgumentError(options.name + ": transformer is null");
  if (options.num_workers <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(options.name, ": num_workers must be > 0, got ", options.num_workers));
  }
  if (options.max_batch_key_bytes == 0) {
    return absl::InvalidArgumentError(options.name + ": max_batch_key_bytes must be > 0");
  }
  messagepipeline::DeliveryPolicyOptions policy{
      .source = options.name,
      .dead_letter = options.dead_letter,
      .max_delivery_attempts = options.max_delivery_attempts};
  if (auto s = messagepipeline::ValidateDeliveryPolicy(policy); !s.ok()) return s;
  auto impl = std::make_unique<Impl>(std::move(options), std::move(policy), std::move(consumer),
                                     std::move(uploader), std::move(transformer));
  Impl* raw = impl.get();
  auto batcher = KeyAwareBatcher::Create(
      raw->options.batcher, [raw](FlushedGroup& group) { raw->Upload(group); },
      [raw] {
        // A key that finished uploading may be cut now, if the loop is flushing idle batches.
        if (raw->prompt_flush.load(std::memory_order_acquire)) raw->items.Interrupt();
      });
  if (!batcher.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(raw->options.name, ": ", batcher.status().message()));
  }
  raw->batcher = std::move(*batcher);
  return std::unique_ptr<IceStorageService>(new IceStorageService(std::move(impl)));
}

IceStorageService::IceStorageService(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
IceStorageService::~IceStorageService() = default;

absl::Status IceStorageService::Start() {
  Impl* impl = impl_.get();
  return impl->pool.Start(
      {.handle_batch = [impl](std::span<Message> batch) { impl->HandleBatch(batch); },
       .tail = [impl] { impl->BatchLoop(); },
       .on_workers_done = [impl] { impl->items.Close(); }});
}

absl::Status IceStorageService::Stop(messagepipeline::Deadline deadline) {
  return impl_->pool.Stop(deadline);
}
void IceStorageService::Wait() { impl_->pool.Wait(); }
void IceStorageService::FlushPromptly() {
  impl_->prompt_flush.store(true, std::memory_order_release);
  impl_->items.Interrupt();
}
messagepipeline::ServiceMetrics IceStorageService::metrics() const {
  return impl_->counters.Snapshot();
}
std::uint64_t IceStorageService::objects_written() const {
  return impl_->objects.load(std::memory_order_relaxed);
}

}  // namespace dataflow::icestore

#include "dataflow/icestore/ice_storage_service.h"

#include <absl/strings/str_cat.h>

#include <atomic>

#include "dataflow/messagepipeline/batch_core.h"
#include "dataflow/messagepipeline/errors.h"

namespace dataflow::icestore {

using messagepipeline::Message;

namespace internal {

// A record on its way to the batcher: encoded by a worker, grouped by key on the batcher thread.
struct Pending {
  Message message;
  std::string key;
  std::string line;
  friend Message& MessageOf(Pending& p) { return p.message; }
};

}  // namespace internal

using internal::Pending;

struct IceStorageService::Impl final : messagepipeline::BatchAccumulator<Pending> {
  Impl(IceStorageServiceOptions opts, messagepipeline::BatchCoreOptions core_options,
       std::shared_ptr<messagepipeline::MessageConsumer> consumer, std::shared_ptr<DataUploader> up,
       messagepipeline::MessageTransformer<ArchivalData> t)
      : options(std::move(opts)),
        transformer(std::move(t)),
        uploader(std::move(up)),
        core(std::move(core_options), std::move(consumer),
             [this](Message& message, std::vector<Pending>& out) { Prepare(message, out); }) {}

  // Worker side: transform, sanitise the key, encode the line (in parallel, off the
  // batcher thread).
  void Prepare(Message& message, std::vector<Pending>& out) {
    std::optional<ArchivalData> transformed =
        messagepipeline::TransformOrSettle(message, transformer, core.policy(), core.counters());
    if (!transformed) return;
    ArchivalData& data = *transformed;
    // Custom transformers too: no key may escape the prefix.
    absl::StatusOr<std::string> key = MakeSafeBatchKey(data.batch_key, options.max_batch_key_bytes);
    if (!key.ok()) {
      core.policy().Fail(message,
                         messagepipeline::PermanentError(
                             absl::StrCat(key.status().message(), " (max_batch_key_bytes)")),
                         messagepipeline::FailureStage::kTransform);
      return;
    }
    data.batch_key = *std::move(key);
    std::string line = EncodeArchivalLine(data);
    out.push_back(Pending{std::move(message), std::move(data.batch_key), std::move(line)});
  }

  // The core's loop groups by key through the KeyAwareBatcher (batcher thread only).
  void Add(Pending p) override {
    batcher->Add(std::move(p.key), std::move(p.line), std::move(p.message));
  }
  [[nodiscard]] std::size_t MaxTake() const override { return 256; }
  [[nodiscard]] std::chrono::steady_clock::time_point next_flush() const override {
    return batcher->next_flush();
  }
  void MaybeFlush(std::chrono::steady_clock::time_point now) override { batcher->MaybeFlush(now); }
  // Keys still uploading are cut when their upload is done (on_uploaded wakes the loop).
  [[nodiscard]] std::chrono::steady_clock::time_point OldestIdleCut() const override {
    return batcher->OldestIdleCut();
  }
  void CutIdle(std::chrono::steady_clock::time_point opened_by) override {
    batcher->CutIdle(opened_by);
  }
  void Close() override { batcher->Close(); }  // flushes the rest and waits for every upload

  // Upload thread: write the object, then settle the whole group by the result. A permanent
  // error (the object can never be written, e.g. a name the store refuses) dead-letters it:
  // retrying would loop.
  void Upload(FlushedGroup& group) {
    if (!core.Admit(group.messages)) return;
    absl::StatusOr<std::string> written = absl::InternalError("not run");
    try {
      written = uploader->Upload(group.object);
    } catch (const std::exception& e) {
      written = absl::InternalError(absl::StrCat("uploader threw: ", e.what()));
    }
    if (written.ok()) objects.fetch_add(1, std::memory_order_relaxed);
    core.SettleBatch(group.messages, written.status(),
                     absl::StrCat("key=", group.object.batch_key, " "));
  }

  IceStorageServiceOptions options;
  messagepipeline::MessageTransformer<ArchivalData> transformer;
  std::shared_ptr<DataUploader> uploader;
  std::atomic<std::uint64_t> objects{0};
  std::unique_ptr<KeyAwareBatcher> batcher;
  messagepipeline::BatchCore<Pending> core;  // last: its threads use everything above
};

absl::StatusOr<std::unique_ptr<IceStorageService>> IceStorageService::Create(
    IceStorageServiceOptions options, std::shared_ptr<messagepipeline::MessageConsumer> consumer,
    std::shared_ptr<DataUploader> uploader,
    messagepipeline::MessageTransformer<ArchivalData> transformer) {
  messagepipeline::SetDefaultName(options.common, IceStorageServiceOptions::kDefaultName);
  const std::string& name = options.common.name;
  if (!consumer) return absl::InvalidArgumentError(name + ": consumer is null");
  if (!uploader) return absl::InvalidArgumentError(name + ": uploader is null");
  if (!transformer) return absl::InvalidArgumentError(name + ": transformer is null");
  if (options.max_batch_key_bytes == 0) {
    return absl::InvalidArgumentError(name + ": max_batch_key_bytes must be > 0");
  }
  messagepipeline::BatchCoreOptions core{
      .common = options.common,
      // Room for a few batches so workers keep encoding while the batcher hands off.
      .queue_capacity = options.batcher.batch_size * 4,
      .flush_when_idle = options.flush_when_idle,
      .idle_linger = options.idle_linger};
  if (auto s = messagepipeline::BatchCore<Pending>::Validate(core); !s.ok()) return s;
  auto impl = std::make_unique<Impl>(std::move(options), std::move(core), std::move(consumer),
                                     std::move(uploader), std::move(transformer));
  Impl* raw = impl.get();
  auto batcher = KeyAwareBatcher::Create(
      raw->options.batcher, [raw](FlushedGroup& group) { raw->Upload(group); },
      // A key that finished uploading may be cut now, if the loop is cutting idle batches.
      [raw] { raw->core.WakeIfPrompt(); });
  if (!batcher.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(raw->options.common.name, ": ", batcher.status().message()));
  }
  raw->batcher = std::move(*batcher);
  return std::unique_ptr<IceStorageService>(new IceStorageService(std::move(impl)));
}

IceStorageService::IceStorageService(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
IceStorageService::~IceStorageService() = default;

absl::Status IceStorageService::Start() { return impl_->core.Start(impl_.get()); }
absl::Status IceStorageService::Stop(messagepipeline::Deadline deadline) {
  return impl_->core.Stop(deadline);
}
void IceStorageService::Wait() { impl_->core.Wait(); }
void IceStorageService::FlushPromptly() { impl_->core.FlushPromptly(); }
messagepipeline::ServiceMetrics IceStorageService::metrics() const { return impl_->core.metrics(); }
std::uint64_t IceStorageService::objects_written() const {
  return impl_->objects.load(std::memory_order_relaxed);
}

}  // namespace dataflow::icestore

// IceStorageService: consumer → N transform workers (ArchivalTransformer, sanitised key,
// JSONL encoding) → one KeyAwareBatcher → DataUploader, one object per flushed group. The
// workers, the batch loop and settling are messagepipeline::BatchCore's (as BatchingService's),
// with the KeyAwareBatcher as its accumulator.
//
// Delivery: a group's messages are acked only after Upload() returned OK (the object is
// durable); a failed upload nacks them all, for redelivery, unless the error is permanent
// (the uploader says the object can never be written), which dead-letters them (nacks
// without a dead-letter sink). Transform errors nack (or dead-letter a permanent one, such
// as an invalid location or a key over max_batch_key_bytes), skips ack, as in every service.
// Stop(deadline) stops the consumer, drains the channel, flushes every batch and waits for the
// uploads; past the deadline what is left is nacked and Stop reports it (WorkerPool's rules).
// Thread-safe.
#pragma once

#include <absl/status/statusor.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "dataflow/icestore/archival.h"
#include "dataflow/icestore/key_aware_batcher.h"
#include "dataflow/icestore/uploader.h"
#include "dataflow/messagepipeline/service.h"
#include "dataflow/messagepipeline/service_core.h"
#include "dataflow/messagepipeline/service_options.h"
#include "dataflow/metrics/registration.h"

namespace dataflow::icestore {

struct IceStorageServiceOptions {
  static constexpr std::string_view kDefaultName = "icestore";
  messagepipeline::ServiceOptions common;  // an empty name: kDefaultName
  KeyAwareBatcherOptions batcher;
  // Longest batch key (after sanitising) a message may have; a longer one is a permanent
  // error for that message at transform time (keys come from device data, and become
  // directory and object names).
  std::size_t max_batch_key_bytes = 256;
  // Cut open batches as soon as no more input is waiting, besides at the batcher's size and
  // interval (see messagepipeline::BatchingServiceOptions::flush_when_idle). Off by default:
  // every cut is an object, and a trickle of input would make one object per message.
  bool flush_when_idle = false;
  // With flush_when_idle: cut a key's batch only once its first record has waited this long
  // (see messagepipeline::BatchingServiceOptions::idle_linger): fewer, larger objects under
  // a steady stream.
  std::chrono::milliseconds idle_linger{0};
};

class IceStorageService final : public messagepipeline::Service {
 public:
  // `transformer` defaults to ArchivalTransformer; whatever key it returns is sanitised.
  static absl::StatusOr<std::unique_ptr<IceStorageService>> Create(
      IceStorageServiceOptions options, std::shared_ptr<messagepipeline::MessageConsumer> consumer,
      std::shared_ptr<DataUploader> uploader,
      messagepipeline::MessageTransformer<ArchivalData> transformer = ArchivalTransformer);
  ~IceStorageService() override;

  absl::Status Start() override;
  absl::Status Stop(messagepipeline::Deadline deadline) override;
  absl::Status Stop(std::chrono::steady_clock::duration timeout) {
    return Stop(std::chrono::steady_clock::now() + timeout);
  }
  void Wait();
  // From now on open batches are cut as soon as no more input is waiting, instead of at the
  // flush interval (see BatchingService::FlushPromptly: a stopping pipeline calls it).
  void FlushPromptly() override;
  [[nodiscard]] messagepipeline::ServiceMetrics metrics() const override;
  // Objects written so far.
  [[nodiscard]] std::uint64_t objects_written() const;
  // Exports objects_written() as dataflow_archive_objects_written_total
  // (icestore_metrics.h), labelled `labels`, on every scrape of `telemetry` until this
  // service is destroyed; a second call replaces the first. The families every service has
  // are the runner's (metrics/service_families.h).
  void RegisterMetrics(metrics::Telemetry& telemetry, const metrics::Labels& labels);

 private:
  struct Impl;
  explicit IceStorageService(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  metrics::Registration metrics_;  // after impl_: removed before it goes
};

}  // namespace dataflow::icestore

// BigQueryService: a BatchingService whose batch processor writes to a DataBatchInserter
// (BigQuery over the Storage Write API, or SQLite for the embedded demo).
//
// Delivery, as in the original Go service: a batch the inserter stored is acked; a batch it
// failed (an error status) is nacked whole, for redelivery; rows the warehouse rejected
// (bad data, retrying cannot help) go to the dead-letter sink with the row error and are
// acked once the sink has them, while the rest of the batch is acked. Without a dead-letter
// sink, rejected rows are nacked (never dropped). The transformer's skip acks, its error
// nacks (a permanent error dead-letters). A permanent batch error (e.g. a request BigQuery
// refuses as a whole) is returned as such, for the service to isolate. Stop(deadline):
// when the deadline passes, the inserter's write in flight is cancelled (DataBatchInserter::
// Cancel), so its batch is nacked and Stop returns at the deadline even if BigQuery never
// answers. Thread-safe as BatchingService is; the batch processor runs on the service's
// single batcher thread.
#pragma once

#include <absl/status/statusor.h>

#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "dataflow/bqstore/inserter.h"
#include "dataflow/messagepipeline/batching_service.h"
#include "dataflow/messagepipeline/errors.h"
#include "dataflow/messagepipeline/logging.h"

namespace dataflow::bqstore {

// A BatchingService whose stop deadline also cancels the inserter's write in flight (see
// NewBigQueryService).
template <typename T>
using BigQueryService = messagepipeline::BatchingService<T>;

// The batch processor on its own, for use in a custom service.
template <typename T>
messagepipeline::BatchProcessor<T> InserterBatchProcessor(
    std::shared_ptr<DataBatchInserter<T>> inserter,
    std::shared_ptr<messagepipeline::DeadLetterSink> dead_letter, std::string source) {
  return [inserter = std::move(inserter), dead_letter = std::move(dead_letter),
          source = std::move(source)](
             std::span<messagepipeline::ProcessableItem<T>> batch) -> absl::Status {
    std::vector<T> rows;
    rows.reserve(batch.size());
    // Moved rather than copied; moved back when the batch fails, since the service may
    // hand parts of it to this processor again (to isolate a permanent error).
    for (auto& item : batch) rows.push_back(std::move(item.payload));
    auto result = inserter->Insert(std::span<const T>(rows.data(), rows.size()));
    if (!result.ok()) {
      for (std::size_t i = 0; i < batch.size(); ++i) batch[i].payload = std::move(rows[i]);
      return result.status();  // the service nacks the batch (or isolates a permanent error)
    }
    for (const RowError& error : *result) {
      if (error.index >= batch.size()) {
        // An inserter bug; the safe reading is "nothing known about this batch".
        return absl::InternalError(absl::StrCat(source, ": inserter reported row ", error.index,
                                                " of a batch of ", batch.size()));
      }
    }
    for (const RowError& error : *result) {
      messagepipeline::ProcessableItem<T>& item = batch[error.index];
      messagepipeline::Message& message = item.original;
      const absl::Status reason = messagepipeline::MarkPermanent(
          error.status.ok() ? absl::InvalidArgumentError("row rejected") : error.status);
      static dataflow::LogRateLimit limit;
      if (limit.Allow()) {
        dataflow::Log()->warn("row rejected by the warehouse source={} id={} error=\"{}\"", source,
                              message.data.id, reason.ToString());
      }
      if (dead_letter && dead_letter->Send(message, reason, source).ok()) {
        message.Ack();
        item.dead_lettered = true;
      } else {
        message.Nack();
      }
    }
    return absl::OkStatus();  // the service acks every message still unsettled
  };
}

// The service: batching options (workers, batch size, flush interval, dead-letter sink)
// plus the inserter. InvalidArgument for a null inserter or invalid batching options.
template <typename T>
absl::StatusOr<std::unique_ptr<BigQueryService<T>>> NewBigQueryService(
    messagepipeline::BatchingServiceOptions options,
    std::shared_ptr<messagepipeline::MessageConsumer> consumer,
    messagepipeline::MessageTransformer<T> transformer,
    std::shared_ptr<DataBatchInserter<T>> inserter) {
  messagepipeline::SetDefaultName(options.common,
                                  messagepipeline::BatchingServiceOptions::kDefaultName);
  if (!inserter) return absl::InvalidArgumentError(options.common.name + ": inserter is null");
  // BatchingService alone would wait at the deadline for a processor call BigQuery never answers.
  options.on_stop_deadline = [inserter] { inserter->Cancel(); };
  auto processor = InserterBatchProcessor<T>(std::move(inserter), options.common.dead_letter,
                                             options.common.name);
  return BigQueryService<T>::Create(std::move(options), std::move(consumer), std::move(transformer),
                                    std::move(processor));
}

}  // namespace dataflow::bqstore

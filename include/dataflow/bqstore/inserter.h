// DataBatchInserter<T>: the sink end of bqstore, a warehouse table that takes batches of
// described rows (BigQuery over the Storage Write API, SQLite for the embedded demo).
//
// Insert() says row by row what happened: OK with no row errors means every row is stored;
// OK with row errors means exactly those rows were rejected (bad data: retrying cannot
// help) and all others are stored; an error status means the batch as a whole failed and
// must be retried (some rows may already be stored, so a retry can duplicate them: the
// at-least-once contract), unless it is marked permanent (messagepipeline::IsPermanent:
// the same batch can never succeed). Implementations are thread-safe unless they say otherwise.
#pragma once

#include <absl/status/status.h>
#include <absl/status/statusor.h>
#include <absl/strings/str_cat.h>

#include <cstddef>
#include <span>
#include <vector>

namespace dataflow::bqstore {

struct RowError {
  std::size_t index = 0;  // position in the span passed to Insert()
  absl::Status status;    // why the row was rejected
};

template <typename T>
class DataBatchInserter {
 public:
  virtual ~DataBatchInserter() = default;

  virtual absl::StatusOr<std::vector<RowError>> Insert(std::span<const T> rows) = 0;

  // Insert() for callers with no use for partial success: any rejected row makes it an
  // InvalidArgument error naming the first one (the other rows are stored nonetheless).
  absl::Status InsertBatch(std::span<const T> rows) {
    auto result = Insert(rows);
    if (!result.ok()) return result.status();
    if (result->empty()) return absl::OkStatus();
    const RowError& first = result->front();
    return absl::InvalidArgumentError(absl::StrCat(result->size(), " of ", rows.size(),
                                                   " rows rejected; row ", first.index, ": ",
                                                   first.status.message()));
  }

  // Flushes and releases the connection; Insert() fails afterwards. Idempotent.
  virtual absl::Status Close() = 0;

  // Thread-safe, from any thread: makes an Insert() in flight return promptly with an error
  // (Cancelled; its rows may or may not be stored) and later ones fail fast. Used when a
  // stop deadline passes. The default does nothing (inserters that never block for long).
  virtual void Cancel() {}
};

}  // namespace dataflow::bqstore

// The BigQuery Storage Write API side of bqstore.
//
// StorageWriteStub is the small seam around the AppendRows bidirectional stream (the
// gRPC implementation keeps one stream open and reuses it across appends; a test or a
// user can plug in another). BigQueryWriter appends already-encoded proto rows to a table's
// default stream: it splits them into requests under the 10 MB limit, retries retryable
// failures with backoff on a fresh stream, and turns per-row errors into RowErrors (the
// rest of those rows are appended again, since BigQuery rejects a request with any bad row
// as a whole). Every request is bounded by `append_timeout`, and Cancel()/Close() abort an
// append in flight from another thread, so a server that never answers can hold neither a
// batch nor a shutdown. BigQueryWriter is thread-safe (appends are serialised); stubs are
// called by one thread at a time, except Cancel(), which may come from any thread.
#pragma once

#include <absl/status/statusor.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "dataflow/bqstore/inserter.h"
#include "dataflow/bqstore/schema.h"
#include "dataflow/messagepipeline/backoff.h"
#include "dataflow/gcp/channel.h"
#include "google/cloud/bigquery/storage/v1/storage.pb.h"

namespace dataflow::bqstore {

namespace bqs = ::google::cloud::bigquery::storage::v1;

class StorageWriteStub {
 public:
  virtual ~StorageWriteStub() = default;
  // Sends one request on the open AppendRows stream (opening one if needed) and returns
  // its response. A transport error closes the stream; the next call opens a new one.
  virtual absl::StatusOr<bqs::AppendRowsResponse> Append(const bqs::AppendRowsRequest& request) = 0;
  // Closes the stream, if open.
  virtual void Close() = 0;
  // Thread-safe: aborts the Append() in flight, if any (it returns Cancelled), and makes
  // later Append() calls fail fast with Cancelled. Close() still works afterwards.
  virtual void Cancel() {}
};

// The gRPC stub. Only the first request on each stream carries the writer schema (as the
// API allows), so reused streams do not resend it. `timeout` bounds each Append() (write
// and response) and Close(): past it the call is cancelled and Append() returns
// DeadlineExceeded (the stream is then reopened on the next call).
std::unique_ptr<StorageWriteStub> MakeGrpcStorageWriteStub(
    std::shared_ptr<grpc::Channel> channel,
    std::chrono::milliseconds timeout = std::chrono::seconds(30));

// The channel options for the Storage Write API; BIGQUERY_EMULATOR_HOST selects a
// plaintext channel to a local server.
gcp::ChannelOptions DefaultStorageWriteChannelOptions();

// "projects/P/datasets/D/tables/T".
std::string TablePath(std::string_view project, std::string_view dataset, std::string_view table);

struct BigQueryWriterOptions {
  std::string project_id;
  std::string dataset_id;
  std::string table_id;
  // Requests stay below this; BigQuery's limit is 10 MB per AppendRows request.
  std::size_t max_request_bytes = 10 * 1000 * 1000;
  int max_attempts = 5;  // per request, for retryable errors
  // Each AppendRows request gets at most this long for its response; then it fails with
  // DeadlineExceeded (retryable, so it counts as an attempt). Bounds a batch against a
  // server that never answers: at most max_attempts * append_timeout plus backoff.
  std::chrono::milliseconds append_timeout = std::chrono::seconds(30);
  messagepipeline::BackoffOptions backoff = {.initial = std::chrono::milliseconds(100),
                                 .maximum = std::chrono::seconds(10)};
  gcp::ChannelOptions channel = DefaultStorageWriteChannelOptions();
  // Replaces the gRPC stub (tests, other transports). Null: gRPC over `channel`.
  std::shared_ptr<StorageWriteStub> stub;
};

class BigQueryWriter {
 public:
  // InvalidArgument for missing ids or an invalid schema; errors from the channel factory.
  static absl::StatusOr<std::unique_ptr<BigQueryWriter>> Create(BigQueryWriterOptions options,
                                                                const TableSchema& schema);
  ~BigQueryWriter();

  // Appends serialized rows (messages of the schema's row descriptor). See DataBatchInserter
  // for the meaning of the result; RowError indexes are positions in `rows`.
  // Errors: a retryable one after max_attempts (transient: the batch should be redelivered);
  // INVALID_ARGUMENT for the request as a whole (e.g. the table no longer fits the rows)
  // marked permanent (messagepipeline::IsPermanent); Cancelled after Cancel()/Close().
  absl::StatusOr<std::vector<RowError>> Append(std::span<const std::string> rows);
  // Thread-safe, from any thread: aborts the append in flight (it returns Cancelled, its
  // rows in an unknown state, so the caller retries them: at-least-once) and fails later
  // appends fast. For a stop deadline; does not wait for the append to return.
  void Cancel();
  // Cancel(), then closes the stream once the append in flight (if any) has returned.
  void Close();

  // Appends sent (counting retries and re-sends after row errors); for tests and metrics.
  std::uint64_t requests_sent() const;

 private:
  BigQueryWriter(BigQueryWriterOptions options, std::string write_stream,
                 std::shared_ptr<StorageWriteStub> stub);
  absl::StatusOr<std::vector<RowError>> AppendLocked(std::span<const std::string> rows);
  bool Cancelled();
  absl::StatusOr<std::vector<RowError>> AppendChunk(std::span<const std::string> rows,
                                                    std::span<const std::size_t> indexes);
  absl::StatusOr<bqs::AppendRowsResponse> SendWithRetry(const bqs::AppendRowsRequest& request);

  const BigQueryWriterOptions options_;
  const std::string write_stream_;
  bqs::ProtoSchema schema_;
  std::size_t schema_bytes_ = 0;
  // Serialises appends (one stream); Cancel() never takes it, Close() only after cancelling.
  std::mutex mu_;
  std::shared_ptr<StorageWriteStub> stub_;
  std::atomic<std::uint64_t> requests_sent_{0};
  // Set by Cancel(); wakes a retry backoff wait.
  std::mutex cancel_mu_;
  std::condition_variable cancel_cv_;
  bool cancelled_ = false;
  bool closed_ = false;  // guarded by mu_
};

}  // namespace dataflow::bqstore

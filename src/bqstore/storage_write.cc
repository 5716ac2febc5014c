#include "dataflow/bqstore/storage_write.h"

#include <absl/strings/str_cat.h>
#include <google/protobuf/descriptor.pb.h>
#include <grpcpp/grpcpp.h>

#include <numeric>
#include <thread>

#include "dataflow/gcp/status.h"
#include "dataflow/messagepipeline/errors.h"
#include "dataflow/messagepipeline/logging.h"
#include "google/cloud/bigquery/storage/v1/storage.grpc.pb.h"

namespace dataflow::bqstore {
namespace {

absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

class GrpcStorageWriteStub : public StorageWriteStub {
 public:
  GrpcStorageWriteStub(std::shared_ptr<grpc::Channel> channel, std::chrono::milliseconds timeout)
      : stub_(bqs::BigQueryWrite::NewStub(std::move(channel))),
        timeout_(timeout),
        watchdog_([this] { WatchLoop(); }) {}
  ~GrpcStorageWriteStub() override {
    Close();
    {
      std::lock_guard lock(wd_mu_);
      stop_ = true;
    }
    wd_cv_.notify_all();
    watchdog_.join();
  }

  absl::StatusOr<bqs::AppendRowsResponse> Append(const bqs::AppendRowsRequest& request) override {
    bool first = false;
    if (!stream_) {
      if (IsCancelled()) return absl::CancelledError("AppendRows: the writer was cancelled");
      context_ = std::make_unique<grpc::ClientContext>();
      // Routing header the service uses to find the stream's region.
      context_->AddMetadata("x-goog-request-params", "write_stream=" + request.write_stream());
      stream_ = stub_->AppendRows(context_.get());
      first = true;
    }
    // The stream lives across appends, so a gRPC deadline on its context would end it; the
    // watchdog cancels it instead when this one request takes longer than the timeout.
    Arm(/*honour_cancel=*/true);
    bool ok;
    if (first || !request.proto_rows().has_writer_schema()) {
      ok = stream_->Write(request);
    } else {
      bqs::AppendRowsRequest lean = request;  // the stream already knows the schema
      lean.mutable_proto_rows()->clear_writer_schema();
      lean.clear_write_stream();
      ok = stream_->Write(lean);
    }
    bqs::AppendRowsResponse response;
    if (ok && stream_->Read(&response)) {
      if (Disarm() == Outcome::kAnswered) return response;
      // Answered just as the watchdog fired: the stream is cancelled, but this response
      // is real (its rows are stored), so report it and reopen next time.
      (void)Broken(Outcome::kAnswered);
      return response;
    }
    return Broken(Disarm());
  }

  void Close() override {
    if (!stream_) return;
    Arm(/*honour_cancel=*/false);  // a graceful close, but bounded too
    stream_->WritesDone();
    bqs::AppendRowsResponse drain;
    while (stream_->Read(&drain)) {
    }
    (void)stream_->Finish();
    Disarm();
    stream_.reset();
    context_.reset();
  }

  void Cancel() override {
    std::lock_guard lock(wd_mu_);
    cancelled_ = true;
    if (in_flight_ != nullptr) in_flight_->TryCancel();  // thread-safe in gRPC
  }

 private:
  enum class Outcome { kAnswered, kTimedOut, kCancelled };

  bool IsCancelled() {
    std::lock_guard lock(wd_mu_);
    return cancelled_;
  }

  void Arm(bool honour_cancel) {
    {
      std::lock_guard lock(wd_mu_);
      in_flight_ = context_.get();
      deadline_ = std::chrono::steady_clock::now() + timeout_;
      timed_out_ = false;
      if (honour_cancel && cancelled_) in_flight_->TryCancel();
    }
    wd_cv_.notify_all();
  }

  Outcome Disarm() {
    std::lock_guard lock(wd_mu_);
    in_flight_ = nullptr;
    if (timed_out_) return Outcome::kTimedOut;
    return cancelled_ ? Outcome::kCancelled : Outcome::kAnswered;
  }

  void WatchLoop() {
    std::unique_lock lock(wd_mu_);
    while (!stop_) {
      if (in_flight_ == nullptr || timed_out_) {
        wd_cv_.wait(lock);
      } else if (std::chrono::steady_clock::now() >= deadline_) {
        timed_out_ = true;
        in_flight_->TryCancel();
      } else {
        wd_cv_.wait_until(lock, deadline_);
      }
    }
  }

  // Ends the stream (Finish returns promptly: the stream failed or was cancelled) and says
  // why the append failed; the next Append() opens a new stream.
  absl::Status Broken(Outcome outcome) {
    Arm(/*honour_cancel=*/false);  // Finish() after a silent server must not hang either
    stream_->WritesDone();
    grpc::Status status = stream_->Finish();
    Disarm();
    stream_.reset();
    context_.reset();
    if (outcome == Outcome::kTimedOut) {
      return absl::DeadlineExceededError(absl::StrCat(
          "AppendRows: no response within ", timeout_.count(), " ms; the stream was cancelled"));
    }
    if (outcome == Outcome::kCancelled) {
      return absl::CancelledError("AppendRows: cancelled (the writer is stopping)");
    }
    if (status.ok()) return absl::UnavailableError("AppendRows stream closed by the server");
    return gcp::FromGrpcStatus(status, "AppendRows");
  }

  std::unique_ptr<bqs::BigQueryWrite::Stub> stub_;
  const std::chrono::milliseconds timeout_;
  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<grpc::ClientReaderWriter<bqs::AppendRowsRequest, bqs::AppendRowsResponse>>
      stream_;

  // The watchdog: cancels the call in flight when its deadline passes or Cancel() is called.
  std::mutex wd_mu_;
  std::condition_variable wd_cv_;
  grpc::ClientContext* in_flight_ = nullptr;  // non-null while a call is armed
  std::chrono::steady_clock::time_point deadline_;
  bool timed_out_ = false;
  bool cancelled_ = false;
  bool stop_ = false;
  std::thread watchdog_;  // last: it uses everything above
};

// Request overhead beyond the rows: stream name, schema, and per-row length prefixes.
constexpr std::size_t kPerRowOverhead = 6;
constexpr std::size_t kFixedOverhead = 1024;

}  // namespace

std::unique_ptr<StorageWriteStub> MakeGrpcStorageWriteStub(std::shared_ptr<grpc::Channel> channel,
                                                           std::chrono::milliseconds timeout) {
  return std::make_unique<GrpcStorageWriteStub>(std::move(channel), timeout);
}

gcp::ChannelOptions DefaultStorageWriteChannelOptions() {
  return {.default_endpoint = "bigquerystorage.googleapis.com:443",
          .emulator_host_env = "BIGQUERY_EMULATOR_HOST"};
}

std::string TablePath(std::string_view project, std::string_view dataset, std::string_view table) {
  return absl::StrCat("projects/", Sv(project), "/datasets/", Sv(dataset), "/tables/", Sv(table));
}

BigQueryWriter::BigQueryWriter(BigQueryWriterOptions options, std::string write_stream,
                               std::shared_ptr<StorageWriteStub> stub)
    : options_(std::move(options)),
      write_stream_(std::move(write_stream)),
      stub_(std::move(stub)) {}

BigQueryWriter::~BigQueryWriter() { Close(); }

absl::StatusOr<std::unique_ptr<BigQueryWriter>> BigQueryWriter::Create(
    BigQueryWriterOptions options, const TableSchema& schema) {
  if (options.project_id.empty() || options.dataset_id.empty() || options.table_id.empty()) {
    return absl::InvalidArgumentError(
        "bigquery writer: project_id, dataset_id and table_id are required");
  }
  if (options.max_request_bytes < 4096) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bigquery writer: max_request_bytes must be >= 4096, got ", options.max_request_bytes));
  }
  if (options.max_attempts < 1) {
    return absl::InvalidArgumentError("bigquery writer: max_attempts must be >= 1");
  }
  if (options.append_timeout <= std::chrono::milliseconds::zero()) {
    return absl::InvalidArgumentError("bigquery writer: append_timeout must be > 0");
  }
  if (auto b = messagepipeline::ExponentialBackoff::Create(options.backoff); !b.ok()) return b.status();
  auto descriptor = RowDescriptorProto(schema, "Row");
  if (!descriptor.ok()) return descriptor.status();
  // Checks the descriptor really builds before any row is sent with it.
  if (auto built = RowDescriptor::Create(*descriptor); !built.ok()) return built.status();
  std::shared_ptr<StorageWriteStub> stub = options.stub;
  if (!stub) {
    auto channel = gcp::MakeChannel(options.channel);
    if (!channel.ok()) return channel.status();
    stub = MakeGrpcStorageWriteStub(*std::move(channel), options.append_timeout);
  }
  const std::string stream =
      TablePath(options.project_id, options.dataset_id, options.table_id) + "/streams/_default";
  std::unique_ptr<BigQueryWriter> writer(
      new BigQueryWriter(std::move(options), stream, std::move(stub)));
  *writer->schema_.mutable_proto_descriptor() = *std::move(descriptor);
  writer->schema_bytes_ = writer->schema_.ByteSizeLong();
  return writer;
}

void BigQueryWriter::Cancel() {
  {
    std::lock_guard lock(cancel_mu_);
    cancelled_ = true;
  }
  cancel_cv_.notify_all();
  stub_->Cancel();
}

void BigQueryWriter::Close() {
  Cancel();  // so an append in flight returns now instead of holding mu_
  std::lock_guard lock(mu_);
  if (closed_) return;
  closed_ = true;
  stub_->Close();
}

std::uint64_t BigQueryWriter::requests_sent() const {
  return requests_sent_.load(std::memory_order_relaxed);
}

absl::StatusOr<std::vector<RowError>> BigQueryWriter::Append(std::span<const std::string> rows) {
  std::lock_guard lock(mu_);
  if (closed_) return absl::FailedPreconditionError("bigquery writer is closed");
  auto result = AppendLocked(rows);
  // A request the server refuses as a whole (not row by row) fails the same way every time.
  if (!result.ok() && absl::IsInvalidArgument(result.status())) {
    return messagepipeline::MarkPermanent(result.status());
  }
  return result;
}

absl::StatusOr<std::vector<RowError>> BigQueryWriter::AppendLocked(
    std::span<const std::string> rows) {
  std::vector<RowError> rejected;
  std::vector<std::size_t> chunk;
  std::size_t chunk_bytes = kFixedOverhead + schema_bytes_ + write_stream_.size();
  const std::size_t base = chunk_bytes;
  auto flush = [&]() -> absl::Status {
    if (chunk.empty()) return absl::OkStatus();
    auto errors = AppendChunk(rows, chunk);
    if (!errors.ok()) return errors.status();
    rejected.insert(rejected.end(), errors->begin(), errors->end());
    chunk.clear();
    chunk_bytes = base;
    return absl::OkStatus();
  };
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const std::size_t size = rows[i].size() + kPerRowOverhead;
    if (base + size > options_.max_request_bytes) {
      // Can never be sent: reject it rather than fail every retry of the batch.
      rejected.push_back({i, messagepipeline::PermanentError(absl::StrCat(
                                 "row of ", rows[i].size(), " bytes exceeds the request limit of ",
                                 options_.max_request_bytes, " bytes"))});
      continue;
    }
    if (chunk_bytes + size > options_.max_request_bytes) {
      if (auto s = flush(); !s.ok()) return s;
    }
    chunk.push_back(i);
    chunk_bytes += size;
  }
  if (auto s = flush(); !s.ok()) return s;
  std::sort(rejected.begin(), rejected.end(),
            [](const RowError& a, const RowError& b) { return a.index < b.index; });
  return rejected;
}

absl::StatusOr<std::vector<RowError>> BigQueryWriter::AppendChunk(
    std::span<const std::string> rows, std::span<const std::size_t> indexes) {
  std::vector<RowError> rejected;
  std::vector<std::size_t> pending(indexes.begin(), indexes.end());
  // Each round drops at least one row (the rejected ones), so this terminates.
  while (!pending.empty()) {
    bqs::AppendRowsRequest request;
    request.set_write_stream(write_stream_);
    *request.mutable_proto_rows()->mutable_writer_schema() = schema_;
    auto* serialized = request.mutable_proto_rows()->mutable_rows()->mutable_serialized_rows();
    serialized->Reserve(static_cast<int>(pending.size()));
    for (std::size_t i : pending) *serialized->Add() = rows[i];
    auto response = SendWithRetry(request);
    if (!response.ok()) return response.status();
    if (response->row_errors_size() == 0) {
      if (response->has_error() && response->error().code() != 0) {
        return gcp::FromGrpcStatus(
            grpc::Status(static_cast<grpc::StatusCode>(response->error().code()),
                         response->error().message()),
            "AppendRows");
      }
      return rejected;
    }
    std::vector<bool> bad(pending.size(), false);
    for (const bqs::RowError& e : response->row_errors()) {
      if (e.index() < 0 || static_cast<std::size_t>(e.index()) >= pending.size()) {
        return absl::InternalError(absl::StrCat("AppendRows: row error index ", e.index(),
                                                " outside a request of ", pending.size(), " rows"));
      }
      const auto k = static_cast<std::size_t>(e.index());
      if (bad[k]) continue;
      bad[k] = true;
      rejected.push_back({pending[k], messagepipeline::PermanentError(e.message())});
    }
    std::vector<std::size_t> rest;
    for (std::size_t k = 0; k < pending.size(); ++k) {
      if (!bad[k]) rest.push_back(pending[k]);
    }
    pending = std::move(rest);
  }
  return rejected;
}

absl::StatusOr<bqs::AppendRowsResponse> BigQueryWriter::SendWithRetry(
    const bqs::AppendRowsRequest& request) {
  auto backoff = messagepipeline::ExponentialBackoff::Create(options_.backoff);  // validated in Create
  absl::Status last;
  for (int attempt = 1; attempt <= options_.max_attempts; ++attempt) {
    if (Cancelled()) return absl::CancelledError("bigquery writer: cancelled");
    requests_sent_.fetch_add(1, std::memory_order_relaxed);
    auto response = stub_->Append(request);
    if (response.ok()) {
      // A request-level error in the response (not row errors) is treated like a failed call.
      if (response->row_errors_size() > 0 || !response->has_error() ||
          response->error().code() == 0) {
        return response;
      }
      last =
          gcp::FromGrpcStatus(grpc::Status(static_cast<grpc::StatusCode>(response->error().code()),
                                           response->error().message()),
                              "AppendRows");
    } else {
      last = response.status();
    }
    if (!gcp::IsRetryable(last.code()) || attempt == options_.max_attempts) break;
    const auto delay = backoff->Next();
    static dataflow::LogRateLimit limit;
    if (limit.Allow()) {
      dataflow::Log()->warn("append failed; retrying stream={} attempt={} delay_ms={} error=\"{}\"",
                            write_stream_, attempt, delay.count(), last.ToString());
    }
    // A retry backoff that Cancel() cuts short.
    std::unique_lock lock(cancel_mu_);
    if (cancel_cv_.wait_for(lock, delay, [this] { return cancelled_; })) break;
  }
  return last;
}

bool BigQueryWriter::Cancelled() {
  std::lock_guard lock(cancel_mu_);
  return cancelled_;
}

}  // namespace dataflow::bqstore

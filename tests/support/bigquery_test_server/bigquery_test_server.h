// BigQueryTestServer: an in-memory stand-in for BigQuery for tests, speaking the real wire
// APIs on loopback ports: the Storage Write gRPC service (CreateWriteStream, AppendRows with
// ProtoSchema rows decoded by the descriptor the client sent, FinalizeWriteStream,
// BatchCommitWriteStreams) and the REST datasets/tables calls (get, insert, patch).
//
// Strict where BigQuery is: an unknown table is NOT_FOUND; a writer field that is not a
// column or has the wrong type is INVALID_ARGUMENT; rows that do not decode, miss a
// REQUIRED column, hold invalid UTF-8 or an out-of-range timestamp are rejected with
// row errors (index and message) and, as in BigQuery, the whole request is then not written.
// Tests read back exactly what was written as JSON rows (TIMESTAMP as RFC 3339, BYTES as
// base64), and can inject failures. Thread-safe.
#pragma once

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "dataflow/bqstore/schema.h"

namespace dataflow::testing {

class BigQueryTestServer {
 public:
  // Binds gRPC and REST on free 127.0.0.1 ports and starts serving.
  static absl::StatusOr<std::unique_ptr<BigQueryTestServer>> Start();
  ~BigQueryTestServer();

  std::string grpc_endpoint() const;  // "127.0.0.1:port"
  std::string rest_endpoint() const;  // "http://127.0.0.1:port"

  absl::Status CreateDataset(const std::string& project, const std::string& dataset);
  absl::Status CreateTable(const std::string& project, const std::string& dataset,
                           const std::string& table, const bqstore::TableSchema& schema);
  absl::StatusOr<bqstore::TableSchema> GetSchema(const std::string& project,
                                                 const std::string& dataset,
                                                 const std::string& table) const;
  // The committed rows of a table, in append order.
  std::vector<nlohmann::json> Rows(const std::string& project, const std::string& dataset,
                                   const std::string& table) const;
  // The last tables.insert body received for the table (partitioning, clustering, ...).
  nlohmann::json TableResource(const std::string& project, const std::string& dataset,
                               const std::string& table) const;

  // The next `count` AppendRows requests end their stream with `status` (no rows written).
  void FailNextAppends(int count, absl::Status status);
  // While `hang` is true, AppendRows requests are read and never answered (the call waits
  // until the client cancels it or the server stops): a server that hangs.
  void HangAppends(bool hang);
  std::uint64_t append_requests() const;  // requests received (including failed ones)
  std::uint64_t append_streams() const;   // AppendRows calls (bidi streams) opened
  // Hung appends that ended without being applied (the client cancelled, or the server
  // stopped). A hang released before the server saw the client's cancel applies the append,
  // as BigQuery may apply an append whose answer the client no longer waits for.
  std::uint64_t hung_appends_ended() const;
  std::size_t largest_request_bytes() const;

  struct State;

 private:
  BigQueryTestServer();
  std::shared_ptr<State> state_;
  struct Servers;
  std::unique_ptr<Servers> servers_;
};

}  // namespace dataflow::testing

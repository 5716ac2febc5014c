#include "bigquery_test_server.h"

#include <absl/strings/ascii.h>
#include <absl/strings/escaping.h>
#include <absl/strings/match.h>
#include <absl/strings/str_cat.h>
#include <absl/time/civil_time.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/message.h>
#include <grpcpp/grpcpp.h>
#include <httplib.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "dataflow/gcp/status.h"
#include "dataflow/messagepipeline/message.h"
#include "dataflow_testing/http_server_thread.h"
#include "google/cloud/bigquery/storage/v1/storage.grpc.pb.h"

namespace dataflow::testing {
namespace {

namespace bqs = ::google::cloud::bigquery::storage::v1;
namespace pb = ::google::protobuf;
using bqstore::FieldMode;
using bqstore::FieldSchema;
using bqstore::FieldType;
using bqstore::TableSchema;

// BigQuery's TIMESTAMP range, in microseconds since the epoch.
constexpr std::int64_t kMinMicros = -62135596800000000;
constexpr std::int64_t kMaxMicros = 253402300799999999;

bool ValidUtf8(const std::string& s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const int extra = c < 0x80         ? 0
                      : (c >> 5) == 6  ? 1
                      : (c >> 4) == 14 ? 2
                      : (c >> 3) == 30 ? 3
                                       : -1;
    if (extra < 0 || i + extra >= s.size() + (extra == 0 ? 1 : 0)) return false;
    for (int k = 1; k <= extra; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return false;
    }
    i += static_cast<std::size_t>(extra) + 1;
  }
  return true;
}

const FieldSchema* FindColumn(const TableSchema& columns, const std::string& name) {
  for (const FieldSchema& c : columns) {
    if (absl::EqualsIgnoreCase(c.name, name)) return &c;
  }
  return nullptr;
}

bool TypeMatches(const pb::FieldDescriptor* f, FieldType type) {
  using FD = pb::FieldDescriptor;
  switch (type) {
    case FieldType::kBool:
      return f->type() == FD::TYPE_BOOL;
    case FieldType::kInt64:
    case FieldType::kTimestamp:
      return f->type() == FD::TYPE_INT64 || f->type() == FD::TYPE_INT32 ||
             f->type() == FD::TYPE_SINT64 || f->type() == FD::TYPE_UINT32;
    case FieldType::kFloat64:
      return f->type() == FD::TYPE_DOUBLE || f->type() == FD::TYPE_FLOAT;
    case FieldType::kString:
      return f->type() == FD::TYPE_STRING;
    case FieldType::kBytes:
      return f->type() == FD::TYPE_BYTES;
    case FieldType::kRecord:
      return f->type() == FD::TYPE_MESSAGE;
    case FieldType::kDate:
      return f->type() == FD::TYPE_INT32 || f->type() == FD::TYPE_INT64;
    case FieldType::kNumeric:
    case FieldType::kBigNumeric:
    case FieldType::kTime:
    case FieldType::kDateTime:
    case FieldType::kJson:
    case FieldType::kGeography:
      return f->type() == FD::TYPE_STRING;
  }
  return false;
}

// Writer descriptor vs table: every writer field must be a column of a matching type.
absl::Status CheckWriter(const pb::Descriptor* d, const TableSchema& columns,
                         const std::string& path) {
  for (int i = 0; i < d->field_count(); ++i) {
    const pb::FieldDescriptor* f = d->field(i);
    const std::string full = path.empty() ? f->name() : absl::StrCat(path, ".", f->name());
    const FieldSchema* c = FindColumn(columns, f->name());
    if (c == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("Input schema has more fields than "
                       "BigQuery schema, extra field: '",
                       full, "'"));
    }
    if (!TypeMatches(f, c->type)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "The proto field mismatched with BigQuery field at ", full, ", the proto field type ",
          f->type_name(), ", BigQuery field type ", std::string(bqstore::FieldTypeName(c->type))));
    }
    if (f->is_repeated() != (c->mode == FieldMode::kRepeated)) {
      return absl::InvalidArgumentError(
          absl::StrCat("The proto field mismatched with BigQuery field at ", full, ": repeated vs ",
                       std::string(bqstore::FieldModeName(c->mode))));
    }
    if (c->type == FieldType::kRecord) {
      if (auto s = CheckWriter(f->message_type(), c->fields, full); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<nlohmann::json> ValueToJson(const pb::Message& m, const pb::FieldDescriptor* f,
                                           int index, const FieldSchema& c,
                                           const std::string& path);

// Decodes a row into JSON following the table's columns; row-level problems are errors.
absl::StatusOr<nlohmann::json> RowToJson(const pb::Message& m, const TableSchema& columns,
                                         const std::string& path) {
  const pb::Descriptor* d = m.GetDescriptor();
  const pb::Reflection* r = m.GetReflection();
  nlohmann::json row = nlohmann::json::object();
  for (const FieldSchema& c : columns) {
    const std::string full = path.empty() ? c.name : absl::StrCat(path, ".", c.name);
    const pb::FieldDescriptor* f = nullptr;
    for (int i = 0; i < d->field_count(); ++i) {
      if (absl::EqualsIgnoreCase(d->field(i)->name(), c.name)) f = d->field(i);
    }
    if (c.mode == FieldMode::kRepeated) {
      nlohmann::json array = nlohmann::json::array();
      const int n = f ? r->FieldSize(m, f) : 0;
      for (int i = 0; i < n; ++i) {
        auto v = ValueToJson(m, f, i, c, full);
        if (!v.ok()) return v.status();
        array.push_back(*std::move(v));
      }
      row[c.name] = std::move(array);
      continue;
    }
    if (f == nullptr || !r->HasField(m, f)) {
      if (c.mode == FieldMode::kRequired) {
        return absl::InvalidArgumentError(absl::StrCat("missing required field ", full));
      }
      row[c.name] = nullptr;
      continue;
    }
    auto v = ValueToJson(m, f, -1, c, full);
    if (!v.ok()) return v.status();
    row[c.name] = *std::move(v);
  }
  return row;
}

absl::StatusOr<nlohmann::json> ValueToJson(const pb::Message& m, const pb::FieldDescriptor* f,
                                           int index, const FieldSchema& c,
                                           const std::string& path) {
  const pb::Reflection* r = m.GetReflection();
  const bool rep = index >= 0;
  auto get_int = [&]() -> std::int64_t {
    switch (f->cpp_type()) {
      case pb::FieldDescriptor::CPPTYPE_INT32:
        return rep ? r->GetRepeatedInt32(m, f, index) : r->GetInt32(m, f);
      case pb::FieldDescriptor::CPPTYPE_UINT32:
        return rep ? r->GetRepeatedUInt32(m, f, index) : r->GetUInt32(m, f);
      default:
        return rep ? r->GetRepeatedInt64(m, f, index) : r->GetInt64(m, f);
    }
  };
  switch (c.type) {
    case FieldType::kBool:
      return rep ? r->GetRepeatedBool(m, f, index) : r->GetBool(m, f);
    case FieldType::kInt64:
      return get_int();
    case FieldType::kFloat64:
      if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_FLOAT) {
        return static_cast<double>(rep ? r->GetRepeatedFloat(m, f, index) : r->GetFloat(m, f));
      }
      return rep ? r->GetRepeatedDouble(m, f, index) : r->GetDouble(m, f);
    case FieldType::kString: {
      std::string s = rep ? r->GetRepeatedString(m, f, index) : r->GetString(m, f);
      if (!ValidUtf8(s)) return absl::InvalidArgumentError(absl::StrCat(path, ": invalid UTF-8"));
      return s;
    }
    case FieldType::kBytes:
      return absl::Base64Escape(rep ? r->GetRepeatedString(m, f, index) : r->GetString(m, f));
    case FieldType::kTimestamp: {
      const std::int64_t micros = get_int();
      if (micros < kMinMicros || micros > kMaxMicros) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": timestamp ", micros, " out of range"));
      }
      return messagepipeline::FormatTimestamp(
          messagepipeline::Clock::time_point(std::chrono::microseconds(micros)));
    }
    case FieldType::kRecord:
      return RowToJson(rep ? r->GetRepeatedMessage(m, f, index) : r->GetMessage(m, f), c.fields,
                       path);
    case FieldType::kDate: {  // days since the epoch, read back as "YYYY-MM-DD"
      const std::int64_t days = get_int();
      if (days < -719162 || days > 2932896) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": date ", days, " out of range"));
      }
      return absl::FormatCivilTime(absl::CivilDay(1970, 1, 1) + days);
    }
    case FieldType::kNumeric:
    case FieldType::kBigNumeric:
    case FieldType::kTime:
    case FieldType::kDateTime:
    case FieldType::kJson:
    case FieldType::kGeography: {  // text, as written (JSON must parse, as BigQuery checks)
      std::string s = rep ? r->GetRepeatedString(m, f, index) : r->GetString(m, f);
      if (!ValidUtf8(s)) return absl::InvalidArgumentError(absl::StrCat(path, ": invalid UTF-8"));
      if (c.type == FieldType::kJson && !nlohmann::json::accept(s)) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": invalid JSON"));
      }
      return s;
    }
  }
  return absl::InternalError("unreachable");
}

struct Table {
  TableSchema schema;
  nlohmann::json resource;
  std::vector<nlohmann::json> rows;
};

struct WriteStreamState {
  std::string table;  // table path
  bqs::WriteStream::Type type = bqs::WriteStream::COMMITTED;
  std::vector<nlohmann::json> buffered;  // PENDING rows until commit
  bool finalized = false;
};

}  // namespace

struct BigQueryTestServer::State {
  mutable std::mutex mu;
  std::map<std::string, bool> datasets;  // "p/d"
  std::map<std::string, Table> tables;   // "projects/p/datasets/d/tables/t"
  std::map<std::string, WriteStreamState> streams;
  int fail_count = 0;
  absl::Status fail_status;
  bool hang_appends = false;
  bool shutting_down = false;
  std::condition_variable hang_cv;  // hang_appends cleared or shutting_down
  std::uint64_t append_requests = 0;
  std::uint64_t append_streams = 0;
  std::uint64_t hung_appends_ended = 0;  // hung appends answered CANCELLED, unapplied
  std::size_t largest_request = 0;
  int next_stream = 1;

  static std::string TableKey(const std::string& p, const std::string& d, const std::string& t) {
    return absl::StrCat("projects/", p, "/datasets/", d, "/tables/", t);
  }
};

namespace {

class WriteService final : public bqs::BigQueryWrite::Service {
 public:
  explicit WriteService(std::shared_ptr<BigQueryTestServer::State> state)
      : state_(std::move(state)) {}

  grpc::Status CreateWriteStream(grpc::ServerContext*, const bqs::CreateWriteStreamRequest* req,
                                 bqs::WriteStream* out) override {
    std::lock_guard lock(state_->mu);
    if (!state_->tables.contains(req->parent())) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "Table not found: " + req->parent());
    }
    WriteStreamState s{.table = req->parent(), .type = req->write_stream().type()};
    if (s.type == bqs::WriteStream::TYPE_UNSPECIFIED) s.type = bqs::WriteStream::COMMITTED;
    const std::string name = absl::StrCat(req->parent(), "/streams/s", state_->next_stream++);
    state_->streams[name] = s;
    out->set_name(name);
    out->set_type(s.type);
    return grpc::Status::OK;
  }

  grpc::Status AppendRows(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<bqs::AppendRowsResponse, bqs::AppendRowsRequest>* stream) override {
    {
      std::lock_guard lock(state_->mu);
      ++state_->append_streams;
    }
    std::string stream_name;
    std::unique_ptr<bqstore::RowDescriptor> descriptor;
    bqs::AppendRowsRequest req;
    while (stream->Read(&req)) {
      std::lock_guard lock(state_->mu);
      ++state_->append_requests;
      state_->largest_request = std::max(state_->largest_request, req.ByteSizeLong());
      if (state_->fail_count > 0) {
        --state_->fail_count;
        return gcp::ToGrpcStatus(state_->fail_status);
      }
      if (state_->hang_appends) {
        std::unique_lock hold(state_->mu, std::adopt_lock);
        // gRPC has no callback for a client's cancel on a sync handler, so the wait wakes
        // every 10 ms to look; the client never sees an answer either way.
        while (state_->hang_appends && !state_->shutting_down && !context->IsCancelled()) {
          state_->hang_cv.wait_for(hold, std::chrono::milliseconds(10));
        }
        hold.release();  // the lock_guard above still owns it
        if (state_->hang_appends || state_->shutting_down || context->IsCancelled()) {
          ++state_->hung_appends_ended;
          return grpc::Status(grpc::StatusCode::CANCELLED, "client cancelled a hung append");
        }
      }
      if (!req.write_stream().empty()) stream_name = req.write_stream();
      if (stream_name.empty()) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "write_stream is required");
      }
      std::string table_key = stream_name;
      WriteStreamState* explicit_stream = nullptr;
      if (absl::EndsWith(stream_name, "/streams/_default")) {
        table_key =
            stream_name.substr(0, stream_name.size() - std::string("/streams/_default").size());
      } else {
        auto it = state_->streams.find(stream_name);
        if (it == state_->streams.end()) {
          return grpc::Status(grpc::StatusCode::NOT_FOUND, "Stream not found: " + stream_name);
        }
        if (it->second.finalized) {
          return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "Stream is finalized");
        }
        explicit_stream = &it->second;
        table_key = it->second.table;
      }
      auto table = state_->tables.find(table_key);
      if (table == state_->tables.end()) {
        return grpc::Status(grpc::StatusCode::NOT_FOUND, "Table not found: " + table_key);
      }
      if (req.proto_rows().has_writer_schema()) {
        auto built =
            bqstore::RowDescriptor::Create(req.proto_rows().writer_schema().proto_descriptor());
        if (!built.ok()) return gcp::ToGrpcStatus(built.status());
        if (auto s = CheckWriter((*built)->descriptor(), table->second.schema, ""); !s.ok()) {
          return gcp::ToGrpcStatus(s);
        }
        descriptor = *std::move(built);
      }
      if (!descriptor) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            "the first request of a stream needs writer_schema");
      }
      bqs::AppendRowsResponse response;
      std::vector<nlohmann::json> decoded;
      const auto& rows = req.proto_rows().rows().serialized_rows();
      for (int i = 0; i < rows.size(); ++i) {
        auto message = descriptor->NewMessage();
        absl::StatusOr<nlohmann::json> row =
            message->ParseFromString(rows[i])
                ? RowToJson(*message, table->second.schema, "")
                : absl::StatusOr<nlohmann::json>(absl::InvalidArgumentError("row does not decode"));
        if (!row.ok()) {
          bqs::RowError* e = response.add_row_errors();
          e->set_index(i);
          e->set_code(bqs::RowError::FIELDS_ERROR);
          e->set_message(std::string(row.status().message()));
        } else {
          decoded.push_back(*std::move(row));
        }
      }
      if (response.row_errors_size() > 0) {
        response.mutable_error()->set_code(static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
        response.mutable_error()->set_message("Rows rejected; none of this request was written");
      } else {
        std::vector<nlohmann::json>& target =
            explicit_stream && explicit_stream->type == bqs::WriteStream::PENDING
                ? explicit_stream->buffered
                : table->second.rows;
        const std::size_t offset = target.size();
        for (auto& row : decoded) target.push_back(std::move(row));
        response.mutable_append_result()->mutable_offset()->set_value(
            static_cast<std::int64_t>(offset));
      }
      response.set_write_stream(stream_name);
      if (!stream->Write(response)) break;
    }
    return grpc::Status::OK;
  }

  grpc::Status FinalizeWriteStream(grpc::ServerContext*, const bqs::FinalizeWriteStreamRequest* req,
                                   bqs::FinalizeWriteStreamResponse* out) override {
    std::lock_guard lock(state_->mu);
    auto it = state_->streams.find(req->name());
    if (it == state_->streams.end()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "Stream not found: " + req->name());
    }
    it->second.finalized = true;
    out->set_row_count(static_cast<std::int64_t>(it->second.buffered.size()));
    return grpc::Status::OK;
  }

  grpc::Status BatchCommitWriteStreams(grpc::ServerContext*,
                                       const bqs::BatchCommitWriteStreamsRequest* req,
                                       bqs::BatchCommitWriteStreamsResponse* out) override {
    std::lock_guard lock(state_->mu);
    for (const std::string& name : req->write_streams()) {
      auto it = state_->streams.find(name);
      if (it == state_->streams.end() || !it->second.finalized) {
        bqs::StorageError* e = out->add_stream_errors();
        e->set_code(it == state_->streams.end() ? bqs::StorageError::STREAM_NOT_FOUND
                                                : bqs::StorageError::STREAM_NOT_FOUND);
        e->set_entity(name);
        e->set_error_message(it == state_->streams.end() ? "not found" : "not finalized");
      }
    }
    if (out->stream_errors_size() > 0) return grpc::Status::OK;
    for (const std::string& name : req->write_streams()) {
      WriteStreamState& s = state_->streams[name];
      auto& rows = state_->tables[s.table].rows;
      for (auto& row : s.buffered) rows.push_back(std::move(row));
      s.buffered.clear();
    }
    out->mutable_commit_time()->set_seconds(std::chrono::duration_cast<std::chrono::seconds>(
                                                std::chrono::system_clock::now().time_since_epoch())
                                                .count());
    return grpc::Status::OK;
  }

 private:
  std::shared_ptr<BigQueryTestServer::State> state_;
};

void JsonError(httplib::Response& res, int code, const std::string& message) {
  res.status = code;
  res.set_content(nlohmann::json{{"error", {{"code", code}, {"message", message}}}}.dump(),
                  "application/json");
}

}  // namespace

struct BigQueryTestServer::Servers {
  std::unique_ptr<WriteService> service;
  std::unique_ptr<grpc::Server> grpc;
  int grpc_port = 0;
  httplib::Server http;
  int http_port = 0;
  dataflow::testing::HttpServerThread http_loop;
};

BigQueryTestServer::BigQueryTestServer() = default;

BigQueryTestServer::~BigQueryTestServer() {
  if (!servers_) return;
  servers_->http_loop.Stop();
  {
    std::lock_guard lock(state_->mu);
    state_->shutting_down = true;
  }
  state_->hang_cv.notify_all();
  if (servers_->grpc)
    servers_->grpc->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
}

absl::StatusOr<std::unique_ptr<BigQueryTestServer>> BigQueryTestServer::Start() {
  std::unique_ptr<BigQueryTestServer> server(new BigQueryTestServer());
  server->state_ = std::make_shared<State>();
  server->servers_ = std::make_unique<Servers>();
  Servers& s = *server->servers_;
  s.service = std::make_unique<WriteService>(server->state_);
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &s.grpc_port);
  builder.RegisterService(s.service.get());
  builder.SetMaxReceiveMessageSize(20 * 1024 * 1024);
  s.grpc = builder.BuildAndStart();
  if (!s.grpc || s.grpc_port == 0) return absl::UnavailableError("cannot start the gRPC server");

  auto state = server->state_;
  const std::string prefix = "/bigquery/v2/projects/([^/]+)/datasets";
  s.http.Post(prefix, [state](const httplib::Request& req, httplib::Response& res) {
    auto body = nlohmann::json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.contains("datasetReference")) {
      return JsonError(res, 400, "datasetReference is required");
    }
    const std::string key =
        absl::StrCat(req.matches[1].str(), "/", body["datasetReference"].value("datasetId", ""));
    std::lock_guard lock(state->mu);
    if (state->datasets.contains(key)) return JsonError(res, 409, "Already Exists: Dataset " + key);
    state->datasets[key] = true;
    res.set_content(body.dump(), "application/json");
  });
  s.http.Post(
      prefix + "/([^/]+)/tables", [state](const httplib::Request& req, httplib::Response& res) {
        const std::string p = req.matches[1], d = req.matches[2];
        auto body = nlohmann::json::parse(req.body, nullptr, false);
        if (body.is_discarded() || !body.contains("tableReference") || !body.contains("schema")) {
          return JsonError(res, 400, "tableReference and schema are required");
        }
        auto schema = bqstore::SchemaFromJson(body["schema"]);
        if (!schema.ok()) return JsonError(res, 400, std::string(schema.status().message()));
        const std::string t = body["tableReference"].value("tableId", "");
        std::lock_guard lock(state->mu);
        if (!state->datasets.contains(p + "/" + d)) {
          return JsonError(res, 404, "Not found: Dataset " + p + ":" + d);
        }
        const std::string key = State::TableKey(p, d, t);
        if (state->tables.contains(key)) {
          return JsonError(res, 409, "Already Exists: Table " + key);
        }
        state->tables[key] = Table{.schema = *schema, .resource = body};
        res.set_content(body.dump(), "application/json");
      });
  s.http.Get(prefix + "/([^/]+)/tables/([^/]+)", [state](const httplib::Request& req,
                                                         httplib::Response& res) {
    std::lock_guard lock(state->mu);
    auto it = state->tables.find(State::TableKey(req.matches[1], req.matches[2], req.matches[3]));
    if (it == state->tables.end()) {
      return JsonError(res, 404, "Not found: Table " + req.matches[3].str());
    }
    nlohmann::json out = it->second.resource;
    out["schema"] = bqstore::SchemaToJson(it->second.schema);
    res.set_content(out.dump(), "application/json");
  });
  s.http.Patch(prefix + "/([^/]+)/tables/([^/]+)", [state](const httplib::Request& req,
                                                           httplib::Response& res) {
    auto body = nlohmann::json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.contains("schema")) {
      return JsonError(res, 400, "schema is required");
    }
    auto schema = bqstore::SchemaFromJson(body["schema"]);
    if (!schema.ok()) return JsonError(res, 400, std::string(schema.status().message()));
    std::lock_guard lock(state->mu);
    auto it = state->tables.find(State::TableKey(req.matches[1], req.matches[2], req.matches[3]));
    if (it == state->tables.end()) return JsonError(res, 404, "Not found: Table");
    // As BigQuery: existing columns stay as they are; new ones must be NULLABLE.
    const TableSchema& old = it->second.schema;
    for (std::size_t i = 0; i < old.size(); ++i) {
      if (i >= schema->size() || !((*schema)[i] == old[i])) {
        return JsonError(
            res, 400,
            "Provided Schema does not match Table: field " + old[i].name + " changed or removed");
      }
    }
    for (std::size_t i = old.size(); i < schema->size(); ++i) {
      if ((*schema)[i].mode == FieldMode::kRequired) {
        return JsonError(res, 400, "Cannot add required field " + (*schema)[i].name);
      }
    }
    it->second.schema = *schema;
    nlohmann::json out = it->second.resource;
    out["schema"] = bqstore::SchemaToJson(*schema);
    res.set_content(out.dump(), "application/json");
  });
  s.http_port = s.http.bind_to_any_port("127.0.0.1");
  if (s.http_port <= 0) return absl::UnavailableError("cannot bind the REST server");
  s.http_loop.Start(s.http);
  return server;
}

std::string BigQueryTestServer::grpc_endpoint() const {
  return absl::StrCat("127.0.0.1:", servers_->grpc_port);
}
std::string BigQueryTestServer::rest_endpoint() const {
  return absl::StrCat("http://127.0.0.1:", servers_->http_port);
}

absl::Status BigQueryTestServer::CreateDataset(const std::string& project,
                                               const std::string& dataset) {
  std::lock_guard lock(state_->mu);
  state_->datasets[project + "/" + dataset] = true;
  return absl::OkStatus();
}

absl::Status BigQueryTestServer::CreateTable(const std::string& project, const std::string& dataset,
                                             const std::string& table, const TableSchema& schema) {
  std::lock_guard lock(state_->mu);
  state_->datasets[project + "/" + dataset] = true;
  state_->tables[State::TableKey(project, dataset, table)] = Table{.schema = schema};
  return absl::OkStatus();
}

absl::StatusOr<TableSchema> BigQueryTestServer::GetSchema(const std::string& project,
                                                          const std::string& dataset,
                                                          const std::string& table) const {
  std::lock_guard lock(state_->mu);
  auto it = state_->tables.find(State::TableKey(project, dataset, table));
  if (it == state_->tables.end()) return absl::NotFoundError("no such table");
  return it->second.schema;
}

std::vector<nlohmann::json> BigQueryTestServer::Rows(const std::string& project,
                                                     const std::string& dataset,
                                                     const std::string& table) const {
  std::lock_guard lock(state_->mu);
  auto it = state_->tables.find(State::TableKey(project, dataset, table));
  return it == state_->tables.end() ? std::vector<nlohmann::json>() : it->second.rows;
}

nlohmann::json BigQueryTestServer::TableResource(const std::string& project,
                                                 const std::string& dataset,
                                                 const std::string& table) const {
  std::lock_guard lock(state_->mu);
  auto it = state_->tables.find(State::TableKey(project, dataset, table));
  return it == state_->tables.end() ? nlohmann::json() : it->second.resource;
}

void BigQueryTestServer::FailNextAppends(int count, absl::Status status) {
  std::lock_guard lock(state_->mu);
  state_->fail_count = count;
  state_->fail_status = std::move(status);
}

void BigQueryTestServer::HangAppends(bool hang) {
  {
    std::lock_guard lock(state_->mu);
    state_->hang_appends = hang;
  }
  state_->hang_cv.notify_all();
}

std::uint64_t BigQueryTestServer::hung_appends_ended() const {
  std::lock_guard lock(state_->mu);
  return state_->hung_appends_ended;
}

std::uint64_t BigQueryTestServer::append_requests() const {
  std::lock_guard lock(state_->mu);
  return state_->append_requests;
}
std::uint64_t BigQueryTestServer::append_streams() const {
  std::lock_guard lock(state_->mu);
  return state_->append_streams;
}
std::size_t BigQueryTestServer::largest_request_bytes() const {
  std::lock_guard lock(state_->mu);
  return state_->largest_request;
}

}  // namespace dataflow::testing

#include "pipeline_outputs.h"

#include <absl/strings/str_cat.h>
#include <absl/strings/str_replace.h>
#include <absl/strings/str_split.h>
#include <sqlite3.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "dataflow/icestore/archival.h"
#include "dataflow/icestore/gzip.h"
#include "dataflow/messagepipeline/json_limits.h"
#include "dataflow/messagepipeline/message.h"

namespace dataflow::app {
namespace {

namespace fs = std::filesystem;
namespace mp = messagepipeline;
using Json = nlohmann::json;

// A payload as JSON when it is JSON, else as text.
Json PayloadJson(const std::string& bytes) {
  auto parsed = mp::ParseJsonBounded(bytes);
  return parsed.ok() ? *std::move(parsed) : Json(bytes);
}

}  // namespace

// What a case's expectations see of a message's bytes: the payload, unwrapped when the bytes
// are an envelope by the rule every consuming service applies (input_format auto,
// messagepipeline::DecodeInput), with the envelope's enrichment data; `envelope` says which.
Json DataJson(const std::string& bytes, const nlohmann::json& enrichment) {
  auto decoded = mp::DecodeInput(bytes, mp::InputFormat::kAuto);
  if (decoded.ok() && decoded->has_value()) {
    const mp::MessageData& envelope = **decoded;
    return Json{{"envelope", true},
                {"payload", PayloadJson(envelope.payload)},
                {"enrichment", envelope.enrichment_data}};
  }
  return Json{{"envelope", false}, {"payload", PayloadJson(bytes)}, {"enrichment", enrichment}};
}

absl::StatusOr<std::vector<Json>> ReadRows(const std::string& db, const std::string& table) {
  std::vector<Json> rows;
  if (!fs::exists(db)) return rows;  // nothing was ever written
  sqlite3* conn = nullptr;
  std::unique_ptr<sqlite3, decltype(&sqlite3_close)> guard(nullptr, sqlite3_close);
  if (sqlite3_open_v2(db.c_str(), &conn, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    guard.reset(conn);
    return absl::InternalError(absl::StrCat("cannot open ", db));
  }
  guard.reset(conn);
  sqlite3_stmt* stmt = nullptr;
  std::string quoted = table;
  absl::StrReplaceAll({{"\"", "\"\""}}, &quoted);
  const std::string sql = absl::StrCat("SELECT * FROM \"", quoted, "\"");
  if (sqlite3_prepare_v2(conn, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
    return rows;  // the table is created with the first batch
  }
  std::unique_ptr<sqlite3_stmt, decltype(&sqlite3_finalize)> st(stmt, sqlite3_finalize);
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    Json row = Json::object();
    for (int i = 0; i < sqlite3_column_count(stmt); ++i) {
      const std::string name = sqlite3_column_name(stmt, i);
      switch (sqlite3_column_type(stmt, i)) {
        case SQLITE_INTEGER:
          row[name] = sqlite3_column_int64(stmt, i);
          break;
        case SQLITE_FLOAT:
          row[name] = sqlite3_column_double(stmt, i);
          break;
        case SQLITE_NULL:
          row[name] = nullptr;
          break;
        default:
          row[name] = std::string(reinterpret_cast<const char*>(sqlite3_column_text(stmt, i)),
                                  static_cast<std::size_t>(sqlite3_column_bytes(stmt, i)));
      }
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

absl::StatusOr<std::vector<Json>> ReadArchive(const std::string& root) {
  std::vector<Json> lines;
  if (!fs::exists(root)) return lines;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (!entry.is_regular_file() || entry.path().extension() != ".gz") continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    auto text = icestore::GzipDecompress(bytes.str());
    if (!text.ok()) return text.status();
    for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
      auto decoded = icestore::DecodeArchivalLine(std::string_view(line.data(), line.size()));
      if (!decoded.ok()) return decoded.status();
      Json archived = DataJson(decoded->original_payload, nullptr);
      archived["batch_key"] = decoded->batch_key;
      archived["object"] = fs::relative(entry.path(), root).string();
      lines.push_back(std::move(archived));
    }
  }
  return lines;
}

}  // namespace dataflow::app

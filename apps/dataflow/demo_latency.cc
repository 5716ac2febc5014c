#include "demo_latency.h"

#include <absl/time/time.h>
#include <sqlite3.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>

namespace dataflow::app {

namespace fs = std::filesystem;

LatencyProbe::LatencyProbe(fs::path db, std::string table)
    : db_(std::move(db)), table_(std::move(table)) {
  thread_ = std::jthread([this](std::stop_token st) { Run(st); });
}

void LatencyProbe::Stop() {
  if (thread_.joinable()) {
    thread_.request_stop();
    thread_.join();
  }
}

LatencyProbe::Summary LatencyProbe::Summarise() {
  Summary out;
  std::sort(latencies_ms_.begin(), latencies_ms_.end());
  out.samples = latencies_ms_.size();
  if (first_sent_) out.seconds = std::chrono::duration<double>(last_seen_ - *first_sent_).count();
  if (latencies_ms_.empty()) return out;
  // Nearest rank: the smallest sample with at least p of all samples at or below it.
  auto rank = [&](double p) {
    const auto n =
        static_cast<std::size_t>(std::ceil(p * static_cast<double>(latencies_ms_.size())));
    return latencies_ms_[std::clamp<std::size_t>(n, 1, latencies_ms_.size()) - 1];
  };
  out.p50_ms = rank(0.50);
  out.p99_ms = rank(0.99);
  out.max_ms = latencies_ms_.back();
  return out;
}

void LatencyProbe::Run(const std::stop_token& st) {
  sqlite3* conn = nullptr;
  std::int64_t last_rowid = 0;
  const std::string sql =
      "SELECT rowid, sent_at FROM " + table_ + " WHERE rowid > ? ORDER BY rowid LIMIT 10000";
  sqlite3_stmt* stmt = nullptr;
  while (!st.stop_requested()) {
    if (conn == nullptr && fs::exists(db_) &&
        sqlite3_open_v2(db_.c_str(), &conn, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
      sqlite3_close(conn);
      conn = nullptr;
    }
    // The table appears with the first batch.
    if (conn != nullptr && stmt == nullptr &&
        sqlite3_prepare_v2(conn, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
      stmt = nullptr;
    }
    if (stmt != nullptr) {
      sqlite3_bind_int64(stmt, 1, last_rowid);
      const auto now = std::chrono::system_clock::now();
      while (sqlite3_step(stmt) == SQLITE_ROW) {
        last_rowid = sqlite3_column_int64(stmt, 0);
        const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 1));
        absl::Time sent;
        std::string error;
        if (text == nullptr || !absl::ParseTime(absl::RFC3339_full, text, &sent, &error)) continue;
        const auto sent_at = absl::ToChronoTime(sent);
        latencies_ms_.push_back(std::chrono::duration<double, std::milli>(now - sent_at).count());
        if (!first_sent_ || sent_at < *first_sent_) first_sent_ = sent_at;
        last_seen_ = now;
      }
      sqlite3_reset(stmt);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  sqlite3_finalize(stmt);
  sqlite3_close(conn);
}

}  // namespace dataflow::app

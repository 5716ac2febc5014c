#include "dataflow/bqstore/sqlite_inserter.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>

#include "dataflow_testing/test_dir.h"

namespace dataflow::bqstore {
namespace {

struct Point {
  std::int64_t x = 0;
  std::int64_t y = 0;
};
DATAFLOW_DESCRIBE(Point, x, y);

struct Reading {
  std::string device;
  double value = 0;
  bool ok = false;
  Timestamp at;
  std::optional<std::string> note;
  Bytes raw;
  std::vector<std::int64_t> samples;
  Point where;
};
DATAFLOW_DESCRIBE(Reading, device, value, ok, at, note, raw, samples, where);

class SqliteInserterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = dataflow::testing::FreshTestDir("bqstore_sqlite");
    path_ = (dir_ / "warehouse.db").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Runs a query with the sqlite3 C API on a separate connection (a real reader).
  std::vector<std::vector<std::string>> Query(const std::string& sql) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    std::vector<std::vector<std::string>> rows;
    while (stmt && sqlite3_step(stmt) == SQLITE_ROW) {
      std::vector<std::string> row;
      for (int i = 0; i < sqlite3_column_count(stmt); ++i) {
        const auto* text = sqlite3_column_text(stmt, i);
        row.push_back(
            text ? std::string(reinterpret_cast<const char*>(text), sqlite3_column_bytes(stmt, i))
                 : "NULL");
      }
      rows.push_back(std::move(row));
    }
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return rows;
  }

  std::filesystem::path dir_;
  std::string path_;
};

TEST_F(SqliteInserterTest, RoundTripInOneTransactionWithWal) {
  auto inserter = SqliteInserter<Reading>::Create({.path = path_, .table = "readings"});
  ASSERT_TRUE(inserter.ok()) << inserter.status();
  std::vector<Reading> rows;
  for (int i = 0; i < 50; ++i) {
    rows.push_back({.device = "dev-" + std::to_string(i),
                    .value = i * 0.5,
                    .ok = i % 2 == 0,
                    .at = Timestamp(std::chrono::seconds(1767225600 + i)),
                    .note = i % 3 == 0 ? std::optional<std::string>("n") : std::nullopt,
                    .raw = {std::string("\x01\x02", 2)},
                    .samples = {i, i + 1},
                    .where = {.x = i, .y = -i}});
  }
  auto result = (*inserter)->Insert(rows);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->empty());

  EXPECT_EQ(Query("PRAGMA journal_mode")[0][0], "wal");
  EXPECT_EQ(Query("SELECT COUNT(*) FROM readings")[0][0], "50");
  auto row = Query(
      "SELECT device, value, ok, at, note, length(raw), samples, where_json FROM (SELECT *, "
      "\"where\" AS where_json FROM readings) WHERE device = 'dev-3'");
  ASSERT_EQ(row.size(), 1u);
  EXPECT_EQ(row[0][0], "dev-3");
  EXPECT_EQ(row[0][1], "1.5");
  EXPECT_EQ(row[0][2], "0");
  EXPECT_EQ(row[0][3], "2026-01-01T00:00:03Z");
  EXPECT_EQ(row[0][4], "n");
  EXPECT_EQ(row[0][5], "2");
  EXPECT_EQ(row[0][6], "[3,4]");
  EXPECT_EQ(nlohmann::json::parse(row[0][7]), (nlohmann::json{{"x", 3}, {"y", -3}}));
  EXPECT_EQ(Query("SELECT note FROM readings WHERE device = 'dev-1'")[0][0], "NULL");
  EXPECT_TRUE((*inserter)->Close().ok());
  EXPECT_EQ((*inserter)->Insert(rows).status().code(), absl::StatusCode::kFailedPrecondition);
}

// A batch's messages are acked once it commits: each COMMIT must reach the disk (FULL), not
// only the OS (NORMAL), for acked rows to survive a power loss.
TEST_F(SqliteInserterTest, CommitsAreSyncedToDiskByDefault) {
  auto inserter = SqliteInserter<Reading>::Create({.path = path_, .table = "readings"});
  ASSERT_TRUE(inserter.ok()) << inserter.status();
  auto level = (*inserter)->Pragma("synchronous");
  ASSERT_TRUE(level.ok()) << level.status();
  EXPECT_EQ(*level, 2);  // FULL
  auto normal =
      SqliteInserter<Reading>::Create({.path = path_,
                                       .table = "readings",
                                       .synchronous = SqliteInserterOptions::Synchronous::kNormal});
  ASSERT_TRUE(normal.ok()) << normal.status();
  EXPECT_EQ(*(*normal)->Pragma("synchronous"), 1);  // NORMAL, only when asked for
  EXPECT_FALSE((*inserter)->Pragma("synchronous; DROP TABLE readings").ok());
}

TEST_F(SqliteInserterTest, ReopensExistingTableAndAppends) {
  {
    auto first = SqliteInserter<Point>::Create({.path = path_, .table = "points"});
    ASSERT_TRUE(first.ok());
    std::vector<Point> rows = {{1, 2}};
    ASSERT_TRUE((*first)->InsertBatch(rows).ok());
  }
  auto second = SqliteInserter<Point>::Create({.path = path_, .table = "points"});
  ASSERT_TRUE(second.ok()) << second.status();
  std::vector<Point> rows = {{3, 4}, {5, 6}};
  ASSERT_TRUE((*second)->InsertBatch(rows).ok());
  EXPECT_EQ(Query("SELECT SUM(x) FROM points")[0][0], "9");
}

TEST_F(SqliteInserterTest, ExistingTableWithOtherColumnsIsAClearError) {
  ASSERT_TRUE(SqliteInserter<Point>::Create({.path = path_, .table = "t"}).ok());
  auto reading = SqliteInserter<Reading>::Create({.path = path_, .table = "t"});
  EXPECT_EQ(reading.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(reading.status().message().find("device"), std::string::npos) << reading.status();
}

TEST_F(SqliteInserterTest, FailedBatchIsRolledBackWhole) {
  auto inserter = SqliteInserter<Point>::Create({.path = path_, .table = "points"});
  ASSERT_TRUE(inserter.ok());
  // A trigger standing in for any constraint failure in the middle of a batch.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "CREATE TRIGGER no_sevens BEFORE INSERT ON points WHEN NEW.x = 7 "
                         "BEGIN SELECT RAISE(ABORT, 'seven'); END",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  std::vector<Point> rows = {{1, 0}, {7, 0}, {2, 0}};
  absl::Status s = (*inserter)->InsertBatch(rows);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("seven"), std::string::npos) << s;
  EXPECT_EQ(Query("SELECT COUNT(*) FROM points")[0][0], "0");
  std::vector<Point> good = {{1, 0}, {2, 0}};
  EXPECT_TRUE((*inserter)->InsertBatch(good).ok());
  EXPECT_EQ(Query("SELECT COUNT(*) FROM points")[0][0], "2");
}

TEST_F(SqliteInserterTest, ValidatesOptions) {
  EXPECT_EQ(SqliteInserter<Point>::Create({.path = "", .table = "t"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SqliteInserter<Point>::Create({.path = path_, .table = ""}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      SqliteInserter<Point>::Create({.path = (dir_ / "no/such/dir/x.db").string(), .table = "t"})
          .status()
          .code(),
      absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace dataflow::bqstore

// JsonRowInserter against the BigQuery test server: every column type from JSON, a bad
// row among good ones, and schema evolution adding a column.
#include "dataflow/bqstore/json_row_inserter.h"

#include <gtest/gtest.h>

#include <map>

#include "bigquery_test_server.h"

namespace dataflow::bqstore {
namespace {

using dataflow::testing::BigQueryTestServer;
using namespace std::chrono_literals;

const TableSchema kSchema = {
    {.name = "id", .type = FieldType::kString, .mode = FieldMode::kRequired},
    {.name = "n", .type = FieldType::kInt64},
    {.name = "x", .type = FieldType::kFloat64},
    {.name = "ok", .type = FieldType::kBool},
    {.name = "blob", .type = FieldType::kBytes},
    {.name = "at", .type = FieldType::kTimestamp},
    {.name = "tags", .type = FieldType::kString, .mode = FieldMode::kRepeated},
    {.name = "loc",
     .type = FieldType::kRecord,
     .fields = {{.name = "lat", .type = FieldType::kFloat64},
                {.name = "lon", .type = FieldType::kFloat64}}}};

class JsonRowInserterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = BigQueryTestServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ASSERT_TRUE(server_->CreateTable("p", "ds", "events", kSchema).ok());
  }
  JsonRowInserterOptions Options() const {
    JsonRowInserterOptions o;
    o.writer.project_id = "p";
    o.writer.dataset_id = "ds";
    o.writer.table_id = "events";
    o.writer.channel.endpoint = server_->grpc_endpoint();
    o.writer.channel.insecure = true;
    o.admin.endpoint = server_->rest_endpoint();
    return o;
  }
  std::unique_ptr<BigQueryTestServer> server_;
};

TEST_F(JsonRowInserterTest, EveryTypeFromJson) {
  auto inserter = JsonRowInserter::Create(Options());
  ASSERT_TRUE(inserter.ok()) << inserter.status();
  std::vector<nlohmann::json> rows = {
      {{"id", "a"},
       {"n", 5},
       {"x", 1.5},
       {"ok", true},
       {"blob", "AAE="},
       {"at", "2026-01-01T00:00:00.000001Z"},
       {"tags", {"t1", "t2"}},
       {"loc", {{"lat", 1.0}, {"lon", 2.0}}}},
      {{"id", "b"}, {"n", "-9007199254740993"}, {"at", 1767225600000000}}};
  // (the server checks BigQuery's TIMESTAMP range: see BadRowIsReportedAndTheRestStored)
  auto result = (*inserter)->Insert(rows);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->empty());
  auto stored = server_->Rows("p", "ds", "events");
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_EQ(stored[0]["n"], 5);
  EXPECT_EQ(stored[0]["x"], 1.5);
  EXPECT_EQ(stored[0]["ok"], true);
  EXPECT_EQ(stored[0]["blob"], "AAE=");
  EXPECT_EQ(stored[0]["at"], "2026-01-01T00:00:00.000001Z");
  EXPECT_EQ(stored[0]["tags"], nlohmann::json({"t1", "t2"}));
  EXPECT_EQ(stored[0]["loc"]["lon"], 2.0);
  EXPECT_EQ(stored[1]["n"], -9007199254740993);  // exact, beyond double precision
  EXPECT_EQ(stored[1]["at"], "2026-01-01T00:00:00Z");
  EXPECT_TRUE(stored[1]["x"].is_null());
  EXPECT_EQ(stored[1]["tags"], nlohmann::json::array());
}

TEST_F(JsonRowInserterTest, BadRowIsReportedAndTheRestStored) {
  auto inserter = JsonRowInserter::Create(Options());
  ASSERT_TRUE(inserter.ok()) << inserter.status();
  std::vector<nlohmann::json> rows = {{{"id", "good-1"}},
                                      {{"id", "bad"}, {"loc", {{"lat", "north"}}}},
                                      {{"n", 1}},  // REQUIRED id missing
                                      {{"id", "good-2"}, {"surprise", 1}},
                                      {{"id", "late"}, {"at", 253402300800000000}},  // year 10000
                                      {{"id", "good-3"}}};
  auto result = (*inserter)->Insert(rows);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->size(), 4u);
  EXPECT_EQ((*result)[0].index, 1u);
  EXPECT_NE((*result)[0].status.message().find("loc.lat: expected a number"), std::string::npos)
      << (*result)[0].status;
  EXPECT_EQ((*result)[1].index, 2u);
  EXPECT_NE((*result)[1].status.message().find("id: required"), std::string::npos);
  EXPECT_EQ((*result)[2].index, 3u);
  EXPECT_NE((*result)[2].status.message().find("surprise: no such column"), std::string::npos);
  EXPECT_EQ((*result)[3].index, 4u);  // rejected by the server, after the client's checks
  EXPECT_NE((*result)[3].status.message().find("at: timestamp"), std::string::npos)
      << (*result)[3].status;
  auto stored = server_->Rows("p", "ds", "events");
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_EQ(stored[0]["id"], "good-1");
  EXPECT_EQ(stored[1]["id"], "good-3");
}

TEST_F(JsonRowInserterTest, SchemaEvolutionAddsNullableColumns) {
  JsonRowInserterOptions options = Options();
  options.add_unknown_fields = true;
  auto inserter = JsonRowInserter::Create(options);
  ASSERT_TRUE(inserter.ok()) << inserter.status();
  std::vector<nlohmann::json> rows = {{{"id", "a"}, {"firmware", "v2"}, {"battery", 0.5}},
                                      {{"id", "b"}}};
  auto result = (*inserter)->Insert(rows);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->empty());
  auto schema = server_->GetSchema("p", "ds", "events");
  ASSERT_TRUE(schema.ok());
  ASSERT_EQ(schema->size(), kSchema.size() + 2);
  std::map<std::string, FieldSchema> added;
  for (std::size_t i = kSchema.size(); i < schema->size(); ++i)
    added[(*schema)[i].name] = (*schema)[i];
  ASSERT_TRUE(added.contains("firmware") && added.contains("battery"));
  EXPECT_EQ(added["firmware"].type, FieldType::kString);
  EXPECT_EQ(added["firmware"].mode, FieldMode::kNullable);
  EXPECT_EQ(added["battery"].type, FieldType::kFloat64);
  auto stored = server_->Rows("p", "ds", "events");
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_EQ(stored[0]["firmware"], "v2");
  EXPECT_EQ(stored[0]["battery"], 0.5);
  EXPECT_TRUE(stored[1]["firmware"].is_null());
}

TEST_F(JsonRowInserterTest, UnknownTableIsNotFound) {
  JsonRowInserterOptions options = Options();
  options.writer.table_id = "nope";
  EXPECT_EQ(JsonRowInserter::Create(options).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace dataflow::bqstore

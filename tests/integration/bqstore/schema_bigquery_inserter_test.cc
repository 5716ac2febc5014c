// SchemaBigQueryInserter against the BigQuery test server (the real Storage Write gRPC and
// REST wire APIs on loopback): the bigquery service storing a payload unlike the demo's
// with a config schema (table created from it), every column read back value by value, rows
// that do not convert and rows the server rejects dead-lettered naming the column; and
// `from_table`, including a column added to the table while running.
#include "dataflow/bqstore/schema_bigquery_inserter.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <mutex>
#include <thread>

#include "bigquery_test_server.h"
#include "dataflow/bqstore/bigquery_service.h"
#include "dataflow/messagepipeline/dead_letter.h"
#include "dataflow/messagepipeline/in_process_broker.h"
#include "dataflow_testing/server_process.h"
#include "schema_rows_sample.h"

namespace dataflow::bqstore {
namespace {

using dataflow::testing::BigQueryTestServer;
using Json = nlohmann::json;
using namespace std::chrono_literals;

class SchemaBigQueryInserterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto server = BigQueryTestServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = server->release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  std::string Table() const {
    return ::testing::UnitTest::GetInstance()->current_test_info()->name();
  }
  SchemaBigQueryInserterOptions Options() const {
    SchemaBigQueryInserterOptions o;
    o.writer.project_id = "p";
    o.writer.dataset_id = "ds";
    o.writer.table_id = Table();
    o.writer.channel.endpoint = server_->grpc_endpoint();
    o.writer.channel.insecure = true;
    o.writer.backoff = {.initial = 1ms, .maximum = 10ms};
    o.admin.endpoint = server_->rest_endpoint();
    o.table.create_dataset = true;
    return o;
  }
  static BigQueryTestServer* server_;
};
BigQueryTestServer* SchemaBigQueryInserterTest::server_ = nullptr;

TEST_F(SchemaBigQueryInserterTest, ServiceStoresEveryColumnAndDeadLettersBadRowsNamingTheColumn) {
  SchemaBigQueryInserterOptions options = Options();
  auto columns = ColumnsFromJson(sample::Columns());
  ASSERT_TRUE(columns.ok()) << columns.status();
  options.columns = *columns;
  auto created = SchemaBigQueryInserter::Create(options);
  ASSERT_TRUE(created.ok()) << created.status();
  std::shared_ptr<SchemaBigQueryInserter> inserter = *std::move(created);
  // The table was created from the config schema.
  auto table_schema = server_->GetSchema("p", "ds", Table());
  ASSERT_TRUE(table_schema.ok()) << table_schema.status();
  EXPECT_EQ(*table_schema, inserter->converter()->schema());

  auto broker = messagepipeline::InProcessBroker::Create();
  ASSERT_TRUE(broker->CreateTopic("in").ok());
  ASSERT_TRUE(broker->CreateSubscription("in-sub", "in").ok());
  ASSERT_TRUE(broker->CreateTopic("dead").ok());
  ASSERT_TRUE(broker->CreateSubscription("dead-sub", "dead").ok());
  std::mutex mu;
  std::vector<std::string> dead;
  auto dead_consumer = *broker->NewConsumer("dead-sub");
  ASSERT_TRUE(dead_consumer->Start().ok());
  std::jthread dead_reader([&] {
    while (auto m = dead_consumer->Messages().Pop()) {
      {
        std::lock_guard lock(mu);
        dead.push_back(m->attributes.at(std::string(messagepipeline::kDeadLetterErrorAttribute)));
      }
      m->Ack();
    }
  });
  auto dead_count = [&] {
    std::lock_guard lock(mu);
    return dead.size();
  };
  auto consumer = broker->NewConsumer("in-sub");
  ASSERT_TRUE(consumer.ok());
  auto service =
      NewBigQueryService<RowInput>({.common = {.name = "schema-bq",
                                               .num_workers = 2,
                                               .dead_letter = broker->NewDeadLetterSink("dead")},
                                    .batch_size = 8,
                                    .flush_interval = 50ms},
                                   *consumer, RowInputTransformer(), inserter);
  ASSERT_TRUE(service.ok()) << service.status();
  ASSERT_TRUE((*service)->Start().ok());
  constexpr int kGood = 12;
  for (int i = 0; i < kGood; ++i) {
    ASSERT_TRUE(broker
                    ->Publish("in", {.payload = sample::Envelope(i, sample::Payload(i))},
                              sample::Attributes(i))
                    .ok());
  }
  Json fractional = sample::Payload(100);
  fractional["seq"] = 1.5;
  Json no_ts = sample::Payload(101);
  no_ts.erase("ts");
  ASSERT_TRUE(broker->Publish("in", {.payload = sample::Envelope(100, fractional)}).ok());
  ASSERT_TRUE(broker->Publish("in", {.payload = sample::Envelope(101, no_ts)}).ok());
  // Converts, but the server rejects the row (invalid UTF-8 in a STRING): a row error.
  ASSERT_TRUE(broker
                  ->Publish("in", {.payload = sample::Envelope(102, sample::Payload(102))},
                            {{"mqtt_topic", "devices/\xff/telemetry"}})
                  .ok());
  ASSERT_TRUE(dataflow::testing::WaitFor(
      [&] {
        auto s = broker->Stats("in-sub");
        return s.ok() && s->acked == kGood + 3 && dead_count() == 3;
      },
      20s));
  ASSERT_TRUE((*service)->Stop(10s).ok());
  ASSERT_TRUE(inserter->Close().ok());
  (void)dead_consumer->Stop(std::chrono::steady_clock::now());
  dead_reader.join();

  std::vector<Json> rows = server_->Rows("p", "ds", Table());
  ASSERT_EQ(rows.size(), static_cast<std::size_t>(kGood));
  std::sort(rows.begin(), rows.end(),
            [](const Json& a, const Json& b) { return a["seq"] < b["seq"]; });
  for (int i = 0; i < kGood; ++i) {
    const Json expected = sample::Expected(i);
    for (auto it = expected.begin(); it != expected.end(); ++it) {
      EXPECT_EQ(rows[i][it.key()], it.value()) << "row " << i << " column " << it.key();
    }
    EXPECT_EQ(rows[i].size(), expected.size());
  }
  std::sort(dead.begin(), dead.end());
  ASSERT_EQ(dead.size(), 3u);
  EXPECT_NE(dead[0].find("column seq: number 1.5 is not an integer"), std::string::npos) << dead[0];
  EXPECT_NE(dead[1].find("column ts: REQUIRED value is missing"), std::string::npos) << dead[1];
  EXPECT_NE(dead[2].find("topic: invalid UTF-8"), std::string::npos) << dead[2];
}

TEST_F(SchemaBigQueryInserterTest, ExistingTableThatDoesNotFitTheConfigSchemaIsAClearError) {
  ASSERT_TRUE(server_->CreateDataset("p", "ds").ok() || true);
  ASSERT_TRUE(
      server_->CreateTable("p", "ds", Table(), {{.name = "seq", .type = FieldType::kString}}).ok());
  SchemaBigQueryInserterOptions options = Options();
  options.columns = *ColumnsFromJson(Json::parse(R"([{"name": "seq", "type": "INT64"}])"));
  auto inserter = SchemaBigQueryInserter::Create(options);
  ASSERT_FALSE(inserter.ok());
  EXPECT_NE(inserter.status().message().find("seq: type INTEGER but the table has STRING"),
            std::string::npos)
      << inserter.status();
}

RowInput Input(const Json& payload) {
  RowInput input;
  input.payload = payload;
  input.id = "id";
  return input;
}

TEST_F(SchemaBigQueryInserterTest, FromTablePicksUpAColumnAddedWhileRunning) {
  (void)server_->CreateDataset("p", "ds");
  const TableSchema initial = {
      {.name = "device", .type = FieldType::kString, .mode = FieldMode::kRequired},
      {.name = "temp", .type = FieldType::kFloat64}};
  ASSERT_TRUE(server_->CreateTable("p", "ds", Table(), initial).ok());
  SchemaBigQueryInserterOptions options = Options();
  options.sources = {{"device", "payload.dev.id"}};
  options.schema_refresh_interval = 0ms;  // refetch whenever a row has an unknown field
  auto created = SchemaBigQueryInserter::Create(options);
  ASSERT_TRUE(created.ok()) << created.status();
  auto& inserter = *created;

  std::vector<RowInput> first = {Input({{"dev", {{"id", "a"}}}, {"temp", 1.5}, {"hum", 40}})};
  auto result = inserter->Insert(first);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->empty());
  EXPECT_EQ(inserter->schema_fetches(), 1u);  // "hum" (and "dev") are no column: looked again

  // Someone adds a column to the table (tables.patch, as BigQuery allows), while running.
  TableSchema wider = initial;
  wider.push_back({.name = "hum", .type = FieldType::kInt64});
  auto admin = TableAdmin::Create({.project_id = "p", .endpoint = server_->rest_endpoint()});
  ASSERT_TRUE(admin.ok());
  ASSERT_TRUE((*admin)->PatchSchema("ds", Table(), wider).ok());

  std::vector<RowInput> second = {Input({{"dev", {{"id", "b"}}}, {"temp", 2.5}, {"hum", 41}}),
                                  Input({{"dev", {{"id", "c"}}}, {"hum", "x"}})};
  result = inserter->Insert(second);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->size(), 1u);  // the new column is converted by its rules too
  EXPECT_EQ((*result)[0].index, 1u);
  EXPECT_EQ((*result)[0].status.message(), "column hum: \"x\" is not a 64-bit integer");
  EXPECT_EQ(inserter->converter()->schema(), wider);

  const std::vector<Json> rows = server_->Rows("p", "ds", Table());
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0]["device"], "a");
  EXPECT_EQ(rows[0]["temp"], 1.5);
  EXPECT_TRUE(!rows[0].contains("hum") || rows[0]["hum"].is_null());
  EXPECT_EQ(rows[1], Json({{"device", "b"}, {"temp", 2.5}, {"hum", 41}}));
  ASSERT_TRUE(inserter->Close().ok());
}

TEST_F(SchemaBigQueryInserterTest, FromTableRefetchIsRateLimited) {
  (void)server_->CreateDataset("p", "ds");
  ASSERT_TRUE(
      server_->CreateTable("p", "ds", Table(), {{.name = "a", .type = FieldType::kInt64}}).ok());
  SchemaBigQueryInserterOptions options = Options();
  options.schema_refresh_interval = std::chrono::hours(1);
  auto inserter = SchemaBigQueryInserter::Create(options);
  ASSERT_TRUE(inserter.ok()) << inserter.status();
  std::vector<RowInput> rows = {Input({{"a", 1}, {"extra", 2}})};
  for (int k = 0; k < 3; ++k) ASSERT_TRUE((*inserter)->Insert(rows).ok());
  EXPECT_EQ((*inserter)->schema_fetches(), 0u);  // within the interval of the first fetch
  EXPECT_EQ(server_->Rows("p", "ds", Table()).size(), 3u);
  ASSERT_TRUE((*inserter)->Close().ok());
  auto closed = (*inserter)->Insert(rows);
  EXPECT_TRUE(absl::IsFailedPrecondition(closed.status())) << closed.status();
}

TEST_F(SchemaBigQueryInserterTest, FromTableOfAMissingTableIsNotFound) {
  auto inserter = SchemaBigQueryInserter::Create(Options());
  ASSERT_FALSE(inserter.ok());
  EXPECT_TRUE(absl::IsNotFound(inserter.status())) << inserter.status();
}

}  // namespace
}  // namespace dataflow::bqstore

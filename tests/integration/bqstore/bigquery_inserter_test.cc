// BigQueryInserter against the BigQuery test server (real Storage Write gRPC and REST wire
// APIs on loopback): table creation, append and read-back, splitting, stream reuse,
// retries, row errors, schema mismatch, and the service's redelivery after a failed append.
#include "dataflow/bqstore/bigquery_inserter.h"

#include <gtest/gtest.h>

#include <future>
#include <set>

#include "bigquery_test_server.h"
#include "dataflow/bqstore/bigquery_service.h"
#include "dataflow/messagepipeline/in_process_broker.h"
#include "dataflow_testing/server_process.h"
#ifdef DATAFLOW_TEST_HAS_PUBSUB
#include "dataflow/pubsub/admin.h"
#include "dataflow/pubsub/consumer.h"
#include "dataflow/pubsub/producer.h"
#include "dataflow_testing/pubsub_emulator.h"
#endif

namespace dataflow::bqstore {
namespace {

using dataflow::testing::BigQueryTestServer;
using namespace std::chrono_literals;

struct Location {
  double lat = 0;
  double lon = 0;
};
DATAFLOW_DESCRIBE(Location, lat, lon);

// The original's example row (MonitorReadings), plus the remaining types.
struct MonitorReading {
  std::string device_id;
  Timestamp timestamp;
  double temperature = 0;
  std::int64_t sequence = 0;
  bool alarm = false;
  std::optional<std::string> note;
  Bytes raw;
  std::vector<std::int64_t> samples;
  Location location;
  std::vector<Location> trail;
};
DATAFLOW_DESCRIBE(MonitorReading, device_id, timestamp, temperature, sequence, alarm, note, raw,
                  samples, location, trail);

MonitorReading Reading(int i, std::size_t pad = 0) {
  return MonitorReading{.device_id = "dev-" + std::to_string(i) + std::string(pad, 'x'),
                        .timestamp = Timestamp(std::chrono::microseconds(1767225600000000 + i)),
                        .temperature = 20.5 + i,
                        .sequence = i,
                        .alarm = i % 2 == 1,
                        .note = i % 3 == 0 ? std::optional<std::string>("n") : std::nullopt,
                        .raw = {std::string("\x00\x01", 2)},
                        .samples = {i, -i},
                        .location = {.lat = 1.5, .lon = -i * 1.0},
                        .trail = {{.lat = 1, .lon = 2}}};
}

class BigQueryInserterTest : public ::testing::Test {
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

  // A unique table per test, so tests never see each other's rows.
  std::string Table() const {
    return ::testing::UnitTest::GetInstance()->current_test_info()->name();
  }

  BigQueryInserterOptions Options(const std::string& dataset = "ds") const {
    BigQueryInserterOptions o;
    o.writer.project_id = "p";
    o.writer.dataset_id = dataset;
    o.writer.table_id = Table();
    o.writer.channel.endpoint = server_->grpc_endpoint();
    o.writer.channel.insecure = true;
    o.writer.backoff = {.initial = 1ms, .maximum = 10ms};
    o.admin.endpoint = server_->rest_endpoint();
    o.table.create_dataset = true;
    return o;
  }

  std::vector<nlohmann::json> Rows(const std::string& dataset = "ds") const {
    return server_->Rows("p", dataset, Table());
  }

  static BigQueryTestServer* server_;
};
BigQueryTestServer* BigQueryInserterTest::server_ = nullptr;

TEST_F(BigQueryInserterTest, CreatesTableAppendsAndReadsBackExactly) {
  BigQueryInserterOptions options = Options();
  options.table.partition_field = "timestamp";
  options.table.clustering_fields = {"device_id"};
  auto inserter = BigQueryInserter<MonitorReading>::Create(options);
  ASSERT_TRUE(inserter.ok()) << inserter.status();
  auto schema = server_->GetSchema("p", "ds", Table());
  ASSERT_TRUE(schema.ok());
  EXPECT_EQ(*schema, InferSchema<MonitorReading>());
  const nlohmann::json resource = server_->TableResource("p", "ds", Table());
  EXPECT_EQ(resource["timePartitioning"]["field"], "timestamp");
  EXPECT_EQ(resource["clustering"]["fields"][0], "device_id");

  std::vector<MonitorReading> rows;
  for (int i = 0; i < 10; ++i) rows.push_back(Reading(i));
  auto result = (*inserter)->Insert(rows);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->empty());
  const std::vector<nlohmann::json> stored = Rows();
  ASSERT_EQ(stored.size(), rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) EXPECT_EQ(stored[i], ToJson(rows[i])) << i;
}

TEST_F(BigQueryInserterTest, ReusesOneStreamAcrossBatches) {
  auto inserter = BigQueryInserter<MonitorReading>::Create(Options());
  ASSERT_TRUE(inserter.ok()) << inserter.status();
  const auto streams_before = server_->append_streams();
  const auto requests_before = server_->append_requests();
  for (int batch = 0; batch < 3; ++batch) {
    std::vector<MonitorReading> rows = {Reading(batch * 2), Reading(batch * 2 + 1)};
    ASSERT_TRUE((*inserter)->InsertBatch(rows).ok());
  }
  EXPECT_EQ(server_->append_streams() - streams_before, 1u);
  EXPECT_EQ(server_->append_requests() - requests_before, 3u);
  EXPECT_EQ(Rows().size(), 6u);
}

TEST_F(BigQueryInserterTest, SplitsBatchesAtTheRequestLimit) {
  BigQueryInserterOptions options = Options();
  options.writer.max_request_bytes = 16 * 1024;
  auto inserter = BigQueryInserter<MonitorReading>::Create(options);
  ASSERT_TRUE(inserter.ok()) << inserter.status();
  std::vector<MonitorReading> rows;
  for (int i = 0; i < 100; ++i) rows.push_back(Reading(i, /*pad=*/1000));
  const auto requests_before = server_->append_requests();
  ASSERT_TRUE((*inserter)->InsertBatch(rows).ok());
  EXPECT_GE(server_->append_requests() - requests_before, 7u);  // ~100 KB in <16 KB pieces
  EXPECT_LE(server_->largest_request_bytes(), 16u * 1024);
  const auto stored = Rows();
  ASSERT_EQ(stored.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(stored[i]["sequence"], i);  // in order, none lost

  // A single row above the limit is rejected by index instead of failing the batch.
  std::vector<MonitorReading> big = {Reading(1), Reading(2, 20000), Reading(3)};
  auto result = (*inserter)->Insert(big);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->size(), 1u);
  EXPECT_EQ((*result)[0].index, 1u);
  EXPECT_EQ(Rows().size(), 102u);
}

TEST_F(BigQueryInserterTest, RetriesRetryableErrorsOnAFreshStream) {
  auto inserter = BigQueryInserter<MonitorReading>::Create(Options());
  ASSERT_TRUE(inserter.ok()) << inserter.status();
  server_->FailNextAppends(2, absl::UnavailableError("injected"));
  std::vector<MonitorReading> rows = {Reading(1), Reading(2)};
  ASSERT_TRUE((*inserter)->InsertBatch(rows).ok());
  EXPECT_EQ(Rows().size(), 2u);
  EXPECT_EQ((*inserter)->writer().requests_sent(), 3u);
}

TEST_F(BigQueryInserterTest, PermanentErrorFailsTheBatch) {
  auto inserter = BigQueryInserter<MonitorReading>::Create(Options());
  ASSERT_TRUE(inserter.ok()) << inserter.status();
  server_->FailNextAppends(1, absl::PermissionDeniedError("no access"));
  std::vector<MonitorReading> rows = {Reading(1)};
  auto result = (*inserter)->Insert(rows);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kPermissionDenied);
  // Not retried here, but not the message's fault either: the service nacks it.
  EXPECT_FALSE(messagepipeline::IsPermanent(result.status()));
  EXPECT_EQ((*inserter)->writer().requests_sent(), 1u);
  EXPECT_TRUE(Rows().empty());
}

TEST_F(BigQueryInserterTest, RejectedRowsAreReportedByIndexAndTheRestStored) {
  auto inserter = BigQueryInserter<MonitorReading>::Create(Options());
  ASSERT_TRUE(inserter.ok()) << inserter.status();
  std::vector<MonitorReading> rows = {Reading(0), Reading(1), Reading(2), Reading(3)};
  rows[1].device_id = "bad\xff";    // BigQuery rejects invalid UTF-8
  rows[3].note = "truncated \xc3";  // a cut multi-byte sequence
  auto result = (*inserter)->Insert(rows);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->size(), 2u);
  EXPECT_EQ((*result)[0].index, 1u);
  EXPECT_TRUE(messagepipeline::IsPermanent((*result)[0].status));
  EXPECT_NE((*result)[0].status.message().find("invalid UTF-8"), std::string::npos);
  EXPECT_EQ((*result)[1].index, 3u);
  EXPECT_NE((*result)[1].status.message().find("note: invalid UTF-8"), std::string::npos)
      << (*result)[1].status;
  const auto stored = Rows();
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_EQ(stored[0]["sequence"], 0);
  EXPECT_EQ(stored[1]["sequence"], 2);
}

TEST_F(BigQueryInserterTest, UnknownTableIsNotFoundWhenNotManaged) {
  BigQueryInserterOptions options = Options();
  options.manage_table = false;
  auto inserter = BigQueryInserter<MonitorReading>::Create(options);
  ASSERT_TRUE(inserter.ok()) << inserter.status();
  std::vector<MonitorReading> rows = {Reading(1)};
  EXPECT_EQ((*inserter)->Insert(rows).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(BigQueryInserterTest, MissingDatasetIsNotFoundUnlessCreationAsked) {
  BigQueryInserterOptions options = Options("no_such_dataset");
  options.table.create_dataset = false;
  const absl::Status missing = BigQueryInserter<MonitorReading>::Create(options).status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  // A REST 404: creating the dataset fixes it, so it is not the data's fault (transient).
  EXPECT_FALSE(messagepipeline::IsPermanent(missing)) << missing;
  options.table.create_dataset = true;
  EXPECT_TRUE(BigQueryInserter<MonitorReading>::Create(options).ok());
}

TEST_F(BigQueryInserterTest, ExistingTableWithOtherSchemaIsAClearError) {
  TableSchema other = InferSchema<MonitorReading>();
  other[2].type = FieldType::kString;  // temperature
  ASSERT_TRUE(server_->CreateTable("p", "ds", Table(), other).ok());
  auto inserter = BigQueryInserter<MonitorReading>::Create(Options());
  EXPECT_EQ(inserter.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(inserter.status().message().find("temperature: type FLOAT but the table has STRING"),
            std::string::npos)
      << inserter.status();

  // Unmanaged, the server itself refuses the writer schema.
  BigQueryInserterOptions options = Options();
  options.manage_table = false;
  auto unmanaged = BigQueryInserter<MonitorReading>::Create(options);
  ASSERT_TRUE(unmanaged.ok());
  std::vector<MonitorReading> rows = {Reading(1)};
  auto result = (*unmanaged)->Insert(rows);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  // Refused as a whole, the same way every time: permanent, for the service to dead-letter.
  EXPECT_TRUE(messagepipeline::IsPermanent(result.status())) << result.status();
  EXPECT_NE(result.status().message().find("temperature"), std::string::npos) << result.status();
}

TEST_F(BigQueryInserterTest, ServiceRedeliversAFailedBatchAndLosesNothing) {
  auto broker = messagepipeline::InProcessBroker::Create();
  ASSERT_TRUE(broker->CreateTopic("readings").ok());
  ASSERT_TRUE(broker->CreateSubscription("readings-sub", "readings").ok());
  ASSERT_TRUE(broker->CreateTopic("dead").ok());
  BigQueryInserterOptions options = Options();
  options.writer.max_attempts = 1;  // so the injected failure reaches the service
  auto inserter = BigQueryInserter<MonitorReading>::Create(options);
  ASSERT_TRUE(inserter.ok()) << inserter.status();
  auto consumer = broker->NewConsumer("readings-sub");
  ASSERT_TRUE(consumer.ok());
  messagepipeline::MessageTransformer<MonitorReading> transformer =
      [](const messagepipeline::Message& m) -> messagepipeline::TransformResult<MonitorReading> {
    auto json = nlohmann::json::parse(m.data.payload, nullptr, false);
    auto row = FromJson<MonitorReading>(json);
    if (!row.ok()) return messagepipeline::MarkPermanent(row.status());
    return std::optional<MonitorReading>(*std::move(row));
  };
  auto service = NewBigQueryService<MonitorReading>(
      {.common = {.name = "bq", .num_workers = 2, .dead_letter = broker->NewDeadLetterSink("dead")},
       .batch_size = 10,
       .flush_interval = 50ms},
      *consumer, transformer,
      std::shared_ptr<DataBatchInserter<MonitorReading>>(std::move(*inserter)));
  ASSERT_TRUE(service.ok()) << service.status();
  server_->FailNextAppends(1, absl::UnavailableError("injected"));
  ASSERT_TRUE((*service)->Start().ok());
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE(broker->Publish("readings", {.payload = ToJson(Reading(i)).dump()}).ok());
  }
  ASSERT_TRUE(dataflow::testing::WaitFor(
      [&] {
        auto s = broker->Stats("readings-sub");
        return s.ok() && s->acked == 30 && s->pending == 0 && s->outstanding == 0;
      },
      30s));
  ASSERT_TRUE((*service)->Stop(10s).ok());
  EXPECT_GE(broker->Stats("readings-sub")->nacked, 1u);
  std::set<std::int64_t> sequences;
  for (const auto& row : Rows()) sequences.insert(row["sequence"].get<std::int64_t>());
  EXPECT_EQ(sequences.size(), 30u);  // every row present (a redelivery may not duplicate here)
  EXPECT_EQ(Rows().size(), 30u);     // the failed append wrote nothing
}

// Hangs the server's appends for the scope, and always lets them go again, so a failing
// assertion cannot leave the shared server hung for the next test.
class HungAppends {
 public:
  explicit HungAppends(BigQueryTestServer* server) : server_(server) { server_->HangAppends(true); }
  ~HungAppends() { server_->HangAppends(false); }

 private:
  BigQueryTestServer* server_;
};

TEST_F(BigQueryInserterTest, AppendToAServerThatNeverAnswersTimesOutAsTransient) {
  BigQueryInserterOptions options = Options();
  options.writer.append_timeout = 1s;
  options.writer.max_attempts = 2;
  auto inserter = BigQueryInserter<MonitorReading>::Create(options);
  ASSERT_TRUE(inserter.ok()) << inserter.status();
  std::vector<MonitorReading> rows = {Reading(1), Reading(2)};
  const std::uint64_t ended_before = server_->hung_appends_ended();  // the server is shared
  {
    HungAppends hang(server_);
    auto result = (*inserter)->Insert(rows);
    EXPECT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded) << result.status();
    EXPECT_FALSE(messagepipeline::IsPermanent(result.status()));  // nacked, redelivered
    EXPECT_EQ((*inserter)->writer().requests_sent(), 2u);         // each attempt timed out
    // The client's cancels reach the server asynchronously: released before it saw them, the
    // server would apply the appends (as BigQuery may apply one whose answer nobody awaits).
    ASSERT_TRUE(dataflow::testing::WaitFor(
        [&] { return server_->hung_appends_ended() == ended_before + 2; },
        std::chrono::seconds(30)));
  }
  EXPECT_TRUE(Rows().empty());  // both timed-out appends were cancelled unapplied
  // The cancelled stream is replaced: the next batch goes through. (On a loaded machine its
  // answer may itself miss the timeout and the batch be stored twice: at-least-once.)
  ASSERT_TRUE((*inserter)->InsertBatch(rows).ok());
  std::set<std::int64_t> sequences;
  for (const auto& row : Rows()) sequences.insert(row["sequence"].get<std::int64_t>());
  EXPECT_EQ(sequences, (std::set<std::int64_t>{1, 2}));
}

TEST_F(BigQueryInserterTest, CloseFromAnotherThreadCancelsAHungAppend) {
  auto inserter = BigQueryInserter<MonitorReading>::Create(Options());  // 30 s append_timeout
  ASSERT_TRUE(inserter.ok()) << inserter.status();
  HungAppends hang(server_);
  const auto requests_before = server_->append_requests();
  std::vector<MonitorReading> rows = {Reading(1)};
  auto insert = std::async(std::launch::async, [&] { return (*inserter)->Insert(rows); });
  ASSERT_TRUE(dataflow::testing::WaitFor(
      [&] { return server_->append_requests() > requests_before; }, 10s));
  ASSERT_TRUE((*inserter)->Close().ok());  // must not wait for the append's lock
  ASSERT_EQ(insert.wait_for(5s), std::future_status::ready) << "Insert still blocked";
  const auto result = insert.get();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled) << result.status();
  EXPECT_FALSE(messagepipeline::IsPermanent(result.status()));
}

TEST_F(BigQueryInserterTest, ServiceStopHonoursItsDeadlineWhileAnAppendHangs) {
  auto broker = messagepipeline::InProcessBroker::Create();
  ASSERT_TRUE(broker->CreateTopic("readings").ok());
  ASSERT_TRUE(broker->CreateSubscription("readings-sub", "readings").ok());
  auto inserter = BigQueryInserter<MonitorReading>::Create(Options());  // 30 s append_timeout
  ASSERT_TRUE(inserter.ok()) << inserter.status();
  auto consumer = broker->NewConsumer("readings-sub");
  ASSERT_TRUE(consumer.ok());
  messagepipeline::MessageTransformer<MonitorReading> transformer =
      [](const messagepipeline::Message& m) -> messagepipeline::TransformResult<MonitorReading> {
    auto row = FromJson<MonitorReading>(nlohmann::json::parse(m.data.payload, nullptr, false));
    if (!row.ok()) return messagepipeline::MarkPermanent(row.status());
    return std::optional<MonitorReading>(*std::move(row));
  };
  auto service = NewBigQueryService<MonitorReading>(
      {.common = {.name = "bq-hang", .num_workers = 1}, .batch_size = 1, .flush_interval = 10ms},
      *consumer, transformer,
      std::shared_ptr<DataBatchInserter<MonitorReading>>(std::move(*inserter)));
  ASSERT_TRUE(service.ok()) << service.status();
  HungAppends hang(server_);
  const auto requests_before = server_->append_requests();
  ASSERT_TRUE((*service)->Start().ok());
  ASSERT_TRUE(broker->Publish("readings", {.payload = ToJson(Reading(7)).dump()}).ok());
  ASSERT_TRUE(dataflow::testing::WaitFor(
      [&] { return server_->append_requests() > requests_before; }, 10s));

  const auto started = std::chrono::steady_clock::now();
  const absl::Status stopped = (*service)->Stop(started + 1s);
  const auto took = std::chrono::steady_clock::now() - started;
  EXPECT_LT(took, 2s) << "Stop(1 s) took "
                      << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                      << " ms; Stop said " << stopped;
  ASSERT_TRUE(dataflow::testing::WaitFor(
      [&] {
        auto s = broker->Stats("readings-sub");
        return s.ok() && s->nacked >= 1;
      },
      5s));
  EXPECT_EQ(broker->Stats("readings-sub")->acked, 0u);  // never acked without BigQuery's word
  EXPECT_TRUE(Rows().empty());
}

#ifdef DATAFLOW_TEST_HAS_PUBSUB
// The original's flow: Pub/Sub (Google's emulator) → BigQueryService<MonitorReading> with a
// JSON transformer → BigQuery. A payload that is not a reading is dead-lettered to a Pub/Sub
// topic; every reading is stored exactly as sent and every message is acked.
TEST_F(BigQueryInserterTest, PubsubEmulatorToBigQueryServiceStoresEveryReading) {
  if (dataflow::testing::FindPubsubEmulator().empty()) {
    GTEST_SKIP() << dataflow::testing::PubsubEmulatorMissingReason();
  }
  auto emulator = dataflow::testing::PubsubEmulator::Start();
  ASSERT_TRUE(emulator.ok()) << emulator.status();
  ::setenv("PUBSUB_EMULATOR_HOST", (*emulator)->host().c_str(), 1);
  constexpr char kProject[] = "bq-flow";
  auto stub = pubsub::MakePubsubStub();
  ASSERT_TRUE(stub.ok()) << stub.status();
  for (const char* topic : {"readings", "readings-dead"}) {
    ASSERT_TRUE(pubsub::CreateTopic(**stub, kProject, topic).ok());
  }
  ASSERT_TRUE(pubsub::CreateSubscription(**stub, kProject, "readings-bq", "readings").ok());
  ASSERT_TRUE(
      pubsub::CreateSubscription(**stub, kProject, "readings-dead-sub", "readings-dead").ok());

  auto producer = pubsub::GooglePubsubProducer::Create(
      *stub, {.project_id = kProject, .topic_id = "readings", .max_batch_delay = 5ms});
  ASSERT_TRUE(producer.ok()) << producer.status();
  std::shared_ptr<pubsub::GooglePubsubProducer> publisher(std::move(*producer));
  auto consumer = pubsub::GooglePubsubConsumer::Create(
      *stub, {.project_id = kProject, .subscription_id = "readings-bq"});
  ASSERT_TRUE(consumer.ok()) << consumer.status();
  auto inserter = BigQueryInserter<MonitorReading>::Create(Options());
  ASSERT_TRUE(inserter.ok()) << inserter.status();
  messagepipeline::MessageTransformer<MonitorReading> transformer =
      [](const messagepipeline::Message& m) -> messagepipeline::TransformResult<MonitorReading> {
    auto row = FromJson<MonitorReading>(nlohmann::json::parse(m.data.payload, nullptr, false));
    if (!row.ok()) return messagepipeline::MarkPermanent(row.status());
    return std::optional<MonitorReading>(*std::move(row));
  };
  auto service = NewBigQueryService<MonitorReading>(
      {.common = {.name = "bq-flow",
                  .dead_letter =
                      std::make_shared<pubsub::PubsubDeadLetterSink>(publisher, "readings-dead")},
       .batch_size = 25,
       .flush_interval = 100ms},
      std::shared_ptr<messagepipeline::MessageConsumer>(std::move(*consumer)), transformer,
      std::shared_ptr<DataBatchInserter<MonitorReading>>(std::move(*inserter)));
  ASSERT_TRUE(service.ok()) << service.status();
  ASSERT_TRUE((*service)->Start().ok());

  constexpr int kReadings = 100;
  std::vector<std::future<absl::StatusOr<std::string>>> published;
  for (int i = 0; i < kReadings; ++i) {
    published.push_back(publisher->PublishRaw(ToJson(Reading(i)).dump()));
    if (i == kReadings / 2) published.push_back(publisher->PublishRaw("not a reading"));
  }
  for (auto& f : published) ASSERT_TRUE(f.get().ok());

  ASSERT_TRUE(dataflow::testing::WaitFor(
      [&] {
        const auto m = (*service)->metrics();
        return m.processed >= kReadings && m.dead_lettered == 1;
      },
      60s))
      << "processed " << (*service)->metrics().processed;
  ASSERT_TRUE((*service)->Stop(10s).ok());
  EXPECT_EQ((*service)->metrics().nacked, 0u);
  const auto rows = Rows();
  ASSERT_EQ(rows.size(), static_cast<std::size_t>(kReadings));
  std::map<std::int64_t, nlohmann::json> by_sequence;
  for (const auto& row : rows) by_sequence[row["sequence"].get<std::int64_t>()] = row;
  for (int i = 0; i < kReadings; ++i) {
    ASSERT_TRUE(by_sequence.contains(i)) << "reading " << i << " missing";
    EXPECT_EQ(by_sequence[i]["device_id"], "dev-" + std::to_string(i));
    EXPECT_DOUBLE_EQ(by_sequence[i]["temperature"].get<double>(), 20.5 + i);
    EXPECT_EQ(by_sequence[i]["alarm"], i % 2 == 1);
  }
  EXPECT_TRUE(publisher->Stop(std::chrono::steady_clock::now() + 10s).ok());
  ::unsetenv("PUBSUB_EMULATOR_HOST");
}
#endif

}  // namespace
}  // namespace dataflow::bqstore

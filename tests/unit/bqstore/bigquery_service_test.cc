// BigQueryService over the in-process broker: which messages are acked, nacked and
// dead-lettered for each inserter outcome.
#include "dataflow/bqstore/bigquery_service.h"

#include <absl/strings/escaping.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

#include "dataflow/bqstore/row_codec.h"
#include "dataflow/bqstore/sqlite_inserter.h"
#include "dataflow/messagepipeline/in_process_broker.h"
#include "dataflow_testing/server_process.h"

namespace dataflow::bqstore {
namespace {

using messagepipeline::InProcessBroker;
using messagepipeline::Message;
using messagepipeline::MessageData;
using messagepipeline::TransformResult;
using namespace std::chrono_literals;

struct Reading {
  std::string device;
  std::int64_t value = 0;
};
DATAFLOW_DESCRIBE(Reading, device, value);

TransformResult<Reading> ParseReading(const Message& message) {
  if (message.data.payload == "skip") return messagepipeline::Skip<Reading>();
  auto json = nlohmann::json::parse(message.data.payload, nullptr, false);
  if (json.is_discarded()) return messagepipeline::PermanentError("not JSON");
  auto row = FromJson<Reading>(json);
  if (!row.ok()) return messagepipeline::MarkPermanent(row.status());
  return std::optional<Reading>(*std::move(row));
}

// As a service behind enrichment reads its input: the MessageData envelope, then the row
// from its payload.
TransformResult<Reading> ParseEnvelopeReading(const Message& message) {
  auto envelope = messagepipeline::EnvelopeTransformer(message);
  if (!envelope.ok()) return envelope.status();
  Message inner(std::move(**envelope));
  return ParseReading(inner);
}

// An inserter double: records rows; can fail the next N batches or reject negative values.
class FakeInserter : public DataBatchInserter<Reading> {
 public:
  absl::StatusOr<std::vector<RowError>> Insert(std::span<const Reading> rows) override {
    std::lock_guard lock(mu_);
    ++batches_;
    if (fail_next_ > 0) {
      --fail_next_;
      return absl::UnavailableError("warehouse unavailable");
    }
    std::vector<RowError> errors;
    for (std::size_t i = 0; i < rows.size(); ++i) {
      if (rows[i].value < 0) {
        errors.push_back({i, absl::InvalidArgumentError("value must be >= 0")});
      } else {
        stored_.push_back(rows[i]);
      }
    }
    return errors;
  }
  absl::Status Close() override { return absl::OkStatus(); }

  void FailNext(int n) {
    std::lock_guard lock(mu_);
    fail_next_ = n;
  }
  std::multiset<std::string> StoredDevices() {
    std::lock_guard lock(mu_);
    std::multiset<std::string> out;
    for (const auto& r : stored_) out.insert(r.device);
    return out;
  }
  int batches() {
    std::lock_guard lock(mu_);
    return batches_;
  }

 private:
  std::mutex mu_;
  int fail_next_ = 0;
  int batches_ = 0;
  std::vector<Reading> stored_;
};

class BigQueryServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    broker_ = InProcessBroker::Create();
    ASSERT_TRUE(broker_->CreateTopic("readings").ok());
    ASSERT_TRUE(broker_->CreateSubscription("readings-sub", "readings").ok());
    ASSERT_TRUE(broker_->CreateTopic("dead").ok());
    ASSERT_TRUE(broker_->CreateSubscription("dead-sub", "dead").ok());
    // An in-process dead letter is stored once the dead-letter topic's subscribers acked it.
    dead_consumer_ = *broker_->NewConsumer("dead-sub");
    ASSERT_TRUE(dead_consumer_->Start().ok());
    dead_reader_ = std::jthread([this] {
      while (auto m = dead_consumer_->Messages().Pop()) {
        {
          std::lock_guard lock(dead_mu_);
          dead_letters_.push_back({m->data.payload, m->attributes});
        }
        m->Ack();
      }
    });
  }
  void TearDown() override {
    (void)dead_consumer_->Stop(std::chrono::steady_clock::now());
    dead_reader_.join();
  }

  struct DeadLetter {
    std::string payload;
    messagepipeline::Attributes attributes;
  };
  std::vector<DeadLetter> DeadLetters() {
    std::lock_guard lock(dead_mu_);
    return dead_letters_;
  }

  void Publish(const std::string& payload) {
    ASSERT_TRUE(broker_->Publish("readings", MessageData{.payload = payload}).ok());
  }
  static std::string Json(const std::string& device, std::int64_t value) {
    return ToJson(Reading{device, value}).dump();
  }

  std::unique_ptr<BigQueryService<Reading>> Start(
      std::shared_ptr<DataBatchInserter<Reading>> ins, std::size_t batch_size = 10,
      messagepipeline::MessageTransformer<Reading> transformer = ParseReading) {
    auto consumer = broker_->NewConsumer("readings-sub");
    EXPECT_TRUE(consumer.ok());
    auto service =
        NewBigQueryService<Reading>({.common = {.name = "bq-test",
                                                .num_workers = 2,
                                                .dead_letter = broker_->NewDeadLetterSink("dead")},
                                     .batch_size = batch_size,
                                     .flush_interval = 50ms},
                                    *consumer, std::move(transformer), std::move(ins));
    EXPECT_TRUE(service.ok()) << service.status();
    EXPECT_TRUE((*service)->Start().ok());
    return *std::move(service);
  }

  messagepipeline::SubscriptionStats Stats(const std::string& sub) {
    auto s = broker_->Stats(sub);
    EXPECT_TRUE(s.ok());
    return s.ok() ? *s : messagepipeline::SubscriptionStats{};
  }
  bool AllAcked(std::uint64_t n) {
    auto s = Stats("readings-sub");
    return s.acked == n && s.pending == 0 && s.outstanding == 0;
  }

  std::shared_ptr<InProcessBroker> broker_;
  std::shared_ptr<messagepipeline::MessageConsumer> dead_consumer_;
  std::mutex dead_mu_;
  std::vector<DeadLetter> dead_letters_;
  std::jthread dead_reader_;
};

TEST_F(BigQueryServiceTest, StoredBatchIsAcked) {
  auto inserter = std::make_shared<FakeInserter>();
  auto service = Start(inserter);
  for (int i = 0; i < 25; ++i) Publish(Json("d" + std::to_string(i), i));
  ASSERT_TRUE(dataflow::testing::WaitFor([&] { return AllAcked(25); }, 20s));
  ASSERT_TRUE(service->Stop(10s).ok());
  EXPECT_EQ(inserter->StoredDevices().size(), 25u);
  EXPECT_EQ(Stats("readings-sub").nacked, 0u);
  EXPECT_TRUE(DeadLetters().empty());
}

TEST_F(BigQueryServiceTest, FailedBatchIsNackedAndRedeliveredWithNoneLost) {
  auto inserter = std::make_shared<FakeInserter>();
  inserter->FailNext(2);
  auto service = Start(inserter);
  for (int i = 0; i < 20; ++i) Publish(Json("d" + std::to_string(i), i));
  ASSERT_TRUE(dataflow::testing::WaitFor([&] { return AllAcked(20); }, 20s));
  ASSERT_TRUE(service->Stop(10s).ok());
  EXPECT_GE(Stats("readings-sub").nacked, 1u);  // the failed batches went back
  std::multiset<std::string> stored = inserter->StoredDevices();
  for (int i = 0; i < 20; ++i) EXPECT_EQ(stored.count("d" + std::to_string(i)), 1u) << i;
  EXPECT_GE(inserter->batches(), 3);
}

TEST_F(BigQueryServiceTest, RejectedRowsAreDeadLetteredAndTheRestAcked) {
  auto inserter = std::make_shared<FakeInserter>();
  auto service = Start(inserter, /*batch_size=*/5);
  Publish(Json("good-1", 1));
  Publish(Json("bad-1", -1));
  Publish(Json("good-2", 2));
  Publish(Json("bad-2", -2));
  Publish(Json("good-3", 3));
  ASSERT_TRUE(dataflow::testing::WaitFor([&] { return AllAcked(5); }, 20s));
  ASSERT_TRUE(service->Stop(10s).ok());
  EXPECT_EQ(inserter->StoredDevices(), (std::multiset<std::string>{"good-1", "good-2", "good-3"}));
  EXPECT_EQ(Stats("readings-sub").nacked, 0u);
  // Counted as what happened to them: the rejected rows as dead-lettered, not processed.
  EXPECT_EQ(service->metrics().processed, 3u);
  EXPECT_EQ(service->metrics().dead_lettered, 2u);

  std::set<std::string> dead_devices;
  const auto letters = DeadLetters();
  ASSERT_EQ(letters.size(), 2u);
  for (const DeadLetter& m : letters) {
    dead_devices.insert(nlohmann::json::parse(m.payload)["device"]);
    auto error = m.attributes.find(messagepipeline::kDeadLetterErrorAttribute);
    ASSERT_NE(error, m.attributes.end());
    EXPECT_NE(error->second.find("value must be >= 0"), std::string::npos);
    EXPECT_EQ(m.attributes.at(std::string(messagepipeline::kDeadLetterSourceAttribute)), "bq-test");
  }
  EXPECT_EQ(dead_devices, (std::set<std::string>{"bad-1", "bad-2"}));
}

TEST_F(BigQueryServiceTest, RejectedRowsWithoutDeadLetterSinkAreNacked) {
  auto inserter = std::make_shared<FakeInserter>();
  auto consumer = broker_->NewConsumer("readings-sub");
  ASSERT_TRUE(consumer.ok());
  auto service = NewBigQueryService<Reading>(
      {.common = {.name = "no-dlq", .num_workers = 1}, .batch_size = 2, .flush_interval = 50ms},
      *consumer, ParseReading, inserter);
  ASSERT_TRUE(service.ok()) << service.status();
  ASSERT_TRUE((*service)->Start().ok());
  Publish(Json("good", 1));
  Publish(Json("bad", -1));
  ASSERT_TRUE(dataflow::testing::WaitFor(
      [&] { return Stats("readings-sub").acked == 1 && Stats("readings-sub").nacked >= 1; }, 20s));
  ASSERT_TRUE((*service)->Stop(10s).ok());
  EXPECT_EQ(inserter->StoredDevices().count("good"), 1u);
  EXPECT_EQ(inserter->StoredDevices().count("bad"), 0u);
}

TEST_F(BigQueryServiceTest, SkipAcksAndTransformErrorDeadLetters) {
  auto inserter = std::make_shared<FakeInserter>();
  auto service = Start(inserter);
  Publish("skip");
  Publish("{not json");
  Publish(Json("kept", 7));
  ASSERT_TRUE(dataflow::testing::WaitFor([&] { return AllAcked(3); }, 20s));
  ASSERT_TRUE(service->Stop(10s).ok());
  EXPECT_EQ(inserter->StoredDevices(), (std::multiset<std::string>{"kept"}));
  EXPECT_EQ(DeadLetters().size(), 1u);  // the undecodable one
}

TEST_F(BigQueryServiceTest, SurvivesA100000DeepEnvelopeByDeadLetteringIt) {
  // nlohmann copies, compares and dumps recursively: this envelope, once a json value, is a
  // stack overflow waiting for its first copy. It must be refused at decoding (permanent, so
  // dead-lettered once) while the messages around it are stored.
  auto inserter = std::make_shared<FakeInserter>();
  auto service = Start(inserter, /*batch_size=*/5, ParseEnvelopeReading);
  auto envelope = [](const std::string& device) {
    return messagepipeline::EncodeMessageData({.id = device, .payload = Json(device, 1)});
  };
  const std::string deep_payload = absl::Base64Escape(Json("deep", 1));
  const std::string deep = R"({"id":"deep","payload":")" + deep_payload +
                           R"(","enrichmentData":{"x":)" + std::string(100'000, '[') +
                           std::string(100'000, ']') + "}}";
  Publish(envelope("before-1"));
  Publish(envelope("before-2"));
  Publish(deep);
  Publish(envelope("after-1"));
  Publish(envelope("after-2"));
  ASSERT_TRUE(dataflow::testing::WaitFor([&] { return AllAcked(5); }, 20s));
  ASSERT_TRUE(service->Stop(10s).ok());
  EXPECT_EQ(inserter->StoredDevices(),
            (std::multiset<std::string>{"before-1", "before-2", "after-1", "after-2"}));
  EXPECT_EQ(Stats("readings-sub").nacked, 0u) << "dead-lettered at once, not redelivered";
  const auto letters = DeadLetters();
  ASSERT_EQ(letters.size(), 1u);
  EXPECT_EQ(letters[0].payload, deep);
  EXPECT_NE(letters[0]
                .attributes.at(std::string(messagepipeline::kDeadLetterErrorAttribute))
                .find("deeper than the limit of 64"),
            std::string::npos);
}

TEST_F(BigQueryServiceTest, EndToEndIntoSqlite) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("bqstore_service_" + std::to_string(::getpid()) + ".db"))
                               .string();
  std::filesystem::remove(path);
  auto sqlite = SqliteInserter<Reading>::Create({.path = path, .table = "readings"});
  ASSERT_TRUE(sqlite.ok()) << sqlite.status();
  std::shared_ptr<DataBatchInserter<Reading>> inserter = *std::move(sqlite);
  auto service = Start(inserter);
  for (int i = 0; i < 30; ++i) Publish(Json("s" + std::to_string(i), i));
  ASSERT_TRUE(dataflow::testing::WaitFor([&] { return AllAcked(30); }, 20s));
  ASSERT_TRUE(service->Stop(10s).ok());
  ASSERT_TRUE(inserter->Close().ok());
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT COUNT(DISTINCT device), SUM(value) FROM readings", -1,
                               &stmt, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int64(stmt, 0), 30);
  EXPECT_EQ(sqlite3_column_int64(stmt, 1), 29 * 30 / 2);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  std::filesystem::remove(path);
  std::filesystem::remove(path + "-wal");
  std::filesystem::remove(path + "-shm");
}

TEST(BigQueryServiceFactoryTest, ValidatesArguments) {
  auto broker = InProcessBroker::Create();
  ASSERT_TRUE(broker->CreateTopic("t").ok());
  ASSERT_TRUE(broker->CreateSubscription("s", "t").ok());
  auto consumer = broker->NewConsumer("s");
  ASSERT_TRUE(consumer.ok());
  auto no_inserter = NewBigQueryService<Reading>({}, *consumer, ParseReading, nullptr);
  EXPECT_EQ(no_inserter.status().code(), absl::StatusCode::kInvalidArgument);
  // An empty name is BatchingService's default.
  EXPECT_EQ(no_inserter.status().message(), "batching-service: inserter is null");
  auto zero_batch = NewBigQueryService<Reading>({.batch_size = 0}, *consumer, ParseReading,
                                                std::make_shared<FakeInserter>());
  EXPECT_EQ(zero_batch.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dataflow::bqstore

// The `bigquery` service kind's `schema:` config: parsing and its errors, and the readings
// table declared in YAML (docs/bqstore.md) being exactly the C++ `Reading` the program stored
// before the YAML schema: the same table schema, the same proto bytes and SQLite values for the
// same messages, so tables created by earlier versions keep working.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "config.h"
#include "dataflow/bqstore/json_schema_rows.h"
#include "dataflow/bqstore/row_codec.h"
#include "dataflow/bqstore/sqlite_inserter.h"
#include "loadgen.h"

namespace dataflow::app {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;
namespace mp = messagepipeline;

ConfigLoadResult Parse(const std::string& yaml) {
  return ParseConfig(yaml, {}, [](const std::string&) { return std::nullopt; });
}
std::vector<std::string> Errors(const ConfigLoadResult& r) {
  std::vector<std::string> out;
  for (const auto& e : r.errors) out.push_back(e.ToString());
  return out;
}

// The row earlier versions of the program stored, described in C++ (the library's
// DATAFLOW_DESCRIBE path).
struct Reading {
  std::string device_id;
  double temperature = 0;
  double humidity = 0;
  std::optional<std::string> device_name;
  std::optional<std::string> location;
  bqstore::Timestamp published_at{};
  std::optional<bqstore::Timestamp> sent_at;
};
DATAFLOW_DESCRIBE(Reading, device_id, temperature, humidity, device_name, location, published_at,
                  sent_at);

// The readings table as the shipped config/local.yaml declares it (docs/bqstore.md has the
// same block): its `bigquery` service's columns.
std::vector<bqstore::ColumnSpec> LocalReadingsColumns() {
  std::ifstream in(std::string(DATAFLOW_SOURCE_DIR) + "/config/local.yaml");
  std::stringstream text;
  text << in.rdbuf();
  auto r = Parse(text.str());
  EXPECT_TRUE(r.errors.empty()) << (r.errors.empty() ? "" : r.errors[0].ToString());
  for (const auto& service : r.config.services) {
    if (service.name == "bigquery") return std::get<BigQueryConfig>(service.spec).columns;
  }
  ADD_FAILURE() << "config/local.yaml has no service named bigquery";
  return {};
}

TEST(BigQuerySchemaConfigTest, ReadingsInYamlAreTheDescribedReading) {
  auto converter = bqstore::RowConverter::Create(LocalReadingsColumns());
  ASSERT_TRUE(converter.ok()) << converter.status();
  EXPECT_EQ((*converter)->schema(), bqstore::InferSchema<Reading>());

  auto transform = bqstore::RowInputTransformer();
  const auto published = *mp::ParseTimestamp("2026-03-04T05:06:07.5Z");
  struct Case {
    Json payload;
    Json enrichment;
    Reading expected;
  };
  const std::vector<Case> cases = {
      {{{"deviceId", "d1"},
        {"temperature", 20.5},
        {"humidity", 41.5},
        {"sentAt", "2026-01-02T03:04:05.123456Z"}},
       {{"name", "Boiler"}, {"location", "hall"}},
       {.device_id = "d1",
        .temperature = 20.5,
        .humidity = 41.5,
        .device_name = "Boiler",
        .location = "hall",
        .published_at = published,
        .sent_at = *mp::ParseTimestamp("2026-01-02T03:04:05.123456Z")}},
      // No humidity (default 0), no sentAt, no enrichment.
      {{{"deviceId", "d2"}, {"temperature", -3}},
       nullptr,
       {.device_id = "d2", .temperature = -3, .published_at = published}},
      // A sentAt that is no time: null (on_invalid), the reading kept.
      {{{"deviceId", "d3"}, {"temperature", 1.25}, {"sentAt", "garbage"}},
       {{"location", "roof"}},
       {.device_id = "d3", .temperature = 1.25, .location = "roof", .published_at = published}},
      // Go's zero time is no send time either.
      {{{"deviceId", "d4"}, {"temperature", 7}, {"sentAt", "0001-01-01T00:00:00Z"}},
       nullptr,
       {.device_id = "d4", .temperature = 7, .published_at = published}},
  };
  for (const auto& [payload, enrichment, expected] : cases) {
    const mp::Message m({.payload = mp::EncodeMessageData({.id = "id",
                                                           .payload = payload.dump(),
                                                           .publish_time = published,
                                                           .enrichment_data = enrichment})});
    auto input = transform(m);
    ASSERT_TRUE(input.ok() && input->has_value()) << payload;
    bqstore::ConvertedRow row;
    ASSERT_TRUE((*converter)->Convert(**input, row).ok()) << payload;
    std::string bytes;
    (*converter)->EncodeProto(row, bytes);
    EXPECT_EQ(bytes, bqstore::EncodeRow(expected)) << payload;
    EXPECT_EQ((*converter)->ToSql(row), bqstore::internal::RowToSql(expected)) << payload;
  }
}

// The load generator's readings (`dataflow loadgen`) fit the readings table, sentAt included.
TEST(BigQuerySchemaConfigTest, GeneratedReadingsFitTheReadingsTable) {
  auto converter = bqstore::RowConverter::Create(LocalReadingsColumns());
  ASSERT_TRUE(converter.ok()) << converter.status();
  const auto sent = *mp::ParseTimestamp("2024-05-01T12:00:00.654321Z");
  const auto generated = ReadingGenerator({.devices = 4, .payload_size = 300}).Next(sent);
  const auto published = *mp::ParseTimestamp("2024-05-01T12:00:01Z");
  auto input = bqstore::RowInputTransformer()(
      mp::Message({.payload = mp::EncodeMessageData(
                       {.id = "m1", .payload = generated.payload, .publish_time = published})}));
  ASSERT_TRUE(input.ok() && input->has_value()) << input.status();
  bqstore::ConvertedRow row;
  ASSERT_TRUE((*converter)->Convert(**input, row).ok());
  std::string bytes;
  (*converter)->EncodeProto(row, bytes);
  Reading expected{.device_id = "device-0", .published_at = published, .sent_at = sent};
  const Json body = Json::parse(generated.payload);
  expected.temperature = body.at("temperature").get<double>();
  expected.humidity = body.at("humidity").get<double>();
  EXPECT_EQ(bytes, bqstore::EncodeRow(expected)) << generated.payload;
}

TEST(BigQuerySchemaConfigTest, FromTableAndSources) {
  auto r = Parse(R"(
services:
  - name: store
    bigquery:
      source: {pubsub: {subscription: s}}
      table: {dataset: d, table: t}
      schema: from_table
      sources: {device: "payload.dev.id", topic: mqtt_topic}
)");
  ASSERT_TRUE(r.errors.empty()) << Errors(r)[0];
  const auto& bq = std::get<BigQueryConfig>(r.config.services[0].spec);
  EXPECT_TRUE(bq.schema_from_table);
  EXPECT_TRUE(bq.columns.empty());
  EXPECT_EQ(bq.sources.at("topic"), "mqtt_topic");
}

TEST(BigQuerySchemaConfigTest, ErrorsNameTheirPlace) {
  auto r = Parse(R"(
services:
  - name: a
    bigquery:
      source: {pubsub: {subscription: s}}
      sqlite: {path: x.db}
      schema: from_table
  - name: b
    bigquery:
      source: {pubsub: {subscription: s}}
      sqlite: {path: x.db}
      schema:
        - {name: n, type: INT64}
        - {name: m, type: INT64, source: "payload[x]"}
      sources: {n: message_id}
  - name: c
    bigquery:
      source: {pubsub: {subscription: s}}
      sqlite: {path: x.db}
      schema: everything
  - name: d
    bigquery:
      source: {pubsub: {subscription: s}}
      sqlite: {path: x.db}
)");
  EXPECT_THAT(Errors(r),
              ::testing::UnorderedElementsAre(
                  HasSubstr("services[0].bigquery.schema: from_table needs a BigQuery table"),
                  HasSubstr("services[1].bigquery.schema: schema[1].source: source \"payload[x]\""),
                  HasSubstr("services[1].bigquery.sources: only with schema: from_table"),
                  HasSubstr("services[2].bigquery.schema: expected a list of columns or "
                            "from_table"),
                  HasSubstr("services[3].bigquery.schema: required: a list of columns")));
}

}  // namespace
}  // namespace dataflow::app

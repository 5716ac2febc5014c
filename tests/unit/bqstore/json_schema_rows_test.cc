// Schema-driven rows: the per-type conversion rules (each rule and each error, naming the
// column), sources, config parsing, the proto encoding (checked by decoding it with the
// schema's descriptor), and the bigquery service storing a payload unlike the demo's into
// SQLite, value by value, with bad rows dead-lettered naming the column.
#include "dataflow/bqstore/json_schema_rows.h"

#include <absl/strings/match.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <mutex>
#include <thread>

#include "dataflow/bqstore/bigquery_service.h"
#include "dataflow/bqstore/schema_sqlite_inserter.h"
#include "dataflow/messagepipeline/dead_letter.h"
#include "dataflow/messagepipeline/errors.h"
#include "dataflow/messagepipeline/in_process_broker.h"
#include "dataflow_testing/server_process.h"
#include "schema_rows_sample.h"

namespace dataflow::bqstore {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;
namespace pb = google::protobuf;

std::shared_ptr<const RowConverter> Converter(const Json& columns) {
  auto specs = ColumnsFromJson(columns);
  EXPECT_TRUE(specs.ok()) << specs.status();
  if (!specs.ok()) return nullptr;
  auto converter = RowConverter::Create(*specs);
  EXPECT_TRUE(converter.ok()) << converter.status();
  return converter.ok() ? *converter : nullptr;
}

// One column `c` of `type` (mode NULLABLE), the value converted; the cell or the error.
absl::StatusOr<Cell> One(const std::string& type, const Json& value,
                         const std::string& mode = "NULLABLE") {
  auto converter = Converter(Json::array({{{"name", "c"}, {"type", type}, {"mode", mode}}}));
  if (!converter) return absl::InternalError("no converter");
  RowInput input;
  input.payload = Json::object();
  if (!value.is_discarded()) input.payload["c"] = value;
  ConvertedRow row;
  if (auto s = converter->Convert(input, row); !s.ok()) return s;
  return row[0];
}

// The error message of converting `value`, expected to fail.
std::string Error(const std::string& type, const Json& value,
                  const std::string& mode = "NULLABLE") {
  auto cell = One(type, value, mode);
  EXPECT_FALSE(cell.ok()) << type << " " << value.dump();
  return cell.ok() ? "" : std::string(cell.status().message());
}

TEST(JsonSchemaRowsTest, Bool) {
  EXPECT_EQ(One("BOOL", true)->i, 1);
  EXPECT_EQ(One("BOOL", false)->i, 0);
  EXPECT_EQ(One("BOOLEAN", "TRUE")->i, 1);  // attributes are text
  EXPECT_EQ(Error("BOOL", 1), "column c: expected a boolean, got number");
  EXPECT_EQ(Error("BOOL", "yes"), "column c: expected a boolean, got string");
}

TEST(JsonSchemaRowsTest, Int64MustBeIntegralAndInRange) {
  EXPECT_EQ(One("INT64", 42)->i, 42);
  EXPECT_EQ(One("INTEGER", -7)->i, -7);
  EXPECT_EQ(One("INT64", 3.0)->i, 3);  // an integral JSON number
  EXPECT_EQ(One("INT64", 1e15)->i, 1000000000000000);
  EXPECT_EQ(One("INT64", "9223372036854775807")->i, INT64_MAX);
  EXPECT_EQ(One("INT64", Json::parse("-9223372036854775808"))->i, INT64_MIN);
  EXPECT_EQ(Error("INT64", 1.5), "column c: number 1.5 is not an integer");
  EXPECT_EQ(Error("INT64", Json::parse("9223372036854775808")),
            "column c: integer 9223372036854775808 out of range for INT64");
  EXPECT_EQ(Error("INT64", 1e19), "column c: integer 1e+19 out of range for INT64");
  EXPECT_EQ(Error("INT64", "12a"), "column c: \"12a\" is not a 64-bit integer");
  EXPECT_EQ(Error("INT64", "99999999999999999999"),
            "column c: \"99999999999999999999\" is not a 64-bit integer");
  EXPECT_EQ(Error("INT64", true), "column c: expected an integer, got boolean");
}

TEST(JsonSchemaRowsTest, Float64) {
  EXPECT_DOUBLE_EQ(One("FLOAT64", 2.5)->d, 2.5);
  EXPECT_DOUBLE_EQ(One("FLOAT", 3)->d, 3.0);
  EXPECT_DOUBLE_EQ(One("FLOAT64", "-1.25")->d, -1.25);
  EXPECT_TRUE(std::isnan(One("FLOAT64", "NaN")->d));
  EXPECT_EQ(Error("FLOAT64", "warm"), "column c: \"warm\" is not a number");
  EXPECT_EQ(Error("FLOAT64", Json::array()), "column c: expected a number, got array");
}

TEST(JsonSchemaRowsTest, NumericAndBigNumeric) {
  EXPECT_EQ(One("NUMERIC", "12345.678900")->s, "12345.6789");
  EXPECT_EQ(One("NUMERIC", 20.1)->s, "20.1");
  EXPECT_EQ(One("NUMERIC", 7)->s, "7");
  EXPECT_EQ(One("NUMERIC", "-0.000000001")->s, "-0.000000001");
  EXPECT_EQ(One("NUMERIC", "1.5e3")->s, "1500");
  EXPECT_EQ(One("NUMERIC", "-0")->s, "0");
  EXPECT_EQ(One("BIGNUMERIC", "1e-38")->s, "0." + std::string(37, '0') + "1");
  EXPECT_EQ(Error("NUMERIC", "0.0000000001"),
            "column c: NUMERIC \"0.0000000001\": more than 9 decimal places");
  EXPECT_EQ(Error("NUMERIC", "1e29"),
            "column c: NUMERIC \"1e29\": out of range (more than 29 integer digits)");
  EXPECT_EQ(Error("NUMERIC", "12,5"), "column c: NUMERIC \"12,5\": not a decimal number");
  EXPECT_EQ(Error("NUMERIC", true), "column c: expected a number or a decimal string, got boolean");
}

TEST(JsonSchemaRowsTest, StringIsStrict) {
  EXPECT_EQ(One("STRING", "héllo")->s, "héllo");
  EXPECT_EQ(Error("STRING", 5), "column c: expected a string, got number");
}

TEST(JsonSchemaRowsTest, BytesFromBase64) {
  EXPECT_EQ(One("BYTES", "AAH/")->s, std::string("\x00\x01\xff", 3));
  EXPECT_EQ(One("BYTES", "AAH_")->s, std::string("\x00\x01\xff", 3));  // URL-safe alphabet
  EXPECT_EQ(Error("BYTES", "not base64!"), "column c: not valid base64");
  EXPECT_EQ(Error("BYTES", 1), "column c: expected base64 bytes, got number");
}

TEST(JsonSchemaRowsTest, TimestampFromRfc3339OrEpochSeconds) {
  EXPECT_EQ(One("TIMESTAMP", "2026-01-02T03:04:05.123456Z")->i, 1767323045123456);
  EXPECT_EQ(One("TIMESTAMP", "2026-01-02T04:04:05+01:00")->i, 1767323045000000);
  EXPECT_EQ(One("TIMESTAMP", 1767323045)->i, 1767323045000000);  // epoch seconds
  EXPECT_EQ(One("TIMESTAMP", 1767323045.5)->i, 1767323045500000);
  EXPECT_EQ(One("TIMESTAMP", "0001-01-01T00:00:01Z")->i, -62135596799000000);    // before 1678
  EXPECT_EQ(One("TIMESTAMP", "0001-01-01T00:00:00Z")->kind, Cell::Kind::kNull);  // Go's unset
  EXPECT_EQ(Error("TIMESTAMP", "0001-01-01T00:00:00Z", "REQUIRED"),
            "column c: REQUIRED value is missing");
  EXPECT_EQ(Error("TIMESTAMP", "yesterday"), "column c: not an RFC 3339 timestamp: \"yesterday\"");
  EXPECT_EQ(Error("TIMESTAMP", 1e12), "column c: epoch seconds 1000000000000.0 out of range");
  EXPECT_EQ(Error("TIMESTAMP", 253402300800), "column c: epoch seconds 253402300800 out of range");
  EXPECT_EQ(Error("TIMESTAMP", true),
            "column c: expected an RFC 3339 timestamp or epoch seconds, got boolean");
}

TEST(JsonSchemaRowsTest, DateTimeDatetime) {
  EXPECT_EQ(One("DATE", "1970-01-02")->i, 1);
  EXPECT_EQ(One("DATE", "1969-12-31")->i, -1);
  EXPECT_EQ(One("DATE", "0001-01-01")->i, -719162);
  EXPECT_EQ(One("DATE", "9999-12-31")->i, 2932896);
  EXPECT_EQ(One("DATE", "2024-02-29")->s, "2024-02-29");
  EXPECT_EQ(Error("DATE", "2023-02-29"), "column c: \"2023-02-29\" is not a date YYYY-MM-DD");
  EXPECT_EQ(Error("DATE", "2023-1-2"), "column c: \"2023-1-2\" is not a date YYYY-MM-DD");
  EXPECT_EQ(Error("DATE", 20230102), "column c: expected a date \"YYYY-MM-DD\", got number");
  EXPECT_EQ(One("TIME", "23:59:59.999999")->s, "23:59:59.999999");
  EXPECT_EQ(Error("TIME", "24:00:00"), "column c: \"24:00:00\" is not a time HH:MM:SS[.ffffff]");
  EXPECT_EQ(Error("TIME", "12:00:00.1234567"),
            "column c: \"12:00:00.1234567\" is not a time HH:MM:SS[.ffffff]");
  EXPECT_EQ(One("DATETIME", "2026-01-02T03:04:05.5")->s, "2026-01-02 03:04:05.5");
  EXPECT_EQ(One("DATETIME", "2026-01-02 03:04:05")->s, "2026-01-02 03:04:05");
  EXPECT_EQ(Error("DATETIME", "2026-01-02T03:04:05Z"),
            "column c: \"2026-01-02T03:04:05Z\" is not a datetime YYYY-MM-DD[ |T]HH:MM:SS[.ffffff] "
            "(no time zone)");
}

TEST(JsonSchemaRowsTest, JsonAndGeography) {
  EXPECT_EQ(One("JSON", Json::parse(R"({"b":[1,2],"a":null})"))->s, R"({"a":null,"b":[1,2]})");
  EXPECT_EQ(One("JSON", "text")->s, R"("text")");
  EXPECT_EQ(One("GEOGRAPHY", "POINT(1 2)")->s, "POINT(1 2)");
  EXPECT_EQ(One("GEOGRAPHY", Json::parse(R"({"type":"Point","coordinates":[1,2]})"))->s,
            R"({"coordinates":[1,2],"type":"Point"})");
  EXPECT_EQ(Error("GEOGRAPHY", 3), "column c: expected WKT text or a GeoJSON object, got number");
}

TEST(JsonSchemaRowsTest, ModesRecordsAndArrays) {
  EXPECT_EQ(Error("STRING", Json(Json::value_t::discarded), "REQUIRED"),
            "column c: REQUIRED value is missing");
  EXPECT_EQ(Error("STRING", nullptr, "REQUIRED"), "column c: REQUIRED value is missing");
  EXPECT_EQ(One("STRING", nullptr)->kind, Cell::Kind::kNull);
  auto empty = One("INT64", Json(Json::value_t::discarded), "REPEATED");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->kind, Cell::Kind::kList);
  EXPECT_TRUE(empty->list.empty());  // an absent array is an empty one
  EXPECT_EQ(One("INT64", Json::array({1, 2}), "REPEATED")->list.size(), 2u);
  EXPECT_EQ(Error("INT64", 1, "REPEATED"), "column c: expected an array, got number");
  EXPECT_EQ(Error("INT64", Json::array({1, 1.5}), "REPEATED"),
            "column c[1]: number 1.5 is not an integer");
  EXPECT_EQ(Error("INT64", Json::array({1, nullptr}), "REPEATED"),
            "column c[1]: null element (BigQuery arrays have none)");

  auto converter = Converter(Json::parse(R"([{"name": "r", "type": "RECORD", "mode": "REPEATED",
      "fields": [{"name": "k", "type": "STRING", "mode": "REQUIRED"},
                 {"name": "inner", "type": "STRUCT", "fields": [{"name": "n", "type": "INT64"}]}]}])"));
  ASSERT_TRUE(converter);
  RowInput input;
  input.payload = Json::parse(R"({"r": [{"k": "a", "inner": {"n": 1}}, {"k": "b"}]})");
  ConvertedRow row;
  ASSERT_TRUE(converter->Convert(input, row).ok());
  input.payload = Json::parse(R"({"r": [{"k": "a"}, {"inner": {"n": 1}}]})");
  EXPECT_EQ(converter->Convert(input, row).message(), "column r[1].k: REQUIRED value is missing");
  input.payload = Json::parse(R"({"r": [{"k": "a", "inner": {"n": "x"}}]})");
  EXPECT_EQ(converter->Convert(input, row).message(),
            "column r[0].inner.n: \"x\" is not a 64-bit integer");
  input.payload = Json::parse(R"({"r": [5]})");
  EXPECT_EQ(converter->Convert(input, row).message(),
            "column r[0]: expected an object, got number");
}

TEST(JsonSchemaRowsTest, SourcesParse) {
  auto s = ParseColumnSource("payload.a.b[0].c");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->kind, ColumnSource::Kind::kPayload);
  ASSERT_EQ(s->path.size(), 4u);
  EXPECT_EQ(s->path[0].key, "a");
  EXPECT_EQ(s->path[2].index, 0);
  EXPECT_EQ(ParseColumnSource("payload")->path.size(), 0u);
  EXPECT_EQ(ParseColumnSource("attributes.x")->attribute, "x");
  EXPECT_EQ(ParseColumnSource("mqtt_topic")->attribute, "mqtt_topic");
  EXPECT_EQ(ParseColumnSource("enrichment.location")->kind, ColumnSource::Kind::kEnrichment);
  EXPECT_EQ(ParseColumnSource("message_id")->kind, ColumnSource::Kind::kMessageId);
  EXPECT_EQ(ParseColumnSource("publish_time")->kind, ColumnSource::Kind::kPublishTime);
  for (const char* bad : {"body.x", "payload.", "payload.a[", "payload[-1]", "payload[x]",
                          "attributes.", "payloadx", "payload..a"}) {
    EXPECT_FALSE(ParseColumnSource(bad).ok()) << bad;
  }
}

// The text a TIMESTAMP column gets in SQLite: RFC 3339 UTC, fraction without trailing zeros,
// the same across the whole of BigQuery's range (a fast path covers 1678-2261, absl the rest;
// the epoch is a time like any other there, not "unset").
TEST(JsonSchemaRowsTest, TimestampTextInSqlCoversBigQuerysRange) {
  auto converter =
      Converter(Json::parse(R"([{"name": "c", "type": "TIMESTAMP", "source": "payload.c"}])"));
  ASSERT_TRUE(converter);
  for (const std::string text :
       {"1970-01-01T00:00:00Z", "1969-12-31T23:59:59.999999Z", "2026-01-02T03:04:05.5Z",
        "2026-01-02T03:04:05.000001Z", "1677-09-21T00:12:44Z", "2262-04-11T23:47:17Z",
        "0001-01-01T00:00:01Z", "9999-12-31T23:59:59.999999Z"}) {
    RowInput input;
    input.payload = {{"c", text}};
    ConvertedRow row;
    ASSERT_TRUE(converter->Convert(input, row).ok()) << text;
    const std::vector<SqlValue> sql = converter->ToSql(row);
    ASSERT_EQ(sql.size(), 1u);
    ASSERT_TRUE(std::holds_alternative<std::string>(sql[0])) << text;
    EXPECT_EQ(std::get<std::string>(sql[0]), text);
  }
}

TEST(JsonSchemaRowsTest, EverySourceResolves) {
  auto converter = Converter(Json::parse(R"([
    {"name": "a", "type": "INT64", "source": "payload.x.y[1]"},
    {"name": "b", "type": "INT64", "source": "attributes.count"},
    {"name": "c", "type": "STRING", "source": "enrichment.location"},
    {"name": "d", "type": "STRING", "source": "message_id"},
    {"name": "e", "type": "TIMESTAMP", "source": "publish_time"},
    {"name": "f", "type": "STRING", "source": "mqtt_topic"},
    {"name": "g", "type": "STRING", "source": "publish_time"},
    {"name": "h", "type": "JSON", "source": "payload"},
    {"name": "i", "type": "INT64", "source": "payload.x.y[5]"}])"));
  ASSERT_TRUE(converter);
  RowInput input;
  input.payload = Json::parse(R"({"x": {"y": [1, 22]}})");
  input.attributes = {{"count", "17"}, {"mqtt_topic", "devices/d1/telemetry"}};
  input.enrichment = {{"location", "hall"}};
  input.id = "id-1";
  input.publish_time = *messagepipeline::ParseTimestamp("2026-01-02T03:04:05.5Z");
  ConvertedRow row;
  ASSERT_TRUE(converter->Convert(input, row).ok());
  EXPECT_EQ(row[0].i, 22);
  EXPECT_EQ(row[1].i, 17);
  EXPECT_EQ(row[2].s, "hall");
  EXPECT_EQ(row[3].s, "id-1");
  EXPECT_EQ(row[4].i, 1767323045500000);
  EXPECT_EQ(row[5].s, "devices/d1/telemetry");
  EXPECT_EQ(row[6].s, "2026-01-02T03:04:05.5Z");
  EXPECT_EQ(row[7].s, R"({"x":{"y":[1,22]}})");
  EXPECT_EQ(row[8].kind, Cell::Kind::kNull);  // past the end of the array: absent
  EXPECT_FALSE(converter->needs_payload() == false);
}

TEST(JsonSchemaRowsTest, MissingRequiredNamesTheSource) {
  auto converter = Converter(Json::parse(
      R"([{"name": "site", "type": "STRING", "mode": "REQUIRED", "source": "enrichment.site"}])"));
  ASSERT_TRUE(converter);
  ConvertedRow row;
  EXPECT_EQ(converter->Convert(RowInput{}, row).message(),
            "column site: REQUIRED value is missing (source enrichment.site)");
  EXPECT_FALSE(converter->needs_payload());
}

TEST(JsonSchemaRowsTest, DefaultAndOnInvalid) {
  auto converter = Converter(Json::parse(R"([
    {"name": "humidity", "type": "FLOAT64", "mode": "REQUIRED", "default": 0},
    {"name": "sent_at", "type": "TIMESTAMP", "source": "payload.sentAt", "on_invalid": "null"}])"));
  ASSERT_TRUE(converter);
  RowInput input;
  input.payload = Json::parse(R"({"sentAt": "not a time"})");
  ConvertedRow row;
  ASSERT_TRUE(converter->Convert(input, row).ok());
  EXPECT_EQ(row[0].kind, Cell::Kind::kScalar);
  EXPECT_EQ(row[0].d, 0.0);
  EXPECT_EQ(row[1].kind, Cell::Kind::kNull);
  input.payload = Json::parse(R"({"humidity": 0.5, "sentAt": "2026-01-02T03:04:05Z"})");
  ASSERT_TRUE(converter->Convert(input, row).ok());
  EXPECT_EQ(row[0].d, 0.5);
  EXPECT_EQ(row[1].i, 1767323045000000);
}

TEST(JsonSchemaRowsTest, ConfigErrorsNameTheEntry) {
  auto error = [](const char* text) {
    auto c = ColumnsFromJson(Json::parse(text));
    EXPECT_FALSE(c.ok()) << text;
    return c.ok() ? std::string() : std::string(c.status().message());
  };
  EXPECT_EQ(error(R"([{"name": "a", "type": "FLOAT128"}])"),
            "schema[0]: unsupported BigQuery type \"FLOAT128\"");
  EXPECT_EQ(error(R"([{"name": "a", "type": "INT64", "mode": "SOMETIMES"}])"),
            "schema[0]: unknown field mode \"SOMETIMES\"");
  EXPECT_EQ(error(R"([{"name": "a", "type": "INT64"}, {"name": "b", "type": "INT64",
                      "source": "body"}])")
                .substr(0, 33),
            "schema[1].source: source \"body\": ");
  EXPECT_EQ(error(R"([{"name": "a", "type": "INT64", "colour": 1}])"),
            "schema[0].colour: unknown key (expected one of: name, type, mode, fields, source, "
            "default, on_invalid)");
  EXPECT_EQ(error(R"([{"name": "a", "type": "INT64", "mode": "REQUIRED", "on_invalid": "null"}])"),
            "schema[0].on_invalid: null needs a NULLABLE column");
  EXPECT_EQ(error(R"([{"name": "a", "type": "INT64", "default": "many"}])"),
            "schema[0].default: column a: \"many\" is not a 64-bit integer");
  EXPECT_EQ(error(R"([{"name": "a", "type": "INT64"}, {"name": "A", "type": "INT64"}])"),
            "schema: duplicate field A");
  EXPECT_EQ(error(R"([{"name": "r", "type": "RECORD"}])"),
            "schema[0]: a RECORD needs a list of `fields`");
  EXPECT_EQ(error(R"({"name": "a"})"), "schema: expected a list of columns");
}

TEST(JsonSchemaRowsTest, UnmappedPayloadFields) {
  auto converter = Converter(Json::parse(R"([
    {"name": "a", "type": "INT64"},
    {"name": "dev", "type": "STRING", "source": "payload.device.id"},
    {"name": "x", "type": "STRING", "source": "attributes.extra"}])"));
  ASSERT_TRUE(converter);
  RowInput input;
  input.payload = Json::parse(R"({"a": 1, "device": {"id": "d"}})");
  EXPECT_FALSE(converter->HasUnmappedPayloadField(input));
  input.payload["extra"] = 2;  // read by no column (the attribute of that name is another)
  EXPECT_TRUE(converter->HasUnmappedPayloadField(input));
}

TEST(JsonSchemaRowsTest, ColumnsForTableTakeSources) {
  const TableSchema table = {{.name = "a", .type = FieldType::kInt64},
                             {.name = "b", .type = FieldType::kString}};
  auto columns = ColumnsForTable(table, {{"b", "attributes.x"}});
  ASSERT_TRUE(columns.ok());
  EXPECT_FALSE((*columns)[0].source.has_value());
  EXPECT_EQ((*columns)[1].source->attribute, "x");
  EXPECT_FALSE(ColumnsForTable(table, {{"zz", "message_id"}}).ok());
}

// The encoder's bytes parse with the schema's own descriptor (what BigQuery does) into the
// same values.
TEST(JsonSchemaRowsTest, ProtoEncodingMatchesTheRowDescriptor) {
  auto converter = Converter(sample::Columns());
  ASSERT_TRUE(converter);
  RowInput input;
  input.payload = sample::Payload(3);
  input.payload["day"] = "1969-12-31";  // a negative int32
  input.id = "m-3";
  input.publish_time = sample::PublishTime();
  input.enrichment = {{"site", "site-A"}};
  input.attributes = sample::Attributes(3);
  std::string bytes;
  ASSERT_TRUE(converter->ToProto(input, bytes).ok());
  auto descriptor = RowDescriptor::FromSchema(converter->schema());
  ASSERT_TRUE(descriptor.ok()) << descriptor.status();
  auto message = (*descriptor)->NewMessage();
  ASSERT_TRUE(message->ParseFromString(bytes));
  const pb::Descriptor* d = message->GetDescriptor();
  const pb::Reflection* r = message->GetReflection();
  EXPECT_EQ(r->GetString(*message, d->FindFieldByName("device_id")), "dev-3");
  EXPECT_EQ(r->GetInt64(*message, d->FindFieldByName("seq")), 3);
  EXPECT_EQ(r->GetDouble(*message, d->FindFieldByName("first_reading")), 23.5);
  EXPECT_EQ(r->FieldSize(*message, d->FindFieldByName("readings")), 2);
  EXPECT_EQ(r->GetRepeatedDouble(*message, d->FindFieldByName("readings"), 1), 21.25);
  EXPECT_EQ(r->GetInt64(*message, d->FindFieldByName("ts")), 1767323043123456);
  EXPECT_EQ(r->GetRepeatedString(*message, d->FindFieldByName("tags"), 0), "t3");
  const pb::Message& location = r->GetMessage(*message, d->FindFieldByName("location"));
  EXPECT_EQ(location.GetReflection()->GetDouble(location,
                                                location.GetDescriptor()->FindFieldByName("lon")),
            -3.0);
  EXPECT_FALSE(location.GetReflection()->HasField(
      location, location.GetDescriptor()->FindFieldByName("alt")));
  EXPECT_FALSE(r->HasField(*message, d->FindFieldByName("note")));  // odd: absent
  EXPECT_EQ(r->GetString(*message, d->FindFieldByName("site")), "site-A");
  EXPECT_EQ(r->GetString(*message, d->FindFieldByName("topic")), "devices/dev-3/telemetry");
  EXPECT_EQ(r->GetString(*message, d->FindFieldByName("msg_id")), "m-3");
  EXPECT_EQ(r->GetInt64(*message, d->FindFieldByName("published")), 1772600767000000);
  EXPECT_EQ(r->GetString(*message, d->FindFieldByName("raw")), R"({"id":"dev-3","model":"m1"})");
  EXPECT_EQ(r->GetString(*message, d->FindFieldByName("amount")), "12345.6789");
  EXPECT_EQ(r->GetInt32(*message, d->FindFieldByName("day")), -1);
}

TEST(JsonSchemaRowsTest, TransformerDecodesTheEnvelopeAndRejectsNonJson) {
  auto transform = RowInputTransformer();
  messagepipeline::Message m({.payload = sample::Envelope(4, sample::Payload(4))},
                             sample::Attributes(4));
  auto input = transform(m);
  ASSERT_TRUE(input.ok()) << input.status();
  EXPECT_EQ((*input)->id, "m-4");
  EXPECT_EQ((*input)->payload, sample::Payload(4));
  EXPECT_EQ((*input)->enrichment["site"], "site-A");
  EXPECT_EQ((*input)->attributes.at("mqtt_topic"), "devices/dev-4/telemetry");
  messagepipeline::Message not_json(
      {.payload = messagepipeline::EncodeMessageData({.id = "x", .payload = "{oops"})});
  auto bad = transform(not_json);
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(messagepipeline::IsPermanent(bad.status()));
  EXPECT_TRUE(absl::StartsWith(bad.status().message(), "payload: not valid JSON")) << bad.status();
  messagepipeline::Message raw({.id = "r1", .payload = R"({"a": 1})"});
  auto as_raw = RowInputTransformer({.input_format = messagepipeline::InputFormat::kRaw})(raw);
  ASSERT_TRUE(as_raw.ok());
  EXPECT_EQ((*as_raw)->id, "r1");
  EXPECT_EQ((*as_raw)->payload["a"], 1);
  // The default (auto) reads the raw message as raw, and an envelope as an envelope.
  auto auto_raw = transform(raw);
  ASSERT_TRUE(auto_raw.ok()) << auto_raw.status();
  EXPECT_EQ((*auto_raw)->id, "r1");
  EXPECT_EQ((*auto_raw)->payload["a"], 1);
  // Told the body is an envelope, a raw one is a permanent error, not an empty row.
  messagepipeline::Message not_envelope({.payload = "[1]"});
  auto forced =
      RowInputTransformer({.input_format = messagepipeline::InputFormat::kEnvelope})(not_envelope);
  ASSERT_FALSE(forced.ok());
  EXPECT_TRUE(messagepipeline::IsPermanent(forced.status()));
}

// The service, over the in-process broker, into SQLite.
class SchemaSqliteServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    broker_ = messagepipeline::InProcessBroker::Create();
    ASSERT_TRUE(broker_->CreateTopic("in").ok());
    ASSERT_TRUE(broker_->CreateSubscription("in-sub", "in").ok());
    ASSERT_TRUE(broker_->CreateTopic("dead").ok());
    ASSERT_TRUE(broker_->CreateSubscription("dead-sub", "dead").ok());
    dead_consumer_ = *broker_->NewConsumer("dead-sub");
    ASSERT_TRUE(dead_consumer_->Start().ok());
    dead_reader_ = std::jthread([this] {
      while (auto m = dead_consumer_->Messages().Pop()) {
        {
          std::lock_guard lock(mu_);
          dead_.push_back(
              m->attributes.at(std::string(messagepipeline::kDeadLetterErrorAttribute)));
        }
        m->Ack();
      }
    });
    path_ = (std::filesystem::temp_directory_path() /
             ("bqstore_schema_rows_" + std::to_string(::getpid()) + ".db"))
                .string();
    std::filesystem::remove(path_);
  }
  void TearDown() override {
    (void)dead_consumer_->Stop(std::chrono::steady_clock::now());
    dead_reader_.join();
    std::filesystem::remove(path_);
  }
  std::vector<std::string> Dead() {
    std::lock_guard lock(mu_);
    return dead_;
  }

  std::shared_ptr<messagepipeline::InProcessBroker> broker_;
  std::shared_ptr<messagepipeline::MessageConsumer> dead_consumer_;
  std::mutex mu_;
  std::vector<std::string> dead_;
  std::jthread dead_reader_;
  std::string path_;
};

// SQLite values back as JSON, by the mapping: RECORD/REPEATED columns hold JSON text.
std::vector<Json> ReadSqlite(const std::string& path, const TableSchema& schema) {
  std::vector<Json> rows;
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, "SELECT * FROM events ORDER BY seq", -1, &stmt, nullptr),
            SQLITE_OK);
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    Json row = Json::object();
    for (int k = 0; k < sqlite3_column_count(stmt); ++k) {
      const FieldSchema& f = schema[static_cast<std::size_t>(k)];
      EXPECT_EQ(sqlite3_column_name(stmt, k), f.name);
      Json& v = row[f.name];
      switch (sqlite3_column_type(stmt, k)) {
        case SQLITE_INTEGER:
          v = sqlite3_column_int64(stmt, k);
          break;
        case SQLITE_FLOAT:
          v = sqlite3_column_double(stmt, k);
          break;
        case SQLITE_TEXT: {
          std::string text(reinterpret_cast<const char*>(sqlite3_column_text(stmt, k)));
          if (f.type == FieldType::kRecord || f.mode == FieldMode::kRepeated) {
            v = Json::parse(text);
          } else {
            v = text;
          }
          break;
        }
        default:
          v = nullptr;
      }
    }
    rows.push_back(std::move(row));
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return rows;
}

TEST_F(SchemaSqliteServiceTest, StoresEveryColumnAndDeadLettersBadRowsNamingTheColumn) {
  auto converter = Converter(sample::Columns());
  ASSERT_TRUE(converter);
  auto sqlite = SchemaSqliteInserter::Create({.path = path_, .table = "events"}, converter);
  ASSERT_TRUE(sqlite.ok()) << sqlite.status();
  std::shared_ptr<DataBatchInserter<RowInput>> inserter = *std::move(sqlite);
  auto consumer = broker_->NewConsumer("in-sub");
  ASSERT_TRUE(consumer.ok());
  auto service =
      NewBigQueryService<RowInput>({.common = {.name = "schema-bq",
                                               .num_workers = 2,
                                               .dead_letter = broker_->NewDeadLetterSink("dead")},
                                    .batch_size = 8,
                                    .flush_interval = 50ms},
                                   *consumer, RowInputTransformer(), inserter);
  ASSERT_TRUE(service.ok()) << service.status();
  ASSERT_TRUE((*service)->Start().ok());
  constexpr int kGood = 12;
  for (int i = 0; i < kGood; ++i) {
    ASSERT_TRUE(broker_
                    ->Publish("in", {.payload = sample::Envelope(i, sample::Payload(i))},
                              sample::Attributes(i))
                    .ok());
  }
  Json fractional = sample::Payload(100);
  fractional["seq"] = 1.5;
  Json no_ts = sample::Payload(101);
  no_ts.erase("ts");
  ASSERT_TRUE(broker_->Publish("in", {.payload = sample::Envelope(100, fractional)}).ok());
  ASSERT_TRUE(broker_->Publish("in", {.payload = sample::Envelope(101, no_ts)}).ok());
  ASSERT_TRUE(broker_->Publish("in", {.payload = "not an envelope"}).ok());
  ASSERT_TRUE(dataflow::testing::WaitFor(
      [&] {
        auto s = broker_->Stats("in-sub");
        return s.ok() && s->acked == kGood + 3 && Dead().size() == 3;
      },
      20s));
  ASSERT_TRUE((*service)->Stop(10s).ok());
  ASSERT_TRUE(inserter->Close().ok());

  const std::vector<Json> rows = ReadSqlite(path_, converter->schema());
  ASSERT_EQ(rows.size(), static_cast<std::size_t>(kGood));
  for (int i = 0; i < kGood; ++i) {
    const Json expected = sample::Expected(i);
    for (auto it = expected.begin(); it != expected.end(); ++it) {
      EXPECT_EQ(rows[i][it.key()], it.value()) << "row " << i << " column " << it.key();
    }
  }
  std::vector<std::string> dead = Dead();
  std::sort(dead.begin(), dead.end());
  ASSERT_EQ(dead.size(), 3u);
  EXPECT_NE(dead[0].find("column seq: number 1.5 is not an integer"), std::string::npos) << dead[0];
  EXPECT_NE(dead[1].find("column ts: REQUIRED value is missing"), std::string::npos) << dead[1];
  // Not an envelope, so (input_format auto) a raw payload, and not JSON.
  EXPECT_NE(dead[2].find("payload: not valid JSON"), std::string::npos) << dead[2];
}

}  // namespace
}  // namespace dataflow::bqstore

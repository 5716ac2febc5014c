#include "dataflow/bqstore/row.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/message.h>
#include <gtest/gtest.h>

#include "dataflow/bqstore/row_codec.h"
#include "dataflow/bqstore/schema.h"

namespace dataflow::bqstore {
namespace {

using std::chrono::microseconds;

struct Location {
  double lat = 0;
  double lon = 0;
  std::optional<std::string> label;
  friend bool operator==(const Location&, const Location&) = default;
};
DATAFLOW_DESCRIBE(Location, lat, lon, label);

struct Everything {
  bool flag = false;
  std::int32_t small = 0;
  std::int64_t big = 0;
  std::uint32_t unsigned_small = 0;
  float f = 0;
  double d = 0;
  std::string text;
  Bytes blob;
  Timestamp at;
  std::optional<std::int64_t> maybe;
  std::vector<std::string> tags;
  Location where;
  std::optional<Location> maybe_where;
  std::vector<Location> path;
  friend bool operator==(const Everything&, const Everything&) = default;
};
DATAFLOW_DESCRIBE(Everything, flag, small, big, unsigned_small, f, d, text, blob, at, maybe, tags,
                  where, maybe_where, path);

Everything Sample() {
  return Everything{.flag = true,
                    .small = -7,
                    .big = -(std::int64_t{1} << 40),
                    .unsigned_small = 4000000000u,
                    .f = 1.5f,
                    .d = -2.25,
                    .text = "héllo",
                    .blob = {std::string("\0\xff\x01", 3)},
                    .at = Timestamp(microseconds(1767225600123456)),
                    .maybe = 42,
                    .tags = {"a", "", "c"},
                    .where = {.lat = 1, .lon = 2, .label = "home"},
                    .maybe_where = std::nullopt,
                    .path = {{.lat = 3, .lon = 4}, {.lat = 5, .lon = 6, .label = "x"}}};
}

TEST(SchemaTest, InfersEveryTypeAndMode) {
  const TableSchema schema = InferSchema<Everything>();
  const TableSchema location = {
      {.name = "lat", .type = FieldType::kFloat64, .mode = FieldMode::kRequired},
      {.name = "lon", .type = FieldType::kFloat64, .mode = FieldMode::kRequired},
      {.name = "label", .type = FieldType::kString, .mode = FieldMode::kNullable}};
  const TableSchema expected = {
      {.name = "flag", .type = FieldType::kBool, .mode = FieldMode::kRequired},
      {.name = "small", .type = FieldType::kInt64, .mode = FieldMode::kRequired},
      {.name = "big", .type = FieldType::kInt64, .mode = FieldMode::kRequired},
      {.name = "unsigned_small", .type = FieldType::kInt64, .mode = FieldMode::kRequired},
      {.name = "f", .type = FieldType::kFloat64, .mode = FieldMode::kRequired},
      {.name = "d", .type = FieldType::kFloat64, .mode = FieldMode::kRequired},
      {.name = "text", .type = FieldType::kString, .mode = FieldMode::kRequired},
      {.name = "blob", .type = FieldType::kBytes, .mode = FieldMode::kRequired},
      {.name = "at", .type = FieldType::kTimestamp, .mode = FieldMode::kRequired},
      {.name = "maybe", .type = FieldType::kInt64, .mode = FieldMode::kNullable},
      {.name = "tags", .type = FieldType::kString, .mode = FieldMode::kRepeated},
      {.name = "where",
       .type = FieldType::kRecord,
       .mode = FieldMode::kRequired,
       .fields = location},
      {.name = "maybe_where",
       .type = FieldType::kRecord,
       .mode = FieldMode::kNullable,
       .fields = location},
      {.name = "path",
       .type = FieldType::kRecord,
       .mode = FieldMode::kRepeated,
       .fields = location}};
  EXPECT_EQ(schema, expected);
}

TEST(SchemaTest, JsonRoundTripUsesBigQueryNames) {
  const TableSchema schema = InferSchema<Everything>();
  const nlohmann::json json = SchemaToJson(schema);
  EXPECT_EQ(json["fields"][0]["type"], "BOOLEAN");
  EXPECT_EQ(json["fields"][8]["type"], "TIMESTAMP");
  EXPECT_EQ(json["fields"][10]["mode"], "REPEATED");
  EXPECT_EQ(json["fields"][11]["fields"][2]["name"], "label");
  auto back = SchemaFromJson(json);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, schema);
}

TEST(SchemaTest, FromJsonRejectsBadInput) {
  EXPECT_EQ(SchemaFromJson(nlohmann::json::array()).status().code(),
            absl::StatusCode::kInvalidArgument);
  // GEOGRAPHY and the other schema-row types are supported now; INTERVAL and RANGE are not.
  auto bad_type = SchemaFromJson({{"fields", {{{"name", "x"}, {"type", "INTERVAL"}}}}});
  EXPECT_EQ(bad_type.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad_type.status().message().find("INTERVAL"), std::string::npos);
  // A mode that is not text (outside data: a config, or a table's REST schema) is an error,
  // not a thrown json type_error.
  for (const nlohmann::json& mode :
       {nlohmann::json::array({"REQUIRED"}), nlohmann::json(-1), nlohmann::json::object()}) {
    auto bad_mode =
        SchemaFromJson({{"fields", {{{"name", "x"}, {"type", "STRING"}, {"mode", mode}}}}});
    EXPECT_EQ(bad_mode.status().code(), absl::StatusCode::kInvalidArgument) << mode;
    EXPECT_NE(bad_mode.status().message().find("\"mode\" must be a string"), std::string::npos);
  }
}

TEST(SchemaTest, CompatibilityNamesMismatchingFields) {
  TableSchema table = InferSchema<Everything>();
  EXPECT_TRUE(CheckCompatible(InferSchema<Everything>(), table).ok());
  table[1].type = FieldType::kString;     // small
  table[11].fields[0].name = "latitude";  // where.lat
  absl::Status s = CheckCompatible(InferSchema<Everything>(), table);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("small: type INTEGER but the table has STRING"), std::string::npos)
      << s;
  EXPECT_NE(s.message().find("where.lat: not in the table"), std::string::npos) << s;
  EXPECT_NE(s.message().find("where.latitude: REQUIRED in the table"), std::string::npos) << s;
  // A table with an extra NULLABLE column is fine.
  TableSchema wider = InferSchema<Everything>();
  wider.push_back({.name = "extra", .type = FieldType::kString});
  EXPECT_TRUE(CheckCompatible(InferSchema<Everything>(), wider).ok());
}

TEST(DescriptorTest, BuildsNestedProto2Descriptor) {
  auto row = RowDescriptor::FromSchema(InferSchema<Everything>(), "Everything");
  ASSERT_TRUE(row.ok()) << row.status();
  const google::protobuf::Descriptor* d = (*row)->descriptor();
  ASSERT_EQ(d->field_count(), 14);
  EXPECT_EQ(d->field(0)->type(), google::protobuf::FieldDescriptor::TYPE_BOOL);
  EXPECT_EQ(d->field(8)->type(), google::protobuf::FieldDescriptor::TYPE_INT64);  // timestamp
  EXPECT_TRUE(d->field(10)->is_repeated());
  EXPECT_EQ(d->field(13)->message_type()->field_count(), 3);
  EXPECT_EQ(d->file()->syntax(), google::protobuf::FileDescriptor::SYNTAX_PROTO2);
}

TEST(DescriptorTest, RejectsInvalidSchemas) {
  EXPECT_EQ(RowDescriptorProto({}, "Row").status().code(), absl::StatusCode::kInvalidArgument);
  auto bad_name = RowDescriptorProto({{.name = "a-b", .type = FieldType::kString}}, "Row");
  EXPECT_NE(bad_name.status().message().find("a-b"), std::string::npos);
  auto duplicate = RowDescriptorProto(
      {{.name = "a", .type = FieldType::kString}, {.name = "A", .type = FieldType::kInt64}}, "Row");
  EXPECT_NE(duplicate.status().message().find("duplicate"), std::string::npos);
  auto empty_record = RowDescriptorProto({{.name = "r", .type = FieldType::kRecord}}, "Row");
  EXPECT_EQ(empty_record.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(EncodeTest, RoundTripThroughDynamicMessage) {
  auto row = RowDescriptor::FromSchema(InferSchema<Everything>(), "Everything");
  ASSERT_TRUE(row.ok()) << row.status();
  const Everything sample = Sample();
  auto message = (*row)->NewMessage();
  ASSERT_TRUE(message->ParseFromString(EncodeRow(sample)));
  const auto* d = message->GetDescriptor();
  const auto* r = message->GetReflection();
  EXPECT_TRUE(r->GetBool(*message, d->field(0)));
  EXPECT_EQ(r->GetInt64(*message, d->field(1)), -7);
  EXPECT_EQ(r->GetInt64(*message, d->field(2)), -(std::int64_t{1} << 40));
  EXPECT_EQ(r->GetInt64(*message, d->field(3)), 4000000000);
  EXPECT_EQ(r->GetDouble(*message, d->field(4)), 1.5);
  EXPECT_EQ(r->GetDouble(*message, d->field(5)), -2.25);
  EXPECT_EQ(r->GetString(*message, d->field(6)), "héllo");
  EXPECT_EQ(r->GetString(*message, d->field(7)), std::string("\0\xff\x01", 3));
  EXPECT_EQ(r->GetInt64(*message, d->field(8)), 1767225600123456);
  EXPECT_TRUE(r->HasField(*message, d->field(9)));
  EXPECT_EQ(r->GetInt64(*message, d->field(9)), 42);
  ASSERT_EQ(r->FieldSize(*message, d->field(10)), 3);
  EXPECT_EQ(r->GetRepeatedString(*message, d->field(10), 1), "");
  const auto& where = r->GetMessage(*message, d->field(11));
  EXPECT_EQ(where.GetReflection()->GetDouble(where, where.GetDescriptor()->field(1)), 2);
  EXPECT_EQ(where.GetReflection()->GetString(where, where.GetDescriptor()->field(2)), "home");
  EXPECT_FALSE(r->HasField(*message, d->field(12)));  // empty optional record: absent
  ASSERT_EQ(r->FieldSize(*message, d->field(13)), 2);
  const auto& second = r->GetRepeatedMessage(*message, d->field(13), 1);
  EXPECT_EQ(second.GetReflection()->GetString(second, second.GetDescriptor()->field(2)), "x");
  const auto& first = r->GetRepeatedMessage(*message, d->field(13), 0);
  EXPECT_FALSE(first.GetReflection()->HasField(first, first.GetDescriptor()->field(2)));
  // And byte-for-byte what protobuf itself writes for that message.
  EXPECT_EQ(message->SerializeAsString(), EncodeRow(sample));
}

TEST(EncodeTest, EmptyOptionalIsAbsent) {
  auto row = RowDescriptor::FromSchema(InferSchema<Location>(), "Location");
  ASSERT_TRUE(row.ok());
  auto message = (*row)->NewMessage();
  ASSERT_TRUE(message->ParseFromString(EncodeRow(Location{.lat = 1, .lon = 2})));
  EXPECT_FALSE(message->GetReflection()->HasField(*message, message->GetDescriptor()->field(2)));
}

TEST(JsonTest, RoundTrip) {
  const Everything sample = Sample();
  const nlohmann::json json = ToJson(sample);
  EXPECT_EQ(json["blob"], "AP8B");
  EXPECT_EQ(json["at"], "2026-01-01T00:00:00.123456Z");
  EXPECT_TRUE(json["maybe_where"].is_null());
  auto back = FromJson<Everything>(json);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, sample);
}

TEST(JsonTest, AcceptsBigQueryJsonVariants) {
  nlohmann::json json = ToJson(Sample());
  json["big"] = "-5";             // INT64 as a string
  json["at"] = 1767225600123456;  // epoch micros
  json.erase("tags");             // absent array: empty
  auto row = FromJson<Everything>(json);
  ASSERT_TRUE(row.ok()) << row.status();
  EXPECT_EQ(row->big, -5);
  EXPECT_EQ(row->at, Sample().at);
  EXPECT_TRUE(row->tags.empty());
}

TEST(JsonTest, ErrorsNameTheField) {
  nlohmann::json json = ToJson(Sample());
  json["path"][1]["lat"] = "north";
  auto row = FromJson<Everything>(json);
  EXPECT_EQ(row.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(row.status().message().find("path[1].lat: expected a number"), std::string::npos)
      << row.status();

  json = ToJson(Sample());
  json.erase("text");
  EXPECT_NE(FromJson<Everything>(json).status().message().find("text: required field is missing"),
            std::string::npos);

  json = ToJson(Sample());
  json["small"] = std::int64_t{1} << 40;  // does not fit int32
  EXPECT_NE(FromJson<Everything>(json).status().message().find("out of range"), std::string::npos);

  EXPECT_EQ(FromJson<Everything>(nlohmann::json::array()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dataflow::bqstore

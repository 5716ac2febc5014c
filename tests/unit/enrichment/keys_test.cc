#include "dataflow/enrichment/keys.h"

#include <gtest/gtest.h>

namespace dataflow::enrichment {
namespace {

using messagepipeline::Attributes;
using messagepipeline::Message;
using messagepipeline::MessageData;
using nlohmann::json;

Message WithPayload(std::string payload, Attributes attributes = {}) {
  return Message(MessageData{.id = "m", .payload = std::move(payload)}, std::move(attributes));
}

TEST(JsonPath, FindsMembersAndArrayElements) {
  const json doc = json::parse(R"({"a":{"b":[{"c":"x"},{"c":7}]},"top":"t","arr":[1,[2,3]]})");
  auto find = [&](std::string_view text) -> json {
    auto path = JsonPath::Parse(text);
    EXPECT_TRUE(path.ok()) << text << ": " << path.status();
    const json* v = path->Find(doc);
    return v == nullptr ? json("<absent>") : *v;
  };
  EXPECT_EQ(find("top"), "t");
  EXPECT_EQ(find("a.b[0].c"), "x");
  EXPECT_EQ(find("a.b[1].c"), 7);
  EXPECT_EQ(find("arr[1][0]"), 2);
  EXPECT_EQ(find("a.b[2].c"), "<absent>");  // index out of range
  EXPECT_EQ(find("top.x"), "<absent>");     // a string has no members
  EXPECT_EQ(find("a[0]"), "<absent>");      // an object has no elements
  EXPECT_EQ(find("missing"), "<absent>");
}

TEST(JsonPath, SyntaxErrorsSayWhere) {
  for (const char* bad : {"", ".a", "a.", "a..b", "a[", "a[x]", "a[-1]", "a[ 1]", "a]", "a[0]b"}) {
    auto path = JsonPath::Parse(bad);
    ASSERT_FALSE(path.ok()) << bad;
    EXPECT_EQ(path.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(path.status().message().find("at character"), std::string_view::npos)
        << path.status();
  }
}

TEST(JsonPath, MemberTakesAnyName) {
  const json doc = {{"a.b[0]", "odd"}};
  EXPECT_EQ(*JsonPath::Member("a.b[0]").Find(doc), "odd");
}

TEST(PayloadPathKey, NonEmptyStringsAreKeysOtherValuesAreNot) {
  auto key = PayloadPathKey(*JsonPath::Parse("device.id"));
  EXPECT_EQ(key(WithPayload(R"({"device":{"id":"dev-1"}})")), "dev-1");
  for (const char* none :
       {R"({"device":{"id":""}})", R"({"device":{"id":42}})", R"({"device":{"id":1.5}})",
        R"({"device":{"id":null}})", R"({"device":{"id":{}}})", R"({"device":{}})",
        R"({"device":"dev-1"})", "not json", ""}) {
    EXPECT_EQ(key(WithPayload(none)), std::nullopt) << none;
  }
}

// FindKeyIn reads the key without building the document; it must say exactly what the
// document would: the key at Find() of the parsed text, a non-empty string, or nothing.
std::optional<std::string> KeyFromDocument(const JsonPath& path, std::string_view text,
                                           const messagepipeline::JsonLimits& limits) {
  auto doc = messagepipeline::ParseJsonBounded(text, limits);
  if (!doc.ok()) return std::nullopt;
  const json* v = path.Find(*doc);
  if (v == nullptr || !v->is_string() || v->get_ref<const std::string&>().empty()) {
    return std::nullopt;
  }
  return v->get<std::string>();
}

TEST(JsonPath, FindKeyInSaysWhatTheParsedDocumentSays) {
  const std::vector<std::string> paths = {"id", "a.b", "a.b[1]", "[0]", "[1].id", "a.b[0].c"};
  const std::vector<std::string> texts = {
      R"({"id":"d1"})",
      R"({"id":""})",
      R"({"id":7})",
      R"({"id":null})",
      R"({"id":{"x":1}})",
      R"({"id":"first","id":"second"})",  // the last duplicate counts
      R"({"id":"first","id":3})",         // ... even when it is no key
      R"({"a":{"b":"x"},"a":1})",         // a later scalar replaces the whole subtree
      R"({"a":{"b":"x"},"a":{"c":1}})",   // ... and so does a later object
      R"({"a":1,"a":{"b":"y"}})",         // ... or brings the key
      R"({"a":{"b":["p","q"]}})",
      R"({"a":{"b":["p",{"q":1},"r"]}})",
      R"(["zero",{"id":"one"}])",
      R"([{"id":"zero"},{"id":"one"},{"id":"two"}])",
      R"({"a":{"b":[{"c":"deep"}]}})",
      R"({"a":{"b":[{"c":"x","c":"y"}]}})",
      R"({"x":{"id":"nested is not top"},"id":"top"})",
      R"({"x":[{"id":"no"}]})",
      R"("id")",
      R"(7)",
      R"(null)",
      R"([])",
      R"({})",
      R"({"id":"d1")",
      R"({"id":"d1"} trailing)",
      R"({"id":"dé"})",
      R"({"id":"a"b"})",
      R"({"a":{"b":"x","b":{"c":1}}})",
      R"({"a":[[["x"]]],"id":"k"})"};
  const std::vector<messagepipeline::JsonLimits> limits = {
      {}, {.max_depth = 1}, {.max_depth = 2}, {.max_bytes = 10}};
  for (const std::string& p : paths) {
    const JsonPath path = *JsonPath::Parse(p);
    for (const std::string& text : texts) {
      for (const auto& l : limits) {
        EXPECT_EQ(path.FindKeyIn(text, l), KeyFromDocument(path, text, l))
            << "path " << p << " text " << text << " max_depth " << l.max_depth << " max_bytes "
            << l.max_bytes;
      }
    }
  }
}

TEST(TopicSegmentKey, TakesTheNthSegmentOfTheMqttTopic) {
  auto key = TopicSegmentKey(1);
  EXPECT_EQ(key(WithPayload("", {{"mqtt_topic", "devices/dev-7/telemetry"}})), "dev-7");
  EXPECT_EQ(key(WithPayload("", {{"mqtt_topic", "devices//telemetry"}})), std::nullopt);
  EXPECT_EQ(key(WithPayload("", {{"mqtt_topic", "devices"}})), std::nullopt);
  EXPECT_EQ(key(WithPayload("")), std::nullopt);  // no topic attribute
  EXPECT_EQ(TopicSegmentKey(0, "source")(WithPayload("", {{"source", "a/b"}})), "a");
}

TEST(FirstKey, TriesEachExtractorInOrder) {
  auto key = FirstKey(
      {PayloadPathKey(*JsonPath::Parse("id")), TopicSegmentKey(1), AttributeKey("device")});
  EXPECT_EQ(key(WithPayload(R"({"id":"p"})", {{"mqtt_topic", "d/t/x"}})), "p");
  EXPECT_EQ(key(WithPayload("{}", {{"mqtt_topic", "d/t/x"}, {"device", "a"}})), "t");
  EXPECT_EQ(key(WithPayload("{}", {{"device", "a"}})), "a");
  EXPECT_EQ(key(WithPayload("{}")), std::nullopt);
}

TEST(SelectingApplier, MergesEverythingByDefault) {
  Message m = WithPayload("{}");
  m.data.enrichment_data = {{"kept", 1}};
  SelectingApplier({})(m, json{{"name", "Sensor"}, {"location", "london"}});
  EXPECT_EQ(m.data.enrichment_data,
            (json{{"kept", 1}, {"name", "Sensor"}, {"location", "london"}}));
  EXPECT_TRUE(m.attributes.empty());
}

TEST(SelectingApplier, KeepsRenamesAndCopiesToAttributes) {
  Message m = WithPayload("{}");
  SelectingApplier({.fields = {{.from = "name"}, {.from = "location", .to = "site"}},
                    .attributes = {{.from = "location"},
                                   {.from = "floor", .to = "level"},
                                   {.from = "tags"},
                                   {.from = "absent"}}})(m, json{{"name", "Sensor"},
                                                                 {"location", "london"},
                                                                 {"floor", 3},
                                                                 {"tags", {"a"}},
                                                                 {"secret", "x"}});
  EXPECT_EQ(m.data.enrichment_data, (json{{"name", "Sensor"}, {"site", "london"}}));
  // Scalars become attributes (numbers as JSON text); arrays and objects do not.
  EXPECT_EQ(m.attributes, (Attributes{{"location", "london"}, {"level", "3"}}));
}

TEST(SelectingApplier, ANonObjectDocumentIsStoredWhole) {
  Message m = WithPayload("{}");
  SelectingApplier({.attributes = {{.from = "location"}}})(m, json("just text"));
  EXPECT_EQ(m.data.enrichment_data, (json{{"enrichment", "just text"}}));
  EXPECT_TRUE(m.attributes.empty());
}

}  // namespace
}  // namespace dataflow::enrichment

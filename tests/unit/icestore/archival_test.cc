#include "dataflow/icestore/archival.h"

#include <absl/strings/escaping.h>
#include <absl/time/time.h>
#include <gtest/gtest.h>

#include "dataflow/icestore/gzip.h"
#include "dataflow/messagepipeline/errors.h"

namespace dataflow::icestore {
namespace {

using messagepipeline::Clock;
using messagepipeline::Message;
using messagepipeline::MessageData;

Clock::time_point At(int y, int m, int d, int hh = 12) {
  return absl::ToChronoTime(
      absl::FromCivil(absl::CivilSecond(y, m, d, hh, 0, 0), absl::UTCTimeZone()));
}

std::string KeyOf(const Message& m) {
  auto r = ArchivalTransformer(m);
  EXPECT_TRUE(r.ok() && r->has_value());
  return (*r)->batch_key;
}

TEST(ArchivalTransformer, DateKeyFromPublishTimeInUtc) {
  Message m(MessageData{.id = "a", .payload = "p", .publish_time = At(2025, 6, 15, 23)});
  EXPECT_EQ(KeyOf(m), "2025/06/15");
  auto r = ArchivalTransformer(m);
  EXPECT_EQ((*r)->id, "a");
  EXPECT_EQ((*r)->original_payload, "p");
}

TEST(ArchivalTransformer, UnsetPublishTimeUsesNow) {
  Message m(MessageData{.id = "a"});
  const absl::CivilDay today = absl::ToCivilDay(absl::Now(), absl::UTCTimeZone());
  const std::string key = KeyOf(m);
  // Midnight could pass between the two clock reads; accept today or the next day.
  const std::string k1 = absl::FormatCivilTime(today);
  const std::string k2 = absl::FormatCivilTime(today + 1);
  auto slash = [](std::string s) {
    for (char& c : s) c = c == '-' ? '/' : c;
    return s;
  };
  EXPECT_TRUE(key == slash(k1) || key == slash(k2)) << key;
}

TEST(ArchivalTransformer, LocationFromEnrichmentThenAttribute) {
  Message enriched(
      MessageData{
          .id = "a", .publish_time = At(2025, 1, 2), .enrichment_data = {{"location", "loc-a"}}},
      {{"location", "attr-loc"}});
  EXPECT_EQ(KeyOf(enriched), "2025/01/02/loc-a");
  Message attr(MessageData{.id = "b", .publish_time = At(2025, 1, 2)}, {{"location", "attr-loc"}});
  EXPECT_EQ(KeyOf(attr), "2025/01/02/attr-loc");
  Message no_loc(
      MessageData{.id = "c", .publish_time = At(2025, 1, 2), .enrichment_data = {{"name", "x"}}},
      {{"location", "attr-loc"}});
  EXPECT_EQ(KeyOf(no_loc), "2025/01/02/attr-loc");
  Message non_string(MessageData{
      .id = "d", .publish_time = At(2025, 1, 2), .enrichment_data = {{"location", 42}}});
  EXPECT_EQ(KeyOf(non_string), "2025/01/02");
}

TEST(ArchivalTransformer, HostileLocationsArePermanentErrorsForThatMessage) {
  for (const std::string& loc :
       std::vector<std::string>{"../../etc", "/abs/path", "a/../../b", "x\ny\tz", "..", ".", "a\\b",
                                std::string("nul\0byte", 8), "./.", "a//b/", "del\x7f"}) {
    Message attr(MessageData{.id = "a", .publish_time = At(2025, 1, 2)}, {{"location", loc}});
    auto r = ArchivalTransformer(attr);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << loc;
    EXPECT_TRUE(messagepipeline::IsPermanent(r.status())) << loc;  // dead-lettered, not retried
    EXPECT_EQ(r.status().message().find('\n'), std::string::npos)
        << "raw device bytes in " << r.status();
    Message enriched(MessageData{
        .id = "b", .publish_time = At(2025, 1, 2), .enrichment_data = {{"location", loc}}});
    EXPECT_TRUE(messagepipeline::IsPermanent(ArchivalTransformer(enriched).status())) << loc;
  }
  // Odd but harmless: one plain segment each.
  for (const std::string& loc : std::vector<std::string>{"...x", "a..b", "site 1", "zürich"}) {
    Message m(MessageData{.id = "a", .publish_time = At(2025, 1, 2)}, {{"location", loc}});
    EXPECT_EQ(KeyOf(m), "2025/01/02/" + loc);
  }
}

// An envelope (Go's enrichment output, or ours) is archived as received, and grouped by
// what it says: its id, its publish day and its enrichment's location, not the transport's.
TEST(ArchivalTransformer, AnEnvelopeIsKeyedByItsOwnDayAndLocation) {
  const std::string body =
      messagepipeline::EncodeMessageData({.id = "mqtt-1",
                                          .payload = R"({"t":1})",
                                          .publish_time = At(2024, 2, 29),
                                          .enrichment_data = {{"location", "env-loc"}}});
  Message m(MessageData{.id = "pubsub-1", .payload = body, .publish_time = At(2025, 1, 2)},
            {{"location", "attr-loc"}});
  auto r = ArchivalTransformer(m);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)->batch_key, "2024/02/29/env-loc");
  EXPECT_EQ((*r)->id, "mqtt-1");
  EXPECT_EQ((*r)->original_payload, body);
  // Told the body is raw, the transport's view decides.
  auto raw = MakeArchivalTransformer(messagepipeline::InputFormat::kRaw)(m);
  ASSERT_TRUE(raw.ok()) << raw.status();
  EXPECT_EQ((*raw)->batch_key, "2025/01/02/attr-loc");
  EXPECT_EQ((*raw)->id, "pubsub-1");
  // Told it is an envelope, a body that is not one is a permanent error.
  Message device(MessageData{.id = "x", .payload = "not json"});
  auto forced = MakeArchivalTransformer(messagepipeline::InputFormat::kEnvelope)(device);
  ASSERT_FALSE(forced.ok());
  EXPECT_TRUE(messagepipeline::IsPermanent(forced.status()));
}

TEST(DayArchivalTransformer, KeysByTheDayAloneSoNoLocationCanRefuseAMessage) {
  for (const std::string& loc : {std::string("../../etc"), std::string(300, 'x'), std::string()}) {
    Message m(MessageData{.id = "a",
                          .payload = "p",
                          .publish_time = At(2025, 1, 2),
                          .enrichment_data = {{"location", "loc-a"}}},
              {{"location", loc}});
    auto r = DayArchivalTransformer(m);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ((*r)->batch_key, "2025/01/02");
    EXPECT_EQ((*r)->original_payload, "p");
  }
}

TEST(SanitizeBatchKey, Cases) {
  EXPECT_EQ(SanitizeBatchKey("2025/01/02/loc"), "2025/01/02/loc");
  EXPECT_EQ(SanitizeBatchKey("/abs"), "abs");
  EXPECT_EQ(SanitizeBatchKey("../x"), "x");
  EXPECT_EQ(SanitizeBatchKey("a/../b"), "a/b");
  EXPECT_EQ(SanitizeBatchKey("a/./b//c/"), "a/b/c");
  EXPECT_EQ(SanitizeBatchKey("a\x01"
                             "b\x7f"),
            "a_b_");
  EXPECT_EQ(SanitizeBatchKey("a\\..\\b"), "a_.._b");  // one harmless segment
  EXPECT_EQ(SanitizeBatchKey(""), "_");
  EXPECT_EQ(SanitizeBatchKey("../.."), "_");
  EXPECT_EQ(SanitizeBatchKey("...x"), "...x");  // not a parent reference
  EXPECT_TRUE(IsSafeBatchKey("2025/01/02"));
  EXPECT_FALSE(IsSafeBatchKey("/2025"));
  EXPECT_FALSE(IsSafeBatchKey("a/../b"));
  for (const char* k : {"/x/../y", "a\nb", "..", ""}) {
    EXPECT_EQ(SanitizeBatchKey(SanitizeBatchKey(k)), SanitizeBatchKey(k)) << k;
  }
}

TEST(ArchivalLine, RoundTripsWithTheGoFieldNames) {
  ArchivalData d{.id = "id-1",
                 .batch_key = "2025/06/15/loc",
                 .original_payload = std::string("{\"x\":1}\0\xff", 9),
                 .archived_at = At(2025, 6, 15)};
  const std::string line = EncodeArchivalLine(d);
  ASSERT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1);  // exactly one line
  auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["id"], "id-1");
  EXPECT_EQ(j["batchKey"], "2025/06/15/loc");
  EXPECT_EQ(j["archivedAt"], "2025-06-15T12:00:00Z");
  EXPECT_TRUE(j["originalPubSubPayload"].is_string());
  auto back = DecodeArchivalLine(line);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, d);
}

// EncodeArchivalLine writes its text directly (for speed); it must stay byte for byte what
// the object form wrote.
TEST(ArchivalLine, DirectEncodingEqualsTheObjectForm) {
  for (const ArchivalData& d : {ArchivalData{.id = "m1", .batch_key = "2025/06/15/london"},
                                ArchivalData{.id = std::string("q\"\\\n\xff"),
                                .batch_key = "k<&>",
                                .original_payload = std::string("\x00{\"a\":1}\xff", 10),
                                .archived_at = messagepipeline::Clock::time_point(
                                    std::chrono::nanoseconds(1700000000123456789))}}) {
    const nlohmann::json object = {
        {"id", d.id},
        {"batchKey", d.batch_key},
        {"originalPubSubPayload", absl::Base64Escape(d.original_payload)},
        {"archivedAt", messagepipeline::FormatTimestamp(d.archived_at)},
    };
    EXPECT_EQ(EncodeArchivalLine(d),
              object.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  }
}

TEST(ArchivalLine, DecodesGosNullPayload) {
  // json.Marshal of ArchivalData with a nil OriginalPubSubPayload.
  auto line =
      DecodeArchivalLine(R"({"id":"a","batchKey":"2025/01/02","originalPubSubPayload":null,)"
                         R"("archivedAt":"2025-01-02T03:04:05.5+01:00"})");
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_EQ(line->original_payload, "");
  EXPECT_EQ(messagepipeline::FormatTimestamp(line->archived_at), "2025-01-02T02:04:05.5Z");
}

TEST(ArchivalLine, DecodeErrorsNameTheField) {
  EXPECT_EQ(DecodeArchivalLine("nope").status().code(), absl::StatusCode::kInvalidArgument);
  auto missing = DecodeArchivalLine(R"({"id":"a","batchKey":"k","archivedAt":"x"})");
  EXPECT_NE(missing.status().message().find("originalPubSubPayload"), std::string::npos);
  auto bad64 = DecodeArchivalLine(
      R"({"id":"a","batchKey":"k","originalPubSubPayload":"!!","archivedAt":"2025-01-01T00:00:00Z"})");
  EXPECT_NE(bad64.status().message().find("base64"), std::string::npos);
  auto bad_time = DecodeArchivalLine(
      R"({"id":"a","batchKey":"k","originalPubSubPayload":"","archivedAt":"yesterday"})");
  EXPECT_NE(bad_time.status().message().find("archivedAt"), std::string::npos);
}

TEST(ArchivalLine, DecodeRejectsDeepNestingAndOversizeLines) {
  // An archive is read back by tools and replays: a line nested 100 000 deep must be an
  // error, never a json value (nlohmann copies and dumps recursively).
  const std::string deep = R"({"id":"a","batchKey":"k","originalPubSubPayload":"",)"
                           R"("archivedAt":"2025-01-01T00:00:00Z","extra":)" +
                           std::string(100'000, '[') + std::string(100'000, ']') + "}";
  auto out = DecodeArchivalLine(deep);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(out.status().message().find("deeper than the limit of 64"), std::string::npos)
      << out.status();
  const std::string line = EncodeArchivalLine({.id = "a", .batch_key = "k"});
  EXPECT_TRUE(DecodeArchivalLine(line, {.max_bytes = line.size()}).ok());
  auto big = DecodeArchivalLine(line, {.max_bytes = line.size() - 1});
  EXPECT_NE(big.status().message().find("exceeds the limit"), std::string::npos) << big.status();
}

TEST(Gzip, BothCodecsRoundTripAtEveryLevel) {
  std::string data;
  for (int i = 0; i < 5000; ++i) data += "{\"id\":\"m" + std::to_string(i) + "\"}\n";
  for (GzipCodec codec : {GzipCodec::kZlib, GzipCodec::kLibdeflate}) {
    for (int level = 1; level <= 9; ++level) {
      auto z = GzipCompress(data, {.codec = codec, .level = level});
      ASSERT_TRUE(z.ok()) << z.status();
      EXPECT_LT(z->size(), data.size());
      ASSERT_EQ(static_cast<unsigned char>((*z)[0]), 0x1f);  // gzip magic
      auto back = GzipDecompress(*z);
      ASSERT_TRUE(back.ok()) << back.status();
      EXPECT_EQ(*back, data);
    }
  }
  auto empty = GzipCompress("", {});
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*GzipDecompress(*empty), "");
}

TEST(Gzip, BadOptionsAndInputAreErrors) {
  EXPECT_EQ(GzipCompress("x", {.codec = GzipCodec::kZlib, .level = 10}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GzipCompress("x", {.level = 0}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GzipDecompress("not gzip").status().code(), absl::StatusCode::kInvalidArgument);
  auto z = GzipCompress("hello world, hello world", {});
  ASSERT_TRUE(z.ok());
  EXPECT_FALSE(GzipDecompress(z->substr(0, z->size() - 3)).ok());  // truncated
}

}  // namespace
}  // namespace dataflow::icestore

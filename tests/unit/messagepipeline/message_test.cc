#include "dataflow/messagepipeline/message.h"

#include <absl/time/time.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "dataflow/messagepipeline/errors.h"
#include "dataflow/messagepipeline/json_limits.h"
#include "dataflow/messagepipeline/transformer.h"

namespace dataflow::messagepipeline {
namespace {

struct Counts {
  std::atomic<int> acks{0};
  std::atomic<int> nacks{0};
};

Message CountedMessage(Counts& c, std::string id = "m1") {
  return Message(MessageData{.id = std::move(id), .payload = "p"}, {},
                 MakeAckHandler([&c] { ++c.acks; }, [&c] { ++c.nacks; }));
}

TEST(MessageDataJson, RoundTripsEveryField) {
  MessageData in{.id = "abc",
                 .payload = std::string("\x00\x01\xffhello", 8),
                 .publish_time = Clock::time_point(std::chrono::nanoseconds(1700000000123456789)),
                 .enrichment_data = {{"name", "Device 1"}, {"floor", 3}}};
  auto out = DecodeMessageData(EncodeMessageData(in));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, in);
}

TEST(MessageDataJson, UsesTheGoFieldNames) {
  MessageData in{.id = "x",
                 .payload = "hi",
                 .publish_time = Clock::time_point(std::chrono::seconds(1700000000)),
                 .enrichment_data = {{"k", "v"}}};
  auto j = ToJson(in);
  EXPECT_EQ(j.at("id"), "x");
  EXPECT_EQ(j.at("payload"), "aGk=");  // base64, as Go's encoding/json writes []byte
  EXPECT_EQ(j.at("publishTime"), "2023-11-14T22:13:20Z");
  EXPECT_EQ(j.at("enrichmentData").at("k"), "v");
}

TEST(MessageDataJson, OmitsEmptyEnrichmentLikeGoOmitempty) {
  MessageData in{.id = "x", .payload = "hi"};
  auto j = ToJson(in);
  EXPECT_FALSE(j.contains("enrichmentData"));
  EXPECT_EQ(j.at("publishTime"), "0001-01-01T00:00:00Z");  // Go's zero time means unset
}

TEST(MessageDataJson, DecodesWhatTheGoLibraryWrites) {
  // As produced by json.Marshal of the Go MessageData struct.
  const char* go_json =
      R"({"id":"17","payload":"eyJkZXZpY2VJZCI6ImQxIn0=","publishTime":"2025-03-04T05:06:07.890123Z",)"
      R"("enrichmentData":{"location":"lab","tags":["a","b"]}})";
  auto out = DecodeMessageData(go_json);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->id, "17");
  EXPECT_EQ(out->payload, R"({"deviceId":"d1"})");
  EXPECT_EQ(FormatTimestamp(out->publish_time), "2025-03-04T05:06:07.890123Z");
  EXPECT_EQ(out->enrichment_data.at("location"), "lab");
  auto zero = DecodeMessageData(R"({"id":"1","payload":"","publishTime":"0001-01-01T00:00:00Z"})");
  ASSERT_TRUE(zero.ok()) << zero.status();
  EXPECT_EQ(zero->publish_time, Clock::time_point{});
}

TEST(MessageDataJson, MalformedInputIsAClearError) {
  struct Case {
    const char* json;
    const char* mentions;
  } cases[] = {
      {"", "not valid JSON"},
      {"{", "not valid JSON"},
      {"[1,2]", "not a JSON object"},
      {R"({"id":5})", "\"id\""},
      {R"({"payload":"***"})", "base64"},
      {R"({"payload":7})", "\"payload\""},
      {R"({"publishTime":"yesterday"})", "publishTime"},
      {R"({"enrichmentData":[1]})", "enrichmentData"},
  };
  for (const auto& c : cases) {
    auto out = DecodeMessageData(c.json);
    ASSERT_FALSE(out.ok()) << c.json;
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument) << c.json;
    EXPECT_NE(out.status().message().find(c.mentions), absl::string_view::npos)
        << c.json << " -> " << out.status();
  }
}

// An envelope whose enrichmentData holds `arrays` arrays nested in one another: the whole
// document is `arrays` + 2 levels deep (the envelope and enrichmentData objects).
std::string DeepEnvelope(int arrays) {
  return R"({"id":"deep","payload":"","enrichmentData":{"x":)" + std::string(arrays, '[') +
         std::string(arrays, ']') + "}}";
}

TEST(MessageDataJson, DecodeRejectsDeepNesting) {
  // nlohmann copies, compares and dumps recursively: 100 000 levels must never become a value.
  const std::string deep = DeepEnvelope(100'000);
  auto out = DecodeMessageData(deep);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(out.status().message().find("deeper than the limit of 64"), absl::string_view::npos)
      << out.status();
  // Through the services' envelope transformer it is permanent, so it is dead-lettered.
  auto transformed = EnvelopeTransformer(Message(MessageData{.payload = deep}));
  ASSERT_FALSE(transformed.ok());
  EXPECT_TRUE(IsPermanent(transformed.status()));
}

TEST(MessageDataJson, DecodeAcceptsNestingUpToTheLimit) {
  auto at_limit = DecodeMessageData(DeepEnvelope(kDefaultJsonMaxDepth - 2));
  ASSERT_TRUE(at_limit.ok()) << at_limit.status();
  EXPECT_EQ(*DecodeMessageData(EncodeMessageData(*at_limit)), *at_limit);
  EXPECT_FALSE(DecodeMessageData(DeepEnvelope(kDefaultJsonMaxDepth - 1)).ok());
  // The limit is the caller's to choose.
  EXPECT_TRUE(DecodeMessageData(DeepEnvelope(100), {.max_depth = 102}).ok());
}

TEST(MessageDataJson, DecodeRejectsAnEnvelopeOverTheSizeLimit) {
  const std::string envelope = EncodeMessageData({.id = "big", .payload = std::string(300, 'x')});
  EXPECT_TRUE(DecodeMessageData(envelope, {.max_bytes = envelope.size()}).ok());
  auto out = DecodeMessageData(envelope, {.max_bytes = envelope.size() - 1});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(out.status().message().find("exceeds the limit"), absl::string_view::npos)
      << out.status();
}

TEST(ParseJsonBounded, CountsContainersNotBracketsInStrings) {
  EXPECT_TRUE(ParseJsonBounded(R"({"a":"[[[[{{{{","b":"\"]]]"})", {.max_depth = 1}).ok());
  EXPECT_TRUE(ParseJsonBounded("42", {.max_depth = 0}).ok());
  EXPECT_FALSE(ParseJsonBounded("[]", {.max_depth = 0}).ok());
  // Siblings do not add up: depth is nesting, not the number of containers.
  EXPECT_TRUE(ParseJsonBounded(R"([[1],[2],{"a":3},[]])", {.max_depth = 2}).ok());
  EXPECT_FALSE(ParseJsonBounded(R"([[1],[2],{"a":[3]}])", {.max_depth = 2}).ok());
}

TEST(ParseJsonBounded, InvalidJsonNamesTheOffsetNotTheText) {
  auto out = ParseJsonBounded(R"({"secret-ish": tru)");
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(out.status().message().find("not valid JSON (error at byte"), absl::string_view::npos)
      << out.status();
  EXPECT_EQ(out.status().message().find("secret-ish"), absl::string_view::npos) << out.status();
  EXPECT_FALSE(ParseJsonBounded("[1] trailing").ok());
}

TEST(MessageDataJson, InvalidUtf8InAnIdIsReplacedNotThrown) {
  MessageData in{.id = "bad\xff\xfe", .payload = "\xff"};
  std::string encoded;
  ASSERT_NO_THROW(encoded = EncodeMessageData(in));
  auto out = DecodeMessageData(encoded);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->payload, "\xff");  // bytes travel as base64, untouched
  EXPECT_EQ(out->id.substr(0, 3), "bad");
}

// EncodeMessageData and FormatTimestamp write their text directly (for speed); they must
// stay byte for byte what the object form and absl's RFC 3339 formatter write.
TEST(MessageDataJson, DirectEncodingEqualsTheObjectForm) {
  const std::vector<Clock::time_point> times = {
      Clock::time_point{},
      Clock::time_point(std::chrono::nanoseconds(1)),
      Clock::time_point(std::chrono::nanoseconds(-1)),
      Clock::time_point(std::chrono::seconds(1700000000)),
      Clock::time_point(std::chrono::nanoseconds(1700000000123456789)),
      Clock::time_point(std::chrono::nanoseconds(1700000000100000000)),
      Clock::time_point(std::chrono::nanoseconds(951782400000000010)),    // 2000-02-29
      Clock::time_point(std::chrono::nanoseconds(-6847804800000000000)),  // 1753
      Clock::time_point(std::chrono::nanoseconds(9223372036854775807)),   // 2262
  };
  for (const auto t : times) {
    const std::string absl_form =
        t == Clock::time_point{}
            ? "0001-01-01T00:00:00Z"
            : absl::FormatTime("%Y-%m-%d%ET%H:%M:%E*SZ", absl::FromChrono(t), absl::UTCTimeZone());
    EXPECT_EQ(FormatTimestamp(t), absl_form);
    for (const MessageData& data :
         {MessageData{.id = "a\"b\\c\n<&>", .payload = "", .publish_time = t},
          MessageData{.id = std::string("bad\xff\xfeutf8"),
          .payload = std::string("\x00\x01\xff", 3),
          .publish_time = t,
          .enrichment_data = {{"name", "D\u00e9vice \"1\""}, {"n", {1, 2.5, nullptr}}}},
          MessageData{.id = "x", .payload = "hi", .enrichment_data = nlohmann::json::object()}}) {
      EXPECT_EQ(EncodeMessageData(data),
                ToJson(data).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    }
  }
}

// AppendJsonString copies plain ASCII as is; everything else goes through nlohmann. Either
// way the text is what dump() writes, appended.
TEST(MessageDataJson, AppendJsonStringWritesWhatDumpWrites) {
  for (const std::string& text :
       {std::string(), std::string("device-1"), std::string("a\"b"), std::string("back\\slash"),
        std::string("tab\there"), std::string("nul\0byte", 8), std::string("del\x7f"),
        std::string("D\u00e9vice"), std::string("bad\xff\xfe"), std::string("/slash/")}) {
    std::string out = "prefix:";
    AppendJsonString(out, text);
    EXPECT_EQ(out, "prefix:" + nlohmann::json(text).dump(-1, ' ', false,
                                                         nlohmann::json::error_handler_t::replace))
        << nlohmann::json(text).dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
  }
}

TEST(MessageDataJson, MissingFieldsDefault) {
  auto out = DecodeMessageData("{}");
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, MessageData{});
}

TEST(Message, FirstSettlementWins) {
  Counts c;
  {
    Message m = CountedMessage(c);
    EXPECT_FALSE(m.settled());
    m.Ack();
    m.Nack();
    m.Ack();
    EXPECT_TRUE(m.settled());
    EXPECT_FALSE(m.nacked());
  }
  EXPECT_EQ(c.acks, 1);
  EXPECT_EQ(c.nacks, 0);
  Message n = CountedMessage(c);
  EXPECT_FALSE(n.nacked());
  n.Nack();
  n.Ack();
  EXPECT_TRUE(n.nacked());
  EXPECT_EQ(c.nacks, 1);
}

TEST(Message, DestroyedUnsettledIsNacked) {
  Counts c;
  { Message m = CountedMessage(c); }
  EXPECT_EQ(c.acks, 0);
  EXPECT_EQ(c.nacks, 1);
}

TEST(Message, MoveTransfersTheHandleAndSettlesOnce) {
  Counts c;
  {
    Message a = CountedMessage(c);
    Message b(std::move(a));
    Message d;
    d = std::move(b);
    d.Ack();
  }  // a and b are moved-from: destroying them settles nothing
  EXPECT_EQ(c.acks, 1);
  EXPECT_EQ(c.nacks, 0);
}

TEST(Message, AssigningOverAnUnsettledMessageNacksIt) {
  Counts first, second;
  Message m = CountedMessage(first, "a");
  m = CountedMessage(second, "b");
  EXPECT_EQ(first.nacks, 1);
  m.Ack();
  EXPECT_EQ(second.acks, 1);
}

TEST(Message, WithoutAHandleSettlingIsHarmless) {
  Message m(MessageData{.id = "x"});
  EXPECT_TRUE(m.settled());
  m.Ack();
  m.Nack();
}

TEST(Message, ConcurrentSettlersCallTheHandlerExactlyOnce) {
  for (int round = 0; round < 200; ++round) {
    Counts c;
    {
      Message m = CountedMessage(c);
      std::vector<std::jthread> threads;
      for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&m, t] {
          if (t % 2 == 0) {
            m.Ack();
          } else {
            m.Nack();
          }
        });
      }
    }
    ASSERT_EQ(c.acks + c.nacks, 1) << "round " << round;
  }
}

// Go's time.Time marshals years 0001-9999; a nanosecond time_point holds 1677-2262. Outside
// that the error is permanent and says why, never a wrong (clamped or wrapped) time.
TEST(MessageDataJson, TimesBeyondANanosecondTimePointArePermanentOutOfRange) {
  for (const char* text : {"1500-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z",
                           "0001-01-01T00:00:00.5Z", "0001-01-01T01:00:00+01:00"}) {
    auto t = ParseTimestamp(text);
    ASSERT_FALSE(t.ok()) << text;
    EXPECT_TRUE(absl::IsOutOfRange(t.status())) << t.status();
    EXPECT_TRUE(IsPermanent(t.status())) << t.status();
    EXPECT_NE(t.status().message().find("0001-9999"), std::string_view::npos) << t.status();
  }
  auto edge = ParseTimestamp("1678-01-01T00:00:00Z");
  ASSERT_TRUE(edge.ok()) << edge.status();
  EXPECT_EQ(FormatTimestamp(*edge), "1678-01-01T00:00:00Z");
  auto late = ParseTimestamp("2262-04-11T00:00:00+01:00");
  ASSERT_TRUE(late.ok()) << late.status();
  EXPECT_EQ(FormatTimestamp(*late), "2262-04-10T23:00:00Z");
  auto envelope =
      DecodeMessageData(R"({"id":"1","payload":null,"publishTime":"1500-01-01T00:00:00Z"})");
  ASSERT_FALSE(envelope.ok());
  EXPECT_TRUE(IsPermanent(envelope.status()));
}

// A fuzz finding: {} was kept, then left out by the encoder (omitempty), so the round trip
// changed the value. An empty map is no map, as in Go.
TEST(MessageDataJson, EmptyEnrichmentDecodesAsNoneSoItRoundTrips) {
  auto out = DecodeMessageData(R"({"id":"1","payload":"","enrichmentData":{}})");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(out->enrichment_data.is_null());
  EXPECT_EQ(*DecodeMessageData(EncodeMessageData(*out)), *out);
}

TEST(InputFormat, ParsesItsNames) {
  for (InputFormat f : {InputFormat::kAuto, InputFormat::kEnvelope, InputFormat::kRaw}) {
    EXPECT_EQ(*ParseInputFormat(InputFormatName(f)), f);
  }
  EXPECT_FALSE(ParseInputFormat("json").ok());
}

// The auto rule, case by case: what Go's decoder reads as an envelope without losing
// anything is one; everything else is raw.
TEST(InputFormat, AutoTellsEnvelopesFromRawPayloads) {
  struct Case {
    const char* body;
    bool envelope;
  } cases[] = {
      // Go's own: all three members, payload padded base64 or null, offsets, nesting.
      {R"({"id":"1","payload":"aGk=","publishTime":"2026-01-02T03:04:05.5+01:00"})", true},
      {R"({"id":"1","payload":null,"publishTime":"0001-01-01T00:00:00Z"})", true},
      {R"({"id":"1","payload":"","publishTime":"2026-01-02T03:04:05Z","enrichmentData":{"a":{"b":[1]}}})",
       true},
      {R"( {"payload":"aGk="} )", true},     // hand-written: a subset of the keys with payload
      {R"({"\u0070ayload":"aGk="})", true},  // the key spelled with an escape is the same key
      // Raw: a device's JSON, non-objects, other keys, wrong types, unpadded base64.
      {R"({"deviceId":"d1","temperature":21.5})", false},
      {R"({"id":"d1","payload":"aGk=","temperature":21.5})", false},   // a key Go would drop
      {R"({"id":"d1","publishTime":"2026-01-02T03:04:05Z"})", false},  // no payload
      {R"({"id":7,"payload":"aGk="})", false},
      {R"({"payload":{"t":1}})", false},
      {R"({"payload":"aGk"})", false},  // unpadded: Go's StdEncoding refuses it
      {R"({"payload":"not base64!"})", false},
      {R"({"payload":"aGk=","publishTime":"yesterday"})", false},
      {R"({"payload":"aGk=","enrichmentData":[1]})", false},
      {R"(["payload"])", false},
      {"payload", false},
      {"{\"payload\":", false},  // not JSON
      {"", false},
  };
  for (const Case& c : cases) {
    auto got = DecodeInput(c.body, InputFormat::kAuto);
    ASSERT_TRUE(got.ok()) << c.body << ": " << got.status();
    EXPECT_EQ(got->has_value(), c.envelope) << c.body;
  }
  // An envelope whose time we cannot hold is an envelope all the same: a permanent error,
  // not a payload archived or stored as if it were device data.
  auto far = DecodeInput(R"({"id":"1","payload":"aGk=","publishTime":"0042-01-01T00:00:00Z"})",
                         InputFormat::kAuto);
  ASSERT_FALSE(far.ok());
  EXPECT_TRUE(IsPermanent(far.status()));
}

TEST(InputFormat, ExplicitFormatsAreTheWayOut) {
  // A device that happens to send {"payload": "<base64>"} is read as raw when told so...
  const std::string lookalike = R"({"payload":"aGk="})";
  auto raw = DecodeInput(lookalike, InputFormat::kRaw);
  ASSERT_TRUE(raw.ok());
  EXPECT_FALSE(raw->has_value());
  // ...and a producer that adds keys of its own is read as an envelope when told so (unknown
  // keys ignored, as Go's decoder does).
  auto forced = DecodeInput(R"({"id":"e","payload":"aGk=","extra":1})", InputFormat::kEnvelope);
  ASSERT_TRUE(forced.ok()) << forced.status();
  ASSERT_TRUE(forced->has_value());
  EXPECT_EQ((*forced)->payload, "hi");
  auto bad = DecodeInput(R"({"deviceId":"d1"})", InputFormat::kEnvelope);
  EXPECT_TRUE(bad.ok());  // no envelope member is wrong: an empty envelope, as Go reads it
  auto worse = DecodeInput("not json", InputFormat::kEnvelope);
  ASSERT_FALSE(worse.ok());
  EXPECT_TRUE(IsPermanent(worse.status()));
}

TEST(InputFormat, UnwrapKeepsTheTransportsIdAndTimeWhereTheEnvelopeHasNone) {
  const auto transport_time = Clock::time_point(std::chrono::seconds(1800000000));
  Message m(MessageData{.id = "pubsub-1",
                        .payload = R"({"payload":"aGk=","enrichmentData":{"k":"v"}})",
                        .publish_time = transport_time},
            {{"mqtt_topic", "devices/d1/up"}});
  auto replaced = UnwrapInput(m, InputFormat::kAuto);
  ASSERT_TRUE(replaced.ok());
  ASSERT_TRUE(replaced->has_value());  // what was received, to put back for a dead letter
  EXPECT_EQ((*replaced)->payload, R"({"payload":"aGk=","enrichmentData":{"k":"v"}})");
  EXPECT_EQ((*replaced)->id, "pubsub-1");
  EXPECT_EQ(m.data.id, "pubsub-1");
  EXPECT_EQ(m.data.payload, "hi");
  EXPECT_EQ(m.data.publish_time, transport_time);
  EXPECT_EQ(m.data.enrichment_data.at("k"), "v");
  EXPECT_EQ(m.attributes.at("mqtt_topic"), "devices/d1/up");

  Message full(MessageData{
      .id = "pubsub-2",
      .payload = EncodeMessageData({.id = "mqtt-7",
                                    .payload = "x",
                                    .publish_time = Clock::time_point(std::chrono::seconds(1))})});
  ASSERT_TRUE(UnwrapInput(full, InputFormat::kAuto).ok());
  EXPECT_EQ(full.data.id, "mqtt-7");
  EXPECT_EQ(full.data.publish_time, Clock::time_point(std::chrono::seconds(1)));

  Message device(MessageData{.id = "pubsub-3", .payload = R"({"deviceId":"d1"})"});
  auto kept = UnwrapInput(device, InputFormat::kAuto);
  ASSERT_TRUE(kept.ok());
  EXPECT_FALSE(kept->has_value());
  EXPECT_EQ(device.data.payload, R"({"deviceId":"d1"})");
  EXPECT_EQ(device.data.id, "pubsub-3");
}

TEST(Errors, PermanentMarkIsCarriedAndOkStaysOk) {
  EXPECT_TRUE(IsPermanent(PermanentError("bad payload")));
  EXPECT_EQ(PermanentError("bad").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(IsPermanent(absl::UnavailableError("down")));
  EXPECT_TRUE(IsPermanent(MarkPermanent(absl::DataLossError("x"))));
  EXPECT_TRUE(MarkPermanent(absl::OkStatus()).ok());
  EXPECT_FALSE(IsPermanent(absl::OkStatus()));
}

// Message::envelope: what an in-process hop carries beside the encoded body.
MessageData CarriedData() {
  return {.id = "e1",
          .payload = R"({"temp":21.5})",
          .publish_time = Clock::time_point(std::chrono::nanoseconds(1700000000123456789)),
          .enrichment_data = {{"location", "lab"}, {"nested", {{"a", {1, 2.5, "x"}}}}}};
}

TEST(MessageEnvelope, DecodeInputTakesTheCarriedEnvelopeAsTheBodyWouldDecode) {
  const MessageData data = CarriedData();
  Message m(MessageData{.id = "transport", .payload = EncodeMessageData(data)});
  auto parsed = DecodeInput(m.data.payload, InputFormat::kAuto);
  ASSERT_TRUE(parsed.ok() && parsed->has_value());
  EXPECT_EQ(**parsed, data);  // what the carried envelope stands in for
  m.envelope = std::make_shared<const MessageData>(data);
  for (InputFormat format : {InputFormat::kAuto, InputFormat::kEnvelope}) {
    auto carried = DecodeInput(m, format);
    ASSERT_TRUE(carried.ok() && carried->has_value()) << InputFormatName(format);
    EXPECT_EQ(**carried, data);
  }
}

TEST(MessageEnvelope, TheCarriedEnvelopeSparesTheParse) {
  // A body that is not JSON at all: only the carried envelope can answer (the contract says the
  // body is its encoding; this shows the body is not read).
  Message m(MessageData{.id = "transport", .payload = "not json"});
  m.envelope = std::make_shared<const MessageData>(CarriedData());
  auto carried = DecodeInput(m, InputFormat::kAuto);
  ASSERT_TRUE(carried.ok() && carried->has_value());
  EXPECT_EQ(**carried, CarriedData());
}

TEST(MessageEnvelope, ViewInputPointsAtWhatAnswersWithoutCopying) {
  Message m(MessageData{.id = "transport", .payload = EncodeMessageData(CarriedData())});
  std::optional<MessageData> parsed;
  auto view = ViewInput(m, InputFormat::kAuto, parsed);  // no carried envelope: parsed
  ASSERT_TRUE(view.ok());
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(*view, &*parsed);
  EXPECT_EQ(**view, CarriedData());

  m.envelope = std::make_shared<const MessageData>(CarriedData());
  std::optional<MessageData> unused;
  view = ViewInput(m, InputFormat::kAuto, unused);  // carried: the envelope itself
  ASSERT_TRUE(view.ok());
  EXPECT_EQ(*view, m.envelope.get());
  EXPECT_FALSE(unused.has_value());

  view = ViewInput(m, InputFormat::kRaw, unused);  // raw: no envelope at all
  ASSERT_TRUE(view.ok());
  EXPECT_EQ(*view, nullptr);

  Message bad(MessageData{.payload = "{\"payload\": 5}"});
  EXPECT_FALSE(ViewInput(bad, InputFormat::kEnvelope, unused).ok());
}

TEST(MessageEnvelope, RawInputIgnoresIt) {
  Message m(MessageData{.payload = EncodeMessageData(CarriedData())});
  m.envelope = std::make_shared<const MessageData>(CarriedData());
  auto raw = DecodeInput(m, InputFormat::kRaw);
  ASSERT_TRUE(raw.ok());
  EXPECT_FALSE(raw->has_value());
}

TEST(MessageEnvelope, WhatTheLimitsOrTheRuleRefuseIsDecidedFromTheBody) {
  auto expect_same_as_body = [](const MessageData& data, const JsonLimits& limits) {
    Message m(MessageData{.payload = EncodeMessageData(data)});
    m.envelope = std::make_shared<const MessageData>(data);
    auto carried = DecodeInput(m, InputFormat::kAuto, limits);
    auto parsed = DecodeInput(m.data.payload, InputFormat::kAuto, limits);
    ASSERT_EQ(carried.ok(), parsed.ok());
    if (!parsed.ok()) {
      EXPECT_EQ(carried.status(), parsed.status());
      return;
    }
    ASSERT_EQ(carried->has_value(), parsed->has_value());
    if (parsed->has_value()) {
      EXPECT_EQ(**carried, **parsed);
    }
  };
  MessageData deep = CarriedData();  // envelope object 1 + enrichment 1 + nested 1 + a 1 = 4
  expect_same_as_body(deep, {.max_depth = 3});
  expect_same_as_body(deep, {.max_depth = 4});
  expect_same_as_body(deep, {.max_bytes = 16});
  MessageData array = CarriedData();  // the kAuto rule: enrichmentData must be an object
  array.enrichment_data = nlohmann::json::array({1, 2});
  expect_same_as_body(array, {});
  // And the limits really refuse (so the checks above compare something): past max_depth the
  // kAuto rule reads the body as raw, and kEnvelope calls it an error.
  Message m(MessageData{.payload = EncodeMessageData(deep)});
  m.envelope = std::make_shared<const MessageData>(deep);
  auto as_raw = DecodeInput(m, InputFormat::kAuto, {.max_depth = 3});
  ASSERT_TRUE(as_raw.ok());
  EXPECT_FALSE(as_raw->has_value());
  EXPECT_FALSE(DecodeInput(m, InputFormat::kEnvelope, {.max_depth = 3}).ok());
}

TEST(MessageEnvelope, UnwrapInputUsesItAndResetsIt) {
  Message m(MessageData{.id = "transport", .payload = EncodeMessageData(CarriedData())});
  m.envelope = std::make_shared<const MessageData>(CarriedData());
  auto received = UnwrapInput(m, InputFormat::kAuto);
  ASSERT_TRUE(received.ok() && received->has_value());
  EXPECT_EQ(m.data, CarriedData());
  EXPECT_EQ((*received)->id, "transport");
  EXPECT_EQ(m.envelope, nullptr);  // data.payload is the device's body now, not an envelope
}

TEST(MessageEnvelope, MovesWithTheMessage) {
  Message m(MessageData{.payload = EncodeMessageData(CarriedData())});
  m.envelope = std::make_shared<const MessageData>(CarriedData());
  Message moved(std::move(m));
  ASSERT_NE(moved.envelope, nullptr);
  Message assigned;
  assigned = std::move(moved);
  ASSERT_NE(assigned.envelope, nullptr);
  EXPECT_EQ(*assigned.envelope, CarriedData());
}

TEST(MessageAttributes, CopiesShareTheEntriesUntilOneChanges) {
  Attributes a{{"route_name", "telemetry"}, {"mqtt_topic", "devices/d1/telemetry"}};
  Attributes b = a;
  EXPECT_EQ(&a.map(), &b.map());  // shared, not copied
  b["mqtt_qos"] = "1";
  EXPECT_NE(&a.map(), &b.map());
  EXPECT_EQ(a.size(), 2u);
  EXPECT_FALSE(a.contains("mqtt_qos"));
  EXPECT_EQ(b.at("mqtt_qos"), "1");
  EXPECT_EQ(b.at("route_name"), "telemetry");
  b.insert_or_assign("route_name", "other");
  EXPECT_EQ(a.at("route_name"), "telemetry");
  EXPECT_EQ(b.at("route_name"), "other");
}

TEST(MessageAttributes, ReadsAndNoOpWritesNeverCopy) {
  Attributes a{{"k", "v"}};
  Attributes b = a;
  const auto* shared = &a.map();
  EXPECT_NE(b.find("k"), b.end());
  EXPECT_EQ(b.count(std::string_view("k")), 1u);
  EXPECT_EQ(b.erase("absent"), 0u);
  for (const auto& [key, value] : b) EXPECT_EQ(key + value, "kv");
  EXPECT_EQ(&b.map(), shared);
  EXPECT_THROW((void)b.at("absent"), std::out_of_range);
}

TEST(MessageAttributes, AnUnsharedCopyChangesInPlace) {
  Attributes a{{"k", "v"}};
  const auto* own = &a.map();
  {
    Attributes b = a;
    EXPECT_EQ(&b.map(), own);  // shared while b lives
  }
  a["k"] = "w";
  EXPECT_EQ(&a.map(), own);
  EXPECT_EQ(a.at("k"), "w");
}

TEST(MessageAttributes, CompareByEntries) {
  Attributes a{{"k", "v"}};
  Attributes b(a.map().begin(), a.map().end());
  EXPECT_EQ(a, b);
  EXPECT_NE(&a.map(), &b.map());
  b.erase("k");
  EXPECT_TRUE(b.empty());
  EXPECT_NE(a, b);
  EXPECT_EQ(b, Attributes{});
  Attributes moved = std::move(a);
  EXPECT_EQ(moved.at("k"), "v");
  moved.clear();
  EXPECT_EQ(moved, Attributes{});
}

// Copies handed to other threads are changed and dropped there while this one is copied and
// changed here: a write to entries another copy shares fails the size checks, and under TSan
// shows up as a race.
TEST(MessageAttributes, CopiesChangeIndependentlyAcrossThreads) {
  Attributes original{{"route_name", "telemetry"}, {"mqtt_topic", "devices/d1/telemetry"}};
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([copy = original]() mutable {
      for (int i = 0; i < 200; ++i) {
        Attributes again = copy;
        again["n"] = std::to_string(i);
        copy = again;
        EXPECT_EQ(copy.at("n"), std::to_string(i));
      }
      EXPECT_EQ(copy.at("route_name"), "telemetry");
    });
  }
  for (int i = 0; i < 200; ++i) {
    Attributes mine = original;
    mine["reader"] = "x";
    EXPECT_EQ(original.size(), 2u);
  }
  for (auto& th : threads) th.join();
  original["last"] = "y";  // in place or not, only this copy sees it
  EXPECT_EQ(original.size(), 3u);
}

}  // namespace
}  // namespace dataflow::messagepipeline

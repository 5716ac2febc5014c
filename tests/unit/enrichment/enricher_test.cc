#include "dataflow/enrichment/enricher.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "dataflow/messagepipeline/message.h"
#include "device_registry.h"

namespace dataflow::enrichment {
namespace {

namespace mp = messagepipeline;
using test_support::Device;
using test_support::DeviceRegistry;
using test_support::MakeDeviceEnricher;
using test_support::WithDevice;

TEST(Enricher, AppliesTheFetchedValue) {
  auto registry = std::make_shared<DeviceRegistry>();
  registry->Add("d1", {"Boiler", "basement"});
  auto enricher = MakeDeviceEnricher(registry);
  mp::Message m = WithDevice("d1");
  auto action = enricher->Enrich(m);
  ASSERT_TRUE(action.ok());
  EXPECT_EQ(*action, EnrichAction::kContinue);
  EXPECT_EQ(m.data.enrichment_data.at("name"), "Boiler");
  EXPECT_EQ(m.data.enrichment_data.at("location"), "basement");
  EXPECT_EQ(enricher->metrics().enriched, 1u);
}

TEST(Enricher, NoKeyPassesUnenriched) {
  auto registry = std::make_shared<DeviceRegistry>();
  auto enricher = MakeDeviceEnricher(registry);
  mp::Message m(mp::MessageData{.id = "x"});
  EXPECT_EQ(*enricher->Enrich(m), EnrichAction::kContinue);
  EXPECT_TRUE(m.data.enrichment_data.is_null());
  EXPECT_EQ(registry->calls.load(), 0);
  EXPECT_EQ(enricher->metrics().no_key, 1u);
}

TEST(Enricher, NotFoundAndErrorsFollowTheirOwnPolicies) {
  auto registry = std::make_shared<DeviceRegistry>();
  {
    auto skip = MakeDeviceEnricher(registry);  // the defaults: skip both, as the original
    mp::Message m = WithDevice("unknown");
    EXPECT_EQ(*skip->Enrich(m), EnrichAction::kSkip);
    EXPECT_EQ(skip->metrics().not_found, 1u);
  }
  {
    auto pass = MakeDeviceEnricher(registry, {.on_not_found = FailurePolicy::kPassUnenriched});
    mp::Message m = WithDevice("unknown");
    EXPECT_EQ(*pass->Enrich(m), EnrichAction::kContinue);
    EXPECT_TRUE(m.data.enrichment_data.is_null());
  }
  {
    auto nack = MakeDeviceEnricher(registry, {.on_error = FailurePolicy::kNack});
    registry->down = true;
    mp::Message m = WithDevice("d1");
    auto action = nack->Enrich(m);
    ASSERT_FALSE(action.ok());
    EXPECT_EQ(action.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_NE(action.status().message().find("d1"), absl::string_view::npos);
    EXPECT_EQ(nack->metrics().fetch_errors, 1u);
    EXPECT_EQ(nack->metrics().not_found, 0u);
    registry->down = false;
  }
}

TEST(Enricher, BadArgumentsAreClearErrors) {
  auto registry = std::make_shared<DeviceRegistry>();
  EXPECT_EQ((MakeEnricher<std::string, Device>(std::shared_ptr<DeviceRegistry>(), AttributeKey("a"),
                                               JsonApplier<Device>()))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      (MakeEnricher<std::string, Device>(registry, nullptr, JsonApplier<Device>())).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      (MakeEnricher<std::string, Device>(registry, AttributeKey("a"), nullptr)).status().code(),
      absl::StatusCode::kInvalidArgument);
  auto bad = ParseFailurePolicy("retry");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("pass_unenriched"), absl::string_view::npos);
  EXPECT_EQ(*ParseFailurePolicy("nack"), FailurePolicy::kNack);
}

TEST(KeyExtractors, AttributeAndJsonPayload) {
  mp::Message m(mp::MessageData{.payload = R"({"deviceId":"d9","n":1})"}, {{"device", "d3"}});
  EXPECT_EQ(AttributeKey("device")(m), "d3");
  EXPECT_EQ(AttributeKey("other")(m), std::nullopt);
  EXPECT_EQ(JsonPayloadKey("deviceId")(m), "d9");
  EXPECT_EQ(JsonPayloadKey("n")(m), std::nullopt);  // not a string
  mp::Message bad(mp::MessageData{.payload = "not json"});
  EXPECT_EQ(JsonPayloadKey("deviceId")(bad), std::nullopt);
}

TEST(KeyExtractors, JsonPayloadNestedBeyondTheLimitHasNoKey) {
  // Parsed within the JSON limits: a payload nested 100 000 deep is "not JSON", so no key.
  mp::Message deep(mp::MessageData{.payload = R"({"deviceId":"d1","x":)" +
                                              std::string(100'000, '[') +
                                              std::string(100'000, ']') + "}"});
  EXPECT_EQ(JsonPayloadKey("deviceId")(deep), std::nullopt);
  mp::Message shallow(mp::MessageData{.payload = R"({"deviceId":"d1","x":[[[]]]})"});
  EXPECT_EQ(JsonPayloadKey("deviceId")(shallow), "d1");
}

TEST(JsonApplier, NonObjectValuesGoUnderTheField) {
  mp::Message m(mp::MessageData{.id = "x"});
  JsonApplier<int>("floor")(m, 3);
  EXPECT_EQ(m.data.enrichment_data.at("floor"), 3);
}

}  // namespace
}  // namespace dataflow::enrichment

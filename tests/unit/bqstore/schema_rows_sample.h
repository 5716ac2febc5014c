// A payload unlike the demo's (nested objects, arrays, integers, a timestamp string, a
// field absent in some messages), its schema with every kind of source, and the exact row
// each message must become: shared by the SQLite (unit) and BigQuery test server
// (integration) service tests.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "dataflow/messagepipeline/message.h"

namespace dataflow::bqstore::sample {

inline nlohmann::json Columns() {
  return nlohmann::json::parse(R"([
    {"name": "device_id", "type": "STRING", "mode": "REQUIRED", "source": "payload.device.id"},
    {"name": "seq", "type": "INT64", "mode": "REQUIRED"},
    {"name": "first_reading", "type": "FLOAT64", "source": "payload.readings[0]"},
    {"name": "readings", "type": "FLOAT64", "mode": "REPEATED"},
    {"name": "ts", "type": "TIMESTAMP", "mode": "REQUIRED"},
    {"name": "tags", "type": "STRING", "mode": "REPEATED"},
    {"name": "location", "type": "RECORD", "fields": [
      {"name": "lat", "type": "FLOAT64", "mode": "REQUIRED"},
      {"name": "lon", "type": "FLOAT64"},
      {"name": "alt", "type": "INT64"}]},
    {"name": "note", "type": "STRING"},
    {"name": "site", "type": "STRING", "source": "enrichment.site"},
    {"name": "topic", "type": "STRING", "source": "mqtt_topic"},
    {"name": "msg_id", "type": "STRING", "source": "message_id"},
    {"name": "published", "type": "TIMESTAMP", "source": "publish_time"},
    {"name": "raw", "type": "JSON", "source": "payload.device"},
    {"name": "amount", "type": "NUMERIC"},
    {"name": "day", "type": "DATE"}
  ])");
}

inline nlohmann::json Payload(int i) {
  nlohmann::json p = {{"device", {{"id", "dev-" + std::to_string(i)}, {"model", "m1"}}},
                      {"seq", i},
                      {"readings", {20.5 + i, 21.25}},
                      {"ts", "2026-01-02T03:04:0" + std::to_string(i % 10) + ".123456Z"},
                      {"tags", {"t" + std::to_string(i), "x"}},
                      {"location", {{"lat", 1.5}, {"lon", -i}}},
                      {"amount", "12345.678900"},
                      {"day", "2026-01-15"},
                      {"unused", {1, 2, 3}}};
  if (i % 2 == 0) p["note"] = "even";  // absent in odd messages
  return p;
}

inline messagepipeline::Clock::time_point PublishTime() {
  return *messagepipeline::ParseTimestamp("2026-03-04T05:06:07Z");
}

// The envelope the enrichment service publishes, and the attributes the message carries.
inline std::string Envelope(int i, const nlohmann::json& payload) {
  return messagepipeline::EncodeMessageData({.id = "m-" + std::to_string(i),
                                             .payload = payload.dump(),
                                             .publish_time = PublishTime(),
                                             .enrichment_data = {{"site", "site-A"}}});
}
inline messagepipeline::Attributes Attributes(int i) {
  return {{"mqtt_topic", "devices/dev-" + std::to_string(i) + "/telemetry"}};
}

// The stored row as JSON (TIMESTAMP as RFC 3339, DATE as text, JSON as its text).
inline nlohmann::json Expected(int i) {
  return {{"device_id", "dev-" + std::to_string(i)},
          {"seq", i},
          {"first_reading", 20.5 + i},
          {"readings", {20.5 + i, 21.25}},
          {"ts", "2026-01-02T03:04:0" + std::to_string(i % 10) + ".123456Z"},
          {"tags", {"t" + std::to_string(i), "x"}},
          {"location", {{"lat", 1.5}, {"lon", static_cast<double>(-i)}, {"alt", nullptr}}},
          {"note", i % 2 == 0 ? nlohmann::json("even") : nlohmann::json(nullptr)},
          {"site", "site-A"},
          {"topic", "devices/dev-" + std::to_string(i) + "/telemetry"},
          {"msg_id", "m-" + std::to_string(i)},
          {"published", "2026-03-04T05:06:07Z"},
          {"raw", R"({"id":"dev-)" + std::to_string(i) + R"(","model":"m1"})"},
          {"amount", "12345.6789"},
          {"day", "2026-01-15"}};
}

}  // namespace dataflow::bqstore::sample

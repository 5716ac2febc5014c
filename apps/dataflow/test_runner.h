// `dataflow test FILE.test.yaml`: a config's services run on the in-process broker with their
// outside world replaced, input messages fed in, and what comes out compared with what the
// file expects (the model: `benthos test`, `vector test`). docs/configuration.md describes
// the file; config/*.test.yaml are examples.
//
// For each case the config is rewritten so nothing leaves the process: Pub/Sub sources and
// topics become in-process ones, each ingestion service reads the case's MQTT messages from
// an in-process topic instead of a broker, enrichment looks keys up in the case's fixtures,
// BigQuery tables become SQLite tables and Cloud Storage buckets local directories in a
// scratch directory. Every topic gets a capturing subscription. The pipeline then stops as
// `dataflow run` does on SIGTERM (each service drains, sinks flush), so every output is in
// place when the expectations are checked.
#pragma once

#include <absl/status/statusor.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "config.h"

namespace dataflow::app {

struct TestInput {
  std::string service;     // ingestion service for mqtt_topic; empty: the only one
  std::string mqtt_topic;  // an MQTT message into an ingestion service, or
  std::string topic;       // a message published to a topic
  std::string payload;     // bytes (a YAML map or list is written as JSON)
  std::map<std::string, std::string> attributes;
};

struct TestCase {
  std::string name;
  // By enrichment service name: its lookup table, key → document.
  std::map<std::string, nlohmann::json> fixtures;
  std::vector<TestInput> input;
  // By topic / bigquery service / icestore service name: the expected items. An item matches
  // an output when every field it names matches (objects: the named keys, recursively;
  // lists: element by element; a `!regex "…"` string: a string it matches); each list must
  // match the outputs one to one, in any order.
  std::map<std::string, std::vector<nlohmann::json>> expect_topics;
  std::map<std::string, std::vector<nlohmann::json>> expect_rows;
  std::map<std::string, std::vector<nlohmann::json>> expect_archived;
};

struct TestFile {
  std::string config_path;                 // resolved against the test file's directory
  std::map<std::string, std::string> env;  // for ${NAME} in the config, before the process's
  std::vector<TestCase> cases;
};

// InvalidArgument naming the path of what is wrong.
absl::StatusOr<TestFile> ParseTestFile(const std::string& yaml_text, const std::string& path);

// True when `expected` matches `actual` as described for TestCase. A JSON text in `actual`
// (SQLite stores RECORD, REPEATED and JSON columns as text) matches an expected object or list.
bool JsonMatches(const nlohmann::json& expected, const nlohmann::json& actual);

// Pairs expected items with actual ones (one to one, any order); the indices left over on
// each side, empty when everything matched.
struct Unmatched {
  std::vector<std::size_t> expected;
  std::vector<std::size_t> actual;
};
Unmatched MatchAll(const std::vector<nlohmann::json>& expected,
                   const std::vector<nlohmann::json>& actual);

// Runs every case of the file; prints one line per case and the differences of a failing
// one. Exit code: 0 all passed, 1 a case failed, 2 the file or its config is unusable.
int RunTestFile(const std::string& path);

}  // namespace dataflow::app

// What a pipeline left behind, as JSON, for `dataflow test` and the program's tests: the rows
// of a SQLite table and the lines of a local archive, with message bytes shown as their
// payload (unwrapped from an envelope the way consuming services do) and enrichment.
#pragma once

#include <absl/status/statusor.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace dataflow::app {

// {"envelope": bool, "payload": JSON or text, "enrichment": the envelope's, else `enrichment`}.
nlohmann::json DataJson(const std::string& bytes, const nlohmann::json& enrichment);

// Every row of `table` (column → value; RECORD, REPEATED and JSON columns as text); none when
// the file or table does not exist yet.
absl::StatusOr<std::vector<nlohmann::json>> ReadRows(const std::string& db,
                                                     const std::string& table);

// Every archived line under `root` (*.gz objects): DataJson of the original payload, plus
// "batch_key" and "object" (its path relative to root).
absl::StatusOr<std::vector<nlohmann::json>> ReadArchive(const std::string& root);

}  // namespace dataflow::app

// Internal to bqstore's schema-driven rows (json_schema_rows.h), not installed: what the
// row converter (json_schema_rows.cc) shares with the column reader
// (json_schema_columns.cc), which checks a column's `default` by converting it.
#pragma once

#include <absl/status/status.h>

#include <nlohmann/json.hpp>
#include <string>

#include "dataflow/bqstore/json_schema_rows.h"

namespace dataflow::bqstore::internal {

// A column or record field (mode included) from its JSON value (nullptr or null: absent);
// errors name the column's path (`loc.lat`, `readings[2]`).
absl::Status ConvertField(const nlohmann::json* value, const FieldSchema& field,
                          const std::string& path, Cell& out);

}  // namespace dataflow::bqstore::internal

// The JSON Schema of the config file (`dataflow schema`), for editors and CI linters.
//
// Every block's schema comes from the block the reader reads it with (config_keys.h); only
// the columns of a bigquery schema (read by bqstore::ColumnsFromJson) and the rule tying
// create_pubsub_resources to the sources' topics are written here.
// tests/unit/app/config_schema_test.cc holds the schema and the reader together: at
// every mapping of a set of configs it asks the reader which keys it accepts and which it
// requires, and compares with the schema (docs/configuration.md "JSON Schema").
#pragma once

#include <nlohmann/json.hpp>

namespace dataflow::app {

// JSON Schema draft-07 (the draft editors' YAML and JSON language servers support best).
// Stricter than the reader nowhere a documented form is concerned: every config `validate`
// accepts passes, except for the forms docs/configuration.md lists.
nlohmann::json ConfigJsonSchema();

}  // namespace dataflow::app

// The JSON Schema of the config file (`dataflow schema`), for editors and CI linters.
//
// The scalar keys of most blocks come from the key tables the reader reads them with
// (config_keys.h); the structure around them (sources, sinks, keys, columns, one-of rules) is
// described here by hand. tests/unit/app/config_schema_test.cc holds the two together: at
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

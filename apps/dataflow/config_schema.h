// The JSON Schema of the config file (`dataflow schema`), for editors and CI linters.
//
// The reader (config.cc) is hand-written code, not a table, so the schema is a separate
// declarative description (config_schema.cc) whose defaults are read from the reader's own
// option structs; tests/unit/app/config_schema_test.cc holds the two together: at every
// mapping of a set of configs it asks the reader which keys it accepts and which it requires,
// and compares with the schema (docs/configuration.md "JSON Schema").
#pragma once

#include <nlohmann/json.hpp>

namespace dataflow::app {

// JSON Schema draft-07 (the draft editors' YAML and JSON language servers support best).
// Stricter than the reader nowhere a documented form is concerned: every config `validate`
// accepts passes, except for the forms docs/configuration.md lists.
nlohmann::json ConfigJsonSchema();

}  // namespace dataflow::app

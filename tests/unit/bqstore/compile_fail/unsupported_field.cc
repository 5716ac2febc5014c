// Must NOT compile: uint64 has no lossless BigQuery type. Checked by a ctest that expects
// the compiler to print the static_assert message.
#include "dataflow/bqstore/row.h"

struct Bad {
  std::uint64_t counter = 0;
};
DATAFLOW_DESCRIBE(Bad, counter);

int main() { return static_cast<int>(dataflow::bqstore::InferSchema<Bad>().size()); }

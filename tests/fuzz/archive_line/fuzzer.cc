// libFuzzer target for the icestore archive-line decoder (archives are read back by tools and
// replays): any input decodes or yields InvalidArgument, never a crash however deep or large,
// and whatever decodes survives an encode/decode round trip.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "dataflow/icestore/archival.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using dataflow::icestore::DecodeArchivalLine;
  using dataflow::icestore::EncodeArchivalLine;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  auto decoded = DecodeArchivalLine(input);
  if (!decoded.ok()) {
    if (decoded.status().code() != absl::StatusCode::kInvalidArgument) std::abort();
    return 0;
  }
  auto again = DecodeArchivalLine(EncodeArchivalLine(*decoded));
  if (!again.ok() || !(*again == *decoded)) std::abort();
  return 0;
}

// libFuzzer target for the MessageData JSON decoder: any input must either decode or yield
// an InvalidArgument error, and whatever decodes must survive an encode/decode round trip.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "dataflow/messagepipeline/message.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using dataflow::messagepipeline::DecodeMessageData;
  using dataflow::messagepipeline::EncodeMessageData;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  auto decoded = DecodeMessageData(input);
  if (!decoded.ok()) {
    if (decoded.status().code() != absl::StatusCode::kInvalidArgument) std::abort();
    return 0;
  }
  auto again = DecodeMessageData(EncodeMessageData(*decoded));
  if (!again.ok() || !(*again == *decoded)) std::abort();
  return 0;
}

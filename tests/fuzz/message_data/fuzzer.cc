// libFuzzer target for the MessageData JSON decoder: any input must either decode or yield
// an InvalidArgument error (OutOfRange for a time a time_point cannot hold), and whatever
// decodes must survive an encode/decode round trip. The input-format rule (DecodeInput,
// kAuto) never fails but for such a time, agrees with DecodeMessageData on what it calls an
// envelope, and calls everything EncodeMessageData writes an envelope.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "dataflow/messagepipeline/message.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using dataflow::messagepipeline::DecodeInput;
  using dataflow::messagepipeline::DecodeMessageData;
  using dataflow::messagepipeline::EncodeMessageData;
  using dataflow::messagepipeline::InputFormat;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  auto decoded = DecodeMessageData(input);
  auto input_kind = DecodeInput(input, InputFormat::kAuto);
  if (!input_kind.ok()) {
    if (input_kind.status().code() != absl::StatusCode::kOutOfRange) std::abort();
  } else if (input_kind->has_value() && (!decoded.ok() || !(**input_kind == *decoded))) {
    std::abort();
  }
  if (!decoded.ok()) {
    const auto code = decoded.status().code();
    if (code != absl::StatusCode::kInvalidArgument && code != absl::StatusCode::kOutOfRange) {
      std::abort();
    }
    return 0;
  }
  const std::string encoded = EncodeMessageData(*decoded);
  auto again = DecodeMessageData(encoded);
  if (!again.ok() || !(*again == *decoded)) std::abort();
  auto classified = DecodeInput(encoded, InputFormat::kAuto);
  if (!classified.ok() || !classified->has_value() || !(**classified == *decoded)) std::abort();
  return 0;
}

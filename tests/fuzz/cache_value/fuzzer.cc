// libFuzzer target for cache value decoding: JsonCodec, which RedisCache applies to every value
// it reads back (anything can SET a Redis key). Any bytes decode or give DataLoss (unusable
// bytes, beyond the JSON limits included) or InvalidArgument (wrong shape for the type), never
// a crash; a decoded value re-encodes and decodes to itself, and can be copied and compared
// (nlohmann does both recursively: the depth limit is what makes that safe).
#include <cstdint>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "dataflow/cache/codec.h"

namespace {

struct Device {
  std::string name;
  std::string location;
  // Not an int: nlohmann's from_json casts a JSON float to an integer field unchecked, which
  // is undefined behaviour for 1e300 (a hazard of typed values, not of this decoder).
  double floor = 0;
  std::vector<std::string> tags;
  std::map<std::string, double> calibration;
  bool operator==(const Device&) const = default;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Device, name, location, floor, tags, calibration)

template <typename V>
void CheckRoundTrip(std::string_view input) {
  using Codec = dataflow::cache::JsonCodec<V>;
  auto decoded = Codec::Decode(input);
  if (!decoded.ok()) {
    const auto code = decoded.status().code();
    if (code != absl::StatusCode::kDataLoss && code != absl::StatusCode::kInvalidArgument) {
      std::abort();
    }
    return;
  }
  const V copy = *decoded;
  auto bytes = Codec::Encode(copy);
  if (!bytes.ok()) std::abort();
  auto again = Codec::Decode(*bytes);
  if (!again.ok() || !(*again == copy)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  CheckRoundTrip<nlohmann::json>(input);  // the runner's value type: any JSON
  CheckRoundTrip<Device>(input);          // a typed value (from_json may refuse the shape)
  return 0;
}

// The simulated devices' readings (ReadingGenerator) and the checks of a load.
#include <absl/strings/str_cat.h>
#include <absl/time/time.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <string_view>

#include "loadgen.h"
#include "loadgen_internal.h"

namespace dataflow::app {

using loadgen_internal::kMaxInFlight;

std::string DeviceId(int device) { return "device-" + std::to_string(device); }

std::string FormatSentAt(std::chrono::system_clock::time_point t) {
  return absl::FormatTime("%Y-%m-%d%ET%H:%M:%E6SZ", absl::FromChrono(t), absl::UTCTimeZone());
}

absl::Status ValidateReadingLoad(const ReadingLoad& load) {
  if (load.devices <= 0) return absl::InvalidArgumentError("--devices must be > 0");
  if (load.count <= 0) return absl::InvalidArgumentError("--count must be > 0");
  if (!std::isfinite(load.rate) || load.rate < 0) {
    return absl::InvalidArgumentError("--rate must be >= 0 (0: as fast as acknowledged)");
  }
  if (load.max_in_flight < 1 || load.max_in_flight > kMaxInFlight) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max-in-flight must be between 1 and ", kMaxInFlight));
  }
  if (load.ack_timeout <= std::chrono::milliseconds::zero()) {
    return absl::InvalidArgumentError("--ack-timeout must be > 0");
  }
  return absl::OkStatus();
}

ReadingGenerator::ReadingGenerator(const ReadingLoad& load)
    : devices_(std::max(load.devices, 1)), payload_size_(load.payload_size), rng_(load.seed) {}

ReadingGenerator::Reading ReadingGenerator::Next(std::chrono::system_clock::time_point sent_at) {
  Reading r;
  r.device = static_cast<int>(n_ % devices_);
  r.seq = n_ / devices_;
  r.device_id = DeviceId(r.device);
  ++n_;
  // ordered_json keeps the documented field order.
  nlohmann::ordered_json body = {{"deviceId", r.device_id},
                                 {"temperature", std::round(temperature_(rng_) * 10) / 10},
                                 {"humidity", std::round(humidity_(rng_))},
                                 {"seq", r.seq},
                                 {"sentAt", FormatSentAt(sent_at)}};
  r.payload = body.dump();
  if (payload_size_ > r.payload.size()) {
    const std::size_t gap = payload_size_ - r.payload.size();
    constexpr std::string_view kEmptyPad = ",\"pad\":\"\"";
    r.payload.pop_back();  // the closing brace
    if (gap >= kEmptyPad.size()) {
      r.payload += kEmptyPad.substr(0, kEmptyPad.size() - 1);
      r.payload.append(gap - kEmptyPad.size(), 'x');
      r.payload += '"';
    } else {
      // Too little room for a field: JSON whitespace pads exactly as well.
      r.payload.append(gap, ' ');
    }
    r.payload += '}';
  }
  return r;
}

}  // namespace dataflow::app

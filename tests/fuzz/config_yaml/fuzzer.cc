// libFuzzer target for the dataflow program's YAML config reader (apps/dataflow/config.cc,
// compiled into this target: the fuzz preset does not build the program). Any text must
// parse to a config or to errors without crashing, and no error or warning may show a
// secret: every ${VAR} naming a password or SECRET expands to a known secret, and the first
// input byte's low bit adds a DATAFLOW__ override carrying it into a password. Aborts if an
// error or warning contains it (unless the input itself spells the secret out).
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config.h"

namespace {

constexpr char kSecret[] = "FuzzSecret-5e8a1c-NeverPrint";

std::optional<std::string> Lookup(const std::string& name) {
  if (name == "SECRET" || name.find("PASSWORD") != std::string::npos) return kSecret;
  if (name == "EMPTY") return std::string();
  if (name == "PORT") return "1883";
  return std::nullopt;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<std::pair<std::string, std::string>> environment;
  if (size > 0 && (data[0] & 1) != 0) {
    environment.emplace_back("DATAFLOW__SERVICES__0__INGESTION__MQTT__PASSWORD", kSecret);
  }
  const dataflow::app::ConfigLoadResult result =
      dataflow::app::ParseConfig(text, environment, Lookup);
  if (result.ok()) (void)dataflow::app::Describe(result.config);
  if (text.find(kSecret) != std::string::npos) return 0;  // the file itself says it
  for (const auto* list : {&result.errors, &result.warnings}) {
    for (const auto& e : *list) {
      if (e.ToString().find(kSecret) != std::string::npos) std::abort();
    }
  }
  return 0;
}

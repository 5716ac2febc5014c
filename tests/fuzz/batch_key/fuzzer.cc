// libFuzzer target for the icestore batch-key sanitiser: keys become directory and object
// names under a prefix, so whatever the input (a custom transformer's key, a location), the
// result is a safe relative path of bounded length or a permanent error. Aborts otherwise.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "dataflow/icestore/archival.h"
#include "dataflow/messagepipeline/errors.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

// A relative path: not empty, no leading '/', no empty, "." or ".." segment (so no "//" and no
// trailing '/'), no NUL, other control character or '\'.
bool IsSafeRelativePath(std::string_view key) {
  if (key.empty() || key.front() == '/' || key.back() == '/') return false;
  std::size_t start = 0;
  while (start <= key.size()) {
    std::size_t end = key.find('/', start);
    if (end == std::string_view::npos) end = key.size();
    const std::string_view segment = key.substr(start, end - start);
    if (segment.empty() || segment == "." || segment == "..") return false;
    start = end + 1;
  }
  for (char c : key) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == '\\') return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dataflow::icestore;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::string sanitised = SanitizeBatchKey(input);
  Check(IsSafeRelativePath(sanitised));
  Check(sanitised.size() <= (input.empty() ? 1 : input.size()));  // never grows a key
  Check(SanitizeBatchKey(sanitised) == sanitised);                // idempotent
  Check(IsSafeBatchKey(sanitised));
  Check(IsSafeBatchKey(input) == (sanitised == input));

  // What the service does: the cap from the first input byte (0..255, and the default 256).
  for (const std::size_t cap : {std::size_t{256}, size > 0 ? std::size_t{data[0]} : 0}) {
    auto key = MakeSafeBatchKey(input, cap);
    if (key.ok()) {
      Check(*key == sanitised);
      Check(key->size() <= cap);
    } else {
      Check(dataflow::messagepipeline::IsPermanent(key.status()));
      Check(sanitised.size() > cap);
    }
  }
  return 0;
}

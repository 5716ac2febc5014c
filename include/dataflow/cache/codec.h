// How keys and values become bytes for Redis and Firestore.
//
// A value codec is a type with static Encode(const V&) -> StatusOr<std::string> and
// Decode(std::string_view) -> StatusOr<V>. The default, JsonCodec<V>, goes through
// nlohmann::json, so any type with ADL to_json/from_json (or NLOHMANN_DEFINE_TYPE_*)
// works. Decoding never throws: bad bytes give DataLoss, a JSON shape that does not fit V
// gives InvalidArgument. Stored bytes are outside data (anything can SET a Redis key), so
// they are parsed within limits (kCacheValueJsonLimits, or the codec's second argument): a
// value nested deeper is DataLoss before it becomes a json value, never a crash on its first
// copy. Keys become strings through KeyString(), which handles strings and
// integers; other key types provide an ADL `std::string ToCacheKey(const K&)`.
// All functions are stateless and thread-safe.
#pragma once

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <concepts>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <type_traits>

#include "dataflow/messagepipeline/json_limits.h"

namespace dataflow::cache {

// An enricher merges a value into an envelope's enrichmentData, up to two levels down, so a
// value within these limits always fits the envelope limit of the next service.
inline constexpr messagepipeline::JsonLimits kCacheValueJsonLimits{
    .max_depth = messagepipeline::kDefaultJsonMaxDepth - 2};

template <typename C, typename V>
concept ValueCodec = requires(const V& v, std::string_view bytes) {
  { C::Encode(v) } -> std::same_as<absl::StatusOr<std::string>>;
  { C::Decode(bytes) } -> std::same_as<absl::StatusOr<V>>;
};

template <typename V, messagepipeline::JsonLimits kLimits = kCacheValueJsonLimits>
struct JsonCodec {
  static absl::StatusOr<std::string> Encode(const V& value) {
    try {
      nlohmann::json j = value;
      // Replace invalid UTF-8 rather than throw: a value with a stray byte is still cached.
      return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    } catch (const std::exception& e) {
      return absl::InvalidArgumentError(std::string("cache: cannot encode value as JSON: ") +
                                        e.what());
    }
  }
  static absl::StatusOr<V> Decode(std::string_view bytes) {
    absl::StatusOr<nlohmann::json> j = messagepipeline::ParseJsonBounded(bytes, kLimits);
    if (!j.ok()) {
      return absl::DataLossError(std::string("cache: stored value of ") +
                                 std::to_string(bytes.size()) +
                                 " bytes is unusable: " + std::string(j.status().message()));
    }
    if constexpr (std::is_same_v<V, nlohmann::json>) {
      return *std::move(j);  // no copy of what was just built
    } else {
      return FromJson(*j);
    }
  }
  // Also used by the Firestore fetcher, which builds the JSON from document fields.
  static absl::StatusOr<V> FromJson(const nlohmann::json& j) {
    try {
      return j.get<V>();
    } catch (const std::exception& e) {
      return absl::InvalidArgumentError(std::string("cache: JSON does not decode into the "
                                                    "value type: ") +
                                        e.what());
    }
  }
};

// Key -> string for backends that address by string.
template <typename K>
std::string KeyString(const K& key) {
  if constexpr (std::is_convertible_v<const K&, std::string_view>) {
    return std::string(std::string_view(key));
  } else if constexpr (std::is_integral_v<K>) {
    return std::to_string(key);
  } else {
    return ToCacheKey(key);  // ADL, provided by the key type's namespace
  }
}

}  // namespace dataflow::cache

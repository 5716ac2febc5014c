// Firestore Value <-> JSON (firestore_value.h). Apart from firestore.cc so that code without
// gRPC (the firestore_value fuzz target) can compile it with only the Document protos.
#include "dataflow/cache/firestore_value.h"

#include <absl/strings/escaping.h>
#include <absl/strings/str_cat.h>
#include <absl/time/time.h>

#include <cstdint>
#include <limits>

#include "dataflow/cache/codec.h"

namespace dataflow::cache {

namespace fs = ::google::firestore::v1;

namespace {

absl::StatusOr<nlohmann::json> FieldsToJson(
    const google::protobuf::Map<std::string, fs::Value>& fields, int depth);

// `depth`: the containers around `value`. Documents are outside data and protobuf nests up
// to its own recursion limit, so the JSON is held to the cache's value limit (a map or
// array beyond it is refused before it is built, as ParseJsonBounded does for text).
absl::StatusOr<nlohmann::json> ValueToJson(const fs::Value& value, int depth) {
  const bool container = value.value_type_case() == fs::Value::kArrayValue ||
                         value.value_type_case() == fs::Value::kMapValue ||
                         value.value_type_case() == fs::Value::kGeoPointValue;
  if (container && depth + 1 > kCacheValueJsonLimits.max_depth) {
    return absl::InvalidArgumentError(
        absl::StrCat("firestore: value nested deeper than the limit of ",
                     kCacheValueJsonLimits.max_depth, " levels"));
  }
  switch (value.value_type_case()) {
    case fs::Value::kNullValue:
    case fs::Value::VALUE_TYPE_NOT_SET:
      return nullptr;
    case fs::Value::kBooleanValue:
      return value.boolean_value();
    case fs::Value::kIntegerValue:
      return value.integer_value();
    case fs::Value::kDoubleValue:
      return value.double_value();
    case fs::Value::kTimestampValue: {
      const absl::Time t = absl::FromUnixSeconds(value.timestamp_value().seconds()) +
                           absl::Nanoseconds(value.timestamp_value().nanos());
      // RFC3339_full with a four-digit year: its %Y writes year 1 as "1-01-01".
      return absl::FormatTime("%E4Y-%m-%d%ET%H:%M:%E*S%Ez", t, absl::UTCTimeZone());
    }
    case fs::Value::kStringValue:
      return value.string_value();
    case fs::Value::kBytesValue:
      return absl::Base64Escape(value.bytes_value());
    case fs::Value::kReferenceValue:
      return value.reference_value();
    case fs::Value::kGeoPointValue:
      return nlohmann::json{{"latitude", value.geo_point_value().latitude()},
                            {"longitude", value.geo_point_value().longitude()}};
    case fs::Value::kArrayValue: {
      nlohmann::json array = nlohmann::json::array();
      for (const auto& v : value.array_value().values()) {
        auto j = ValueToJson(v, depth + 1);
        if (!j.ok()) return j.status();
        array.push_back(*std::move(j));
      }
      return array;
    }
    case fs::Value::kMapValue:
      return FieldsToJson(value.map_value().fields(), depth + 1);
    default:
      return absl::InvalidArgumentError(absl::StrCat("firestore: value kind ",
                                                     static_cast<int>(value.value_type_case()),
                                                     " has no JSON form"));
  }
}

// `depth`: the containers around the fields, the object they make included.
absl::StatusOr<nlohmann::json> FieldsToJson(
    const google::protobuf::Map<std::string, fs::Value>& fields, int depth) {
  nlohmann::json object = nlohmann::json::object();
  for (const auto& [name, v] : fields) {
    auto j = ValueToJson(v, depth);
    if (!j.ok()) {
      return absl::Status(j.status().code(),
                          absl::StrCat("field \"", name, "\": ", j.status().message()));
    }
    object[name] = *std::move(j);
  }
  return object;
}

}  // namespace

absl::StatusOr<nlohmann::json> FirestoreValueToJson(const fs::Value& value) {
  return ValueToJson(value, 0);
}

absl::StatusOr<nlohmann::json> FirestoreFieldsToJson(
    const google::protobuf::Map<std::string, fs::Value>& fields) {
  return FieldsToJson(fields, 1);
}

absl::StatusOr<fs::Value> JsonToFirestoreValue(const nlohmann::json& json) {
  fs::Value value;
  switch (json.type()) {
    case nlohmann::json::value_t::null:
    case nlohmann::json::value_t::discarded:
      value.set_null_value(google::protobuf::NULL_VALUE);
      break;
    case nlohmann::json::value_t::boolean:
      value.set_boolean_value(json.get<bool>());
      break;
    case nlohmann::json::value_t::number_integer:
      value.set_integer_value(json.get<std::int64_t>());
      break;
    case nlohmann::json::value_t::number_unsigned: {
      const auto u = json.get<std::uint64_t>();
      if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        return absl::InvalidArgumentError(
            absl::StrCat("firestore: integer ", u, " does not fit a 64-bit signed integer"));
      }
      value.set_integer_value(static_cast<std::int64_t>(u));
      break;
    }
    case nlohmann::json::value_t::number_float:
      value.set_double_value(json.get<double>());
      break;
    case nlohmann::json::value_t::string:
      value.set_string_value(json.get_ref<const std::string&>());
      break;
    case nlohmann::json::value_t::binary: {
      const auto& b = json.get_binary();
      value.set_bytes_value(std::string(b.begin(), b.end()));
      break;
    }
    case nlohmann::json::value_t::array:
      for (const auto& element : json) {
        if (element.is_array()) {
          return absl::InvalidArgumentError("firestore: an array cannot directly contain an array");
        }
        auto v = JsonToFirestoreValue(element);
        if (!v.ok()) return v.status();
        *value.mutable_array_value()->add_values() = *std::move(v);
      }
      value.mutable_array_value();  // an empty array is still an array
      break;
    case nlohmann::json::value_t::object:
      if (absl::Status s = JsonToFirestoreFields(json, value.mutable_map_value()->mutable_fields());
          !s.ok()) {
        return s;
      }
      break;
  }
  return value;
}

absl::Status JsonToFirestoreFields(const nlohmann::json& json,
                                   google::protobuf::Map<std::string, fs::Value>* fields) {
  if (!json.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("firestore: document fields must be a JSON object, got ", json.type_name()));
  }
  for (const auto& [name, element] : json.items()) {
    auto v = JsonToFirestoreValue(element);
    if (!v.ok()) {
      return absl::Status(v.status().code(),
                          absl::StrCat("field \"", name, "\": ", v.status().message()));
    }
    (*fields)[name] = *std::move(v);
  }
  return absl::OkStatus();
}

}  // namespace dataflow::cache

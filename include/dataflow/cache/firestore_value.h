// Conversions between Firestore's Value protos and JSON, used by the Firestore fetcher and
// presence cache; public so tests and other Firestore code can use the same mapping.
// Pure functions; thread-safe.
#pragma once

#include <absl/status/status.h>
#include <absl/status/statusor.h>
#include <google/firestore/v1/document.pb.h>

#include <nlohmann/json.hpp>

namespace dataflow::cache {

// map -> object, array -> array, null/bool/integer/double/string as such, timestamp ->
// RFC 3339 string, bytes -> base64 string, reference -> its resource name, geo point ->
// {"latitude","longitude"}. InvalidArgument for a value kind JSON cannot hold, and for maps
// and arrays nested deeper than kCacheValueJsonLimits.max_depth (checked before building).
absl::StatusOr<nlohmann::json> FirestoreValueToJson(const google::firestore::v1::Value& value);
// A document's fields as a JSON object.
absl::StatusOr<nlohmann::json> FirestoreFieldsToJson(
    const google::protobuf::Map<std::string, google::firestore::v1::Value>& fields);

// The reverse: integers that fit int64 become integer_value, other numbers double_value;
// nested arrays (which Firestore cannot store) and unsigned values above INT64_MAX are
// InvalidArgument.
absl::StatusOr<google::firestore::v1::Value> JsonToFirestoreValue(const nlohmann::json& json);
// `json` must be an object; its members become the document's fields.
absl::Status JsonToFirestoreFields(
    const nlohmann::json& json,
    google::protobuf::Map<std::string, google::firestore::v1::Value>* fields);

}  // namespace dataflow::cache

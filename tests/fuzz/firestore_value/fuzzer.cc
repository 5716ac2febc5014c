// libFuzzer target for Firestore value decoding (firestore_value.h): the Firestore fetcher
// turns every document it reads into JSON with FirestoreFieldsToJson, and anything may have
// written that document. The input is parsed both as a google.firestore.v1.Value and as a
// Document, each checked when it parses (a field of the other message's wire type is just
// an unknown field, so most inputs are both); bytes that parse as neither are skipped.
//
// Checked for each parsed message:
// - decoding gives a value or InvalidArgument (the documented code), never a crash: exactly
//   when the message holds a kind JSON cannot hold (field/variable reference, function,
//   pipeline) or nests maps/arrays/geo points deeper than kCacheValueJsonLimits.max_depth;
//   a too-deep message without such kinds is refused for its depth, not something else;
// - the JSON says what the proto says, kind by kind, and fits the cache's own limits (its
//   text parses back with ParseJsonBounded(kCacheValueJsonLimits), so Redis can hold it);
// - round trip: the JSON converts back (JsonToFirestoreValue/Fields) and decodes to the same
//   JSON — except that an array directly inside an array, which a proto can hold but
//   Firestore cannot store, is InvalidArgument on the way back;
// - the proto itself comes back unchanged when it holds only lossless kinds. Lossy by
//   design: timestamp (an RFC 3339 string; checked by parsing it back when the Timestamp is
//   valid), bytes (base64 string; checked by decoding it), reference (its name as a string),
//   geo point (a {"latitude","longitude"} map), an unset value and a null_value with an
//   unknown enum number (both null, re-encoded as NULL_VALUE).
//
// gRPC parses responses with protobuf's default recursion limit (100, about 33 map levels),
// below the decoder's own 62-level limit; the input is parsed here with a higher limit so
// that the decoder's check (which also guards Values built in code) is reached.
#include <absl/status/status.h>
#include <absl/strings/escaping.h>
#include <absl/time/time.h>
#include <google/firestore/v1/document.pb.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/util/field_comparator.h>
#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "dataflow/cache/codec.h"
#include "dataflow/cache/firestore_value.h"
#include "dataflow/messagepipeline/json_limits.h"

namespace {

namespace fs = ::google::firestore::v1;
using Fields = google::protobuf::Map<std::string, fs::Value>;
using nlohmann::json;

constexpr int kMaxDepth = dataflow::cache::kCacheValueJsonLimits.max_depth;
// Enough for maps nested well past kMaxDepth (three message levels per map).
constexpr int kParseRecursionLimit = 3 * kMaxDepth + 64;

#define CHECK(cond)                                                                 \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                 \
    }                                                                               \
  } while (false)

// What the input holds, worked out independently of the decoder.
struct Shape {
  int depth = 0;              // JSON nesting of the decoded form (map/array/geo point: one level)
  bool unsupported = false;   // a kind with no JSON form
  bool lossy = false;         // decodes to JSON that converts back to a different proto
  bool nested_array = false;  // an array directly inside an array
};

void Merge(Shape& into, const Shape& child) {
  into.depth = std::max(into.depth, child.depth + 1);
  into.unsupported |= child.unsupported;
  into.lossy |= child.lossy;
  into.nested_array |= child.nested_array;
}

Shape ShapeOf(const Fields& fields);

Shape ShapeOf(const fs::Value& v) {
  Shape s;
  switch (v.value_type_case()) {
    case fs::Value::kNullValue:
      s.lossy = v.null_value() != google::protobuf::NULL_VALUE;
      break;
    case fs::Value::VALUE_TYPE_NOT_SET:
    case fs::Value::kTimestampValue:
    case fs::Value::kBytesValue:
    case fs::Value::kReferenceValue:
      s.lossy = true;
      break;
    case fs::Value::kGeoPointValue:
      s.depth = 1;
      s.lossy = true;
      break;
    case fs::Value::kBooleanValue:
    case fs::Value::kIntegerValue:
    case fs::Value::kDoubleValue:
    case fs::Value::kStringValue:
      break;
    case fs::Value::kArrayValue:
      s.depth = 1;
      for (const auto& e : v.array_value().values()) {
        Merge(s, ShapeOf(e));
        s.nested_array |= e.has_array_value();
      }
      break;
    case fs::Value::kMapValue:
      s = ShapeOf(v.map_value().fields());
      break;
    default:
      s.unsupported = true;
  }
  return s;
}

Shape ShapeOf(const Fields& fields) {
  Shape s;
  s.depth = 1;
  for (const auto& [name, v] : fields) Merge(s, ShapeOf(v));
  return s;
}

// JSON equality that tells integers from doubles, -0.0 from 0.0 and holds NaN equal to NaN
// (nlohmann's == does none of these).
bool Same(const json& a, const json& b) {
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case json::value_t::number_float: {
      const double x = a.get<double>(), y = b.get<double>();
      if (std::isnan(x) || std::isnan(y)) return std::isnan(x) && std::isnan(y);
      return x == y && std::signbit(x) == std::signbit(y);
    }
    case json::value_t::array:
      if (a.size() != b.size()) return false;
      for (std::size_t i = 0; i < a.size(); ++i) {
        if (!Same(a[i], b[i])) return false;
      }
      return true;
    case json::value_t::object:
      if (a.size() != b.size()) return false;
      for (const auto& [k, v] : a.items()) {
        const auto it = b.find(k);
        if (it == b.end() || !Same(v, *it)) return false;
      }
      return true;
    default:
      return a == b;
  }
}

void CheckMatches(const Fields& fields, const json& j);

// The decoded JSON says what the proto says.
void CheckMatches(const fs::Value& v, const json& j) {
  switch (v.value_type_case()) {
    case fs::Value::kNullValue:
    case fs::Value::VALUE_TYPE_NOT_SET:
      CHECK(j.is_null());
      break;
    case fs::Value::kBooleanValue:
      CHECK(j.is_boolean() && j.get<bool>() == v.boolean_value());
      break;
    case fs::Value::kIntegerValue:
      CHECK(j.is_number_integer() && j.get<std::int64_t>() == v.integer_value());
      break;
    case fs::Value::kDoubleValue:
      CHECK(Same(j, json(v.double_value())));
      break;
    case fs::Value::kTimestampValue: {
      CHECK(j.is_string());
      const auto& ts = v.timestamp_value();
      // Only a valid Timestamp (0001-01-01 to 9999-12-31, nanos in [0, 1e9)) has an RFC 3339
      // form to check; other values still give some string, never a crash.
      if (ts.seconds() >= -62135596800 && ts.seconds() <= 253402300799 && ts.nanos() >= 0 &&
          ts.nanos() <= 999999999) {
        absl::Time t;
        std::string err;
        const std::string& text = j.get_ref<const std::string&>();
        // RFC 3339 wants four year digits; absl's parser would also take "1-01-01".
        CHECK(text.size() > 4 && text[4] == '-' &&
              std::all_of(text.begin(), text.begin() + 4,
                          [](char c) { return c >= '0' && c <= '9'; }));
        CHECK(absl::ParseTime(absl::RFC3339_full, text, &t, &err));
        CHECK(t == absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos()));
      }
      break;
    }
    case fs::Value::kStringValue:
      CHECK(j.is_string() && j.get<std::string>() == v.string_value());
      break;
    case fs::Value::kBytesValue: {
      CHECK(j.is_string());
      std::string bytes;
      CHECK(absl::Base64Unescape(j.get<std::string>(), &bytes) && bytes == v.bytes_value());
      break;
    }
    case fs::Value::kReferenceValue:
      CHECK(j.is_string() && j.get<std::string>() == v.reference_value());
      break;
    case fs::Value::kGeoPointValue:
      CHECK(j.is_object() && j.size() == 2 && j.contains("latitude") && j.contains("longitude"));
      CHECK(Same(j["latitude"], json(v.geo_point_value().latitude())));
      CHECK(Same(j["longitude"], json(v.geo_point_value().longitude())));
      break;
    case fs::Value::kArrayValue:
      CHECK(j.is_array() && j.size() == static_cast<std::size_t>(v.array_value().values_size()));
      for (int i = 0; i < v.array_value().values_size(); ++i) {
        CheckMatches(v.array_value().values(i), j[static_cast<std::size_t>(i)]);
      }
      break;
    case fs::Value::kMapValue:
      CheckMatches(v.map_value().fields(), j);
      break;
    default:
      CHECK(false);  // an unsupported kind must have been refused
  }
}

void CheckMatches(const Fields& fields, const json& j) {
  CHECK(j.is_object() && j.size() == fields.size());
  for (const auto& [name, v] : fields) {
    const auto it = j.find(name);
    CHECK(it != j.end());
    CheckMatches(v, *it);
  }
}

bool ProtoEqual(const google::protobuf::Message& a, const google::protobuf::Message& b) {
  google::protobuf::util::DefaultFieldComparator comparator;
  comparator.set_treat_nan_as_equal(true);
  google::protobuf::util::MessageDifferencer differencer;
  differencer.set_field_comparator(&comparator);
  return differencer.Compare(a, b);
}

// What every decode must satisfy, given the shape worked out independently.
void CheckDecoded(const absl::StatusOr<json>& decoded, const Shape& shape) {
  const bool too_deep = shape.depth > kMaxDepth;
  if (!decoded.ok()) {
    CHECK(decoded.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(shape.unsupported || too_deep);
    if (!shape.unsupported) {
      CHECK(decoded.status().message().find("nested deeper than the limit") != std::string::npos);
    }
    return;
  }
  CHECK(!shape.unsupported && !too_deep);
  // Its text is a value the cache can store and read back (Redis uses the same limits).
  const std::string text = decoded->dump(-1, ' ', false, json::error_handler_t::replace);
  CHECK(dataflow::messagepipeline::ParseJsonBounded(text, dataflow::cache::kCacheValueJsonLimits)
            .ok());
}

void FuzzValue(const fs::Value& value) {
  const Shape shape = ShapeOf(value);
  const absl::StatusOr<json> decoded = dataflow::cache::FirestoreValueToJson(value);
  CheckDecoded(decoded, shape);
  if (!decoded.ok()) return;
  CheckMatches(value, *decoded);

  const absl::StatusOr<fs::Value> back = dataflow::cache::JsonToFirestoreValue(*decoded);
  if (shape.nested_array) {
    CHECK(!back.ok() && back.status().code() == absl::StatusCode::kInvalidArgument);
    return;
  }
  CHECK(back.ok());
  const absl::StatusOr<json> again = dataflow::cache::FirestoreValueToJson(*back);
  CHECK(again.ok() && Same(*again, *decoded));
  if (!shape.lossy) CHECK(ProtoEqual(*back, value));
}

void FuzzDocument(const fs::Document& document) {
  const Shape shape = ShapeOf(document.fields());
  const absl::StatusOr<json> decoded = dataflow::cache::FirestoreFieldsToJson(document.fields());
  CheckDecoded(decoded, shape);
  if (!decoded.ok()) return;
  CheckMatches(document.fields(), *decoded);

  fs::Document back;
  const absl::Status status =
      dataflow::cache::JsonToFirestoreFields(*decoded, back.mutable_fields());
  if (shape.nested_array) {
    CHECK(status.code() == absl::StatusCode::kInvalidArgument);
    return;
  }
  CHECK(status.ok());
  const absl::StatusOr<json> again = dataflow::cache::FirestoreFieldsToJson(back.fields());
  CHECK(again.ok() && Same(*again, *decoded));
  if (!shape.lossy) {
    fs::Document fields_only;
    *fields_only.mutable_fields() = document.fields();
    CHECK(ProtoEqual(back, fields_only));
  }
}

template <typename M>
bool Parse(const uint8_t* data, size_t size, M& message) {
  google::protobuf::io::CodedInputStream in(data, static_cast<int>(size));
  in.SetRecursionLimit(kParseRecursionLimit);
  if (!message.ParseFromCodedStream(&in) || !in.ConsumedEntireMessage()) return false;
  message.DiscardUnknownFields();  // the decoder ignores them; the round trip drops them
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  // Protobuf logs every string field with invalid UTF-8 it refuses; that is most inputs.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (std::size_t{1} << 20)) return -1;
  if (fs::Value value; Parse(data, size, value)) FuzzValue(value);
  if (fs::Document document; Parse(data, size, document)) FuzzDocument(document);
  return 0;
}

// Row codecs for described types (see row.h): the protobuf wire encoding that matches
// RowDescriptorProto(InferSchema<T>()), written straight from the struct without building
// a message object, and the JSON mapping (column names as keys; TIMESTAMP as RFC 3339,
// BYTES as base64, NULL for an empty optional). Stateless; thread-safe.
#pragma once

#include <absl/status/statusor.h>
#include <absl/strings/escaping.h>
#include <absl/strings/numbers.h>
#include <absl/strings/str_cat.h>

#include <bit>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

#include "dataflow/bqstore/row.h"
#include "dataflow/messagepipeline/message.h"

namespace dataflow::bqstore {
namespace internal {

inline void PutVarint(std::string& out, std::uint64_t v) {
  char buf[10];
  int n = 0;
  while (v >= 0x80) {
    buf[n++] = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  buf[n++] = static_cast<char>(v);
  out.append(buf, n);
}
inline void PutTag(std::string& out, int number, int wire_type) {
  PutVarint(out, (static_cast<std::uint64_t>(number) << 3) | static_cast<unsigned>(wire_type));
}

inline std::int64_t ToMicros(Timestamp t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

template <typename T>
void EncodeRowTo(const T& row, std::string& out);

template <typename V>
void EncodeLeaf(std::string& out, int number, const V& v) {
  if constexpr (std::is_same_v<V, bool>) {
    PutTag(out, number, 0);
    out.push_back(v ? 1 : 0);
  } else if constexpr (kIsInteger<V>) {
    PutTag(out, number, 0);
    PutVarint(out, static_cast<std::uint64_t>(static_cast<std::int64_t>(v)));
  } else if constexpr (std::is_floating_point_v<V>) {
    PutTag(out, number, 1);
    const std::uint64_t bits = std::bit_cast<std::uint64_t>(static_cast<double>(v));
    char buf[8];
    for (int i = 0; i < 8; ++i) buf[i] = static_cast<char>(bits >> (8 * i));
    out.append(buf, 8);
  } else if constexpr (std::is_same_v<V, std::string>) {
    PutTag(out, number, 2);
    PutVarint(out, v.size());
    out.append(v);
  } else if constexpr (std::is_same_v<V, Bytes>) {
    PutTag(out, number, 2);
    PutVarint(out, v.data.size());
    out.append(v.data);
  } else if constexpr (std::is_same_v<V, Timestamp>) {
    PutTag(out, number, 0);
    PutVarint(out, static_cast<std::uint64_t>(ToMicros(v)));
  } else {
    std::string nested;
    EncodeRowTo(v, nested);
    PutTag(out, number, 2);
    PutVarint(out, nested.size());
    out.append(nested);
  }
}

template <typename T>
void EncodeRowTo(const T& row, std::string& out) {
  int number = 0;
  ForEachField<T>([&](auto field) {
    ++number;
    using M = typename decltype(field)::type;
    CheckField<M>();
    const M& value = row.*(field.member);
    if constexpr (IsOptional<M>::value) {
      if (value.has_value()) EncodeLeaf(out, number, *value);
    } else if constexpr (IsVector<M>::value) {
      // Unpacked: valid proto2 for every element type, and what BigQuery accepts.
      for (const auto& element : value) EncodeLeaf(out, number, element);
    } else {
      EncodeLeaf(out, number, value);
    }
  });
}

template <typename V>
nlohmann::json LeafToJson(const V& v);

template <typename T>
nlohmann::json RowToJson(const T& row) {
  nlohmann::json out = nlohmann::json::object();
  ForEachField<T>([&](auto field) {
    using M = typename decltype(field)::type;
    const M& value = row.*(field.member);
    nlohmann::json& slot = out[std::string(field.name)];
    if constexpr (IsOptional<M>::value) {
      slot = value.has_value() ? LeafToJson(*value) : nlohmann::json(nullptr);
    } else if constexpr (IsVector<M>::value) {
      slot = nlohmann::json::array();
      for (const auto& element : value) slot.push_back(LeafToJson(element));
    } else {
      slot = LeafToJson(value);
    }
  });
  return out;
}

template <typename V>
nlohmann::json LeafToJson(const V& v) {
  if constexpr (std::is_same_v<V, Bytes>) {
    return absl::Base64Escape(v.data);
  } else if constexpr (std::is_same_v<V, Timestamp>) {
    return messagepipeline::FormatTimestamp(v);
  } else if constexpr (Described<V>) {
    return RowToJson(v);
  } else if constexpr (kIsInteger<V>) {
    return static_cast<std::int64_t>(v);
  } else {
    return v;
  }
}

template <typename V>
absl::Status LeafFromJson(const nlohmann::json& j, const std::string& path, V& out);

template <typename T>
absl::Status RowFromJson(const nlohmann::json& j, const std::string& path, T& row) {
  if (!j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.empty() ? "row" : path, ": expected a JSON object"));
  }
  absl::Status status;
  ForEachField<T>([&](auto field) {
    if (!status.ok()) return;
    using M = typename decltype(field)::type;
    M& value = row.*(field.member);
    const std::string name(field.name);
    const std::string full = path.empty() ? name : absl::StrCat(path, ".", name);
    auto it = j.find(name);
    const bool missing = it == j.end() || it->is_null();
    if constexpr (IsOptional<M>::value) {
      if (missing) {
        value.reset();
      } else {
        typename M::value_type inner{};
        status = LeafFromJson(*it, full, inner);
        value = std::move(inner);
      }
    } else if constexpr (IsVector<M>::value) {
      value.clear();
      if (missing) return;  // an absent array is an empty one, as in BigQuery
      if (!it->is_array()) {
        status = absl::InvalidArgumentError(absl::StrCat(full, ": expected an array"));
        return;
      }
      for (std::size_t i = 0; i < it->size() && status.ok(); ++i) {
        typename M::value_type element{};
        status = LeafFromJson((*it)[i], absl::StrCat(full, "[", i, "]"), element);
        value.push_back(std::move(element));
      }
    } else {
      if (missing) {
        status = absl::InvalidArgumentError(absl::StrCat(full, ": required field is missing"));
        return;
      }
      status = LeafFromJson(*it, full, value);
    }
  });
  return status;
}

template <typename V>
absl::Status LeafFromJson(const nlohmann::json& j, const std::string& path, V& out) {
  auto wrong = [&](const char* expected) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": expected ", expected, ", got ", std::string(j.type_name())));
  };
  if constexpr (std::is_same_v<V, bool>) {
    if (!j.is_boolean()) return wrong("a boolean");
    out = j.get<bool>();
  } else if constexpr (kIsInteger<V>) {
    std::int64_t v = 0;
    if (j.is_number_integer()) {
      v = j.get<std::int64_t>();
      if (j.is_number_unsigned() &&
          j.get<std::uint64_t>() >
              static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": integer out of range"));
      }
    } else if (j.is_string()) {  // BigQuery writes INT64 as strings in JSON
      if (!absl::SimpleAtoi(j.get<std::string>(), &v)) return wrong("an integer");
    } else {
      return wrong("an integer");
    }
    if (v < static_cast<std::int64_t>(std::numeric_limits<V>::min()) ||
        (v > 0 && static_cast<std::uint64_t>(v) >
                      static_cast<std::uint64_t>(std::numeric_limits<V>::max()))) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": integer ", v, " out of range"));
    }
    out = static_cast<V>(v);
  } else if constexpr (std::is_floating_point_v<V>) {
    if (!j.is_number()) return wrong("a number");
    out = static_cast<V>(j.get<double>());
  } else if constexpr (std::is_same_v<V, std::string>) {
    if (!j.is_string()) return wrong("a string");
    out = j.get<std::string>();
  } else if constexpr (std::is_same_v<V, Bytes>) {
    if (!j.is_string() || !absl::Base64Unescape(j.get<std::string>(), &out.data)) {
      return wrong("base64 bytes");
    }
  } else if constexpr (std::is_same_v<V, Timestamp>) {
    if (j.is_number_integer()) {  // epoch microseconds
      out = Timestamp(std::chrono::microseconds(j.get<std::int64_t>()));
    } else if (j.is_string()) {
      auto t = messagepipeline::ParseTimestamp(j.get<std::string>());
      if (!t.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": ", t.status().message()));
      }
      out = std::chrono::time_point_cast<Timestamp::duration>(*t);
    } else {
      return wrong("an RFC 3339 timestamp or epoch microseconds");
    }
  } else {
    return RowFromJson(j, path, out);
  }
  return absl::OkStatus();
}

}  // namespace internal

// Appends the protobuf encoding of `row` (a message of RowDescriptorProto(InferSchema<T>())).
template <typename T>
void EncodeRow(const T& row, std::string& out) {
  internal::EncodeRowTo(row, out);
}
template <typename T>
std::string EncodeRow(const T& row) {
  std::string out;
  internal::EncodeRowTo(row, out);
  return out;
}

template <typename T>
nlohmann::json ToJson(const T& row) {
  return internal::RowToJson(row);
}

// InvalidArgument naming the field path for a missing required field or a wrong type.
template <typename T>
absl::StatusOr<T> FromJson(const nlohmann::json& json) {
  T row{};
  if (auto s = internal::RowFromJson(json, "", row); !s.ok()) return s;
  return row;
}

}  // namespace dataflow::bqstore

// Describing a row type once: DATAFLOW_DESCRIBE(Type, field, ...) lists a struct's fields,
// and from that list bqstore derives the BigQuery table schema, the JSON mapping and the
// protobuf wire encoding used by the Storage Write API (C++20 has no reflection).
//
//   struct Reading { std::string device; double value; Clock::time_point at; };
//   DATAFLOW_DESCRIBE(Reading, device, value, at);   // at namespace scope, next to Reading
//
// Supported member types: bool, signed integers and uint8/16/32 (INT64), float/double
// (FLOAT64), std::string (STRING), Bytes (BYTES), system_clock::time_point (TIMESTAMP),
// std::optional<T> (NULLABLE), std::vector<T> (REPEATED) and described structs (RECORD).
// Anything else fails to compile with a static_assert naming the problem. Everything here
// is stateless and thread-safe.
#pragma once

#include <absl/status/statusor.h>
#include <absl/strings/str_cat.h>

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "dataflow/bqstore/schema.h"

namespace dataflow::bqstore {

using Timestamp = std::chrono::system_clock::time_point;

// Raw bytes (BYTES column). A distinct type, because std::string means STRING and
// std::vector<std::uint8_t> means REPEATED INT64.
struct Bytes {
  std::string data;
  friend bool operator==(const Bytes&, const Bytes&) = default;
};

namespace internal {

template <typename Owner, typename Member>
struct FieldRef {
  std::string_view name;
  Member Owner::*member;
  using type = Member;
};

template <typename Owner, typename Member>
constexpr auto MakeField(std::string_view name, Member Owner::*member) {
  return std::make_tuple(FieldRef<Owner, Member>{name, member});
}

// Found by argument-dependent lookup: DATAFLOW_DESCRIBE defines DataflowDescribe(const T*)
// in T's namespace.
template <typename T>
concept Described = requires(const T* p) {
  DataflowDescribe(p);
};

template <typename T>
struct IsOptional : std::false_type {};
template <typename T>
struct IsOptional<std::optional<T>> : std::true_type {};
template <typename T>
struct IsVector : std::false_type {};
template <typename T, typename A>
struct IsVector<std::vector<T, A>> : std::true_type {};

// The scalar or record inside an optional or vector; T itself otherwise.
template <typename T>
struct ElementOf {
  using type = T;
};
template <typename T>
struct ElementOf<std::optional<T>> {
  using type = T;
};
template <typename T, typename A>
struct ElementOf<std::vector<T, A>> {
  using type = T;
};

template <typename T>
constexpr bool kIsInteger =
    std::is_integral_v<T> && !std::is_same_v<T, bool> && !std::is_same_v<T, char> &&
    !std::is_same_v<T, wchar_t> && !std::is_same_v<T, char8_t> && !std::is_same_v<T, char16_t> &&
    !std::is_same_v<T, char32_t>;

// A scalar or record: what may sit inside an optional or a vector.
template <typename T>
constexpr bool kIsLeaf = std::is_same_v<T, bool> || kIsInteger<T> || std::is_floating_point_v<T> ||
                         std::is_same_v<T, std::string> || std::is_same_v<T, Bytes> ||
                         std::is_same_v<T, Timestamp> || Described<T>;

template <typename T>
constexpr void CheckLeaf() {
  static_assert(!(std::is_same_v<T, std::uint64_t> || std::is_same_v<T, unsigned long long>),
                "bqstore: uint64 does not fit BigQuery INT64; use int64_t");
  static_assert(!std::is_same_v<T, long double>, "bqstore: long double has no BigQuery type");
  static_assert(!std::is_same_v<T, const char*> && !std::is_same_v<T, std::string_view>,
                "bqstore: a field must own its text; use std::string");
  static_assert(kIsLeaf<T> || IsOptional<T>::value || IsVector<T>::value,
                "bqstore: unsupported field type; use bool, integers, float/double, "
                "std::string, Bytes, system_clock::time_point, a DATAFLOW_DESCRIBE'd struct, "
                "or std::optional / std::vector of those");
}

template <typename T>
constexpr void CheckField() {
  if constexpr (IsOptional<T>::value) {
    using V = typename T::value_type;
    static_assert(!IsOptional<V>::value && !IsVector<V>::value,
                  "bqstore: std::optional may hold only a scalar or a described struct "
                  "(BigQuery has no nullable arrays)");
    CheckLeaf<V>();
  } else if constexpr (IsVector<T>::value) {
    using V = typename T::value_type;
    static_assert(!IsOptional<V>::value && !IsVector<V>::value,
                  "bqstore: std::vector may hold only a scalar or a described struct "
                  "(BigQuery has no arrays of arrays or NULL array elements)");
    CheckLeaf<V>();
  } else {
    CheckLeaf<T>();
  }
}

template <typename T>
constexpr auto Fields() {
  static_assert(Described<T>,
                "bqstore: type is not described; add DATAFLOW_DESCRIBE(Type, fields...)");
  return DataflowDescribe(static_cast<const T*>(nullptr));
}

// Calls f(field_ref) for each described field of T, in order.
template <typename T, typename F>
constexpr void ForEachField(F&& f) {
  std::apply([&](auto... field) { (f(field), ...); }, Fields<T>());
}

template <typename T>
constexpr std::size_t FieldCount() {
  return std::tuple_size_v<decltype(Fields<T>())>;
}

template <typename T>
FieldType LeafType() {
  if constexpr (std::is_same_v<T, bool>)
    return FieldType::kBool;
  else if constexpr (kIsInteger<T>)
    return FieldType::kInt64;
  else if constexpr (std::is_floating_point_v<T>)
    return FieldType::kFloat64;
  else if constexpr (std::is_same_v<T, std::string>)
    return FieldType::kString;
  else if constexpr (std::is_same_v<T, Bytes>)
    return FieldType::kBytes;
  else if constexpr (std::is_same_v<T, Timestamp>)
    return FieldType::kTimestamp;
  else
    return FieldType::kRecord;
}

template <typename T>
TableSchema SchemaOf();

template <typename T>
FieldSchema FieldSchemaOf(std::string_view name) {
  CheckField<T>();
  FieldSchema field{.name = std::string(name)};
  using Leaf = typename ElementOf<T>::type;
  field.mode = IsOptional<T>::value ? FieldMode::kNullable
               : IsVector<T>::value ? FieldMode::kRepeated
                                    : FieldMode::kRequired;
  field.type = LeafType<Leaf>();
  if constexpr (Described<Leaf>) field.fields = SchemaOf<Leaf>();
  return field;
}

template <typename T>
TableSchema SchemaOf() {
  TableSchema schema;
  schema.reserve(FieldCount<T>());
  ForEachField<T>([&](auto field) {
    schema.push_back(FieldSchemaOf<typename decltype(field)::type>(field.name));
  });
  return schema;
}

}  // namespace internal

// The BigQuery table schema of a described type (REQUIRED unless optional or vector).
template <typename T>
TableSchema InferSchema() {
  return internal::SchemaOf<T>();
}

}  // namespace dataflow::bqstore

// Preprocessor iteration over the field names (bounded recursion via re-scanning).
#define DATAFLOW_INTERNAL_PARENS ()
#define DATAFLOW_INTERNAL_EXPAND(...) \
  DATAFLOW_INTERNAL_EXPAND3(DATAFLOW_INTERNAL_EXPAND3(DATAFLOW_INTERNAL_EXPAND3(__VA_ARGS__)))
#define DATAFLOW_INTERNAL_EXPAND3(...) \
  DATAFLOW_INTERNAL_EXPAND2(DATAFLOW_INTERNAL_EXPAND2(DATAFLOW_INTERNAL_EXPAND2(__VA_ARGS__)))
#define DATAFLOW_INTERNAL_EXPAND2(...) \
  DATAFLOW_INTERNAL_EXPAND1(DATAFLOW_INTERNAL_EXPAND1(DATAFLOW_INTERNAL_EXPAND1(__VA_ARGS__)))
#define DATAFLOW_INTERNAL_EXPAND1(...) __VA_ARGS__
#define DATAFLOW_INTERNAL_FOR_EACH(Type, ...) \
  __VA_OPT__(DATAFLOW_INTERNAL_EXPAND(DATAFLOW_INTERNAL_FOR_EACH_HELPER(Type, __VA_ARGS__)))
#define DATAFLOW_INTERNAL_FOR_EACH_HELPER(Type, a1, ...)     \
  , ::dataflow::bqstore::internal::MakeField(#a1, &Type::a1) \
        __VA_OPT__(DATAFLOW_INTERNAL_FOR_EACH_AGAIN DATAFLOW_INTERNAL_PARENS(Type, __VA_ARGS__))
#define DATAFLOW_INTERNAL_FOR_EACH_AGAIN() DATAFLOW_INTERNAL_FOR_EACH_HELPER

// Describes Type's fields (BigQuery column names = member names, in this order; the
// protobuf field numbers are the positions, from 1). Use at namespace scope in Type's
// namespace, after Type is complete.
#define DATAFLOW_DESCRIBE(Type, ...)                                                     \
  [[maybe_unused]] constexpr auto DataflowDescribe(const Type*) {                        \
    return std::tuple_cat(std::tuple<>() DATAFLOW_INTERNAL_FOR_EACH(Type, __VA_ARGS__)); \
  }

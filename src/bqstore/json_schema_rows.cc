#include "dataflow/bqstore/json_schema_rows.h"

#include <absl/strings/ascii.h>
#include <absl/strings/escaping.h>
#include <absl/strings/match.h>
#include <absl/strings/numbers.h>
#include <absl/strings/str_cat.h>
#include <absl/time/time.h>
#include <google/protobuf/descriptor.pb.h>

#include <bit>
#include <cmath>
#include <set>

#include "dataflow/bqstore/row_codec.h"
#include "dataflow/messagepipeline/errors.h"
#include "dataflow/messagepipeline/json_limits.h"

namespace dataflow::bqstore {
namespace {

namespace mp = messagepipeline;
using Json = nlohmann::json;

absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// BigQuery's TIMESTAMP range (0001-01-01 .. 9999-12-31T23:59:59.999999), microseconds.
constexpr std::int64_t kMinMicros = -62135596800000000;
constexpr std::int64_t kMaxMicros = 253402300799999999;
constexpr std::int64_t kMinSeconds = kMinMicros / 1000000;
constexpr std::int64_t kMaxSeconds = kMaxMicros / 1000000;
// Go's zero time: the library's "unset" time (MessageData), read as NULL.
constexpr std::string_view kGoZeroTime = "0001-01-01T00:00:00Z";

absl::Status Invalid(std::string_view reason) {
  return absl::InvalidArgumentError(std::string(reason));
}
absl::Status Wrong(const char* expected, const Json& j) {
  return absl::InvalidArgumentError(
      absl::StrCat("expected ", expected, ", got ", std::string(j.type_name())));
}

bool Digits(std::string_view s, std::size_t pos, std::size_t n, int& out) {
  if (pos + n > s.size()) return false;
  out = 0;
  for (std::size_t k = pos; k < pos + n; ++k) {
    if (!absl::ascii_isdigit(s[k])) return false;
    out = out * 10 + (s[k] - '0');
  }
  return true;
}

// Howard Hinnant's days_from_civil.
std::int64_t DaysFromCivil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

bool ValidDate(int y, int m, int d) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (y < 1 || y > 9999 || m < 1 || m > 12 || d < 1) return false;
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return d <= kDays[m - 1] + (m == 2 && leap ? 1 : 0);
}

// "YYYY-MM-DD" at s[0..10).
bool ParseDate(std::string_view s, int& y, int& m, int& d) {
  return s.size() >= 10 && Digits(s, 0, 4, y) && s[4] == '-' && Digits(s, 5, 2, m) && s[7] == '-' &&
         Digits(s, 8, 2, d) && ValidDate(y, m, d);
}

// "HH:MM:SS[.f{1,6}]", the whole of s.
bool ParseTime(std::string_view s) {
  int h = 0, mi = 0, se = 0;
  if (s.size() < 8 || !Digits(s, 0, 2, h) || s[2] != ':' || !Digits(s, 3, 2, mi) || s[5] != ':' ||
      !Digits(s, 6, 2, se) || h > 23 || mi > 59 || se > 59) {
    return false;
  }
  if (s.size() == 8) return true;
  if (s[8] != '.' || s.size() < 10 || s.size() > 15) return false;
  for (std::size_t k = 9; k < s.size(); ++k) {
    if (!absl::ascii_isdigit(s[k])) return false;
  }
  return true;
}

// A decimal (JSON number text or string: sign, digits, point, exponent) as plain decimal
// text without exponent, leading or trailing zeros; false when it is not one, or has more
// than max_int integer or max_frac fraction digits.
bool NormaliseDecimal(std::string_view in, int max_int, int max_frac, std::string& out,
                      std::string& why) {
  std::size_t p = 0;
  bool negative = false;
  if (p < in.size() && (in[p] == '+' || in[p] == '-')) negative = in[p++] == '-';
  std::string digits;
  int point = -1;  // digits before the decimal point
  for (; p < in.size(); ++p) {
    if (absl::ascii_isdigit(in[p])) {
      digits.push_back(in[p]);
    } else if (in[p] == '.' && point < 0) {
      point = static_cast<int>(digits.size());
    } else {
      break;
    }
  }
  if (digits.empty()) {
    why = "not a decimal number";
    return false;
  }
  if (point < 0) point = static_cast<int>(digits.size());
  if (p < in.size() && (in[p] == 'e' || in[p] == 'E')) {
    ++p;
    int exponent = 0;
    bool exp_negative = false;
    if (p < in.size() && (in[p] == '+' || in[p] == '-')) exp_negative = in[p++] == '-';
    const std::size_t start = p;
    for (; p < in.size() && absl::ascii_isdigit(in[p]); ++p) {
      if (exponent > 1000) {
        why = "exponent out of range";
        return false;
      }
      exponent = exponent * 10 + (in[p] - '0');
    }
    if (p == start) {
      why = "not a decimal number";
      return false;
    }
    point += exp_negative ? -exponent : exponent;
  }
  if (p != in.size()) {
    why = "not a decimal number";
    return false;
  }
  // Digits before the point, and after it, with the point moved by the exponent.
  std::string int_part;
  std::string frac_part;
  const int n = static_cast<int>(digits.size());
  if (point <= 0) {
    frac_part = std::string(static_cast<std::size_t>(-point), '0') + digits;
  } else if (point >= n) {
    int_part = digits + std::string(static_cast<std::size_t>(point - n), '0');
  } else {
    int_part = digits.substr(0, static_cast<std::size_t>(point));
    frac_part = digits.substr(static_cast<std::size_t>(point));
  }
  const std::size_t lead = int_part.find_first_not_of('0');
  int_part = lead == std::string::npos ? "" : int_part.substr(lead);
  const std::size_t trail = frac_part.find_last_not_of('0');
  frac_part = trail == std::string::npos ? "" : frac_part.substr(0, trail + 1);
  if (static_cast<int>(int_part.size()) > max_int) {
    why = absl::StrCat("out of range (more than ", max_int, " integer digits)");
    return false;
  }
  if (static_cast<int>(frac_part.size()) > max_frac) {
    why = absl::StrCat("more than ", max_frac, " decimal places");
    return false;
  }
  out.clear();
  if (negative && !(int_part.empty() && frac_part.empty())) out.push_back('-');
  out += int_part.empty() ? "0" : int_part;
  if (!frac_part.empty()) absl::StrAppend(&out, ".", frac_part);
  return true;
}

std::string FormatMicros(std::int64_t micros) {
  return absl::FormatTime("%Y-%m-%d%ET%H:%M:%E*SZ", absl::FromUnixMicros(micros),
                          absl::UTCTimeZone());
}

absl::Status TimestampFromJson(const Json& j, Cell& out) {
  if (j.is_string()) {
    const std::string& text = j.get_ref<const std::string&>();
    if (text == kGoZeroTime) {
      out.kind = Cell::Kind::kNull;
      return absl::OkStatus();
    }
    absl::Time t;
    std::string err;
    if (!absl::ParseTime(absl::RFC3339_full, text, &t, &err)) {
      return Invalid(absl::StrCat("not an RFC 3339 timestamp: \"", text, "\""));
    }
    if (t < absl::FromUnixMicros(kMinMicros) || t > absl::FromUnixMicros(kMaxMicros)) {
      return Invalid(absl::StrCat("timestamp out of range: \"", text, "\""));
    }
    out.i = absl::ToUnixMicros(t);
  } else if (j.is_number_integer()) {  // epoch seconds
    if (j.is_number_unsigned()
            ? j.get<std::uint64_t>() > static_cast<std::uint64_t>(kMaxSeconds)
            : (j.get<std::int64_t>() < kMinSeconds || j.get<std::int64_t>() > kMaxSeconds)) {
      return Invalid(absl::StrCat("epoch seconds ", j.dump(), " out of range"));
    }
    out.i = j.get<std::int64_t>() * 1000000;
  } else if (j.is_number_float()) {
    const double seconds = j.get<double>();
    if (!std::isfinite(seconds) || seconds < static_cast<double>(kMinSeconds) ||
        seconds > static_cast<double>(kMaxSeconds)) {
      return Invalid(absl::StrCat("epoch seconds ", j.dump(), " out of range"));
    }
    out.i = std::llround(seconds * 1e6);
  } else {
    return Wrong("an RFC 3339 timestamp or epoch seconds", j);
  }
  out.kind = Cell::Kind::kScalar;
  return absl::OkStatus();
}

absl::Status ConvertRecord(const Json& object, const TableSchema& fields, const std::string& path,
                           Cell& out);

// A column or record field (mode included) from its JSON value (null: absent).
absl::Status ConvertField(const Json* value, const FieldSchema& f, const std::string& path,
                          Cell& out) {
  const bool absent = value == nullptr || value->is_null();
  if (f.mode == FieldMode::kRepeated) {
    out.kind = Cell::Kind::kList;
    out.list.clear();
    if (absent) return absl::OkStatus();  // an absent array is an empty one, as in BigQuery
    if (!value->is_array()) {
      return Invalid(absl::StrCat("column ", path, ": expected an array, got ",
                                  std::string(value->type_name())));
    }
    out.list.resize(value->size());
    for (std::size_t k = 0; k < value->size(); ++k) {
      const Json& element = (*value)[k];
      const std::string at = absl::StrCat(path, "[", k, "]");
      if (element.is_null()) {
        return Invalid(absl::StrCat("column ", at, ": null element (BigQuery arrays have none)"));
      }
      if (f.type == FieldType::kRecord) {
        if (auto s = ConvertRecord(element, f.fields, at, out.list[k]); !s.ok()) return s;
      } else if (auto s = ConvertScalar(element, f, out.list[k]); !s.ok()) {
        return Invalid(absl::StrCat("column ", at, ": ", s.message()));
      } else if (out.list[k].kind == Cell::Kind::kNull) {
        return Invalid(absl::StrCat("column ", at, ": null element (BigQuery arrays have none)"));
      }
    }
    return absl::OkStatus();
  }
  out.kind = Cell::Kind::kNull;
  if (!absent) {
    if (f.type == FieldType::kRecord) {
      if (auto s = ConvertRecord(*value, f.fields, path, out); !s.ok()) return s;
    } else if (auto s = ConvertScalar(*value, f, out); !s.ok()) {
      return Invalid(absl::StrCat("column ", path, ": ", s.message()));
    }
  }
  if (out.kind == Cell::Kind::kNull && f.mode == FieldMode::kRequired) {
    return Invalid(absl::StrCat("column ", path, ": REQUIRED value is missing"));
  }
  return absl::OkStatus();
}

absl::Status ConvertRecord(const Json& object, const TableSchema& fields, const std::string& path,
                           Cell& out) {
  if (!object.is_object()) {
    return Invalid(absl::StrCat("column ", path, ": expected an object, got ",
                                std::string(object.type_name())));
  }
  out.kind = Cell::Kind::kList;
  out.list.resize(fields.size());
  for (std::size_t k = 0; k < fields.size(); ++k) {
    auto it = object.find(fields[k].name);
    const Json* v = it == object.end() ? nullptr : &*it;
    if (auto s = ConvertField(v, fields[k], absl::StrCat(path, ".", fields[k].name), out.list[k]);
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

const Json* Walk(const Json* j, const std::vector<ColumnSource::Step>& path) {
  for (const ColumnSource::Step& step : path) {
    if (j == nullptr) return nullptr;
    if (step.index >= 0) {
      if (!j->is_array() || static_cast<std::size_t>(step.index) >= j->size()) return nullptr;
      j = &(*j)[static_cast<std::size_t>(step.index)];
    } else {
      if (!j->is_object()) return nullptr;
      auto it = j->find(step.key);
      if (it == j->end()) return nullptr;
      j = &*it;
    }
  }
  return j;
}

// Protobuf wire encoding, as row_codec.h writes described structs.
void EncodeScalar(const Cell& c, FieldType type, int number, std::string& out);
void EncodeRecord(const Cell& c, const TableSchema& fields, int number, std::string& out);
void EncodeFields(const std::vector<Cell>& cells, const TableSchema& fields, std::string& out) {
  for (std::size_t k = 0; k < fields.size(); ++k) {
    const Cell& c = cells[k];
    const int number = static_cast<int>(k) + 1;
    if (c.kind == Cell::Kind::kNull) continue;
    const bool record = fields[k].type == FieldType::kRecord;
    if (fields[k].mode == FieldMode::kRepeated) {
      for (const Cell& element : c.list) {
        record ? EncodeRecord(element, fields[k].fields, number, out)
               : EncodeScalar(element, fields[k].type, number, out);
      }
    } else if (record) {
      EncodeRecord(c, fields[k].fields, number, out);
    } else {
      EncodeScalar(c, fields[k].type, number, out);
    }
  }
}

void EncodeRecord(const Cell& c, const TableSchema& fields, int number, std::string& out) {
  std::string nested;
  EncodeFields(c.list, fields, nested);
  internal::PutTag(out, number, 2);
  internal::PutVarint(out, nested.size());
  out.append(nested);
}

void EncodeScalar(const Cell& c, FieldType type, int number, std::string& out) {
  switch (type) {
    case FieldType::kBool:
    case FieldType::kInt64:
    case FieldType::kTimestamp:
    case FieldType::kDate:  // int32: negative values are sign-extended varints too
      internal::PutTag(out, number, 0);
      internal::PutVarint(out, static_cast<std::uint64_t>(c.i));
      return;
    case FieldType::kFloat64: {
      internal::PutTag(out, number, 1);
      const std::uint64_t bits = std::bit_cast<std::uint64_t>(c.d);
      char buf[8];
      for (int k = 0; k < 8; ++k) buf[k] = static_cast<char>(bits >> (8 * k));
      out.append(buf, 8);
      return;
    }
    case FieldType::kRecord:
      return;  // EncodeRecord (needs the nested schema)
    default:
      internal::PutTag(out, number, 2);
      internal::PutVarint(out, c.s.size());
      out.append(c.s);
      return;
  }
}

Json CellToJson(const Cell& c, const FieldSchema& f, bool element);
Json ScalarToJson(const Cell& c, FieldType type) {
  switch (type) {
    case FieldType::kBool:
      return c.i != 0;
    case FieldType::kInt64:
      return c.i;
    case FieldType::kFloat64:
      return c.d;
    case FieldType::kTimestamp:
      return FormatMicros(c.i);
    case FieldType::kBytes:
      return absl::Base64Escape(c.s);
    case FieldType::kJson: {
      Json parsed = Json::parse(c.s, nullptr, /*allow_exceptions=*/false);
      return parsed.is_discarded() ? Json(c.s) : parsed;
    }
    default:
      return c.s;
  }
}

Json CellToJson(const Cell& c, const FieldSchema& f, bool element) {
  if (c.kind == Cell::Kind::kNull) return nullptr;
  if (f.mode == FieldMode::kRepeated && !element) {
    Json array = Json::array();
    for (const Cell& e : c.list) array.push_back(CellToJson(e, f, true));
    return array;
  }
  if (f.type == FieldType::kRecord) {
    Json object = Json::object();
    for (std::size_t k = 0; k < f.fields.size(); ++k) {
      object[f.fields[k].name] = CellToJson(c.list[k], f.fields[k], false);
    }
    return object;
  }
  return ScalarToJson(c, f.type);
}

}  // namespace

absl::StatusOr<ColumnSource> ParseColumnSource(std::string_view text) {
  ColumnSource source;
  source.text = std::string(text);
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("source \"", Sv(text), "\": ", Sv(why),
                                                   " (expected payload[.path], attributes.NAME, "
                                                   "enrichment[.path], message_id, publish_time "
                                                   "or mqtt_topic)"));
  };
  if (text == "message_id") {
    source.kind = ColumnSource::Kind::kMessageId;
    return source;
  }
  if (text == "publish_time") {
    source.kind = ColumnSource::Kind::kPublishTime;
    return source;
  }
  if (text == "mqtt_topic") {
    source.kind = ColumnSource::Kind::kAttribute;
    source.attribute = "mqtt_topic";
    return source;
  }
  if (absl::StartsWith(Sv(text), "attributes.")) {
    source.kind = ColumnSource::Kind::kAttribute;
    source.attribute = std::string(text.substr(11));
    if (source.attribute.empty()) return bad("no attribute name");
    return source;
  }
  std::string_view rest;
  if (absl::StartsWith(Sv(text), "payload")) {
    source.kind = ColumnSource::Kind::kPayload;
    rest = text.substr(7);
  } else if (absl::StartsWith(Sv(text), "enrichment")) {
    source.kind = ColumnSource::Kind::kEnrichment;
    rest = text.substr(10);
  } else {
    return bad("unknown source");
  }
  // Steps: ".key" or "[index]".
  std::size_t p = 0;
  while (p < rest.size()) {
    if (rest[p] == '.') {
      std::size_t end = p + 1;
      while (end < rest.size() && rest[end] != '.' && rest[end] != '[') ++end;
      if (end == p + 1) return bad("empty key in path");
      source.path.push_back({.key = std::string(rest.substr(p + 1, end - p - 1))});
      p = end;
    } else if (rest[p] == '[') {
      const std::size_t close = rest.find(']', p);
      int index = 0;
      if (close == std::string_view::npos ||
          !absl::SimpleAtoi(Sv(rest.substr(p + 1, close - p - 1)), &index) || index < 0 ||
          rest.substr(p + 1, close - p - 1).find_first_not_of("0123456789") !=
              std::string_view::npos) {
        return bad("array index must be [N] with N >= 0");
      }
      source.path.push_back({.index = index});
      p = close + 1;
    } else {
      return bad("unknown source");
    }
  }
  return source;
}

absl::Status ConvertScalar(const Json& j, const FieldSchema& f, Cell& out) {
  out.kind = Cell::Kind::kScalar;
  switch (f.type) {
    case FieldType::kBool:
      if (j.is_boolean()) {
        out.i = j.get<bool>() ? 1 : 0;
      } else if (j.is_string() &&
                 (absl::EqualsIgnoreCase(j.get_ref<const std::string&>(), "true") ||
                  absl::EqualsIgnoreCase(j.get_ref<const std::string&>(), "false"))) {
        out.i = absl::EqualsIgnoreCase(j.get_ref<const std::string&>(), "true") ? 1 : 0;
      } else {
        return Wrong("a boolean", j);
      }
      return absl::OkStatus();
    case FieldType::kInt64:
      if (j.is_number_unsigned()) {
        if (j.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX)) {
          return Invalid(absl::StrCat("integer ", j.dump(), " out of range for INT64"));
        }
        out.i = static_cast<std::int64_t>(j.get<std::uint64_t>());
      } else if (j.is_number_integer()) {
        out.i = j.get<std::int64_t>();
      } else if (j.is_number_float()) {
        const double d = j.get<double>();
        if (!std::isfinite(d) || std::trunc(d) != d) {
          return Invalid(absl::StrCat("number ", j.dump(), " is not an integer"));
        }
        // 2^63 is the first double past INT64_MAX.
        if (d < -9223372036854775808.0 || d >= 9223372036854775808.0) {
          return Invalid(absl::StrCat("integer ", j.dump(), " out of range for INT64"));
        }
        out.i = static_cast<std::int64_t>(d);
      } else if (j.is_string()) {
        if (!absl::SimpleAtoi(j.get_ref<const std::string&>(), &out.i)) {
          return Invalid(
              absl::StrCat("\"", j.get_ref<const std::string&>(), "\" is not a 64-bit integer"));
        }
      } else {
        return Wrong("an integer", j);
      }
      return absl::OkStatus();
    case FieldType::kFloat64:
      if (j.is_number()) {
        out.d = j.get<double>();
      } else if (j.is_string()) {
        if (!absl::SimpleAtod(j.get_ref<const std::string&>(), &out.d)) {
          return Invalid(absl::StrCat("\"", j.get_ref<const std::string&>(), "\" is not a number"));
        }
      } else {
        return Wrong("a number", j);
      }
      return absl::OkStatus();
    case FieldType::kNumeric:
    case FieldType::kBigNumeric: {
      const bool big = f.type == FieldType::kBigNumeric;
      std::string text;
      if (j.is_number()) {
        text = j.dump();
      } else if (j.is_string()) {
        text = j.get<std::string>();
      } else {
        return Wrong("a number or a decimal string", j);
      }
      std::string why;
      if (!NormaliseDecimal(text, big ? 38 : 29, big ? 38 : 9, out.s, why)) {
        return Invalid(absl::StrCat(big ? "BIGNUMERIC " : "NUMERIC ", "\"", text, "\": ", why));
      }
      return absl::OkStatus();
    }
    case FieldType::kString:
      if (!j.is_string()) return Wrong("a string", j);
      out.s = j.get<std::string>();
      return absl::OkStatus();
    case FieldType::kBytes:
      if (!j.is_string()) return Wrong("base64 bytes", j);
      if (!absl::Base64Unescape(j.get_ref<const std::string&>(), &out.s) &&
          !absl::WebSafeBase64Unescape(j.get_ref<const std::string&>(), &out.s)) {
        return Invalid("not valid base64");
      }
      return absl::OkStatus();
    case FieldType::kTimestamp:
      return TimestampFromJson(j, out);
    case FieldType::kDate: {
      int y = 0, m = 0, d = 0;
      if (!j.is_string()) return Wrong("a date \"YYYY-MM-DD\"", j);
      const std::string& text = j.get_ref<const std::string&>();
      if (text.size() != 10 || !ParseDate(text, y, m, d)) {
        return Invalid(absl::StrCat("\"", text, "\" is not a date YYYY-MM-DD"));
      }
      out.i = DaysFromCivil(y, static_cast<unsigned>(m), static_cast<unsigned>(d));
      out.s = text;
      return absl::OkStatus();
    }
    case FieldType::kTime: {
      if (!j.is_string()) return Wrong("a time \"HH:MM:SS[.ffffff]\"", j);
      const std::string& text = j.get_ref<const std::string&>();
      if (!ParseTime(text)) {
        return Invalid(absl::StrCat("\"", text, "\" is not a time HH:MM:SS[.ffffff]"));
      }
      out.s = text;
      return absl::OkStatus();
    }
    case FieldType::kDateTime: {
      if (!j.is_string()) return Wrong("a datetime \"YYYY-MM-DD HH:MM:SS[.ffffff]\"", j);
      const std::string& text = j.get_ref<const std::string&>();
      int y = 0, m = 0, d = 0;
      if (!ParseDate(text, y, m, d) || text.size() < 11 || (text[10] != ' ' && text[10] != 'T') ||
          !ParseTime(std::string_view(text).substr(11))) {
        return Invalid(absl::StrCat("\"", text,
                                    "\" is not a datetime YYYY-MM-DD[ |T]HH:MM:SS[.ffffff] "
                                    "(no time zone)"));
      }
      out.s = text;
      out.s[10] = ' ';  // the canonical literal form
      return absl::OkStatus();
    }
    case FieldType::kJson:
      out.s = j.dump(-1, ' ', false, Json::error_handler_t::replace);
      return absl::OkStatus();
    case FieldType::kGeography:
      if (j.is_string()) {
        out.s = j.get<std::string>();  // WKT (or GeoJSON text)
      } else if (j.is_object()) {
        out.s = j.dump(-1, ' ', false, Json::error_handler_t::replace);  // GeoJSON
      } else {
        return Wrong("WKT text or a GeoJSON object", j);
      }
      return absl::OkStatus();
    case FieldType::kRecord:
      return Invalid("a RECORD is not a scalar");
  }
  return absl::InternalError("unreachable");
}

absl::StatusOr<std::vector<ColumnSpec>> ColumnsFromJson(const Json& columns) {
  if (!columns.is_array()) {
    return absl::InvalidArgumentError("schema: expected a list of columns");
  }
  std::vector<ColumnSpec> out;
  for (std::size_t k = 0; k < columns.size(); ++k) {
    const Json& c = columns[k];
    const std::string at = absl::StrCat("schema[", k, "]");
    if (!c.is_object()) return absl::InvalidArgumentError(at + ": expected a mapping");
    for (auto it = c.begin(); it != c.end(); ++it) {
      static const std::set<std::string> kKeys = {"name",   "type",    "mode",      "fields",
                                                  "source", "default", "on_invalid"};
      if (!kKeys.contains(it.key())) {
        return absl::InvalidArgumentError(absl::StrCat(at, ".", it.key(),
                                                       ": unknown key (expected one of: name, "
                                                       "type, mode, fields, source, default, "
                                                       "on_invalid)"));
      }
    }
    if (c.contains("type") && c["type"].is_string() &&
        (absl::EqualsIgnoreCase(c["type"].get<std::string>(), "RECORD") ||
         absl::EqualsIgnoreCase(c["type"].get<std::string>(), "STRUCT")) &&
        !(c.contains("fields") && c["fields"].is_array() && !c["fields"].empty())) {
      return absl::InvalidArgumentError(at + ": a RECORD needs a list of `fields`");
    }
    // The BigQuery part ({name, type, mode, fields}) reads like a REST schema field.
    Json field = c;
    field.erase("source");
    field.erase("default");
    field.erase("on_invalid");
    auto parsed = SchemaFromJson(Json{{"fields", Json::array({field})}});
    if (!parsed.ok())
      return absl::InvalidArgumentError(at + ": " + std::string(parsed.status().message()));
    ColumnSpec spec{.field = std::move(parsed->front())};
    if (auto it = c.find("source"); it != c.end() && !it->is_null()) {
      if (!it->is_string()) return absl::InvalidArgumentError(at + ".source: expected a string");
      auto source = ParseColumnSource(it->get<std::string>());
      if (!source.ok()) {
        return absl::InvalidArgumentError(at +
                                          ".source: " + std::string(source.status().message()));
      }
      spec.source = *std::move(source);
    }
    if (auto it = c.find("default"); it != c.end()) spec.default_value = *it;
    if (auto it = c.find("on_invalid"); it != c.end()) {
      if (*it == "null") {
        spec.invalid_as_null = true;
      } else if (*it != "error") {
        return absl::InvalidArgumentError(at + ".on_invalid: expected \"error\" or \"null\"");
      }
      if (spec.invalid_as_null && spec.field.mode != FieldMode::kNullable) {
        return absl::InvalidArgumentError(at + ".on_invalid: null needs a NULLABLE column");
      }
    }
    out.push_back(std::move(spec));
  }
  // Nested checks, duplicates and names: by the schema's own validation.
  TableSchema schema;
  for (const ColumnSpec& c : out) schema.push_back(c.field);
  if (auto d = RowDescriptorProto(schema, "Row"); !d.ok()) {
    return absl::InvalidArgumentError("schema: " + std::string(d.status().message()));
  }
  // A default must itself convert (else every row missing the value would fail later).
  for (std::size_t k = 0; k < out.size(); ++k) {
    if (out[k].default_value.is_null()) continue;
    Cell cell;
    if (auto s = ConvertField(&out[k].default_value, out[k].field, out[k].field.name, cell);
        !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("schema[", k, "].default: ", s.message()));
    }
  }
  return out;
}

absl::StatusOr<std::vector<ColumnSpec>> ColumnsForTable(
    const TableSchema& schema, const std::map<std::string, std::string>& sources) {
  std::vector<ColumnSpec> out;
  std::set<std::string> used;
  for (const FieldSchema& f : schema) {
    ColumnSpec spec{.field = f};
    if (auto it = sources.find(f.name); it != sources.end()) {
      auto source = ParseColumnSource(it->second);
      if (!source.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("sources.", f.name, ": ", source.status().message()));
      }
      spec.source = *std::move(source);
      used.insert(f.name);
    }
    out.push_back(std::move(spec));
  }
  for (const auto& [name, text] : sources) {
    if (!used.contains(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("sources.", name, ": the table has no column ", name));
    }
  }
  return out;
}

absl::StatusOr<std::shared_ptr<const RowConverter>> RowConverter::Create(
    std::vector<ColumnSpec> columns) {
  std::shared_ptr<RowConverter> converter(new RowConverter());
  for (const ColumnSpec& c : columns) {
    converter->schema_.push_back(c.field);
    if (!c.source.has_value() || c.source->kind == ColumnSource::Kind::kPayload) {
      converter->needs_payload_ = true;
    }
    if (c.invalid_as_null && c.field.mode != FieldMode::kNullable) {
      return absl::InvalidArgumentError(
          absl::StrCat("column ", c.field.name, ": on_invalid null needs a NULLABLE column"));
    }
  }
  if (auto d = RowDescriptorProto(converter->schema_, "Row"); !d.ok()) return d.status();
  converter->columns_ = std::move(columns);
  return std::shared_ptr<const RowConverter>(std::move(converter));
}

absl::Status RowConverter::Convert(const RowInput& input, ConvertedRow& out) const {
  out.resize(columns_.size());
  for (std::size_t k = 0; k < columns_.size(); ++k) {
    const ColumnSpec& c = columns_[k];
    Cell& cell = out[k];
    Json scratch;  // for sources that are not JSON already
    const Json* value = nullptr;
    if (!c.source.has_value()) {
      if (input.payload.is_object()) {
        auto it = input.payload.find(c.field.name);
        if (it != input.payload.end()) value = &*it;
      }
    } else {
      const ColumnSource& s = *c.source;
      switch (s.kind) {
        case ColumnSource::Kind::kPayload:
          value = Walk(&input.payload, s.path);
          break;
        case ColumnSource::Kind::kEnrichment:
          value = Walk(&input.enrichment, s.path);
          break;
        case ColumnSource::Kind::kAttribute:
          if (auto it = input.attributes.find(s.attribute); it != input.attributes.end()) {
            scratch = it->second;
            value = &scratch;
          }
          break;
        case ColumnSource::Kind::kMessageId:
          if (!input.id.empty()) {
            scratch = input.id;
            value = &scratch;
          }
          break;
        case ColumnSource::Kind::kPublishTime:
          if (input.publish_time != messagepipeline::Clock::time_point{}) {
            if (c.field.type == FieldType::kTimestamp && c.field.mode != FieldMode::kRepeated) {
              // The common case without a text round trip.
              cell.kind = Cell::Kind::kScalar;
              cell.i = std::chrono::duration_cast<std::chrono::microseconds>(
                           input.publish_time.time_since_epoch())
                           .count();
              continue;
            }
            scratch = messagepipeline::FormatTimestamp(input.publish_time);
            value = &scratch;
          }
          break;
      }
    }
    if ((value == nullptr || value->is_null()) && !c.default_value.is_null()) {
      value = &c.default_value;
    }
    absl::Status s = ConvertField(value, c.field, c.field.name, cell);
    if (!s.ok()) {
      if (!c.invalid_as_null) {
        if (c.source.has_value() && (value == nullptr || value->is_null())) {
          return absl::InvalidArgumentError(
              absl::StrCat(s.message(), " (source ", c.source->text, ")"));
        }
        return s;
      }
      cell = Cell();
    }
  }
  return absl::OkStatus();
}

void RowConverter::EncodeProto(const ConvertedRow& row, std::string& out) const {
  EncodeFields(row, schema_, out);
}

absl::Status RowConverter::ToProto(const RowInput& input, std::string& out) const {
  ConvertedRow row;
  if (auto s = Convert(input, row); !s.ok()) return s;
  EncodeProto(row, out);
  return absl::OkStatus();
}

std::vector<SqlValue> RowConverter::ToSql(const ConvertedRow& row) const {
  std::vector<SqlValue> values(schema_.size());
  for (std::size_t k = 0; k < schema_.size(); ++k) {
    const FieldSchema& f = schema_[k];
    const Cell& c = row[k];
    SqlValue& v = values[k];
    if (f.mode == FieldMode::kRepeated || f.type == FieldType::kRecord) {
      // REPEATED and RECORD as JSON text, as SQLiteInserter stores them; an absent array is [].
      if (c.kind != Cell::Kind::kNull || f.mode == FieldMode::kRepeated) {
        v = CellToJson(c, f, false).dump(-1, ' ', false, Json::error_handler_t::replace);
      }
      continue;
    }
    if (c.kind == Cell::Kind::kNull) continue;
    switch (f.type) {
      case FieldType::kBool:
      case FieldType::kInt64:
        v = c.i;
        break;
      case FieldType::kFloat64:
        v = c.d;
        break;
      case FieldType::kTimestamp:
        v = FormatMicros(c.i);
        break;
      case FieldType::kBytes:
        v = Bytes{c.s};
        break;
      default:  // text, JSON text
        v = c.s;
        break;
    }
  }
  return values;
}

bool RowConverter::HasUnmappedPayloadField(const RowInput& input) const {
  if (!input.payload.is_object()) return false;
  for (auto it = input.payload.begin(); it != input.payload.end(); ++it) {
    bool mapped = false;
    for (const ColumnSpec& c : columns_) {
      // Read by name, or the first step of a payload path (`payload.dev.id` reads "dev").
      const bool reads = !c.source.has_value()
                             ? c.field.name == it.key()
                             : c.source->kind == ColumnSource::Kind::kPayload &&
                                   !c.source->path.empty() && c.source->path[0].key == it.key();
      if (reads) {
        mapped = true;
        break;
      }
    }
    if (!mapped) return true;
  }
  return false;
}

mp::MessageTransformer<RowInput> RowInputTransformer(RowInputOptions options) {
  return [options](const mp::Message& m) -> mp::TransformResult<RowInput> {
    RowInput input;
    input.attributes = m.attributes;
    auto decoded = mp::DecodeInput(m.data.payload, options.input_format);
    if (!decoded.ok()) return decoded.status();  // permanent
    const std::string* payload = &m.data.payload;
    if (decoded->has_value()) {
      mp::MessageData& envelope = **decoded;
      input.id = envelope.id.empty() ? m.data.id : std::move(envelope.id);
      input.publish_time = envelope.publish_time == mp::Clock::time_point{} ? m.data.publish_time
                                                                            : envelope.publish_time;
      input.enrichment = std::move(envelope.enrichment_data);
      payload = &envelope.payload;
    } else {
      input.id = m.data.id;
      input.publish_time = m.data.publish_time;
      input.enrichment = m.data.enrichment_data;
    }
    if (options.parse_payload) {
      // Device data: within the JSON limits (depth, size), or a permanent error.
      absl::StatusOr<Json> parsed = mp::ParseJsonBounded(*payload);
      if (!parsed.ok()) {
        return mp::PermanentError(absl::StrCat("payload: ", parsed.status().message()));
      }
      input.payload = *std::move(parsed);
    }
    return std::optional<RowInput>(std::move(input));
  };
}

}  // namespace dataflow::bqstore

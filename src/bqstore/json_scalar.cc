// JSON → one scalar cell of a schema-driven row (json_schema_rows.h): the text forms
// BigQuery accepts for each column type (RFC 3339 or epoch timestamps, dates, times,
// NUMERIC/BIGNUMERIC decimals, base64 bytes), checked against BigQuery's ranges.
#include <absl/strings/ascii.h>
#include <absl/strings/escaping.h>
#include <absl/strings/match.h>
#include <absl/strings/numbers.h>
#include <absl/strings/str_cat.h>
#include <absl/time/time.h>

#include <cmath>

#include "dataflow/bqstore/json_schema_rows.h"

namespace dataflow::bqstore {
namespace {

using Json = nlohmann::json;

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

}  // namespace

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

}  // namespace dataflow::bqstore

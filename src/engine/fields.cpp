#include "engine/fields.h"

#include <charconv>
#include <cmath>
#include <limits>

namespace velostream::engine {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) s.remove_suffix(1);
  return s;
}

bool ieq(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (x != b[i]) return false;
  }
  return true;
}

bool fail(std::string* error, const char* what, std::string_view text) {
  *error = std::string(what) + ": \"" + std::string(text.substr(0, 64)) + "\"";
  return false;
}

// Reads exactly n digits at p; advances p.
bool digits(std::string_view s, size_t* p, int n, int* out) {
  int v = 0;
  for (int i = 0; i < n; ++i) {
    if (*p >= s.size() || s[*p] < '0' || s[*p] > '9') return false;
    v = v * 10 + (s[(*p)++] - '0');
  }
  *out = v;
  return true;
}

// Reads a valid proleptic Gregorian date "YYYY-MM-DD" at p; advances p.
bool civil_date(std::string_view s, size_t* p, int* y, int* mo, int* d) {
  if (!digits(s, p, 4, y) || *p >= s.size() || s[(*p)++] != '-' || !digits(s, p, 2, mo) || *p >= s.size() ||
      s[(*p)++] != '-' || !digits(s, p, 2, d))
    return false;
  // Year 0000 does not exist in PostgreSQL's calendar (1 BC precedes 1 AD):
  // its input refuses it ("date/time field value out of range").
  if (*y < 1 || *mo < 1 || *mo > 12 || *d < 1) return false;
  static const int kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (*y % 4 == 0 && *y % 100 != 0) || *y % 400 == 0;
  return *d <= kDays[*mo - 1] && !(*mo == 2 && *d == 29 && !leap);
}

// Reads a zone at p: "Z", or ±HH[[:]MM] with HH <= max_hours; advances p.
bool zone_offset(std::string_view s, size_t* p, int max_hours, int64_t* offset_sec) {
  if (*p >= s.size()) return false;
  if (s[*p] == 'Z' || s[*p] == 'z') {
    ++*p;
    *offset_sec = 0;
    return true;
  }
  if (s[*p] != '+' && s[*p] != '-') return false;
  int sign = s[(*p)++] == '-' ? -1 : 1, oh, om = 0;
  if (!digits(s, p, 2, &oh)) return false;
  if (*p < s.size() && s[*p] == ':') {
    ++*p;
    if (!digits(s, p, 2, &om)) return false;
  } else if (*p < s.size() && !digits(s, p, 2, &om)) {
    return false;
  }
  if (oh > max_hours || om > 59) return false;
  *offset_sec = sign * (oh * 3600 + om * 60);
  return true;
}

// Microseconds since 2000-01-01 00:00 UTC of a civil date and time at a UTC offset.
int64_t pg_usec(int y, int mo, int d, int h, int mi, int sec, int64_t frac_usec, int64_t offset_sec) {
  int64_t days = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) - kPgEpochDays;
  return days * kUsecPerDay + (h * 3600LL + mi * 60 + sec - offset_sec) * 1000000 + frac_usec;
}

// ISO 8601 date [+ time [+ offset]] -> microseconds since 2000-01-01 UTC.
// `apply_zone`: a zone offset in the text shifts the value (timestamptz);
// otherwise it is checked and ignored, as PostgreSQL's timestamp input does.
bool parse_timestamp(std::string_view s, bool date_only, bool apply_zone, int64_t* out) {
  size_t p = 0;
  int y, mo, d, h = 0, mi = 0, sec = 0;
  if (!civil_date(s, &p, &y, &mo, &d)) return false;
  int64_t usec = 0;
  int64_t offset_sec = 0;
  if (p < s.size()) {
    if (date_only) return false;
    if (s[p] != 'T' && s[p] != 't' && s[p] != ' ') return false;
    ++p;
    if (!digits(s, &p, 2, &h) || p >= s.size() || s[p++] != ':' || !digits(s, &p, 2, &mi)) return false;
    if (p < s.size() && s[p] == ':') {
      ++p;
      if (!digits(s, &p, 2, &sec)) return false;
      if (p < s.size() && (s[p] == '.' || s[p] == ',')) {
        ++p;
        int64_t frac = 0, scale = 100000;
        size_t start = p;
        while (p < s.size() && s[p] >= '0' && s[p] <= '9') {
          if (scale > 0) frac += (s[p] - '0') * scale;
          scale /= 10;
          ++p;
        }
        if (p == start) return false;
        usec = frac;
      }
    }
    if (h > 24 || mi > 59 || sec > 60 || (h == 24 && (mi || sec || usec))) return false;
    if (p < s.size() && !zone_offset(s, &p, 23, &offset_sec)) return false;
    if (p != s.size()) return false;
    if (!apply_zone) offset_sec = 0;
  }
  *out = pg_usec(y, mo, d, h, mi, sec, usec, offset_sec);
  return true;
}

}  // namespace

bool parse_pg_integer(std::string_view s, int64_t min, int64_t max, int64_t* out) {
  size_t p = 0;
  bool neg = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) neg = s[p++] == '-';
  if (p == s.size() || s.size() - p > 18) return false;  // 18 digits cannot overflow int64
  int64_t v = 0;
  for (; p < s.size(); ++p) {
    if (s[p] < '0' || s[p] > '9') return false;
    v = v * 10 + (s[p] - '0');
  }
  if (neg) v = -v;
  if (v < min || v > max) return false;
  *out = v;
  return true;
}

bool parse_pg_timestamp(std::string_view s, bool with_zone, int64_t* usec) {
  size_t p = 0;
  int y, mo, d, h, mi, sec = 0;
  if (!civil_date(s, &p, &y, &mo, &d) || y < 1000 || p >= s.size() || (s[p] != 'T' && s[p] != ' ')) return false;
  ++p;
  if (!digits(s, &p, 2, &h) || p >= s.size() || s[p++] != ':' || !digits(s, &p, 2, &mi)) return false;
  int64_t frac = 0;
  if (p < s.size() && s[p] == ':') {
    ++p;
    if (!digits(s, &p, 2, &sec)) return false;
    if (p < s.size() && s[p] == '.') {
      ++p;
      int n = 0;
      for (; p < s.size() && s[p] >= '0' && s[p] <= '9'; ++n, ++p)
        if (n < 6) frac = frac * 10 + (s[p] - '0');  // more would be refused (and could overflow)
      if (n == 0 || n > 6) return false;  // PostgreSQL rounds beyond microseconds
      for (; n < 6; ++n) frac *= 10;
    }
  }
  if (h > 23 || mi > 59 || sec > 59) return false;
  int64_t offset_sec = 0;
  if (with_zone && !zone_offset(s, &p, 15, &offset_sec)) return false;
  if (p != s.size()) return false;
  *usec = pg_usec(y, mo, d, h, mi, sec, frac, offset_sec);
  return true;
}

namespace {

template <typename T>
bool parse_int(std::string_view s, int64_t* out) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  T v;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size() || s.empty()) return false;
  *out = v;
  return true;
}

bool parse_double(std::string_view s, double* out) {
  if (ieq(s, "nan")) { *out = std::numeric_limits<double>::quiet_NaN(); return true; }
  if (ieq(s, "infinity") || ieq(s, "+infinity") || ieq(s, "inf")) { *out = HUGE_VAL; return true; }
  if (ieq(s, "-infinity") || ieq(s, "-inf")) { *out = -HUGE_VAL; return true; }
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size() && !s.empty() && std::isfinite(*out);
}

// Well-formed UTF-8 without NUL (RFC 3629: no overlongs, surrogates or
// code points above U+10FFFF), as PostgreSQL requires of text.
bool valid_utf8(std::string_view s) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(s.data());
  const unsigned char* end = p + s.size();
  while (p < end) {
    unsigned char c = *p;
    if (c == 0) return false;
    if (c < 0x80) { ++p; continue; }
    int n;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) { n = 1; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { n = 2; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { n = 3; cp = c & 0x07; }
    else return false;
    if (end - p <= n) return false;
    for (int i = 1; i <= n; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    p += n + 1;
  }
  return true;
}

}  // namespace

int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

void civil_from_days(int64_t z, int64_t* y, unsigned* m, unsigned* d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = static_cast<int64_t>(yoe) + era * 400 + (*m <= 2);
}

Type storage_type(FieldKind kind) {
  switch (kind) {
    case FieldKind::kFloat32: case FieldKind::kFloat64: return Type::kFloat64;
    case FieldKind::kNumeric: return Type::kNumeric;
    case FieldKind::kText: return Type::kText;
    case FieldKind::kInterval: return Type::kInterval;
    default: return Type::kInt64;
  }
}

namespace {
IntervalParser interval_parser = nullptr;
}  // namespace

void set_interval_parser(IntervalParser parser) { interval_parser = parser; }

bool parse_field(FieldKind kind, std::string_view raw, Column* col, size_t row, Arena* arena, std::string* error) {
  col->null[row] = 0;
  if (kind == FieldKind::kText) {
    if (!valid_utf8(raw)) return fail(error, "text is not valid UTF-8 (or contains NUL)", "");
    col->str[row] = arena->copy(raw.data(), raw.size());
    return true;
  }
  std::string_view s = trim(raw);
  switch (kind) {
    case FieldKind::kInt16:
    case FieldKind::kInt32:
    case FieldKind::kInt64: {
      int64_t v;
      bool ok = kind == FieldKind::kInt16 ? parse_int<int16_t>(s, &v)
              : kind == FieldKind::kInt32 ? parse_int<int32_t>(s, &v) : parse_int<int64_t>(s, &v);
      if (!ok) return fail(error, kind == FieldKind::kInt16 ? "invalid or out-of-range smallint"
                                  : kind == FieldKind::kInt32 ? "invalid or out-of-range integer"
                                                              : "invalid or out-of-range bigint", raw);
      col->i64[row] = v;
      return true;
    }
    case FieldKind::kFloat32:
    case FieldKind::kFloat64: {
      double v;
      if (!parse_double(s, &v)) return fail(error, "invalid double precision", raw);
      if (kind == FieldKind::kFloat32) {
        float f = static_cast<float>(v);
        if (std::isinf(f) && !std::isinf(v)) return fail(error, "real out of range", raw);
        v = f;
      }
      col->f64[row] = v;
      return true;
    }
    case FieldKind::kNumeric:
      if (!Decimal::parse(s, &col->dec[row])) return fail(error, "invalid numeric (or over 38 digits)", raw);
      return true;
    case FieldKind::kBool:
      if (ieq(s, "t") || ieq(s, "true") || ieq(s, "yes") || ieq(s, "on") || s == "1") col->i64[row] = 1;
      else if (ieq(s, "f") || ieq(s, "false") || ieq(s, "no") || ieq(s, "off") || s == "0") col->i64[row] = 0;
      else return fail(error, "invalid boolean", raw);
      return true;
    case FieldKind::kDate: {
      int64_t usec;
      if (!parse_timestamp(s, true, false, &usec)) return fail(error, "invalid date (expected YYYY-MM-DD)", raw);
      col->i64[row] = usec / kUsecPerDay;
      return true;
    }
    case FieldKind::kTimestamp:
    case FieldKind::kTimestampTz: {
      int64_t usec;
      if (!parse_timestamp(s, false, kind == FieldKind::kTimestampTz, &usec))
        return fail(error, "invalid timestamp (expected ISO 8601)", raw);
      col->i64[row] = usec;
      return true;
    }
    case FieldKind::kInterval:
      if (interval_parser == nullptr) return fail(error, "interval fields are not parsed in this process", raw);
      if (!valid_utf8(raw)) return fail(error, "interval is not valid UTF-8 (or contains NUL)", "");
      if (!interval_parser(raw, &col->iv[row], error)) {
        col->null[row] = 1;
        return false;
      }
      return true;
    case FieldKind::kText:
      break;
  }
  return true;
}

}  // namespace velostream::engine

#include "engine/decimal.h"

#include <cmath>
#include <cstdlib>

namespace velostream::engine {
namespace {

constexpr int kMaxDigits = 38;

int digit_count(__int128 v) {
  // Negated as unsigned: -v overflows for the most negative value.
  unsigned __int128 u = v < 0 ? -static_cast<unsigned __int128>(v) : static_cast<unsigned __int128>(v);
  int n = 0;
  while (u != 0) { u /= 10; ++n; }
  return n;
}

// Multiplies by 10^n; false on overflow.
bool rescale_up(__int128 v, int n, __int128* out) {
  __int128 r = v;
  for (int i = 0; i < n; ++i) {
    if (__builtin_mul_overflow(r, static_cast<__int128>(10), &r)) return false;
  }
  *out = r;
  return true;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

}  // namespace

bool Decimal::parse(std::string_view s, Decimal* out) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\n')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n')) s.remove_suffix(1);
  Decimal d;
  if (iequals(s, "nan")) { d.kind = kNaN; *out = d; return true; }
  bool neg = false;
  std::string_view body = s;
  if (!body.empty() && (body.front() == '+' || body.front() == '-')) {
    neg = body.front() == '-';
    body.remove_prefix(1);
  }
  if (iequals(body, "infinity") || iequals(body, "inf")) {
    d.kind = neg ? kNegInf : kPosInf;
    *out = d;
    return true;
  }
  __int128 coef = 0;
  int digits = 0, scale = 0;
  bool seen_digit = false, seen_point = false;
  size_t i = 0;
  for (; i < body.size(); ++i) {
    char c = body[i];
    if (c >= '0' && c <= '9') {
      seen_digit = true;
      if (coef != 0 || c != '0') ++digits;
      if (digits > kMaxDigits) return false;
      coef = coef * 10 + (c - '0');
      if (seen_point) ++scale;
    } else if (c == '.' && !seen_point) {
      seen_point = true;
    } else {
      break;
    }
  }
  if (!seen_digit) return false;
  if (i < body.size()) {
    if (body[i] != 'e' && body[i] != 'E') return false;
    char* end = nullptr;
    std::string exp_text(body.substr(i + 1));
    long exp = std::strtol(exp_text.c_str(), &end, 10);
    if (exp_text.empty() || *end != '\0' || exp > 1000 || exp < -1000) return false;
    long new_scale = scale - exp;
    if (new_scale < 0) {
      if (!rescale_up(coef, static_cast<int>(-new_scale), &coef)) return false;
      new_scale = 0;
    }
    if (new_scale > kMaxDigits) return false;
    scale = static_cast<int>(new_scale);
  }
  if (digit_count(coef) > kMaxDigits || scale > kMaxScale) return false;
  d.coef = neg ? -coef : coef;
  d.scale = static_cast<int16_t>(scale);
  *out = d;
  return true;
}

bool Decimal::valid() const {
  switch (kind) {
    case kNaN:
    case kPosInf:
    case kNegInf:
      return true;
    case kFinite:
      break;
    default:
      return false;
  }
  static constexpr __int128 kLimit = [] {
    __int128 v = 1;
    for (int i = 0; i < kMaxDigits; ++i) v *= 10;
    return v;
  }();
  return scale >= 0 && scale <= kMaxScale && coef > -kLimit && coef < kLimit;
}

std::string Decimal::to_string() const {
  switch (kind) {
    case kNaN: return "NaN";
    case kPosInf: return "Infinity";
    case kNegInf: return "-Infinity";
    case kFinite: break;
  }
  __int128 v = coef;
  bool neg = v < 0;
  if (neg) v = -v;
  std::string digits;
  do {
    digits.insert(digits.begin(), static_cast<char>('0' + static_cast<int>(v % 10)));
    v /= 10;
  } while (v != 0);
  if (scale > 0) {
    if (static_cast<int>(digits.size()) <= scale) digits.insert(0, scale - digits.size() + 1, '0');
    digits.insert(digits.size() - scale, 1, '.');
  }
  return neg ? "-" + digits : digits;
}

double Decimal::to_double() const {
  switch (kind) {
    case kNaN: return std::nan("");
    case kPosInf: return HUGE_VAL;
    case kNegInf: return -HUGE_VAL;
    case kFinite: break;
  }
  // numeric -> float8 in PostgreSQL goes through the text form and strtod.
  return std::strtod(to_string().c_str(), nullptr);
}

Decimal Decimal::normalized() const {
  Decimal d = *this;
  if (d.kind != kFinite) { d.coef = 0; d.scale = 0; return d; }
  while (d.scale > 0 && d.coef % 10 == 0) { d.coef /= 10; --d.scale; }
  return d;
}

bool decimal_add(const Decimal& a, const Decimal& b, Decimal* out) {
  Decimal r;
  if (a.kind != Decimal::kFinite || b.kind != Decimal::kFinite) {
    if (a.kind == Decimal::kNaN || b.kind == Decimal::kNaN) r.kind = Decimal::kNaN;
    else if (a.kind == Decimal::kFinite) r.kind = b.kind;
    else if (b.kind == Decimal::kFinite || a.kind == b.kind) r.kind = a.kind;
    else r.kind = Decimal::kNaN;  // +Inf + -Inf
    *out = r;
    return true;
  }
  __int128 x = a.coef, y = b.coef;
  int scale = a.scale > b.scale ? a.scale : b.scale;
  if (!rescale_up(x, scale - a.scale, &x) || !rescale_up(y, scale - b.scale, &y)) return false;
  if (__builtin_add_overflow(x, y, &r.coef)) return false;
  if (digit_count(r.coef) > kMaxDigits) return false;
  r.scale = static_cast<int16_t>(scale);
  *out = r;
  return true;
}

__int128 drop_digits(__int128 coef, int digits) {
  if (digits <= 0) return coef;
  if (digits > kMaxDigits) return 0;  // |coef| < 2^127 < 10^39 / 2
  __int128 p = 1;
  for (int i = 0; i < digits; ++i) p *= 10;
  __int128 q = coef / p, rem = coef % p;
  if (rem < 0) rem = -rem;
  if (rem >= p - rem) q += coef < 0 ? -1 : 1;
  return q;
}

bool decimal_mul(const Decimal& a, const Decimal& b, Decimal* out) {
  Decimal r;
  if (a.kind != Decimal::kFinite || b.kind != Decimal::kFinite) {
    auto sign = [](const Decimal& d) {
      return d.kind == Decimal::kPosInf ? 1 : d.kind == Decimal::kNegInf ? -1 : (d.coef > 0) - (d.coef < 0);
    };
    int s = sign(a) * sign(b);
    r.kind = (a.kind == Decimal::kNaN || b.kind == Decimal::kNaN || s == 0) ? Decimal::kNaN
             : s > 0 ? Decimal::kPosInf : Decimal::kNegInf;
    *out = r;
    return true;
  }
  if (__builtin_mul_overflow(a.coef, b.coef, &r.coef)) return false;
  int scale = a.scale + b.scale;
  if (scale > Decimal::kMaxScale) {  // numeric_mul rounds to NUMERIC_DSCALE_MAX digits (round_var)
    r.coef = drop_digits(r.coef, scale - Decimal::kMaxScale);
    scale = Decimal::kMaxScale;
  }
  r.scale = static_cast<int16_t>(scale);
  if (!r.valid()) return false;
  *out = r;
  return true;
}

Decimal decimal_neg(const Decimal& a) {
  Decimal r = a;
  if (a.kind == Decimal::kPosInf) r.kind = Decimal::kNegInf;
  else if (a.kind == Decimal::kNegInf) r.kind = Decimal::kPosInf;
  else r.coef = -a.coef;
  return r;
}

int decimal_cmp(const Decimal& a, const Decimal& b) {
  auto rank = [](const Decimal& d) {
    switch (d.kind) {
      case Decimal::kNegInf: return 0;
      case Decimal::kFinite: return 1;
      case Decimal::kPosInf: return 2;
      case Decimal::kNaN: return 3;
    }
    return 1;
  };
  int ra = rank(a), rb = rank(b);
  if (ra != rb || ra != 1) return ra < rb ? -1 : (ra > rb ? 1 : 0);
  // Finite: by sign, then by the position of the leading digit, then by
  // the digits aligned on the larger scale (exact: with equal leading
  // positions the one with the smaller scale has as many fewer digits, so
  // aligning cannot overflow).
  const int sa = (a.coef > 0) - (a.coef < 0), sb = (b.coef > 0) - (b.coef < 0);
  if (sa != sb) return sa < sb ? -1 : 1;
  if (sa == 0) return 0;
  const int ea = digit_count(a.coef) - a.scale, eb = digit_count(b.coef) - b.scale;
  if (ea != eb) return (ea < eb ? -1 : 1) * sa;
  __int128 x = a.coef, y = b.coef;
  for (int i = a.scale; i < b.scale; ++i) x *= 10;
  for (int i = b.scale; i < a.scale; ++i) y *= 10;
  return x < y ? -1 : (x > y ? 1 : 0);
}

}  // namespace velostream::engine

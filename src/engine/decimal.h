// Exact decimal numbers for the engine's numeric columns.
//
// PostgreSQL's numeric is arbitrary precision; the engine keeps a 128-bit
// coefficient and a decimal scale, which holds 38 significant digits. That is
// exact for every value a stream is realistically fed, and a value that does
// not fit is rejected when it is decoded (never silently rounded).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace velostream::engine {

/// A decimal number: coef * 10^-scale, or one of NaN / +Infinity / -Infinity,
/// with PostgreSQL's ordering (NaN sorts above +Infinity; both above every
/// finite value).
struct Decimal {
  enum Kind : uint8_t { kFinite = 0, kNaN = 1, kPosInf = 2, kNegInf = 3 };
  __int128 coef = 0;
  int16_t scale = 0;  ///< digits after the decimal point (PostgreSQL's dscale)
  Kind kind = kFinite;

  /// Parses PostgreSQL's numeric text form ("-12.340", "NaN", "Infinity",
  /// "-Infinity", "1.5e3"). Returns false if the text is malformed, needs
  /// more than 38 significant digits or a scale above kMaxScale.
  static bool parse(std::string_view text, Decimal* out);
  static Decimal from_int(int64_t v) { Decimal d; d.coef = v; return d; }

  /// The largest scale: PostgreSQL's (NUMERIC_DSCALE_MAX); its numeric_in
  /// refuses larger ones ("value overflows numeric format").
  static constexpr int kMaxScale = 16383;
  /// True for what parse and decimal_add produce: a known kind and, if
  /// finite, at most 38 significant digits and a scale in [0, kMaxScale].
  /// Checks numbers read back from stored bytes.
  bool valid() const;

  /// Text in numeric_in's input syntax, keeping the scale ("1.50").
  std::string to_string() const;
  /// Nearest double, as PostgreSQL's numeric -> float8 cast gives.
  double to_double() const;
  /// The same value with trailing fractional zeros removed (1.50 -> 1.5), so
  /// that values PostgreSQL calls equal have one representation.
  Decimal normalized() const;
};

/// a + b with PostgreSQL's special-value rules (Inf + -Inf = NaN, NaN wins).
/// The result scale is max(a.scale, b.scale), as numeric_add gives. Returns
/// false on 128-bit overflow (out is then unspecified).
bool decimal_add(const Decimal& a, const Decimal& b, Decimal* out);

/// a * b with numeric_mul's special values (NaN wins; Inf * 0 = NaN) and
/// scale a.scale + b.scale, exact; beyond kMaxScale rounded to it as
/// numeric_mul does. Returns false if the product needs more than 38 digits.
bool decimal_mul(const Decimal& a, const Decimal& b, Decimal* out);

/// -a (infinities swap, NaN stays).
Decimal decimal_neg(const Decimal& a);

/// coef / 10^digits (digits >= 0) rounded half away from zero, as numeric's
/// round_var drops digits; 0 beyond 38 digits.
__int128 drop_digits(__int128 coef, int digits);

/// Three-way comparison in PostgreSQL's numeric order: -1, 0 or 1.
int decimal_cmp(const Decimal& a, const Decimal& b);

}  // namespace velostream::engine

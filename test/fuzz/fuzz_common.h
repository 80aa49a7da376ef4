// What the fuzz targets (and make_seeds, which writes their binary seeds)
// share: the streams and views they run, and checks that end the run with a
// crash libFuzzer reports when an engine contract is broken.
#pragma once

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "engine/batch.h"
#include "engine/decoder.h"
#include "engine/fields.h"
#include "engine/view_aggregator.h"

namespace velostream::fuzz {

namespace eng = velostream::engine;

/// Stops the run with a report: libFuzzer saves the input as a crash.
[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "fuzz check failed: %s\n", what);
  std::abort();
}

/// Checks `cond`; fails the run with `what` when it does not hold.
inline void check(bool cond, const char* what) {
  if (!cond) fail(what);
}

/// A stream with one column of every FieldKind, named after it (the JSON keys
/// are these names; a CSV message has these fields in this order).
inline std::vector<eng::FieldSpec> all_kinds_fields() {
  using K = eng::FieldKind;
  return {{"i16", K::kInt16, 0},  {"i32", K::kInt32, 1},   {"i64", K::kInt64, 2}, {"f32", K::kFloat32, 3},
          {"f64", K::kFloat64, 4}, {"num", K::kNumeric, 5}, {"txt", K::kText, 6},  {"bool", K::kBool, 7},
          {"date", K::kDate, 8},   {"ts", K::kTimestamp, 9}, {"tstz", K::kTimestampTz, 10}};
}

/// Gives `batch` one used column per field, of the field's storage type, sized
/// for `rows` rows.
inline void prepare_batch(eng::RecordBatch* batch, const std::vector<eng::FieldSpec>& fields, size_t rows) {
  batch->columns.clear();
  batch->columns.resize(fields.size());
  for (const eng::FieldSpec& f : fields) {
    batch->columns[f.column].type = eng::storage_type(f.kind);
    batch->columns[f.column].used = true;
  }
  batch->reset(rows);
}

/// Checks what a successful decode promises about row `row`: NULL flags are
/// 0 or 1, integers are within their SQL type's range, a real fits a float,
/// a numeric has at most 38 digits and reads back from its own text, a bool
/// is 0 or 1, text has no NUL, dates and timestamps have four-digit years.
inline void check_decoded_row(const eng::RecordBatch& b, const std::vector<eng::FieldSpec>& fields, size_t row) {
  // 0000-01-01 and 9999-12-31 in days since 2000-01-01; a timestamp may be
  // a day outside them (24:00, zone offsets up to 23:59).
  const int64_t min_day = eng::days_from_civil(0, 1, 1) - 10957;
  const int64_t max_day = eng::days_from_civil(9999, 12, 31) - 10957;
  const int64_t usec_per_day = 86400LL * 1000000;
  for (const eng::FieldSpec& f : fields) {
    const eng::Column& c = b.columns[f.column];
    check(c.null[row] <= 1, "NULL flag is 0 or 1");
    if (c.null[row]) continue;
    switch (f.kind) {
      case eng::FieldKind::kInt16:
        check(c.i64[row] >= INT16_MIN && c.i64[row] <= INT16_MAX, "smallint in range");
        break;
      case eng::FieldKind::kInt32:
        check(c.i64[row] >= INT32_MIN && c.i64[row] <= INT32_MAX, "integer in range");
        break;
      case eng::FieldKind::kInt64:
        break;
      case eng::FieldKind::kFloat32: {
        double v = c.f64[row];
        check(v != v || static_cast<double>(static_cast<float>(v)) == v, "real is a float");
        break;
      }
      case eng::FieldKind::kFloat64:
        break;
      case eng::FieldKind::kNumeric: {
        const eng::Decimal& d = c.dec[row];
        check(d.kind <= eng::Decimal::kNegInf, "numeric kind");
        if (d.kind != eng::Decimal::kFinite) break;
        check(d.scale >= 0, "numeric scale is not negative");
        eng::Decimal back;
        check(eng::Decimal::parse(d.to_string(), &back), "numeric text reads back");
        check(back.coef == d.coef && back.scale == d.scale, "numeric text reads back as the same value");
        break;
      }
      case eng::FieldKind::kText:
        check(std::memchr(c.str[row].data(), 0, c.str[row].size()) == nullptr, "text has no NUL");
        break;
      case eng::FieldKind::kBool:
        check(c.i64[row] == 0 || c.i64[row] == 1, "bool is 0 or 1");
        break;
      case eng::FieldKind::kDate:
        check(c.i64[row] >= min_day && c.i64[row] <= max_day, "date has a four-digit year");
        break;
      case eng::FieldKind::kTimestamp:
      case eng::FieldKind::kTimestampTz:
        check(c.i64[row] >= (min_day - 1) * usec_per_day && c.i64[row] < (max_day + 2) * usec_per_day,
              "timestamp has a four-digit year");
        break;
    }
  }
}

/// The stream of the batch codec target: int8, float8, numeric, text, int8.
inline void codec_columns(eng::RecordBatch* batch, bool all_used) {
  const eng::Type types[5] = {eng::Type::kInt64, eng::Type::kFloat64, eng::Type::kNumeric, eng::Type::kText,
                              eng::Type::kInt64};
  batch->columns.clear();
  batch->columns.resize(5);
  for (int c = 0; c < 5; ++c) {
    batch->columns[c].type = types[c];
    batch->columns[c].used = all_used || c == 3;
  }
}

/// One handwritten row of the codec stream; null[c] makes column c NULL.
struct SeedRow {
  bool null[5];
  int64_t ts;        ///< column 0, microseconds since 2000-01-01
  double f;          ///< column 1
  const char* num;   ///< column 2, numeric text
  const char* text;  ///< column 3
  int64_t n;         ///< column 4
};

/// Fills `batch` (codec_columns, all read) with `rows`.
inline void fill_codec_batch(eng::RecordBatch* batch, const std::vector<SeedRow>& rows) {
  codec_columns(batch, true);
  batch->reset(rows.size());
  for (size_t r = 0; r < rows.size(); ++r) {
    const SeedRow& x = rows[r];
    for (int c = 0; c < 5; ++c) batch->columns[c].null[r] = x.null[c] ? 1 : 0;
    batch->columns[0].i64[r] = x.ts;
    batch->columns[1].f64[r] = x.f;
    if (!eng::Decimal::parse(x.num, &batch->columns[2].dec[r])) fail("a seed numeric parses");
    batch->columns[3].str[r] = batch->arena.copy(x.text, std::strlen(x.text));
    batch->columns[4].i64[r] = x.n;
    batch->xid[r] = 0;
  }
}

/// Flights-like rows: NULLs, -0, NaN and Infinity numerics, repeated groups.
inline const std::vector<SeedRow>& flight_rows() {
  static const int64_t jan1 = 31622460000000, hour = 3600LL * 1000000;  // 2001-01-01T00:01Z
  static const std::vector<SeedRow> rows = {
      {{0, 0, 0, 0, 0}, jan1, 1.5, "-12.340", "ATL", 33},
      {{0, 0, 0, 0, 1}, jan1 + hour, -0.0, "NaN", "", 0},
      {{1, 1, 1, 1, 1}, 0, 0, "0", "", 0},
      {{0, 0, 0, 0, 0}, jan1 + 2 * hour, 1e300, "Infinity", "SFO", -7},
      {{0, 0, 0, 0, 0}, jan1 + 2 * hour, 1e300, "99999999999999999999999999999999999999", "SFO", 8},
  };
  return rows;
}

/// Rows at the limits: +/-infinity timestamps, int8 extremes, 38-digit
/// numerics, non-ASCII text.
inline const std::vector<SeedRow>& extreme_rows() {
  static const double inf = std::numeric_limits<double>::infinity();
  static const std::vector<SeedRow> rows = {
      {{0, 0, 0, 0, 0}, INT64_MAX, inf, "-Infinity", "caf\xc3\xa9 \xf0\x9f\x9b\xab", INT64_MAX},
      {{0, 0, 0, 0, 0}, INT64_MIN, -inf, "0.000000000000000000000000000000000001", "\"quoted, text\"", INT64_MIN},
      {{0, 0, 0, 0, 0}, -1, std::nan(""), "-99999999999999999999999999999999999999", "x", -1},
  };
  return rows;
}

/// The view of the state loader target, over the codec target's stream:
/// GROUP BY tumble(col 0, 1 hour), col 1, col 2, col 3 with count(*), and
/// count / sum / avg / min / max of the int8, float8 and numeric columns.
inline eng::ViewPlan state_plan() {
  using eng::AggFunc;
  using eng::Type;
  eng::ViewPlan p;
  p.keys.push_back({0, Type::kInt64, 3600LL * 1000000, 0});
  p.keys.push_back({1, Type::kFloat64, 0, 0});
  p.keys.push_back({2, Type::kNumeric, 0, 0});
  p.keys.push_back({3, Type::kText, 0, 0});
  p.aggs.push_back({AggFunc::kCountStar, -1, Type::kInt64});
  const int cols[3] = {4, 1, 2};
  const Type types[3] = {Type::kInt64, Type::kFloat64, Type::kNumeric};
  for (int i = 0; i < 3; ++i) {
    p.aggs.push_back({AggFunc::kCount, cols[i], types[i]});
    p.aggs.push_back({AggFunc::kSum, cols[i], types[i]});
    p.aggs.push_back({AggFunc::kAvg, cols[i], types[i]});
    p.aggs.push_back({AggFunc::kMin, cols[i], types[i]});
    p.aggs.push_back({AggFunc::kMax, cols[i], types[i]});
  }
  return p;
}

/// Reads every group of `agg` the way a worker's flush does: keys in key
/// order, numeric keys and states as text, sums and averages as the
/// database gets them.
inline void finalize_all(const eng::ViewAggregator& agg) {
  size_t text_bytes = 0;
  for (uint32_t g : agg.groups_in_key_order()) {
    for (size_t k = 0; k < agg.plan().keys.size(); ++k) {
      eng::KeyValue v = agg.key(g, k);
      if (v.is_null) continue;
      if (agg.plan().keys[k].type == eng::Type::kNumeric) text_bytes += v.d.to_string().size();
      if (agg.plan().keys[k].type == eng::Type::kText) text_bytes += v.s.size();
    }
    for (size_t a = 0; a < agg.plan().aggs.size(); ++a) {
      const eng::AggState& s = agg.state(g, a);
      check(s.n >= 0, "a count is not negative");
      if (s.n == 0) continue;
      if (agg.plan().aggs[a].input == eng::Type::kNumeric) {
        text_bytes += s.d.to_string().size();
        (void)s.d.to_double();
      }
    }
  }
  (void)text_bytes;
}

}  // namespace velostream::fuzz

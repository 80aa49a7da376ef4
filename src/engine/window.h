// Window assignment.
#pragma once

#include <cstdint>
#include <limits>

namespace velostream::engine {

/// Microseconds from PostgreSQL's epoch (2000-01-01) back to the Unix epoch:
/// the origin of tumble(), which equals date_bin(size, ts, '1970-01-01+00').
constexpr int64_t kUnixEpochInPgMicros = -946684800LL * 1000000LL;

/// PostgreSQL's first timestamp, 4714-11-24 00:00 BC (MIN_TIMESTAMP), in
/// microseconds since 2000-01-01.
constexpr int64_t kMinPgTimestamp = -211813488000000000LL;

/// PostgreSQL's END_TIMESTAMP, 294277-01-01 00:00:00: the first timestamp
/// after the valid range, in microseconds since 2000-01-01.
constexpr int64_t kEndPgTimestamp = 9223371331200000000LL;

/// Sets `*start` to the start of the tumbling window of `size` microseconds
/// (> 0) that holds `ts`, windows being aligned on `origin`. Both in
/// microseconds since 2000-01-01. Follows PostgreSQL's timestamp_bin() (as
/// fixed in 15.x: it rounds toward -infinity, so a timestamp before the
/// origin that falls exactly on a window boundary starts its own window);
/// +/-infinity (INT64_MAX / INT64_MIN) pass through unchanged. Returns false
/// where timestamp_bin raises an error: the distance from the origin or the
/// start does not fit in 64 bits ("interval out of range": for the Unix
/// epoch origin, after 294247-01-10 04:00:54.775807, which PostgreSQL's
/// timestamps reach), or the start is before kMinPgTimestamp ("timestamp out
/// of range").
inline bool tumble_start(int64_t ts, int64_t size, int64_t origin, int64_t* start) {
  if (ts == std::numeric_limits<int64_t>::min() || ts == std::numeric_limits<int64_t>::max()) {
    *start = ts;
    return true;
  }
  int64_t diff;
  if (__builtin_sub_overflow(ts, origin, &diff)) return false;
  const int64_t mod = diff % size;
  int64_t delta = diff - mod;
  if (mod < 0 && __builtin_sub_overflow(delta, size, &delta)) return false;
  return !__builtin_add_overflow(origin, delta, start) && *start >= kMinPgTimestamp;
}

/// PostgreSQL's message where tumble_start(ts, size, origin) fails:
/// timestamp_bin's "interval out of range" when the distance from the origin
/// overflows, else "timestamp out of range"; NULL if it does not fail.
inline const char* tumble_error(int64_t ts, int64_t size, int64_t origin) {
  int64_t start, diff;
  if (tumble_start(ts, size, origin, &start)) return nullptr;
  return __builtin_sub_overflow(ts, origin, &diff) ? "interval out of range" : "timestamp out of range";
}

}  // namespace velostream::engine

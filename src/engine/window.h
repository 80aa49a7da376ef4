// Window assignment.
#pragma once

#include <cstdint>
#include <limits>

namespace velostream::engine {

/// Microseconds from PostgreSQL's epoch (2000-01-01) back to the Unix epoch:
/// the origin of tumble(), which equals date_bin(size, ts, '1970-01-01+00').
constexpr int64_t kUnixEpochInPgMicros = -946684800LL * 1000000LL;

/// Start of the tumbling window of `size` microseconds (> 0) that holds `ts`,
/// windows being aligned on `origin`. Both in microseconds since 2000-01-01.
/// Follows PostgreSQL's timestamp_bin() (as fixed in 15.x: it rounds toward
/// -infinity, so a timestamp before the origin that falls exactly on a
/// window boundary starts its own window); +/-infinity (INT64_MAX /
/// INT64_MIN) pass through unchanged.
inline int64_t tumble_start(int64_t ts, int64_t size, int64_t origin) {
  if (ts == std::numeric_limits<int64_t>::min() || ts == std::numeric_limits<int64_t>::max()) return ts;
  int64_t diff = ts - origin;
  int64_t mod = diff % size;
  int64_t start = origin + (diff - mod);
  if (mod < 0) start -= size;
  return start;
}

}  // namespace velostream::engine

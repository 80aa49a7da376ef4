#include "engine/window.h"

#include <gtest/gtest.h>

using velostream::engine::kUnixEpochInPgMicros;
using velostream::engine::tumble_start;

constexpr int64_t kHour = 3600LL * 1000000;

namespace {
// The window start, or a sentinel when tumble_start refuses the timestamp.
int64_t start_of(int64_t ts, int64_t size, int64_t origin) {
  int64_t start;
  return tumble_start(ts, size, origin, &start) ? start : 42;
}
}  // namespace

TEST(Tumble, AlignsOnTheUnixEpoch) {
  // 2001-01-01 00:30 UTC, in microseconds since 2000-01-01.
  const int64_t t = (366LL * 24 * 3600 + 1800) * 1000000;
  EXPECT_EQ(start_of(t, kHour, kUnixEpochInPgMicros), t - 1800LL * 1000000);
  EXPECT_EQ(start_of(t - 1800LL * 1000000, kHour, kUnixEpochInPgMicros), t - 1800LL * 1000000);
}

TEST(Tumble, DaysFromTheEpoch) {
  const int64_t day = 24 * kHour;
  // 2000-01-01 is a whole number of days after 1970-01-01: it starts a day.
  EXPECT_EQ(start_of(5, day, kUnixEpochInPgMicros), 0);
  EXPECT_EQ(start_of(day + 7, day, kUnixEpochInPgMicros), day);
}

TEST(Tumble, InfinityPassesThrough) {
  EXPECT_EQ(start_of(INT64_MAX, kHour, 0), INT64_MAX);
  EXPECT_EQ(start_of(INT64_MIN, kHour, 0), INT64_MIN);
}

TEST(Tumble, BeforeTheOriginRoundsDownExceptOnBoundaries) {
  // 1969-12-31 23:30 and 23:00 UTC with hourly windows from 1970-01-01.
  const int64_t origin = kUnixEpochInPgMicros;
  EXPECT_EQ(start_of(origin - 30 * 60000000LL, kHour, origin), origin - kHour);
  EXPECT_EQ(start_of(origin - kHour, kHour, origin), origin - kHour);
  EXPECT_EQ(start_of(origin - kHour - 1, kHour, origin), origin - 2 * kHour);
}

// Timestamps whose distance from the origin, or whose window start, does not
// fit in 64 bits overflowed (signed overflow, reported by UBSan; found by the
// batch_codec fuzz target, whose view groups by tumble). PostgreSQL 15's
// date_bin raises "interval out of range" or "timestamp out of range" there;
// tumble_start now returns false. PostgreSQL's timestamps reach up to
// 294276 AD, past the origin's 64-bit reach at 294247 AD.
TEST(Tumble, OutOfRangeLikeDateBin) {
  const int64_t origin = kUnixEpochInPgMicros;
  const int64_t last = INT64_MAX + origin;  // 294247-01-10 04:00:54.775807 UTC
  int64_t start = 0;
  ASSERT_TRUE(tumble_start(last, kHour, origin, &start));
  EXPECT_EQ(start, last - 54775807);  // 04:00:00, as date_bin gives
  EXPECT_FALSE(tumble_start(last + 1, kHour, origin, &start));  // date_bin: interval out of range
  EXPECT_FALSE(tumble_start(INT64_MAX - 1, kHour, origin, &start));
  EXPECT_FALSE(tumble_start(INT64_MIN + 1, kHour, 0, &start));  // the window starts below INT64_MIN
  // 4714-11-24 00:30 BC, PostgreSQL's first day, in weekly windows: the
  // window would start before PostgreSQL's first timestamp.
  const int64_t first = -211813488000000000;
  EXPECT_FALSE(tumble_start(first + 1800000000LL, 7 * 24 * kHour, origin, &start));
  ASSERT_TRUE(tumble_start(first + 1800000000LL, kHour, origin, &start));
  EXPECT_EQ(start, first);
}

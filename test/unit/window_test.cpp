#include "engine/window.h"

#include <gtest/gtest.h>

using velostream::engine::kUnixEpochInPgMicros;
using velostream::engine::tumble_start;

constexpr int64_t kHour = 3600LL * 1000000;

TEST(Tumble, AlignsOnTheUnixEpoch) {
  // 2001-01-01 00:30 UTC, in microseconds since 2000-01-01.
  const int64_t t = (366LL * 24 * 3600 + 1800) * 1000000;
  EXPECT_EQ(tumble_start(t, kHour, kUnixEpochInPgMicros), t - 1800LL * 1000000);
  EXPECT_EQ(tumble_start(t - 1800LL * 1000000, kHour, kUnixEpochInPgMicros), t - 1800LL * 1000000);
}

TEST(Tumble, DaysFromTheEpoch) {
  const int64_t day = 24 * kHour;
  // 2000-01-01 is a whole number of days after 1970-01-01: it starts a day.
  EXPECT_EQ(tumble_start(5, day, kUnixEpochInPgMicros), 0);
  EXPECT_EQ(tumble_start(day + 7, day, kUnixEpochInPgMicros), day);
}

TEST(Tumble, InfinityPassesThrough) {
  EXPECT_EQ(tumble_start(INT64_MAX, kHour, 0), INT64_MAX);
  EXPECT_EQ(tumble_start(INT64_MIN, kHour, 0), INT64_MIN);
}

TEST(Tumble, BeforeTheOriginRoundsDownExceptOnBoundaries) {
  // 1969-12-31 23:30 and 23:00 UTC with hourly windows from 1970-01-01.
  const int64_t origin = kUnixEpochInPgMicros;
  EXPECT_EQ(tumble_start(origin - 30 * 60000000LL, kHour, origin), origin - kHour);
  EXPECT_EQ(tumble_start(origin - kHour, kHour, origin), origin - kHour);
  EXPECT_EQ(tumble_start(origin - kHour - 1, kHour, origin), origin - 2 * kHour);
}

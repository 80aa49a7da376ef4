#include "engine/watermark.h"

#include <gtest/gtest.h>

#include <limits>

using namespace velostream::engine;

namespace {

constexpr int64_t kMin = 60LL * 1000000;  // a minute in microseconds

PartitionEventTime part(int64_t max_event_time, int64_t last_input) {
  PartitionEventTime p;
  p.has_event = true;
  p.max_event_time = max_event_time;
  p.has_input = true;
  p.last_input = last_input;
  return p;
}

}  // namespace

TEST(Watermark, MinimumOverActivePartitionsMinusTheDelay) {
  PartitionEventTime parts[3] = {part(100 * kMin, 0), part(90 * kMin, 0), part(120 * kMin, 0)};
  int64_t wm = 0;
  ASSERT_TRUE(view_watermark(parts, 3, 30 * kMin, 10 * kMin, 5 * kMin, &wm));
  EXPECT_EQ(wm, 60 * kMin);  // 90 - 30
}

TEST(Watermark, AnActivePartitionWithoutEventsHoldsItBackAnIdleOneDoesNot) {
  PartitionEventTime parts[2];
  int64_t wm = -1;
  EXPECT_FALSE(view_watermark(parts, 2, 0, kMin, 0, &wm));  // no event anywhere
  EXPECT_EQ(wm, -1);
  parts[1] = part(50 * kMin, 10 * kMin);
  // Partition 0 never received rows, but the stream was created 30 s ago.
  parts[0].has_input = true;
  parts[0].last_input = 10 * kMin;
  EXPECT_FALSE(view_watermark(parts, 2, 5 * kMin, kMin, 10 * kMin + kMin / 2, &wm));
  // A minute and a half later it is idle and no longer holds it back.
  ASSERT_TRUE(view_watermark(parts, 2, 5 * kMin, kMin, 11 * kMin + kMin / 2, &wm));
  EXPECT_EQ(wm, 45 * kMin);  // partition 1 idle too: the largest watermark
  parts[1].last_input = 11 * kMin;
  ASSERT_TRUE(view_watermark(parts, 2, 5 * kMin, kMin, 11 * kMin + kMin / 2, &wm));
  EXPECT_EQ(wm, 45 * kMin);
}

TEST(Watermark, IdlePartitionsStopHoldingItBack) {
  // Partition 1 is behind but received nothing for 11 minutes (timeout 10).
  PartitionEventTime parts[2] = {part(100 * kMin, 200 * kMin), part(20 * kMin, 189 * kMin)};
  int64_t wm = 0;
  ASSERT_TRUE(view_watermark(parts, 2, 0, 10 * kMin, 200 * kMin, &wm));
  EXPECT_EQ(wm, 100 * kMin);
  // Exactly the timeout: not idle yet.
  ASSERT_TRUE(view_watermark(parts, 2, 0, 11 * kMin, 200 * kMin, &wm));
  EXPECT_EQ(wm, 20 * kMin);
  // Every partition idle: the most advanced one.
  parts[0].last_input = 150 * kMin;
  ASSERT_TRUE(view_watermark(parts, 2, 0, 10 * kMin, 200 * kMin, &wm));
  EXPECT_EQ(wm, 100 * kMin);
  // A partition without input counts as idle.
  parts[0].has_input = false;
  parts[1].last_input = 199 * kMin;
  ASSERT_TRUE(view_watermark(parts, 2, 0, 10 * kMin, 200 * kMin, &wm));
  EXPECT_EQ(wm, 20 * kMin);
}

TEST(Watermark, TheDelaySaturates) {
  PartitionEventTime parts[1] = {part(std::numeric_limits<int64_t>::min() + 5, 0)};
  int64_t wm = 0;
  ASSERT_TRUE(view_watermark(parts, 1, kMin, kMin, 0, &wm));
  EXPECT_EQ(wm, std::numeric_limits<int64_t>::min());
}

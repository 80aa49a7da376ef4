#include "kafka/assignment.h"

#include <gtest/gtest.h>

#include "kafka/consumer.h"

using velostream::kafka::kOffsetEarliest;
using velostream::kafka::kOffsetLatest;
using velostream::kafka::plan_assignment;
using Assignment = std::vector<std::pair<int32_t, int64_t>>;

TEST(Assignment, SpreadsPartitionsOverWorkers) {
  EXPECT_EQ(plan_assignment(0, 2, 5, {}, {}, kOffsetEarliest),
            (Assignment{{0, kOffsetEarliest}, {2, kOffsetEarliest}, {4, kOffsetEarliest}}));
  EXPECT_EQ(plan_assignment(1, 2, 5, {}, {}, kOffsetLatest), (Assignment{{1, kOffsetLatest}, {3, kOffsetLatest}}));
  EXPECT_TRUE(plan_assignment(3, 4, 3, {}, {}, kOffsetLatest).empty());
}

TEST(Assignment, ResumesAtStoredOffsets) {
  EXPECT_EQ(plan_assignment(0, 2, 4, {}, {100, 7, -1, 9}, kOffsetEarliest),
            (Assignment{{0, 100}, {2, kOffsetEarliest}}));
}

TEST(Assignment, GrowthKeepsPositionsAndAddsNewPartitions) {
  // 4 partitions consumed up to these offsets; the topic grows to 8.
  std::vector<int64_t> next = {50, 60, 70, 80};
  std::vector<int64_t> stored = {40, 60, 65, 80};  // the database may lag within a cycle; memory wins
  EXPECT_EQ(plan_assignment(0, 2, 8, next, stored, kOffsetEarliest),
            (Assignment{{0, 50}, {2, 70}, {4, kOffsetEarliest}, {6, kOffsetEarliest}}));
  EXPECT_EQ(plan_assignment(1, 2, 8, next, stored, kOffsetLatest),
            (Assignment{{1, 60}, {3, 80}, {5, kOffsetLatest}, {7, kOffsetLatest}}));
}

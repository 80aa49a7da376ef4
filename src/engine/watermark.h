// Watermarks (issue 11): the rule that turns the event times the partitions
// of a stream have seen into the watermark of the stream's views.
#pragma once

#include <cstdint>

namespace velostream::engine {

/// What one partition of a stream has seen: its largest event time and when
/// it last received rows (both microseconds, in any one epoch).
struct PartitionEventTime {
  bool has_event = false;  ///< false: no event yet
  int64_t max_event_time = 0;
  bool has_input = false;  ///< false: no rows yet
  int64_t last_input = 0;
};

/// The watermark of the views of a stream whose partitions are `parts[0..n)`,
/// at time `now`: the minimum over the partitions of max_event_time - delay,
/// leaving out the partitions that saw no event and those that received no
/// rows for longer than `idle_timeout` (an idle partition does not hold the
/// watermark back); when every partition with an event is idle, the largest
/// of their watermarks. Returns false (no watermark) if no partition saw an
/// event. Times in microseconds; the subtraction saturates.
/// The rule follows Flink's per-split watermarks with idleness
/// (WatermarkStrategy.withIdleness), with the all-idle case advancing to the
/// most advanced partition instead of stalling.
bool view_watermark(const PartitionEventTime* parts, int n, int64_t delay, int64_t idle_timeout, int64_t now,
                    int64_t* watermark);

}  // namespace velostream::engine

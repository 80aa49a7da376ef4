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
  bool has_input = false;  ///< false: never any input (then idle, whatever last_input)
  int64_t last_input = 0;  ///< when it last received rows, or the stream was created
};

/// The watermark of the views of a stream whose partitions are `parts[0..n)`,
/// at time `now`: the minimum over the partitions of max_event_time - delay,
/// leaving out the idle partitions, those that received no rows for longer
/// than `idle_timeout` (for a partition that never received any, give the
/// stream's creation as its last input). A partition that is not idle but
/// saw no event yet holds the watermark back entirely: false (no watermark),
/// as a split without a watermark holds back Flink's. When every partition
/// with an event is idle, the largest of their watermarks; false if no
/// partition saw an event. Times in microseconds; the subtraction saturates.
/// The rule follows Flink's per-split watermarks with idleness
/// (WatermarkStrategy.withIdleness), with the all-idle case advancing to the
/// most advanced partition instead of stalling.
bool view_watermark(const PartitionEventTime* parts, int n, int64_t delay, int64_t idle_timeout, int64_t now,
                    int64_t* watermark);

}  // namespace velostream::engine

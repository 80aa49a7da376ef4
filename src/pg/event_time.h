// Event time of a stream (issue 11): the stream options event_time,
// watermark_delay and idle_timeout, and the watermark rule the partition
// workers apply.
#pragma once

#include "pg/pg.h"

/// GUC velostream.idle_timeout (milliseconds): how long a stream partition
/// that receives nothing keeps holding its stream's watermark back.
extern int velostream_idle_timeout_ms;

/// A stream's event-time options, read from its OPTIONS.
struct StreamEventTime {
  int column = -1;           ///< 0-based column of the event time (timestamptz); -1: no event time
  int64 delay_us = 0;        ///< watermark_delay, microseconds (a day is 24 hours)
  int64 idle_timeout_us = 0; ///< idle_timeout, or the GUC, microseconds
};

/// Parses the value of interval option `option` (watermark_delay,
/// idle_timeout, velostream.allowed_lateness) with PostgreSQL's interval_in
/// and returns it in microseconds, a day counting 24 hours. ERROR
/// INVALID_PARAMETER_VALUE if it is negative or has months or years (whose
/// length varies); interval_in's own errors for bad syntax.
int64 velostream_parse_event_interval(const char* option, const char* text);

/// Reads stream `stream`'s event-time options into `out`. ERROR
/// (FDW_INVALID_ATTRIBUTE_VALUE, with a hint) if event_time names no column
/// or a column that is not timestamptz, or if watermark_delay or
/// idle_timeout is given without event_time. Returns true if the stream has
/// an event time.
bool velostream_stream_event_time(Oid stream, StreamEventTime* out);

/// engine/watermark.h's rule over PostgreSQL values: the watermark of a view of a stream whose partitions saw the events in
/// `max_event_time[0..n)` (microseconds since 2000-01-01; `has_event[i]`
/// false where partition i saw none yet) and last received rows at
/// `last_input[i]` (TimestampTz: the last rows, or the stream's creation; 0:
/// idle): see engine::view_watermark. False: no watermark yet.
bool velostream_view_watermark(const StreamEventTime& et, const int64* max_event_time, const bool* has_event,
                               const TimestampTz* last_input, int n, TimestampTz now, int64* watermark);

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

/// The watermark of stream `stream` now (engine/watermark.h's rule): the
/// least, over its source partitions that are not idle, of the largest event
/// time each has committed minus the delay. Idle: nothing received for the
/// shortest of the stream's idle timeout (`et`) and its views'
/// velostream.idle_timeout. A local stream's source
/// partitions are its partition logs (velostream.stream_partitions), a Kafka
/// stream's its topic partitions (velostream.kafka_offsets); one that never
/// received rows counts its idle time from the stream's creation. In
/// microseconds since 2000-01-01; false: no watermark yet. SPI connected;
/// reads with the active snapshot.
bool velostream_stream_watermark(Oid stream, const StreamEventTime& et, int64* watermark);

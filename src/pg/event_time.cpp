// Event time of a stream: options and the watermark rule (event_time.h).
#include <vector>

#include "engine/watermark.h"
#include "pg/event_time.h"

#include "pg/velostream.h"

namespace eng = velostream::engine;

int velostream_idle_timeout_ms = 30000;

int64 velostream_parse_event_interval(const char* option, const char* text) {
  Interval* iv = DatumGetIntervalP(
      DirectFunctionCall3(interval_in, CStringGetDatum(text), ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
  if (iv->month != 0)
    ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                    errmsg("invalid value for option \"%s\": \"%s\"", option, text),
                    errdetail("Months and years have no fixed length."),
                    errhint("Give the interval in days, hours, minutes or seconds.")));
  int64 us;
  if (pg_mul_s64_overflow((int64)iv->day, USECS_PER_DAY, &us) || pg_add_s64_overflow(us, iv->time, &us))
    ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                    errmsg("invalid value for option \"%s\": \"%s\"", option, text),
                    errdetail("The interval is out of range.")));
  if (us < 0)
    ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                    errmsg("invalid value for option \"%s\": \"%s\"", option, text),
                    errdetail("The interval must not be negative.")));
  return us;
}

bool velostream_stream_event_time(Oid stream, StreamEventTime* out) {
  *out = StreamEventTime();
  out->idle_timeout_us = (int64)velostream_idle_timeout_ms * 1000;
  const char* column = velostream_table_option(stream, "event_time");
  const char* delay = velostream_table_option(stream, "watermark_delay");
  const char* idle = velostream_table_option(stream, "idle_timeout");
  if (column == nullptr) {
    if (delay != nullptr || idle != nullptr)
      ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
                      errmsg("option \"%s\" of stream \"%s\" needs option \"event_time\"",
                             delay != nullptr ? "watermark_delay" : "idle_timeout", get_rel_name(stream)),
                      errhint("Add OPTIONS (event_time 'column'), naming the timestamptz column of each event's "
                              "time.")));
    return false;
  }
  AttrNumber attno = get_attnum(stream, column);
  if (attno == InvalidAttrNumber)
    ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
                    errmsg("option \"event_time\" of stream \"%s\" names no column: \"%s\"", get_rel_name(stream),
                           column),
                    errhint("Name the stream's timestamptz column that holds each event's time.")));
  if (get_atttype(stream, attno) != TIMESTAMPTZOID)
    ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
                    errmsg("event time column \"%s\" of stream \"%s\" is of type %s", column, get_rel_name(stream),
                           format_type_be(get_atttype(stream, attno))),
                    errhint("The event time must be a timestamptz column.")));
  out->column = attno - 1;
  if (delay != nullptr) out->delay_us = velostream_parse_event_interval("watermark_delay", delay);
  if (idle != nullptr) out->idle_timeout_us = velostream_parse_event_interval("idle_timeout", idle);
  return true;
}

bool velostream_stream_watermark(Oid stream, const StreamEventTime& et, int64* watermark) {
  // The source partitions: a local stream's partition logs, a Kafka
  // stream's topic partitions (every one its workers registered).
  // With each, the shortest velostream.idle_timeout of the stream's views
  // (catalog 0.7), which shortens the stream's: the stream has one
  // watermark.
  Oid argtypes[1] = {OIDOID};
  Datum args[1] = {ObjectIdGetDatum(stream)};
  const char* views_idle = velostream_catalog_current()
                               ? "(SELECT (extract(epoch FROM min(v.idle_timeout)) * 1000000)::int8 "
                                 "FROM velostream.views v WHERE v.stream = $1)"
                               : "NULL::int8";
  if (SPI_execute_with_args(psprintf("SELECT p.max_event_time, coalesce(p.last_input_at, s.created_at), %s "
                                     "FROM velostream.stream_partitions p JOIN velostream.streams s USING (stream) "
                                     "WHERE p.stream = $1 AND s.kind = 'local' "
                                     "UNION ALL "
                                     "SELECT k.max_event_time, coalesce(k.last_input_at, s.created_at), %s "
                                     "FROM velostream.kafka_offsets k JOIN velostream.streams s USING (stream) "
                                     "WHERE k.stream = $1 AND s.kind = 'kafka'",
                                     views_idle, views_idle),
                            1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
    elog(ERROR, "velostream: reading the event times of stream %s failed", get_rel_name(stream));
  int n = (int)SPI_processed;
  int64 idle_us = et.idle_timeout_us;
  std::vector<eng::PartitionEventTime> parts(n);
  for (int i = 0; i < n; ++i) {
    bool isnull;
    Datum idle = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3, &isnull);
    if (!isnull) idle_us = Min(idle_us, DatumGetInt64(idle));
    Datum d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
    parts[i].has_event = !isnull;
    parts[i].max_event_time = isnull ? 0 : DatumGetTimestampTz(d);
    d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull);
    parts[i].has_input = !isnull && !TIMESTAMP_NOT_FINITE(DatumGetTimestampTz(d));
    parts[i].last_input = parts[i].has_input ? DatumGetTimestampTz(d) : 0;
  }
  int64_t wm = 0;
  if (!eng::view_watermark(parts.data(), n, et.delay_us, idle_us, GetCurrentTimestamp(), &wm)) return false;
  *watermark = wm;
  return true;
}

extern "C" {
PGDLLEXPORT Datum velostream_watermark(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(velostream_watermark);
}

/// velostream.watermark(stream regclass, partition int DEFAULT NULL) RETURNS
/// timestamptz: the stream's watermark now (partition NULL:
/// velostream_stream_watermark's rule over its source partitions), or the
/// one partition `partition`'s views have closed their windows at, as its
/// worker last committed it (velostream.stream_partitions.watermark). NULL
/// for a stream without event_time, before any event, or no such stream.
Datum velostream_watermark(PG_FUNCTION_ARGS) {
  if (PG_ARGISNULL(0)) PG_RETURN_NULL();
  Oid stream = PG_GETARG_OID(0);
  bool one = !PG_ARGISNULL(1);
  int partition = one ? PG_GETARG_INT32(1) : -1;
  if (!velostream_is_stream(stream)) PG_RETURN_NULL();
  StreamEventTime et;
  if (!velostream_stream_event_time(stream, &et)) PG_RETURN_NULL();
  // The catalog belongs to velostream: read it with its rights, whoever asks
  // (velostream.stats is PUBLIC).
  Oid save_userid;
  int save_sec;
  velostream_begin_as_superuser(&save_userid, &save_sec);
  SPI_connect();
  int64 result = 0;
  bool found;
  if (one) {
    Oid argtypes[2] = {OIDOID, INT4OID};
    Datum args[2] = {ObjectIdGetDatum(stream), Int32GetDatum(partition)};
    found = SPI_execute_with_args("SELECT watermark FROM velostream.stream_partitions WHERE stream = $1 AND "
                                  "partition = $2 AND watermark IS NOT NULL",
                                  2, argtypes, args, NULL, true, 1) == SPI_OK_SELECT &&
            SPI_processed == 1;
    bool isnull;
    if (found) result = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
  } else {
    found = velostream_stream_watermark(stream, et, &result);
  }
  SPI_finish();
  velostream_end_as_superuser(save_userid, save_sec);
  if (!found) PG_RETURN_NULL();
  PG_RETURN_TIMESTAMPTZ(result);
}

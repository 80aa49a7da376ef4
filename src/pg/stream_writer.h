// Appending rows to a local stream: rows are staged in the engine's
// representation, routed to a partition and gathered into columnar batches,
// one log row (xid, rows, batch) per velostream.batch_size rows. Used by the
// FDW's INSERT path and by the COPY fast path (copy_from.cpp).
#pragma once

#include "engine/batch.h"
#include "pg/pg.h"

/// One column value of the row being appended, in the engine's form:
/// integers, booleans, dates and timestamps in `i`, floats in `f`, numerics
/// in `d`, text as `s`/`len` (valid until the row is appended). `datum` is
/// the PostgreSQL value when there is one (`has_datum`), used to route a row
/// whose routing column cannot be hashed from the engine form.
struct StagedValue {
  bool isnull;
  bool has_datum;
  int64_t i;
  double f;
  velostream::engine::Decimal d;
  velostream::engine::Interval iv;
  const char* s;
  size_t len;
  Datum datum;
};

struct StreamWriter;

/// Opens the partition logs of local stream `stream` for appending in the
/// current transaction (RowExclusiveLock) and reads its routing column with
/// the latest snapshot. ERROR for a Kafka stream (FEATURE_NOT_SUPPORTED) or a
/// stream without logs. State lives in CurrentMemoryContext.
StreamWriter* velostream_writer_begin(Relation stream);

/// Writes the partial batches and closes the logs. NULL is a no-op.
void velostream_writer_end(StreamWriter* w);

/// The staging array of the next row: one StagedValue per stream column
/// (dropped and unsupported columns are ignored).
StagedValue* velostream_writer_row(StreamWriter* w);

/// Stores PostgreSQL value `v` of column `c` (0-based) in the staging array:
/// numeric is converted exactly (ERROR NUMERIC_VALUE_OUT_OF_RANGE beyond 38
/// significant digits), text detoasted.
void velostream_writer_stage_datum(StreamWriter* w, int c, Datum v, bool isnull);

/// Routes the staged row to its partition and appends it; a full batch is
/// written to the log.
void velostream_writer_append(StreamWriter* w);

/// Stages and appends the values of `slot` (INSERT, and COPY's slow path).
void velostream_writer_insert_slot(StreamWriter* w, TupleTableSlot* slot);

/// Opens the partition logs of stream `stream` (a Kafka stream's, in its
/// partition worker) to route the rows of decoded batches shaped as `shape`
/// (the columns with used == true are logged). Returns NULL if the stream has
/// one partition or no routing column: every row then stays with the caller.
/// ERROR if the stream has no logs (catalog before 0.5). End it with
/// velostream_writer_end, in the same transaction.
StreamWriter* velostream_router_begin(Relation stream, const velostream::engine::RecordBatch& shape);

/// Sets the watermark column of the log batches the router writes from now
/// on: the routing worker's source watermark (microseconds since 2000-01-01),
/// which the receiving worker judges their rows' lateness against
/// (worker.cpp). Without a call the column is NULL.
void velostream_router_set_watermark(StreamWriter* w, int64 watermark);

/// Routes rows [0, rows) of `b` by the stream's routing column (the same
/// hash as velostream_writer_append): rows of partition `self` are moved, in
/// order, to the front of `b`, and their count returned; the others are
/// appended to their partitions' log batches (a full batch is written to its
/// log). ERROR out of memory.
size_t velostream_router_route(StreamWriter* w, velostream::engine::RecordBatch* b, size_t rows, int self);

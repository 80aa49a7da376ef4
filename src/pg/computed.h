// Computed columns: expressions over a stream's columns (a GROUP BY
// expression such as origin || '-' || dest or date_trunc('day', ts AT TIME
// ZONE 'America/New_York'), a WHERE or FILTER clause beyond column-vs-constant
// comparisons, an aggregate's argument such as greatest(delay, 0)),
// evaluated into extra columns of the batch, which the engine then reads like
// stream columns: natively (engine/expression.h, translated by
// pg/native_expr.h) or, where an expression has no native form, by
// PostgreSQL's executor.
#pragma once

#include <vector>

#include "engine/batch.h"
#include "pg/translate.h"  // before pg.h: it includes abseil, which PostgreSQL's Min/Max macros break
#include "pg/pg.h"

/// Compiled computed columns of one view (allocated in the current memory
/// context: native trees, or ExprStates over a virtual slot with the
/// stream's columns).
struct ComputedColumns;

/// Compiles d->computed (NULL if the view has none). `stream_types[c]` is
/// the SQL type of stream column c.
ComputedColumns* velostream_compile_computed(const ViewDesc* d, const Oid* stream_types);

/// Evaluates the computed columns for the first `rows` rows of `batch`
/// (whose first d->stream_columns columns are the stream's), into columns
/// stream_columns .. stream_columns + ncomputed, and the view's validity
/// column after them (1 for a row every expression could be evaluated for,
/// 0 otherwise); text results are copied into the batch's arena. The batch
/// must have those columns already. Each column is evaluated only for the
/// rows of its guard (ViewDesc::computed_guard: every row for WHERE, the rows
/// passing WHERE, and those passing an aggregate's FILTER); the others are
/// NULL. A row whose evaluation raises an error (division by zero, a bad
/// cast, a value that does not fit the engine) is passed to `on_error` with
/// PostgreSQL's message and gets validity 0: the view skips it, the stream
/// goes on. The executor's expressions run in subtransactions (one per
/// batch and guard, another after each failing row).
void velostream_compute(ComputedColumns* c, velostream::engine::RecordBatch* batch, size_t rows,
                        void (*on_error)(const velostream::engine::RecordBatch& batch, size_t row, const char* message,
                                         void* arg),
                        void* arg);

/// Sets used[c] = 1 for every stream column the computed columns read.
void velostream_computed_mark_used(const ComputedColumns* c, std::vector<uint8_t>* used);

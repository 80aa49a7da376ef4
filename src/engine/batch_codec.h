// The stream log's record format: a RecordBatch serialised to bytes.
//
// INSERT/COPY into a stream appends one log row per batch of records (not one
// per record), so the user's transaction writes a few large values instead of
// millions of heap tuples, and a partition worker turns each log row back into
// a columnar batch without per-record work: fixed-width columns are copied as
// arrays and text values point into the serialised bytes (no copy).
//
// Layout (host byte order; the log never leaves the server that wrote it):
//   u32 magic "VSB1", u32 rows, u32 columns
//   per column: u8 type (Type, or 0xFF for a column not stored), u8 has_nulls,
//     [rows x u8 null flags if has_nulls],
//     kInt64 / kFloat64: rows x 8 bytes; kNumeric: rows x (i128 coef, i16 scale,
//     u8 kind); kInterval: rows x 16 bytes (Interval); kText: (rows + 1) x u32
//     end offsets, then the bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/batch.h"

namespace velostream::engine {

/// The most rows a log batch may hold; decode_batch refuses more. Above
/// velostream.batch_size's maximum (1,000,000), the rows of one log batch.
constexpr uint32_t kMaxBatchRows = 1u << 24;

/// Appends rows [0, batch.rows) of every column of `batch` with used == true
/// to `out` (columns with used == false are recorded as not stored). Throws
/// std::bad_alloc only.
void encode_batch(const RecordBatch& batch, std::string* out);

/// Decodes `len` bytes written by encode_batch into `batch`, whose columns
/// must already carry the stream's types; only columns with used == true are
/// filled. Text values are views into `data`, which must outlive the batch's
/// use. `batch->xid` is resized to the row count (values left to the caller).
/// Returns false with a reason in `error` if the bytes are not a batch of
/// this stream's shape (wrong magic, column count or type, truncated data)
/// or hold values encode_batch cannot write (a NULL flag other than 0 or 1,
/// an invalid numeric, over kMaxBatchRows rows); the batch then has no rows.
/// Allocates no more than the bytes hold (plus kMaxBatchRows xids).
bool decode_batch(const char* data, size_t len, RecordBatch* batch, std::string* error);

}  // namespace velostream::engine

// Aggregate functions with mergeable partial states: one interface for the
// engine's native aggregates and for the ones the glue layer implements with
// PostgreSQL's own aggregate protocol (pg/pg_aggregate.h).
//
// The protocol is PostgreSQL's (pg_aggregate, parallel aggregation): a state
// per group, updated a batch of rows at a time (transition function), two
// partial states combined into one (combine function), serialised to bytes
// and back (serialise / deserialise functions) for the changelog, and turned
// into the SQL result (final function). DuckDB's AggregateFunction has the
// same shape; states live in the aggregator's row of per-group bytes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/batch.h"
#include "engine/predicate.h"

namespace velostream::engine {

/// The engine's native aggregates, and kExternal: an implementation the glue
/// layer supplies (AggSpec::external).
enum class AggFunc : uint8_t {
  kCountStar, kCount, kSum, kAvg, kMin, kMax,
  kBoolAnd, kBoolOr,                              ///< bool_and / every, bool_or over a boolean column
  kVarSamp, kVarPop, kStddevSamp, kStddevPop,     ///< over a float4 / float8 column (float8 results)
  kExternal
};

class AggregateFunction;

/// One aggregate of a view: a native function over one column (-1 for
/// count(*)) stored as `input`, or an external implementation (cloned for
/// every aggregator, so each has its own memory); `filter`, if set, is its
/// FILTER (WHERE ...) clause: only rows for which it is true reach it.
struct AggSpec {
  AggFunc func = AggFunc::kCountStar;
  int column = -1;
  Type input = Type::kInt64;
  std::shared_ptr<const AggregateFunction> external;
  std::shared_ptr<const Predicate> filter;
};

/// The partial state of one native aggregate for one group.
///  - count / count(*): n.
///  - sum, avg: the sum in i (integers, 128-bit so sum(bigint) never
///    overflows), f (float8) or d (numeric); n counts the non-NULL inputs,
///    so n == 0 means the SQL result is NULL.
///  - min, max: the extreme in i, f or d; n == 0 means no non-NULL input.
/// The fields are laid out so that each aggregate uses a prefix: count needs
/// n (8 bytes), float8 inputs n and f (16), integers n and i (32), numeric
/// all of it (64). A native aggregate's state_size() is its prefix, so a
/// group's count(*) costs 16 bytes of the aggregator's row, not 64: only the
/// prefix of a state in a row exists (never copy one by value).
struct alignas(16) AggState {
  int64_t n = 0;
  double f = 0;
  __int128 i = 0;
  Decimal d;
};

/// A finalised aggregate value, which the glue layer turns into the result
/// column's SQL type (pg/types.h velostream_final_datum).
struct Value {
  enum class Kind : uint8_t {
    kNull,
    kInt,         ///< i (128-bit: an integer sum may exceed bigint)
    kFloat,       ///< f
    kNumeric,     ///< d
    kIntRatio,    ///< i / n, as numeric division (avg of integers)
    kNumericRatio,  ///< d / n, as numeric division (avg of numerics)
    kDatum,       ///< an external aggregate's own result, its bits in `datum`
    kText,        ///< s (valid until the aggregate's state changes)
  };
  Kind kind = Kind::kNull;
  __int128 i = 0;
  double f = 0;
  Decimal d;
  int64_t n = 0;
  uint64_t datum = 0;
  std::string_view s;
};

/// The rows of one batch an aggregate folds in: `count` selected rows, row
/// numbers rows[k] of `batch`, going to group ids groups[k].
struct AggRows {
  const RecordBatch* batch = nullptr;
  const uint32_t* rows = nullptr;
  const uint32_t* groups = nullptr;
  size_t count = 0;
};

/// A row an aggregate cannot take, with the reason (PostgreSQL's message).
struct RowError {
  uint32_t row;
  std::string message;
};

/// One aggregate's implementation, instantiated once per aggregator (clone):
/// it may own memory that all its groups' states point into. States are
/// state_size() bytes (16-byte aligned) in the aggregator's per-group rows and
/// must stay valid when those bytes are moved (memcpy). Methods never throw
/// for bad data: they return false with a message in `error`. Not
/// thread-safe; one partition worker's main thread calls it.
class AggregateFunction {
 public:
  virtual ~AggregateFunction() = default;
  /// A fresh instance with no states (the prototype of a view's plan is
  /// cloned for each aggregator).
  virtual std::unique_ptr<AggregateFunction> clone() const = 0;
  /// Bytes of one group's state (at most 64 KB).
  virtual size_t state_size() const = 0;
  /// Sets up the empty state (no input) in zeroed bytes.
  virtual void init(void* state) = 0;
  /// Whether prepare() does anything (so the aggregator calls it).
  virtual bool has_prepare() const { return false; }
  /// Before any aggregate of the view folds a batch: does the per-row work
  /// that can fail for a row alone, whatever the states hold (evaluating
  /// argument expressions), for `rows` (their `groups` unset), appending the
  /// rows that fail to `failed`; the aggregator then drops those rows for
  /// every aggregate (they become dead letters) and calls update() with the
  /// rest of the same batch, which may reuse what prepare() computed.
  virtual void prepare(const AggRows& rows, std::vector<RowError>* failed) { (void)rows, (void)failed; }
  /// Folds the rows into the states of their groups: group g's state is at
  /// states + g * stride. Returns false (error set) if a value cannot be
  /// aggregated (overflow, an error of the external function).
  virtual bool update(const AggRows& rows, char* states, size_t stride, std::string* error) = 0;
  /// Merges partial state `src` (of another instance of the same aggregate)
  /// into `dst` (of this one). Returns false (error set) on overflow.
  virtual bool combine(const void* src, void* dst, std::string* error) = 0;
  /// Appends the state's bytes to `out`.
  virtual bool serialize(const void* state, std::string* out, std::string* error) = 0;
  /// Reads bytes written by serialize from [p, end) into an init'ed state,
  /// advancing p. Returns false if they are truncated or invalid.
  virtual bool deserialize(const char*& p, const char* end, void* state, std::string* error) = 0;
  /// The SQL result of the state (the state stays usable).
  virtual bool finalize(const void* state, Value* out, std::string* error) = 0;
  /// Frees what every state of this instance holds; states are init'ed again
  /// before use.
  virtual void reset() {}
  /// Sets used[c] = 1 for every stream column the aggregate reads.
  virtual void mark_used(std::vector<uint8_t>* used) const = 0;
};

/// The native implementation of `spec` (func != kExternal).
std::unique_ptr<AggregateFunction> make_native_aggregate(const AggSpec& spec);

/// agg(DISTINCT column): the partial state is the group's set of distinct
/// non-NULL values of `column` (stored as `type`; floats compare as
/// PostgreSQL's do, -0 = 0 and NaN = NaN; numerics by value; text
/// byte-wise, i.e. under a deterministic collation). Combining is set union;
/// finalising feeds the set, in a scratch state, to `inner` (the aggregate
/// without DISTINCT, over the same column) and finalises that. Serialised as
/// a varint count and the sorted values (u32 length, bytes).
std::unique_ptr<AggregateFunction> make_distinct_aggregate(std::shared_ptr<const AggregateFunction> inner,
                                                          int column, Type type);

/// min(text) / max(text) over `column` (text): the least / greatest
/// non-NULL value as PostgreSQL's text_smaller / text_larger choose it under
/// the aggregate's collation: byte order when `collation` is NULL (the "C"
/// collation), else strcoll_l of that locale_t (make_collate_locale; a libc
/// collation), equal strings then ordered by their bytes (varstr_cmp).
/// State: a pointer to a string the instance owns. Serialised as
/// pg/pg_aggregate.cpp serialises a text state (a flag byte, u32 length, the
/// value as a PostgreSQL varlena), so states written before min/max(text)
/// ran natively load. Finalises to Value::kText.
std::unique_ptr<AggregateFunction> make_text_extreme_aggregate(int column, bool max, std::shared_ptr<void> collation);

/// A locale_t for LC_COLLATE `name`, freed with the last reference; NULL if
/// the C library does not know the locale.
std::shared_ptr<void> make_collate_locale(const char* name);

}  // namespace velostream::engine

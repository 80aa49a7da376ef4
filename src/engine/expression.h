// Scalar expressions evaluated natively on columnar batches: the fast path
// of the expression layer (pg/expression.cpp translates PostgreSQL's
// expression trees into these; whatever it cannot translate is evaluated by
// PostgreSQL's executor instead, pg/computed.h).
//
// Every operation follows the PostgreSQL 15 function it replaces (named at
// each ExprNode::Op), including NULL handling, the order in which CASE,
// COALESCE, AND and OR evaluate their arguments (an argument is evaluated
// only for the rows where PostgreSQL's executor would evaluate it, so
// `CASE WHEN x = 0 THEN 0 ELSE 1 / x END` never divides by zero) and the
// errors it raises: a row whose evaluation fails gets an ExprError code, and
// the caller turns it into a dead letter carrying PostgreSQL's message.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/batch.h"
#include "engine/predicate.h"

namespace velostream::engine {

/// The SQL type of an expression's value. Storage (batch Column type):
/// bool, integers, date (days since 2000-01-01) and timestamps
/// (microseconds since 2000-01-01) as kInt64; float4 (rounded to float) and
/// float8 as kFloat64; numeric as kNumeric; text and varchar as kText.
enum class SqlKind : uint8_t {
  kBool, kInt2, kInt4, kInt8, kFloat4, kFloat8, kNumeric, kText, kDate, kTimestamp, kTimestampTz,
  kInterval  ///< stored natively, but no native operation reads it (PostgreSQL's executor does)
};

/// The batch storage of values of `k`.
Type storage_of(SqlKind k);

/// smallint, integer or bigint.
inline bool is_int(SqlKind k) { return k == SqlKind::kInt2 || k == SqlKind::kInt4 || k == SqlKind::kInt8; }
/// real or double precision.
inline bool is_float(SqlKind k) { return k == SqlKind::kFloat4 || k == SqlKind::kFloat8; }

/// Why a row's expression could not be evaluated; message() gives
/// PostgreSQL's own error message for it.
enum class ExprError : uint8_t {
  kNone = 0,
  kDivisionByZero,        ///< "division by zero"
  kSmallintOutOfRange,    ///< "smallint out of range"
  kIntegerOutOfRange,     ///< "integer out of range"
  kBigintOutOfRange,      ///< "bigint out of range"
  kFloatOverflow,         ///< "value out of range: overflow"
  kFloatUnderflow,        ///< "value out of range: underflow"
  kNumericTooLong,        ///< the engine's limit: a numeric beyond 38 digits
  kNaNToSmallint,         ///< "cannot convert NaN to smallint"
  kNaNToInteger,          ///< "cannot convert NaN to integer"
  kNaNToBigint,           ///< "cannot convert NaN to bigint"
  kInfinityToSmallint,    ///< "cannot convert infinity to smallint"
  kInfinityToInteger,     ///< "cannot convert infinity to integer"
  kInfinityToBigint,      ///< "cannot convert infinity to bigint"
  kTimestampOutOfRange,   ///< "timestamp out of range"
  kDateOutOfRange,        ///< "date out of range for timestamp"
  kIntervalOutOfRange,    ///< "interval out of range"
};

/// PostgreSQL's message for `e` (a static string).
const char* expr_error_message(ExprError e);

/// UTC offsets of one time zone: offset[i] seconds east of UTC from at[i]
/// (seconds since 1970-01-01 UTC) on, `before` seconds before at[0] (or
/// always, if `at` is empty). Built by the glue from PostgreSQL's own time
/// zone code (pg_tzset, pg_next_dst_boundary) for a range of years; times
/// outside [covered_from, covered_to) are resolved by `resolve`, which must
/// return the offset at a time (seconds since 1970-01-01 UTC).
struct ZoneOffsets {
  std::vector<int64_t> at;
  std::vector<int32_t> offset;
  int32_t before = 0;
  int64_t covered_from = INT64_MIN, covered_to = INT64_MAX;
  int32_t (*resolve)(int64_t unix_seconds, const void* arg) = nullptr;
  const void* resolve_arg = nullptr;

  /// Offset in seconds east of UTC at `unix_seconds`.
  int32_t offset_at(int64_t unix_seconds) const;
};

/// date_trunc() units handled natively (PostgreSQL's DTK_* of the same name).
enum class TruncUnit : uint8_t { kMicroseconds, kMilliseconds, kSecond, kMinute, kHour, kDay, kWeek, kMonth, kQuarter, kYear };

/// extract() fields handled natively.
enum class ExtractField : uint8_t {
  kMicroseconds, kMilliseconds, kSecond, kMinute, kHour, kDay, kMonth, kQuarter, kYear, kDow, kIsodow, kDoy,
  kWeek, kEpoch
};

/// One node of a native expression tree.
struct ExprNode {
  enum class Op : uint8_t {
    kColumn,      ///< batch column `column`
    kConst,       ///< `value` (already of `type`; NULL if value.is_null)
    kAdd, kSub, kMul, kDiv, kMod,  ///< int2/4/8pl.., float4/8pl.., numeric_add/sub/mul on args of `type`
    kNeg,         ///< unary minus: int*um, float*um, numeric_uminus
    kCompare,     ///< args[0] `cmp` args[1] in `domain` (text: byte order / equality)
    kAnd, kOr, kNot,  ///< three-valued, left to right, stopping as the executor does
    kIsNull, kIsNotNull,  ///< args[0] IS [NOT] NULL
    kIsTrue, kIsNotTrue, kIsFalse, kIsNotFalse,  ///< BooleanTest
    kCase,        ///< args: when0, then0, when1, then1, ..., else (always present; a NULL const if omitted)
    kCoalesce,    ///< first non-NULL argument
    kNullIf,      ///< NULL if args[0] = args[1] (in `domain`) else args[0]
    kGreatest, kLeast,  ///< of the non-NULL args, compared in `domain`
    kCast,        ///< args[0] (of kind `from`) to `type`: int/float/numeric/bool/date/timestamp conversions
    kIntToText,   ///< int2/4/8 output function (CoerceViaIO to text)
    kLike,        ///< args[0] LIKE `pattern` (NOT LIKE if `negate`), textlike's byte matching of UTF-8
    kConcat,      ///< textcat: args[0] || args[1]
    kLower, kUpper,  ///< lower()/upper(): ASCII if `ascii_case`, else towlower_l/towupper_l of `locale`
    kDateTrunc,   ///< timestamp_trunc(`unit`, args[0]) of a timestamp
    kExtract,     ///< extract(`field` from args[0]) of a timestamp or date: numeric
    kAtTimeZone,  ///< timestamptz_zone(`zone`, args[0]): the local timestamp
    kDateBin,     ///< timestamp[tz]_bin(stride `i1` us, args[0], origin `i2`)
  };
  Op op = Op::kConst;
  SqlKind type = SqlKind::kBool;  ///< the result's SQL type
  SqlKind from = SqlKind::kBool;  ///< kCast: the argument's
  int column = -1;
  Scalar value;
  CmpOp cmp = CmpOp::kEq;
  CmpDomain domain = CmpDomain::kInt;
  bool negate = false;
  bool ascii_case = true;
  TruncUnit unit = TruncUnit::kDay;
  ExtractField field = ExtractField::kYear;
  int64_t i1 = 0, i2 = 0;
  std::string pattern;
  std::shared_ptr<const ZoneOffsets> zone;
  std::shared_ptr<void> locale;  ///< kLower / kUpper: a locale_t (see make_ctype_locale)
  std::vector<ExprNode> args;
};

/// A locale_t for LC_CTYPE `name` shared by lower()/upper() nodes (freed
/// with the last node); NULL if the C library does not know the locale.
std::shared_ptr<void> make_ctype_locale(const char* name);

/// Sets used[c] = 1 for every batch column `e` reads.
void mark_used(const ExprNode& e, std::vector<uint8_t>* used);

/// Evaluates native expressions a batch at a time. Owns reusable scratch
/// columns, so steady-state evaluation allocates nothing per batch; not
/// thread-safe.
class ExprEvaluator {
 public:
  /// Evaluates `e` over the first `rows` rows of `batch` into `out` (its
  /// type set to storage_of(e.type), sized to `rows`). Only rows with
  /// active[r] != 0 are evaluated (all if `active` is NULL); the others get
  /// NULL. `errors` (sized to `rows`) receives, for each evaluated row that
  /// raised and had no error yet, the error; such a row's value is NULL.
  /// Text results are allocated in the batch's arena.
  void evaluate(const ExprNode& e, RecordBatch* batch, size_t rows, const uint8_t* active, Column* out,
                std::vector<ExprError>* errors);

 private:
  // Evaluates e into `out`, or returns the batch column e reads (kColumn);
  // either way the result's rows outside `active` are not meaningful.
  const Column* eval(const ExprNode& e, size_t depth, const uint8_t* active, Column* out);
  Column* scratch(size_t depth, size_t i);
  std::vector<uint8_t>* mask(size_t depth, size_t i);

  RecordBatch* batch_ = nullptr;
  size_t rows_ = 0;
  ExprError* errors_ = nullptr;
  // Scratch per tree depth (a deque so growing never moves what a caller holds).
  std::deque<std::deque<Column>> columns_;
  std::deque<std::deque<std::vector<uint8_t>>> masks_;
};

}  // namespace velostream::engine

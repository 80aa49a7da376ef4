// Text-to-value parsing of message fields (CSV fields, JSON strings and
// numbers) into batch columns, with PostgreSQL's input rules where it matters.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "engine/batch.h"

namespace velostream::engine {

/// The SQL type a field is parsed as (the stream column's type).
enum class FieldKind : uint8_t {
  kInt16, kInt32, kInt64, kFloat32, kFloat64, kNumeric, kText, kBool, kDate, kTimestamp, kTimestampTz, kInterval
};

/// Parses interval text into *out; false with a reason in *error. The glue
/// layer supplies PostgreSQL's own interval_in (pg/types.cpp), so that every
/// form PostgreSQL accepts is accepted with its exact meaning; the engine has
/// no interval syntax of its own.
using IntervalParser = bool (*)(std::string_view text, Interval* out, std::string* error);

/// Sets the parser of interval fields for the process (NULL: interval fields
/// are refused with an error). Called once, before any decoding.
void set_interval_parser(IntervalParser parser);

/// How values of `kind` are stored in a batch column.
Type storage_type(FieldKind kind);

/// Parses `text` as a value of `kind` into row `row` of `col` (marking it
/// non-NULL). Text is copied into `arena` and must be valid UTF-8 without NUL. Returns false with a reason in
/// `*error` when the text is not a valid value (out of range, malformed).
///  - integers: optional sign and spaces, range-checked like int2/int4/int8.
///  - floats: decimal or exponent form, NaN, Infinity, -Infinity.
///  - numeric: see Decimal::parse (at most 38 significant digits).
///  - bool: t/f, true/false, yes/no, on/off, 1/0 (any case).
///  - date: YYYY-MM-DD. timestamp / timestamptz: ISO 8601 / RFC 3339,
///    "YYYY-MM-DD[T ]HH:MM[:SS[.ffffff]]" with an optional "Z" or ±HH[:MM]
///    offset; a timestamptz without an offset is taken as UTC. Stored as
///    days / microseconds since 2000-01-01, PostgreSQL's epoch.
///  - interval: by the parser set_interval_parser() installed.
bool parse_field(FieldKind kind, std::string_view text, Column* col, size_t row, Arena* arena, std::string* error);

/// Fast paths for COPY into a stream: accept only the unambiguous forms for
/// which the result is exactly what PostgreSQL's input function returns, so
/// that a caller can use it and hand anything else to PostgreSQL.
///  - parse_pg_integer: [+|-]digits, no spaces, within [min, max].
///  - parse_pg_timestamp: "YYYY-MM-DD[T ]HH:MM[:SS[.f]]" with 1-6 fraction
///    digits, hour <= 23, second <= 59, years 1000-9999; with_zone: a "Z" or
///    ±HH[[:]MM] offset (up to 15:59) must follow, without_zone: must not
///    (PostgreSQL reads a zoneless timestamptz in the session's TimeZone,
///    and ignores the zone of a timestamp). Microseconds since 2000-01-01.
/// Return false when the text is outside these forms (valid or not).
bool parse_pg_integer(std::string_view s, int64_t min, int64_t max, int64_t* out);
bool parse_pg_timestamp(std::string_view s, bool with_zone, int64_t* usec);

/// Days from 1970-01-01 to the civil date y-m-d (proleptic Gregorian), after
/// Howard Hinnant's days_from_civil (http://howardhinnant.github.io/date_algorithms.html).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d);

/// The civil date y-m-d (proleptic Gregorian, astronomical years: 0 is 1 BC)
/// of day `z` counted from 1970-01-01: Hinnant's civil_from_days (same page).
void civil_from_days(int64_t z, int64_t* y, unsigned* m, unsigned* d);

/// Days from 1970-01-01 to 2000-01-01, PostgreSQL's epoch.
constexpr int64_t kPgEpochDays = 10957;
/// Microseconds per day.
constexpr int64_t kUsecPerDay = 86400LL * 1000000;

}  // namespace velostream::engine

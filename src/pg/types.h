// The SQL types velostream's engine handles natively, in one table: how each
// is stored in a batch column, compared in WHERE, parsed from Kafka / COPY
// text, and converted between PostgreSQL Datums and engine values. Every
// other file asks this one; a new native type is one row here.
#pragma once

#include "engine/aggregate.h"
#include "engine/decimal.h"
#include "engine/expression.h"
#include "engine/fields.h"
#include "engine/predicate.h"
#include "pg/pg.h"

/// One natively handled SQL type.
struct SqlType {
  Oid oid;
  velostream::engine::Type storage;      ///< batch column: int64, float64, numeric (38 digits) or text
  velostream::engine::CmpDomain domain;  ///< domain of comparisons in WHERE
  velostream::engine::FieldKind field;   ///< how the decoders parse its text
  bool integer;                          ///< int2, int4, int8
  bool number;                           ///< sum() / avg() input: integers, floats, numeric
  bool ordered;                          ///< native min() / max(): numbers, date, timestamp[tz]
  velostream::engine::SqlKind kind;      ///< its kind in native expressions (engine/expression.h)
  const char* name;                      ///< pg_type's name: a cast to it is a function of this name
};

/// Installs the engine's hooks into PostgreSQL (the interval parser of
/// engine/fields.h); called from _PG_init.
void velostream_types_init();

/// The row of SQL type `oid`, or NULL if the engine does not handle it
/// natively (int2, int4, int8, float4, float8, numeric, text, varchar, bool,
/// date, timestamp, timestamptz, interval).
const SqlType* velostream_sql_type(Oid oid);

/// The engine storage type of SQL type `type`; false if not native.
bool velostream_engine_type(Oid type, velostream::engine::Type* out);

/// The Datum of an engine value of SQL type `type`: integers, bool, date and
/// timestamps from `i` (PostgreSQL's own units: days since 2000-01-01,
/// microseconds since 2000-01-01), floats from `f`, numeric from `d`
/// (through numeric_in), text from s[0..len) (palloc'd). Raises for a type
/// that is not native.
Datum velostream_value_datum(Oid type, int64_t i, double f, const velostream::engine::Decimal& d, const char* s,
                             size_t len);

/// The engine value of constant `c` of a native type, in its own type's
/// field of `out` (is_null, i, f, d or s). False for a type that is not
/// native, or a numeric beyond the engine's 38 digits.
bool velostream_const_scalar(const Const* c, velostream::engine::Scalar* out);

/// The engine value of a fixed-width Datum of SQL type `type` (integers,
/// bool, date, timestamps into *i; floats into *f). False for numeric, text
/// and types that are not native (the caller converts those itself).
bool velostream_datum_fixed(Oid type, Datum v, int64_t* i, double* f);

/// The Datum of a finalised aggregate value (engine/aggregate.h) as the
/// result column's SQL type `type`: an integer as int2/int4/int8 (raising
/// NUMERIC_VALUE_OUT_OF_RANGE "bigint out of range" as int8 arithmetic does),
/// numeric (exact, up to 128 bits) or another native type; a ratio through
/// numeric_div, as PostgreSQL's avg() finalises; an external aggregate's
/// Datum as is. Sets *isnull for a NULL value. Allocates in the current
/// memory context.
Datum velostream_final_datum(const velostream::engine::Value& v, Oid type, bool* isnull);

/// The Datum of row `row` of batch column `c`, as SQL type `type` (the
/// column's, or a binary-compatible one); *isnull for NULL. Allocates text
/// and numeric values in the current memory context.
Datum velostream_column_datum(const velostream::engine::Column& c, size_t row, Oid type, bool* isnull);

/// Stores Datum `v` of native SQL type `type` into row `row` of column `c`
/// (of that type's storage; sized already): text copied into `arena`.
/// Returns false if a numeric does not fit the engine's 38 digits.
bool velostream_datum_to_column(Datum v, bool isnull, Oid type, velostream::engine::Column* c, size_t row,
                                velostream::engine::Arena* arena);

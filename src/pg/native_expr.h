// Translation of PostgreSQL expression trees into the engine's native,
// vectorized expressions (engine/expression.h): the fast path of computed
// columns (pg/computed.h). What has no native implementation with exactly
// PostgreSQL's semantics is left to PostgreSQL's executor.
#pragma once

#include "engine/expression.h"
#include "pg/pg.h"

/// The native form of planned expression `expr` (IMMUTABLE; Vars of varno 1
/// are stream columns, column k of SQL type stream_types[k]), or NULL if
/// some node of it has no native implementation: PostgreSQL's executor then
/// evaluates the whole expression. Natively: arithmetic on integers, floats
/// and numeric (+, -, *; / and % on integers and floats), comparisons (text
/// ordering under the "C" collation only), AND / OR / NOT, IS [NOT] NULL,
/// IS [NOT] TRUE / FALSE, CASE, COALESCE, NULLIF, GREATEST / LEAST, casts
/// between integers, floats, numeric (numeric to float8 only where the
/// value's scale is bounded: PostgreSQL's error for a tiny one quotes the
/// value), bool, date and timestamp, integer to text, IN / = ANY over constants, LIKE with a constant pattern, ||,
/// lower / upper (the "C" ctype or a libc locale), date_trunc and extract
/// of a timestamp (extract also of a date), timestamptz AT TIME ZONE a
/// constant zone, date_bin with constant stride and origin. The tree lives
/// until the current memory context is reset or deleted. May raise only
/// for catalog lookup failures.
const velostream::engine::ExprNode* velostream_native_expr(Node* expr, const Oid* stream_types);

/// The name of function `funcid` if it is pg_catalog's (palloc'd), else NULL.
const char* velostream_catalog_function(Oid funcid);

/// The elements of `x IN (c1, c2, ...)` / `x = ANY ('{...}')`: an
/// ArrayExpr's elements (each a Const, possibly under RelabelType or
/// implicit casts), or an array constant's elements as Consts. NIL if an
/// element is not a constant or the list is empty.
List* velostream_array_constants(ScalarArrayOpExpr* s);

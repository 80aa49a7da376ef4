// Any PostgreSQL aggregate with a combine function, run through PostgreSQL's
// own aggregate protocol (pg_aggregate): the general path behind the engine's
// AggregateFunction interface, for what the engine has no native
// implementation of (stddev, bool_or, min(text) with its collation,
// hll_add_agg, tdigest, user-defined PARALLEL SAFE aggregates, ...).
#pragma once

#include "engine/aggregate.h"
#include "pg/pg.h"

/// The engine aggregate for `aggref` (a plain aggregate of a continuous view,
/// without DISTINCT, ORDER BY or FILTER: the engine applies FILTER before
/// rows reach it), whose arguments are stream columns (Var of varno 1) of
/// engine-native types, constants or immutable expressions over them. Raises
/// FEATURE_NOT_SUPPORTED naming the aggregate if it has no combine function
/// (with a hint for ordered-set ones and array_agg / string_agg), an
/// internal transition state without serialise / deserialise functions, or a
/// final function that modifies its state. `describe` names the aggregate in
/// errors. The returned prototype holds copies of what it needs; each
/// aggregator clones it (pg_aggregate.cpp has the memory rules).
std::shared_ptr<const velostream::engine::AggregateFunction> velostream_pg_aggregate(Aggref* aggref,
                                                                                     const char* describe);

/// var_samp, var_pop, stddev_samp, stddev_pop, variance or stddev (`aggref`)
/// over `column`, a smallint or integer stream column (or computed column):
/// the count, sum and sum of squares kept natively in 128 bits as int2_accum
/// / int4_accum keep them (numeric.c's Int128AggState), serialised,
/// deserialised and finalised by PostgreSQL's numeric_poly_* functions, so
/// the result is PostgreSQL's exact numeric and stored states are the bytes
/// velostream_pg_aggregate's implementation writes for the same aggregate.
std::shared_ptr<const velostream::engine::AggregateFunction> velostream_int_variance_aggregate(Aggref* aggref,
                                                                                               int column,
                                                                                               const char* describe);

/// min, max, sum or avg (`aggref`, of pg_catalog) over `column`, an interval
/// stream column (or computed column): the extreme, or the sum and count,
/// kept natively as PostgreSQL's interval_smaller / interval_larger /
/// interval_pl / interval_accum keep them (ties take the newer value; a sum
/// whose months, days or microseconds overflow raises "interval out of
/// range"); serialised, deserialised and finalised (interval_avg) by
/// PostgreSQL, so results are exact and stored states are the bytes
/// velostream_pg_aggregate's implementation writes for the same aggregate.
std::shared_ptr<const velostream::engine::AggregateFunction> velostream_interval_aggregate(Aggref* aggref, int column,
                                                                                          const char* describe);

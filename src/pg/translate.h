// Translation of a continuous view's analysed query into an engine plan.
//
// The query is what PostgreSQL's own parser and analyser produced for the
// view's SELECT; translation accepts the subset the engine runs and rejects
// anything else at CREATE time with an error that names the construct.
#pragma once

#include "engine/view_aggregator.h"
#include "pg/pg.h"

/// How one SQL aggregate maps onto the engine.
/// The aggregates catalog 0.3 merged in SQL (velostream_convert_shared_state
/// reads their states), and kOther: every other one (native or run through
/// PostgreSQL's own aggregate protocol, pg/pg_aggregate.h).
enum class SqlAgg { kCountStar, kCount, kSum, kAvg, kMin, kMax, kOther };

/// One column of the view's result, in select-list order.
struct ViewColumn {
  char* name;        ///< result column name (palloc'd)
  Oid type;          ///< result type, exactly as PostgreSQL types the SELECT
  int32 typmod;
  Oid collation;
  bool is_key;       ///< a GROUP BY expression
  int index;         ///< key index or aggregate index in the engine plan; -1 for an expression
  SqlAgg agg;        ///< aggregates only
  Oid input_type;    ///< aggregates over a column: the column's SQL type
  Node* expr;        ///< an expression over the group row (see ViewDesc), else NULL
};

constexpr int kGuardAll = -2;
constexpr int kGuardWhere = -1;
constexpr int kGuardFilters = 0;

/// A translated continuous view. Allocated in the caller's memory context;
/// `plan` is a C++ object deleted when that context is reset or deleted, so an
/// error raised halfway through translation leaks nothing.
struct ViewDesc {
  Oid stream;            ///< the stream's foreign table
  int ncolumns;
  ViewColumn* columns;
  int nkeys;
  int* key_column;       ///< result column of each engine key
  int naggs;
  int* agg_column;       ///< result column of each engine aggregate; -1 if only expressions use it
  Oid* agg_type;         ///< result type of each engine aggregate (the Aggref's)
  // Select-list expressions over aggregates and keys (round(avg(x), 2)) and
  // HAVING are expressions over the "group row": attribute k + 1 is key k,
  // attribute nkeys + a + 1 is aggregate a (Vars of varno 1), evaluated by
  // the executor for every row written (flush.cpp).
  Node* having;          ///< HAVING over the group row, or NULL
  // Computed columns (pg/computed.h): expressions over the stream's columns
  // the engine reads as columns stream_columns + i; column stream_columns +
  // ncomputed is 1 for rows whose expressions all evaluated (the plan's
  // filter requires it).
  int stream_columns;    ///< the stream's number of columns
  int ncomputed;
  Node** computed;       ///< planned expressions (Vars of varno 1 are stream columns)
  /// Rows each computed column is evaluated for, as PostgreSQL would evaluate
  /// it: kGuardAll (WHERE reads it), kGuardWhere (rows that pass WHERE: keys,
  /// FILTER clauses, arguments of aggregates without FILTER) or
  /// kGuardFilters (rows that pass WHERE and the FILTER of one of the
  /// aggregates in computed_aggs whose argument it is).
  int* computed_guard;
  uint64* computed_aggs;  ///< kGuardFilters: bit a for aggregate a
  /// The WHERE clause as the plan evaluates it (inside plan->filter, beside
  /// the validity test), or NULL; set when there are computed columns.
  const velostream::engine::Predicate* where;
  bool has_exprs;        ///< some column is an expression
  void* compiled;        ///< flush.cpp's compiled expressions, built on first use
  velostream::engine::ViewPlan* plan;
};

/// Validates and translates `query`. Raises ERROR (FEATURE_NOT_SUPPORTED,
/// WRONG_OBJECT_TYPE, ...) naming the first construct the engine cannot run.
ViewDesc* velostream_translate_query(Query* query);

/// A group column as it appears in the view's unique index and ON CONFLICT
/// target: text keys compare under COLLATE "C" there (byte order, far cheaper
/// than a locale's, and equality is the same under deterministic collations).
/// Returns a palloc'd string.
char* velostream_key_index_expr(const char* quoted_name, Oid type);

// SQL type <-> engine mapping: pg/types.h.

#include "pg/computed.h"

#include "pg/native_expr.h"
#include "pg/types.h"
#include "pg/velostream.h"

namespace eng = velostream::engine;

bool velostream_native_expressions = true;

namespace {

// Per-batch scratch of the native path (C++ objects: freed with the context).
struct Scratch {
  eng::ExprEvaluator evaluator;
  std::vector<eng::ExprError> errors;
  std::vector<uint8_t> active;   // rows the current phase evaluates
  std::vector<uint8_t> where;    // rows that pass WHERE (and are valid)
  std::vector<uint8_t> truth;
  std::deque<std::vector<uint8_t>> predicate_scratch;
  std::vector<uint64> sets;      // aggregate sets of the filtered-argument phases done
};

void delete_scratch(void* arg) { delete static_cast<Scratch*>(arg); }

}  // namespace

struct ComputedColumns {
  const ViewDesc* d;
  int n;                  // computed columns
  int base;               // index of the first (the stream's column count)
  const eng::ExprNode** native;  // [n]: the native form, or NULL (the executor's)
  ExprState** states;     // [n]: the executor's, for the others
  Oid* types;             // [n] SQL result types
  eng::Type* storage;     // [n]
  int nread;              // stream columns the executor's expressions read
  int* read;              // their indexes (0-based)
  bool* reads;            // [stream columns]: read by any computed column
  Oid* stream_types;      // SQL type of every stream column
  TupleTableSlot* slot;   // the stream row
  ExprContext* econtext;  // per-row memory, reset per row
  Scratch* scratch;
};

ComputedColumns* velostream_compile_computed(const ViewDesc* d, const Oid* stream_types) {
  if (d->ncomputed == 0) return nullptr;
  ComputedColumns* c = (ComputedColumns*)palloc0(sizeof(ComputedColumns));
  c->d = d;
  c->n = d->ncomputed;
  c->base = d->stream_columns;
  c->native = (const eng::ExprNode**)palloc0(sizeof(eng::ExprNode*) * c->n);
  c->states = (ExprState**)palloc0(sizeof(ExprState*) * c->n);
  c->types = (Oid*)palloc0(sizeof(Oid) * c->n);
  c->storage = (eng::Type*)palloc0(sizeof(eng::Type) * c->n);
  c->stream_types = (Oid*)palloc0(sizeof(Oid) * (d->stream_columns + 1));
  memcpy(c->stream_types, stream_types, sizeof(Oid) * d->stream_columns);
  c->reads = (bool*)palloc0(sizeof(bool) * (d->stream_columns + 1));
  bool* executor_reads = (bool*)palloc0(sizeof(bool) * (d->stream_columns + 1));
  for (int i = 0; i < c->n; ++i) {
    c->types[i] = exprType(d->computed[i]);
    if (!velostream_engine_type(c->types[i], &c->storage[i]))
      elog(ERROR, "velostream: a computed column of type %s", format_type_be(c->types[i]));
    c->native[i] = velostream_native_expressions ? velostream_native_expr(d->computed[i], stream_types) : nullptr;
    if (c->native[i] == nullptr) c->states[i] = ExecInitExpr((Expr*)copyObjectImpl(d->computed[i]), nullptr);
    List* vars = pull_var_clause(d->computed[i], 0);
    ListCell* lc;
    foreach (lc, vars) {
      int k = ((Var*)lfirst(lc))->varattno - 1;
      c->reads[k] = true;
      if (c->native[i] == nullptr) executor_reads[k] = true;
    }
  }
  c->read = (int*)palloc0(sizeof(int) * (d->stream_columns + 1));
  for (int k = 0; k < d->stream_columns; ++k)
    if (executor_reads[k]) c->read[c->nread++] = k;
  TupleDesc td = CreateTemplateTupleDesc(d->stream_columns);
  for (int k = 0; k < d->stream_columns; ++k)
    TupleDescInitEntry(td, (AttrNumber)(k + 1), nullptr, stream_types[k], -1, 0);
  c->slot = MakeSingleTupleTableSlot(td, &TTSOpsVirtual);
  c->econtext = CreateStandaloneExprContext();
  c->econtext->ecxt_scantuple = c->slot;
  c->scratch = new Scratch();
  velostream_on_context_reset(CurrentMemoryContext, delete_scratch, c->scratch);
  return c;
}

namespace {

using ErrorFn = void (*)(const eng::RecordBatch&, size_t, const char*, void*);

// Whether computed column i is evaluated in the phase of (guard, aggs).
bool in_phase(const ComputedColumns* c, int i, int guard, uint64 aggs) {
  return c->d->computed_guard[i] == guard && (guard != kGuardFilters || c->d->computed_aggs[i] == aggs);
}

// Evaluates the executor's columns of guard `guard` for the active rows
// [*next, rows) until one raises; *next is then that row. No C++ objects in
// this frame: PostgreSQL errors unwind through it.
void compute_rows(ComputedColumns* c, eng::RecordBatch* b, size_t rows, int guard, uint64 aggs,
                  const uint8_t* active, volatile size_t* next, bool* unfit) {
  TupleTableSlot* slot = c->slot;
  eng::Column* valid = &b->columns[c->base + c->n];
  for (size_t r = *next; r < rows; r = ++*next) {
    if (!active[r] || valid->i64[r] == 0) continue;
    ResetExprContext(c->econtext);
    MemoryContext old = MemoryContextSwitchTo(c->econtext->ecxt_per_tuple_memory);
    ExecClearTuple(slot);
    for (int j = 0; j < c->nread; ++j) {
      int k = c->read[j];
      slot->tts_values[k] = velostream_column_datum(b->columns[k], r, c->stream_types[k], &slot->tts_isnull[k]);
    }
    for (int k = 0; k < c->d->stream_columns; ++k)
      if (!b->columns[k].used) slot->tts_isnull[k] = true;
    ExecStoreVirtualTuple(slot);
    bool ok = true;
    for (int i = 0; i < c->n && ok; ++i) {
      if (c->native[i] != nullptr || !in_phase(c, i, guard, aggs)) continue;
      bool isnull;
      Datum v = ExecEvalExpr(c->states[i], c->econtext, &isnull);
      ok = velostream_datum_to_column(v, isnull, c->types[i], &b->columns[c->base + i], r, &b->arena);
    }
    MemoryContextSwitchTo(old);
    if (!ok) {
      valid->i64[r] = 0;
      *unfit = true;
      return;
    }
  }
}

// The executor's columns of `guard` for the active rows, each row whose
// evaluation raises passed to on_error and marked invalid. Runs them in
// subtransactions (one for the rows, another after each failing row).
void compute_executor(ComputedColumns* c, eng::RecordBatch* b, size_t rows, int guard, uint64 aggs,
                      const uint8_t* active, ErrorFn on_error, void* arg) {
  // volatile: read in PG_CATCH after compute_rows advanced it (a register
  // copy would be restored by the longjmp to its value before).
  volatile size_t next = 0;
  while (next < rows) {
    MemoryContext cxt = CurrentMemoryContext;
    ResourceOwner owner = CurrentResourceOwner;
    BeginInternalSubTransaction(nullptr);
    MemoryContextSwitchTo(cxt);
    char message[512] = "";
    PG_TRY();
    {
      bool unfit = false;
      compute_rows(c, b, rows, guard, aggs, active, &next, &unfit);
      if (unfit) strlcpy(message, eng::expr_error_message(eng::ExprError::kNumericTooLong), sizeof(message));
      ReleaseCurrentSubTransaction();
      MemoryContextSwitchTo(cxt);
      CurrentResourceOwner = owner;
    }
    PG_CATCH();
    {
      MemoryContextSwitchTo(cxt);
      ErrorData* e = CopyErrorData();
      FlushErrorState();
      RollbackAndReleaseCurrentSubTransaction();
      MemoryContextSwitchTo(cxt);
      CurrentResourceOwner = owner;
      strlcpy(message, e->message ? e->message : "error", sizeof(message));
      FreeErrorData(e);
      eng::Column& valid = b->columns[c->base + c->n];
      valid.i64[next] = 0;
    }
    PG_END_TRY();
    if (message[0] != '\0' && next < rows) {
      on_error(*b, next, message, arg);
      ++next;
    }
  }
}

// One phase: every computed column of `guard`, for the rows in
// scratch->active that are still valid.
void compute_phase(ComputedColumns* c, eng::RecordBatch* b, size_t rows, int guard, uint64 aggs, ErrorFn on_error,
                   void* arg) {
  Scratch* s = c->scratch;
  eng::Column& valid = b->columns[c->base + c->n];
  bool executor = false;
  for (int i = 0; i < c->n; ++i) {
    if (!in_phase(c, i, guard, aggs)) continue;
    if (c->native[i] == nullptr) {
      executor = true;
      continue;
    }
    for (size_t r = 0; r < rows; ++r) s->active[r] = s->active[r] && valid.i64[r] != 0;
    std::fill(s->errors.begin(), s->errors.end(), eng::ExprError::kNone);
    eng::Column& out = b->columns[c->base + i];
    s->evaluator.evaluate(*c->native[i], b, rows, s->active.data(), &out, &s->errors);
    out.type = c->storage[i];  // (the same storage; float4 results stay doubles)
    for (size_t r = 0; r < rows; ++r) {
      if (s->errors[r] == eng::ExprError::kNone) continue;
      valid.i64[r] = 0;
      on_error(*b, r, eng::expr_error_message(s->errors[r]), arg);
    }
  }
  if (executor) compute_executor(c, b, rows, guard, aggs, s->active.data(), on_error, arg);
}

}  // namespace

void velostream_compute(ComputedColumns* c, eng::RecordBatch* b, size_t rows, ErrorFn on_error, void* arg) {
  Scratch* s = c->scratch;
  for (int i = 0; i <= c->n; ++i) {
    eng::Column& col = b->columns[c->base + i];
    col.type = i < c->n ? c->storage[i] : eng::Type::kInt64;
    col.used = true;
    col.resize(rows);
    std::fill(col.null.begin(), col.null.end(), i < c->n ? 1 : 0);  // rows a phase skips are NULL
  }
  eng::Column& valid = b->columns[c->base + c->n];
  std::fill(valid.i64.begin(), valid.i64.end(), 1);
  s->errors.assign(rows, eng::ExprError::kNone);
  s->active.assign(rows, 1);
  // 1. What WHERE reads: every row.
  compute_phase(c, b, rows, kGuardAll, 0, on_error, arg);
  // 2. Keys, FILTER clauses, arguments: the rows that pass WHERE.
  bool more = false;
  for (int i = 0; i < c->n; ++i) more |= c->d->computed_guard[i] != kGuardAll;
  if (!more) return;
  s->where.assign(rows, 1);
  if (c->d->where != nullptr) {
    eng::evaluate(*c->d->where, *b, &s->truth, &s->predicate_scratch);
    for (size_t r = 0; r < rows; ++r) s->where[r] = s->truth[r] == eng::kTrue;
  }
  for (size_t r = 0; r < rows; ++r) s->active[r] = s->where[r] && valid.i64[r] != 0;
  compute_phase(c, b, rows, kGuardWhere, 0, on_error, arg);
  // 3. Arguments of aggregates with FILTER: the rows that pass WHERE and the
  // FILTER of one of the aggregates reading them (nodeAgg evaluates an
  // aggregate's arguments only for the rows its FILTER lets through).
  const std::vector<eng::AggSpec>& aggs = c->d->plan->aggs;
  s->sets.clear();
  for (int i = 0; i < c->n; ++i) {
    if (c->d->computed_guard[i] != kGuardFilters) continue;
    uint64 set = c->d->computed_aggs[i];
    if (std::find(s->sets.begin(), s->sets.end(), set) != s->sets.end()) continue;
    s->sets.push_back(set);
    std::fill(s->active.begin(), s->active.end(), 0);
    for (size_t a = 0; a < aggs.size() && a < 64; ++a) {
      if (!(set & (UINT64CONST(1) << a))) continue;
      if (!aggs[a].filter) {
        std::copy(s->where.begin(), s->where.end(), s->active.begin());
        break;
      }
      eng::evaluate(*aggs[a].filter, *b, &s->truth, &s->predicate_scratch);
      for (size_t r = 0; r < rows; ++r) s->active[r] |= s->where[r] && s->truth[r] == eng::kTrue;
    }
    compute_phase(c, b, rows, kGuardFilters, set, on_error, arg);
  }
}

void velostream_computed_mark_used(const ComputedColumns* c, std::vector<uint8_t>* used) {
  for (int k = 0; k < c->d->stream_columns; ++k)
    if (c->reads[k]) (*used)[k] = 1;
}

#include "pg/computed.h"

#include "pg/types.h"

namespace eng = velostream::engine;

struct ComputedColumns {
  const ViewDesc* d;
  int n;                  // computed columns
  int base;               // index of the first (the stream's column count)
  ExprState** states;     // [n]
  Oid* types;             // [n] SQL result types
  eng::Type* storage;     // [n]
  int nread;              // stream columns the expressions read
  int* read;              // their indexes (0-based)
  Oid* stream_types;      // SQL type of every stream column
  TupleTableSlot* slot;   // the stream row
  ExprContext* econtext;  // per-row memory, reset per row
};

ComputedColumns* velostream_compile_computed(const ViewDesc* d, const Oid* stream_types) {
  if (d->ncomputed == 0) return nullptr;
  ComputedColumns* c = (ComputedColumns*)palloc0(sizeof(ComputedColumns));
  c->d = d;
  c->n = d->ncomputed;
  c->base = d->stream_columns;
  c->states = (ExprState**)palloc0(sizeof(ExprState*) * c->n);
  c->types = (Oid*)palloc0(sizeof(Oid) * c->n);
  c->storage = (eng::Type*)palloc0(sizeof(eng::Type) * c->n);
  c->stream_types = (Oid*)palloc0(sizeof(Oid) * (d->stream_columns + 1));
  memcpy(c->stream_types, stream_types, sizeof(Oid) * d->stream_columns);
  bool* reads = (bool*)palloc0(sizeof(bool) * (d->stream_columns + 1));
  for (int i = 0; i < c->n; ++i) {
    c->states[i] = ExecInitExpr((Expr*)copyObjectImpl(d->computed[i]), nullptr);
    c->types[i] = exprType(d->computed[i]);
    if (!velostream_engine_type(c->types[i], &c->storage[i]))
      elog(ERROR, "velostream: a computed column of type %s", format_type_be(c->types[i]));
    List* vars = pull_var_clause(d->computed[i], 0);
    ListCell* lc;
    foreach (lc, vars) reads[((Var*)lfirst(lc))->varattno - 1] = true;
  }
  c->read = (int*)palloc0(sizeof(int) * (d->stream_columns + 1));
  for (int k = 0; k < d->stream_columns; ++k)
    if (reads[k]) c->read[c->nread++] = k;
  TupleDesc td = CreateTemplateTupleDesc(d->stream_columns);
  for (int k = 0; k < d->stream_columns; ++k)
    TupleDescInitEntry(td, (AttrNumber)(k + 1), nullptr, stream_types[k], -1, 0);
  c->slot = MakeSingleTupleTableSlot(td, &TTSOpsVirtual);
  c->econtext = CreateStandaloneExprContext();
  c->econtext->ecxt_scantuple = c->slot;
  return c;
}

namespace {

// Evaluates rows [*next, rows) until one raises; *next is then that row.
// No C++ objects in this frame: PostgreSQL errors unwind through it.
void compute_rows(ComputedColumns* c, eng::RecordBatch* b, size_t rows, size_t* next, bool* unfit) {
  TupleTableSlot* slot = c->slot;
  eng::Column* valid = &b->columns[c->base + c->n];
  for (size_t r = *next; r < rows; r = ++*next) {
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
      bool isnull;
      Datum v = ExecEvalExpr(c->states[i], c->econtext, &isnull);
      ok = velostream_datum_to_column(v, isnull, c->types[i], &b->columns[c->base + i], r, &b->arena);
    }
    MemoryContextSwitchTo(old);
    valid->i64[r] = ok ? 1 : 0;
    valid->null[r] = 0;
    if (!ok) {
      *unfit = true;
      return;
    }
  }
}

}  // namespace

void velostream_compute(ComputedColumns* c, eng::RecordBatch* b, size_t rows,
                        void (*on_error)(const eng::RecordBatch&, size_t, const char*, void*), void* arg) {
  for (int i = 0; i <= c->n; ++i) {
    eng::Column& col = b->columns[c->base + i];
    col.type = i < c->n ? c->storage[i] : eng::Type::kInt64;
    col.used = true;
    col.resize(rows);
  }
  size_t next = 0;
  while (next < rows) {
    MemoryContext cxt = CurrentMemoryContext;
    ResourceOwner owner = CurrentResourceOwner;
    BeginInternalSubTransaction(nullptr);
    MemoryContextSwitchTo(cxt);
    char message[512] = "";
    PG_TRY();
    {
      bool unfit = false;
      compute_rows(c, b, rows, &next, &unfit);
      if (unfit) strlcpy(message, "a computed value does not fit the engine (numeric beyond 38 digits)", sizeof(message));
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
      valid.null[next] = 0;
    }
    PG_END_TRY();
    if (message[0] != '\0' && next < rows) {
      on_error(*b, next, message, arg);
      ++next;
    }
  }
}

void velostream_computed_mark_used(const ComputedColumns* c, std::vector<uint8_t>* used) {
  for (int j = 0; j < c->nread; ++j) (*used)[c->read[j]] = 1;
}

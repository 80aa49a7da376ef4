#include "pg/flush.h"

#include <string>
#include <vector>

#include "pg/types.h"
#include "pg/velostream.h"

namespace eng = velostream::engine;

namespace {

const char* qname(Oid relid) {
  return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)), get_rel_name(relid));
}

// A value of SQL type `type` from its engine form.
Datum to_datum(Oid type, int64_t i, double f, const eng::Decimal& d, std::string_view s) {
  return velostream_value_datum(type, i, f, d, s.data(), s.size());
}

// A one-dimensional array of n values of type `elem` (n may be 0).
Datum make_array(Oid elem, Datum* values, bool* nulls, size_t n) {
  int16 typlen;
  bool typbyval;
  char typalign;
  get_typlenbyvalalign(elem, &typlen, &typbyval, &typalign);
  int dims[1] = {(int)n}, lbs[1] = {1};
  return PointerGetDatum(construct_md_array(values, nulls, 1, dims, lbs, elem, typlen, typbyval, typalign));
}

}  // namespace

ViewUpsert* velostream_prepare_upsert(const ViewDesc* d, Oid view_oid, Oid state_oid, bool owned) {
  ViewUpsert* u = (ViewUpsert*)palloc0(sizeof(ViewUpsert));
  u->view = view_oid;
  const char* view = qname(view_oid);
  // Every write of final values: one array per view column, in column order.
  u->nparams = d->ncolumns;
  u->elem_types = (Oid*)palloc0(sizeof(Oid) * (d->ncolumns + 1));
  Oid* argtypes = (Oid*)palloc0(sizeof(Oid) * (d->ncolumns + 1));
  StringInfoData cols, unnest, conflict, sets, sql;
  initStringInfo(&cols);
  initStringInfo(&unnest);
  initStringInfo(&conflict);
  initStringInfo(&sets);
  initStringInfo(&sql);
  // A column of a type without an array type (an array itself, e.g.
  // max(anyarray)) travels as text and is read back by its input function.
  StringInfoData select;
  initStringInfo(&select);
  for (int i = 0; i < d->ncolumns; ++i) {
    const ViewColumn& c = d->columns[i];
    argtypes[i] = get_array_type(c.type);
    u->elem_types[i] = OidIsValid(argtypes[i]) ? c.type : TEXTOID;
    if (!OidIsValid(argtypes[i])) argtypes[i] = TEXTARRAYOID;
    appendStringInfo(&cols, "%s%s", i ? ", " : "", quote_identifier(c.name));
    appendStringInfo(&unnest, "%s$%d", i ? ", " : "", i + 1);
    if (u->elem_types[i] == c.type) appendStringInfo(&select, "%su.c%d", i ? ", " : "", i);
    else appendStringInfo(&select, "%su.c%d::%s", i ? ", " : "", i, format_type_with_typemod(c.type, c.typmod));
  }
  {
    StringInfoData alias;
    initStringInfo(&alias);
    for (int i = 0; i < d->ncolumns; ++i) appendStringInfo(&alias, "%sc%d", i ? ", " : "", i);
    char* args = pstrdup(unnest.data);
    resetStringInfo(&unnest);
    appendStringInfo(&unnest, "SELECT %s FROM unnest(%s) AS u(%s)", select.data, args, alias.data);
  }
  for (int k = 0; k < d->nkeys; ++k) {
    const ViewColumn& c = d->columns[d->key_column[k]];
    appendStringInfo(&conflict, "%s%s", k ? ", " : "", velostream_key_index_expr(quote_identifier(c.name), c.type));
  }
  int nsets = 0;
  for (int i = 0; i < d->ncolumns; ++i) {
    if (d->columns[i].is_key) continue;
    const char* col = quote_identifier(d->columns[i].name);
    appendStringInfo(&sets, "%s%s = excluded.%s", nsets++ ? ", " : "", col, col);
  }
  auto prepare = [&](const char* text, int nargs, Oid* types) {
    SPIPlanPtr plan = SPI_prepare(text, nargs, types);
    if (plan == NULL)
      elog(ERROR, "velostream: could not prepare the writes of \"%s\" (%s): %s", view,
           SPI_result_code_string(SPI_result), text);
    SPI_keepplan(plan);
    return plan;
  };
  // New groups of an owned view: a plain INSERT. Others: ON CONFLICT ... SET
  // col = excluded.col (which also brings back a row somebody deleted).
  appendStringInfo(&sql, "INSERT INTO %s AS t (%s) %s", view, cols.data, unnest.data);
  if (owned) u->insert_plan = prepare(sql.data, d->ncolumns, argtypes);
  appendStringInfo(&sql, " ON CONFLICT (%s) DO ", d->nkeys ? conflict.data : "(true)");
  if (nsets == 0) appendStringInfoString(&sql, "NOTHING");
  else appendStringInfo(&sql, "UPDATE SET %s", sets.data);
  u->set_plan = prepare(sql.data, d->ncolumns, argtypes);
  if (d->having != nullptr || d->plan->session.key_part >= 0) {
    // Groups that fail HAVING, and sessions merged into another or re-keyed
    // (velostream_delete_owned_keys), leave the table: DELETE by key, with
    // conditions the unique index on the keys serves (= under its collation;
    // IS NULL).
    Oid* key_types = (Oid*)palloc0(sizeof(Oid) * (d->nkeys + 1));
    Oid* elem_types = (Oid*)palloc0(sizeof(Oid) * (d->nkeys + 1));
    char** key_exprs = (char**)palloc0(sizeof(char*) * (d->nkeys + 1));
    for (int k = 0; k < d->nkeys; ++k) {
      const ViewColumn& c = d->columns[d->key_column[k]];
      key_types[k] = get_array_type(c.type);
      elem_types[k] = c.type;
      key_exprs[k] = velostream_key_index_expr(psprintf("t.%s", quote_identifier(c.name)), c.type);
    }
    // DELETE of the rows whose keys are in the arrays $1.. (one per key),
    // each key compared with `cmp`.
    auto unnest_delete = [&](const char* cmp) {
      resetStringInfo(&sql);
      appendStringInfo(&sql, "DELETE FROM %s AS t", view);
      for (int k = 0; k < d->nkeys; ++k) appendStringInfo(&sql, "%s$%d", k ? ", " : " USING unnest(", k + 1);
      if (d->nkeys > 0) appendStringInfoString(&sql, ") AS u(");
      for (int k = 0; k < d->nkeys; ++k) appendStringInfo(&sql, "%sk%d", k ? ", " : "", k);
      if (d->nkeys > 0) appendStringInfoString(&sql, ") WHERE ");
      for (int k = 0; k < d->nkeys; ++k) appendStringInfo(&sql, "%s%s %s u.k%d", k ? " AND " : "", key_exprs[k], cmp, k);
      return prepare(sql.data, d->nkeys, key_types);
    };
    // Keys without NULLs: one statement for all of them.
    u->delete_plan = unnest_delete("=");
    // Keys with NULLs: one row at a time, a statement per pattern of NULLs.
    if (d->nkeys <= 4) {
      int masks = 1 << d->nkeys;
      // (in u's context: SPI_prepare left CurrentMemoryContext in SPI's)
      u->delete_mask_plans = (SPIPlanPtr*)MemoryContextAllocZero(GetMemoryChunkContext(u), sizeof(SPIPlanPtr) * masks);
      for (int m = 1; m < masks; ++m) {
        resetStringInfo(&sql);
        appendStringInfo(&sql, "DELETE FROM %s AS t WHERE ", view);
        for (int k = 0; k < d->nkeys; ++k) {
          if (m & (1 << k)) appendStringInfo(&sql, "%s%s IS NULL", k ? " AND " : "", key_exprs[k]);
          else appendStringInfo(&sql, "%s%s = $%d", k ? " AND " : "", key_exprs[k], k + 1);
        }
        u->delete_mask_plans[m] = prepare(sql.data, d->nkeys, elem_types);
      }
    } else {
      u->delete_null_plan = unnest_delete("IS NOT DISTINCT FROM");
    }
  }
  if (owned || d->naggs == 0) return u;

  // Shared groups: merge the delta's partial states into the state table
  // (keys k0.., states s) with the aggregates' own combine functions
  // (velostream._merge_states), returning the merged states to finalise.
  StringInfoData statecols, stateconflict;
  initStringInfo(&statecols);
  initStringInfo(&stateconflict);
  resetStringInfo(&unnest);
  appendStringInfoString(&unnest, "SELECT * FROM unnest(");
  Oid* merge_types = (Oid*)palloc0(sizeof(Oid) * (d->nkeys + 1));
  for (int k = 0; k < d->nkeys; ++k) {
    const ViewColumn& c = d->columns[d->key_column[k]];
    merge_types[k] = get_array_type(c.type);
    appendStringInfo(&statecols, "k%d, ", k);
    appendStringInfo(&unnest, "$%d, ", k + 1);
    appendStringInfo(&stateconflict, "%s%s", k ? ", " : "", velostream_key_index_expr(psprintf("k%d", k), c.type));
  }
  merge_types[d->nkeys] = BYTEAARRAYOID;
  appendStringInfoString(&statecols, "s");
  appendStringInfo(&unnest, "$%d)", d->nkeys + 1);
  resetStringInfo(&sql);
  appendStringInfo(&sql,
                   "INSERT INTO %s AS t (%s) %s ON CONFLICT (%s) DO UPDATE SET s = velostream._merge_states(%u, t.s, "
                   "excluded.s) RETURNING %s",
                   qname(state_oid), statecols.data, unnest.data, d->nkeys ? stateconflict.data : "(true)", view_oid,
                   statecols.data);
  u->plan = prepare(sql.data, d->nkeys + 1, merge_types);
  return u;
}

namespace {

// A view's select-list expressions and HAVING, compiled over its group row
// (ViewDesc): a virtual slot with the keys, then the aggregates' results.
struct CompiledExprs {
  TupleTableSlot* slot;
  ExprContext* econtext;
  ExprState** columns;  // per view column; NULL unless an expression
  ExprState* having;
};

CompiledExprs* compiled_exprs(const ViewDesc* d) {
  if (d->compiled != nullptr) return static_cast<CompiledExprs*>(d->compiled);
  MemoryContext old = MemoryContextSwitchTo(GetMemoryChunkContext((void*)d));
  CompiledExprs* c = (CompiledExprs*)palloc0(sizeof(CompiledExprs));
  TupleDesc td = CreateTemplateTupleDesc(d->nkeys + d->naggs);
  for (int k = 0; k < d->nkeys; ++k) {
    const ViewColumn& col = d->columns[d->key_column[k]];
    TupleDescInitEntry(td, (AttrNumber)(k + 1), nullptr, col.type, col.typmod, 0);
    TupleDescInitEntryCollation(td, (AttrNumber)(k + 1), col.collation);
  }
  for (int a = 0; a < d->naggs; ++a)
    TupleDescInitEntry(td, (AttrNumber)(d->nkeys + a + 1), nullptr, d->agg_type[a], -1, 0);
  c->slot = MakeSingleTupleTableSlot(td, &TTSOpsVirtual);
  c->econtext = CreateStandaloneExprContext();
  c->econtext->ecxt_scantuple = c->slot;
  c->columns = (ExprState**)palloc0(sizeof(ExprState*) * (d->ncolumns + 1));
  for (int i = 0; i < d->ncolumns; ++i)
    if (d->columns[i].expr != nullptr)
      c->columns[i] = ExecInitExpr(expression_planner((Expr*)copyObjectImpl(d->columns[i].expr)), nullptr);
  if (d->having != nullptr) c->having = ExecInitExpr(expression_planner((Expr*)copyObjectImpl(d->having)), nullptr);
  MemoryContextSwitchTo(old);
  const_cast<ViewDesc*>(d)->compiled = c;
  return c;
}

// The view's row of a group from its keys kv/kn[nkeys] and aggregate
// results av/an[naggs]: keys and aggregates as they are, expressions
// evaluated by the executor (in the current memory context). Returns false
// if the group fails HAVING (its row must not be in the table).
bool output_row(const ViewDesc* d, const Datum* kv, const bool* kn, const Datum* av, const bool* an, Datum* values,
                bool* nulls) {
  for (int i = 0; i < d->ncolumns; ++i) {
    const ViewColumn& c = d->columns[i];
    if (c.expr != nullptr) continue;
    values[i] = c.is_key ? kv[c.index] : av[c.index];
    nulls[i] = c.is_key ? kn[c.index] : an[c.index];
  }
  if (!d->has_exprs && d->having == nullptr) return true;
  CompiledExprs* x = compiled_exprs(d);
  TupleTableSlot* slot = x->slot;
  ExecClearTuple(slot);
  for (int k = 0; k < d->nkeys; ++k) {
    slot->tts_values[k] = kv[k];
    slot->tts_isnull[k] = kn[k];
  }
  for (int a = 0; a < d->naggs; ++a) {
    slot->tts_values[d->nkeys + a] = av[a];
    slot->tts_isnull[d->nkeys + a] = an[a];
  }
  ExecStoreVirtualTuple(slot);
  for (int i = 0; i < d->ncolumns; ++i)
    if (x->columns[i] != nullptr) values[i] = ExecEvalExpr(x->columns[i], x->econtext, &nulls[i]);
  if (x->having == nullptr) return true;
  bool isnull;
  Datum pass = ExecEvalExpr(x->having, x->econtext, &isnull);
  return !isnull && DatumGetBool(pass);
}

// The final values of group `g` of `store`, one per view column: keys as
// they are, aggregates finalised by their AggregateFunction, expressions
// over them. Returns false if the group fails HAVING. Raises the aggregate's
// error.
bool final_row(const ViewDesc* d, eng::ViewAggregator& store, uint32_t g, Datum* values, bool* nulls) {
  Datum* kv = (Datum*)palloc(sizeof(Datum) * (d->nkeys + d->naggs + 1));
  bool* kn = (bool*)palloc(sizeof(bool) * (d->nkeys + d->naggs + 1));
  Datum* av = kv + d->nkeys;
  bool* an = kn + d->nkeys;
  for (int k = 0; k < d->nkeys; ++k) {
    const ViewColumn& c = d->columns[d->key_column[k]];
    eng::KeyValue v = store.key(g, k);
    kn[k] = v.is_null;
    kv[k] = v.is_null ? (Datum)0 : to_datum(c.type, v.i, v.f, v.d, v.s);
  }
  for (int a = 0; a < d->naggs; ++a) {
    eng::Value v;
    if (!store.finalize(g, a, &v))
      ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION), errmsg("%s", store.error().c_str())));
    av[a] = velostream_final_datum(v, d->agg_type[a], &an[a]);
  }
  return output_row(d, kv, kn, av, an, values, nulls);
}

// Writes new groups straight into the view's heap and indexes, as COPY does
// (table_multi_insert, then ExecInsertIndexTuples per row): no SQL executor
// per row. Returns false, having written nothing, when the table needs the
// executor: triggers, row-level security, constraints, columns that no longer
// match the view's, or no INSERT right for the current (owner) role. A key
// that exists raises unique_violation, as the INSERT would.
bool insert_direct(const ViewDesc* d, Oid view_oid, eng::ViewAggregator& store, const uint32_t* groups,
                   size_t n) {
  Relation rel = table_open(view_oid, RowExclusiveLock);
  TupleDesc td = RelationGetDescr(rel);
  TupleConstr* constr = td->constr;
  bool ok = rel->rd_rel->relkind == RELKIND_RELATION && rel->trigdesc == nullptr && !rel->rd_rel->relrowsecurity &&
            td->natts == d->ncolumns &&
            (constr == nullptr || (constr->num_check == 0 && !constr->has_not_null && !constr->has_generated_stored)) &&
            pg_class_aclcheck(view_oid, GetUserId(), ACL_INSERT) == ACLCHECK_OK;
  for (int i = 0; ok && i < td->natts; ++i) {
    Form_pg_attribute att = TupleDescAttr(td, i);
    ok = !att->attisdropped && att->atttypid == d->columns[i].type;
  }
  if (!ok) {
    table_close(rel, NoLock);
    return false;
  }
  EState* estate = CreateExecutorState();
  ResultRelInfo* rri = makeNode(ResultRelInfo);
  InitResultRelInfo(rri, rel, 1, nullptr, 0);
  ExecOpenIndices(rri, false);
  const size_t kBatch = 1000;
  int nslots = (int)(n < kBatch ? n : kBatch);
  TupleTableSlot** slots = (TupleTableSlot**)palloc(sizeof(TupleTableSlot*) * nslots);
  for (int j = 0; j < nslots; ++j) slots[j] = MakeSingleTupleTableSlot(td, table_slot_callbacks(rel));
  BulkInsertState bistate = GetBulkInsertState();
  CommandId cid = GetCurrentCommandId(true);
  MemoryContext rows_cxt = AllocSetContextCreate(CurrentMemoryContext, "velostream new groups", ALLOCSET_DEFAULT_SIZES);
  for (size_t start = 0; start < n; start += kBatch) {
    int m = (int)(n - start < kBatch ? n - start : kBatch);
    MemoryContext old = MemoryContextSwitchTo(rows_cxt);
    for (int j = 0; j < m; ++j) {
      ExecClearTuple(slots[j]);
      final_row(d, store, groups[start + j], slots[j]->tts_values, slots[j]->tts_isnull);
      ExecStoreVirtualTuple(slots[j]);
    }
    table_multi_insert(rel, slots, m, cid, 0, bistate);
    for (int j = 0; j < m; ++j) list_free(ExecInsertIndexTuples(rri, slots[j], estate, false, false, nullptr, NIL));
    MemoryContextSwitchTo(old);
    ResetPerTupleExprContext(estate);
    MemoryContextReset(rows_cxt);
  }
  FreeBulkInsertState(bistate);
  for (int j = 0; j < nslots; ++j) ExecDropSingleTupleTableSlot(slots[j]);
  ExecCloseIndices(rri);
  FreeExecutorState(estate);
  MemoryContextDelete(rows_cxt);
  table_close(rel, NoLock);
  return true;
}

}  // namespace

namespace {


}  // namespace

namespace {

// The aggregator velostream._merge_states combines states with during a
// shared view's flush (set by velostream_upsert_delta around its upsert).
Oid merging_view = InvalidOid;
eng::ViewAggregator* merging = nullptr;

// C++ calls of the shared path, exceptions kept inside.
bool state_bytes(const eng::ViewAggregator& agg, uint32_t g, std::string* out) {
  try {
    out->clear();
    return agg.group_state_bytes(g, out);
  } catch (const std::exception&) {
    return false;
  }
}

bool finalize_bytes(eng::ViewAggregator& agg, const char* data, size_t len, eng::Value* out) {
  try {
    return agg.finalize_state_bytes(std::string_view(data, len), out);
  } catch (const std::exception&) {
    return false;
  }
}

bool merge_bytes(eng::ViewAggregator& agg, const char* a, size_t alen, const char* b, size_t blen,
                 std::string* out) {
  try {
    out->clear();
    return agg.merge_state_bytes(std::string_view(a, alen), std::string_view(b, blen), out);
  } catch (const std::exception&) {
    return false;
  }
}

bytea* to_bytea(const std::string& s) {
  bytea* b = (bytea*)palloc(VARHDRSZ + s.size());
  SET_VARSIZE(b, VARHDRSZ + s.size());
  memcpy(VARDATA(b), s.data(), s.size());
  return b;
}

void delete_string(void* arg) { delete static_cast<std::string*>(arg); }
void delete_values(void* arg) { delete static_cast<std::vector<eng::Value>*>(arg); }

// A std::string that lives until the current memory context is reset.
std::string* context_string() {
  std::string* s = new std::string();
  velostream_on_context_reset(CurrentMemoryContext, delete_string, s);
  return s;
}

}  // namespace

namespace {

// Rows to write, collected one at a time: one array per view column, and
// the keys of the groups that fail HAVING.
struct RowSink {
  const ViewDesc* d;
  size_t n, nhidden;
  Datum** cols;
  bool** colnulls;
  Datum** hidden;  // per key
  bool** hidden_nulls;
};

RowSink* new_sink(const ViewDesc* d, size_t cap) {
  RowSink* s = (RowSink*)palloc0(sizeof(RowSink));
  s->d = d;
  s->cols = (Datum**)palloc(sizeof(Datum*) * (d->ncolumns + 1));
  s->colnulls = (bool**)palloc(sizeof(bool*) * (d->ncolumns + 1));
  for (int i = 0; i < d->ncolumns; ++i) {
    s->cols[i] = (Datum*)palloc(sizeof(Datum) * (cap + 1));
    s->colnulls[i] = (bool*)palloc(sizeof(bool) * (cap + 1));
  }
  s->hidden = (Datum**)palloc(sizeof(Datum*) * (d->nkeys + 1));
  s->hidden_nulls = (bool**)palloc(sizeof(bool*) * (d->nkeys + 1));
  for (int k = 0; k < d->nkeys; ++k) {
    s->hidden[k] = (Datum*)palloc(sizeof(Datum) * (cap + 1));
    s->hidden_nulls[k] = (bool*)palloc(sizeof(bool) * (cap + 1));
  }
  return s;
}

// Adds a view row: to be written if `visible`, else its keys to be deleted.
void sink_add(RowSink* s, bool visible, const Datum* row, const bool* row_nulls) {
  const ViewDesc* d = s->d;
  if (visible) {
    for (int i = 0; i < d->ncolumns; ++i) {
      s->cols[i][s->n] = row[i];
      s->colnulls[i][s->n] = row_nulls[i];
    }
    s->n++;
  } else {
    for (int k = 0; k < d->nkeys; ++k) {
      s->hidden[k][s->nhidden] = row[d->key_column[k]];
      s->hidden_nulls[k][s->nhidden] = row_nulls[d->key_column[k]];
    }
    s->nhidden++;
  }
}

// Adds the row of keys kv/kn and aggregate results av/an.
void sink_row(RowSink* s, const Datum* kv, const bool* kn, const Datum* av, const bool* an, Datum* row,
              bool* row_nulls) {
  sink_add(s, output_row(s->d, kv, kn, av, an, row, row_nulls), row, row_nulls);
}

// Adds the final rows of groups[0..n) of `store` (owned views), to be written.
void sink_groups(RowSink* s, eng::ViewAggregator& store, const uint32_t* groups, size_t n, Datum* row,
                 bool* row_nulls) {
  for (size_t j = 0; j < n; ++j) {
    final_row(s->d, store, groups[j], row, row_nulls);
    sink_add(s, true, row, row_nulls);
  }
}

// Deletes the rows of the hidden groups (HAVING fails): those without NULL
// keys in one statement, the others one by one (delete_mask_plans), so that
// the table's unique index finds every row. Leaves param_nulls all ' '.
void delete_hidden(RowSink* s, const ViewUpsert* u, Datum* params, char* param_nulls) {
  const ViewDesc* d = s->d;
  const int nk = d->nkeys;
  // The rows with a NULL key copied out first, the others compacted in place.
  Datum* wkeys = (Datum*)palloc(sizeof(Datum) * (nk + 1) * s->nhidden);
  bool* wnulls = (bool*)palloc(sizeof(bool) * (nk + 1) * s->nhidden);
  size_t plain = 0, nwith = 0;
  for (size_t j = 0; j < s->nhidden; ++j) {
    bool any = false;
    for (int k = 0; k < nk; ++k) any |= s->hidden_nulls[k][j];
    for (int k = 0; k < nk; ++k) {
      if (any) {
        wkeys[nwith * nk + k] = s->hidden[k][j];
        wnulls[nwith * nk + k] = s->hidden_nulls[k][j];
      } else {
        s->hidden[k][plain] = s->hidden[k][j];
        s->hidden_nulls[k][plain] = false;
      }
    }
    if (any) ++nwith;
    else ++plain;
  }
  if (plain > 0) {
    for (int k = 0; k < nk; ++k)
      params[k] = make_array(d->columns[d->key_column[k]].type, s->hidden[k], s->hidden_nulls[k], plain);
    int rc = SPI_execute_plan(u->delete_plan, params, param_nulls, false, 0);
    if (rc != SPI_OK_DELETE) elog(ERROR, "velostream: deleting groups failed: %s", SPI_result_code_string(rc));
  }
  if (nwith == 0) return;
  if (u->delete_mask_plans != nullptr) {
    for (size_t i = 0; i < nwith; ++i) {
      int mask = 0;
      for (int k = 0; k < nk; ++k) {
        bool null = wnulls[i * nk + k];
        mask |= null ? 1 << k : 0;
        params[k] = null ? (Datum)0 : wkeys[i * nk + k];
        param_nulls[k] = null ? 'n' : ' ';
      }
      int rc = SPI_execute_plan(u->delete_mask_plans[mask], params, param_nulls, false, 0);
      if (rc != SPI_OK_DELETE) elog(ERROR, "velostream: deleting groups failed: %s", SPI_result_code_string(rc));
    }
    memset(param_nulls, ' ', nk);
    return;
  }
  for (int k = 0; k < nk; ++k) {  // many keys: one IS NOT DISTINCT FROM statement
    for (size_t i = 0; i < nwith; ++i) {
      s->hidden[k][i] = wkeys[i * nk + k];
      s->hidden_nulls[k][i] = wnulls[i * nk + k];
    }
    params[k] = make_array(d->columns[d->key_column[k]].type, s->hidden[k], s->hidden_nulls[k], nwith);
  }
  int rc = SPI_execute_plan(u->delete_null_plan, params, param_nulls, false, 0);
  if (rc != SPI_OK_DELETE) elog(ERROR, "velostream: deleting groups failed: %s", SPI_result_code_string(rc));
}

// Writes the collected rows with `plan` (insert_plan or set_plan) and
// deletes the rows of the hidden groups.
void sink_write(RowSink* s, const ViewUpsert* u, SPIPlanPtr plan) {
  const ViewDesc* d = s->d;
  Datum* params = (Datum*)palloc(sizeof(Datum) * (d->ncolumns + 1));
  char* param_nulls = (char*)palloc0(d->ncolumns + 1);
  memset(param_nulls, ' ', d->ncolumns);
  if (s->n > 0) {
    for (int i = 0; i < d->ncolumns; ++i) {
      if (u->elem_types[i] != d->columns[i].type) {  // as text (velostream_prepare_upsert)
        Oid out;
        bool varlena;
        getTypeOutputInfo(d->columns[i].type, &out, &varlena);
        for (size_t r = 0; r < s->n; ++r)
          if (!s->colnulls[i][r]) s->cols[i][r] = CStringGetTextDatum(OidOutputFunctionCall(out, s->cols[i][r]));
      }
      params[i] = make_array(u->elem_types[i], s->cols[i], s->colnulls[i], s->n);
    }
    int rc = SPI_execute_plan(plan, params, param_nulls, false, 0);
    if (rc != SPI_OK_INSERT) elog(ERROR, "velostream: writing the groups failed: %s", SPI_result_code_string(rc));
  }
  if (s->nhidden > 0) delete_hidden(s, u, params, param_nulls);
}

}  // namespace

uint64 velostream_upsert_delta(const ViewDesc* d, const ViewUpsert* u, const eng::ViewAggregator& delta,
                               eng::ViewAggregator& merger) {
  const size_t n = delta.group_count();
  if (n == 0) return 0;
  // Key order, copied out of the engine before any PostgreSQL call can raise.
  uint32_t* order = (uint32_t*)palloc(sizeof(uint32_t) * n);
  {
    std::vector<uint32_t> sorted = delta.groups_in_key_order();
    memcpy(order, sorted.data(), sizeof(uint32_t) * n);
  }
  Datum* row = (Datum*)palloc(sizeof(Datum) * (d->ncolumns + d->nkeys + d->naggs + 1));
  bool* row_nulls = (bool*)palloc(sizeof(bool) * (d->ncolumns + d->nkeys + d->naggs + 1));
  Datum* kv = row + d->ncolumns;
  bool* kn = row_nulls + d->ncolumns;
  Datum* av = kv + d->nkeys;
  bool* an = kn + d->nkeys;
  RowSink* sink = new_sink(d, n);
  if (d->naggs == 0) {  // only keys (and expressions over them)
    for (size_t j = 0; j < n; ++j) {
      for (int k = 0; k < d->nkeys; ++k) {
        eng::KeyValue v = delta.key(order[j], k);
        kn[k] = v.is_null;
        kv[k] = v.is_null ? (Datum)0 : to_datum(d->columns[d->key_column[k]].type, v.i, v.f, v.d, v.s);
      }
      sink_row(sink, kv, kn, av, an, row, row_nulls);
    }
    sink_write(sink, u, u->set_plan);
    return n;
  }

  // 1. Merge the delta's states into the state table; get the merged ones back.
  Datum* values = (Datum*)palloc(sizeof(Datum) * n);
  bool* nulls = (bool*)palloc(sizeof(bool) * n);
  Datum* params = (Datum*)palloc(sizeof(Datum) * (d->nkeys + 2));
  char* param_nulls = (char*)palloc0(d->nkeys + 2);
  memset(param_nulls, ' ', d->nkeys + 1);
  for (int k = 0; k < d->nkeys; ++k) {
    Oid type = d->columns[d->key_column[k]].type;
    for (size_t j = 0; j < n; ++j) {
      eng::KeyValue v = delta.key(order[j], k);
      nulls[j] = v.is_null;
      values[j] = v.is_null ? (Datum)0 : to_datum(type, v.i, v.f, v.d, v.s);
    }
    params[k] = make_array(type, values, nulls, n);
  }
  std::string* buf = context_string();
  for (size_t j = 0; j < n; ++j) {
    if (!state_bytes(delta, order[j], buf))
      ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION), errmsg("velostream: %s", delta.error().c_str())));
    values[j] = PointerGetDatum(to_bytea(*buf));
    nulls[j] = false;
  }
  params[d->nkeys] = make_array(BYTEAOID, values, nulls, n);
  merging_view = u->view;
  merging = &merger;
  int rc = SPI_execute_plan(u->plan, params, param_nulls, false, 0);
  merging_view = InvalidOid;
  merging = nullptr;
  if (rc != SPI_OK_INSERT_RETURNING || SPI_processed != n)
    elog(ERROR, "velostream: merging the partial states failed: %s", SPI_result_code_string(rc));

  // 2. Finalise them (the same functions as an owned view's) and write the
  //    view's rows.
  SPITupleTable* tt = SPI_tuptable;
  // Values hold 128-bit integers: C++ storage (16-byte aligned), not palloc's.
  auto* finals_vec = new std::vector<eng::Value>(d->naggs + 1);
  velostream_on_context_reset(CurrentMemoryContext, delete_values, finals_vec);
  eng::Value* finals = finals_vec->data();
  for (size_t j = 0; j < n; ++j) {
    HeapTuple tup = tt->vals[j];
    for (int k = 0; k < d->nkeys; ++k) kv[k] = SPI_getbinval(tup, tt->tupdesc, k + 1, &kn[k]);
    bool isnull;
    bytea* st = DatumGetByteaPP(SPI_getbinval(tup, tt->tupdesc, d->nkeys + 1, &isnull));
    if (!finalize_bytes(merger, VARDATA_ANY(st), VARSIZE_ANY_EXHDR(st), finals))
      ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION), errmsg("velostream: %s", merger.error().c_str())));
    for (int a = 0; a < d->naggs; ++a) av[a] = velostream_final_datum(finals[a], d->agg_type[a], &an[a]);
    sink_row(sink, kv, kn, av, an, row, row_nulls);
  }
  sink_write(sink, u, u->set_plan);
  merger.reset_scratch();
  return n;
}

extern "C" {
PG_FUNCTION_INFO_V1(velostream_merge_states);
}

/// velostream._merge_states(view oid, state bytea, delta bytea) RETURNS
/// bytea: the partial states `delta` combined into `state` with the view's
/// aggregates' combine functions (both in ViewAggregator::group_state_bytes
/// form). Only during a worker's flush of that view (the upsert of
/// velostream_upsert_delta calls it); anywhere else it raises
/// OBJECT_NOT_IN_PREREQUISITE_STATE.
Datum velostream_merge_states(PG_FUNCTION_ARGS) {
  Oid view = PG_GETARG_OID(0);
  if (merging == nullptr || merging_view != view)
    ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                    errmsg("velostream._merge_states() is only called by velostream's workers")));
  bytea* a = PG_GETARG_BYTEA_PP(1);
  bytea* b = PG_GETARG_BYTEA_PP(2);
  std::string* out = context_string();
  if (!merge_bytes(*merging, VARDATA_ANY(a), VARSIZE_ANY_EXHDR(a), VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b), out))
    ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION), errmsg("velostream: %s", merging->error().c_str())));
  PG_RETURN_BYTEA_P(to_bytea(*out));
}

void velostream_delete_owned_keys(const ViewDesc* d, const ViewUpsert* u, const eng::ViewAggregator& store,
                                  const std::vector<std::string>& keys) {
  if (keys.empty()) return;
  RowSink* gone = new_sink(d, keys.size());
  Datum* row = (Datum*)palloc0(sizeof(Datum) * (d->ncolumns + 1));
  bool* row_nulls = (bool*)palloc0(sizeof(bool) * (d->ncolumns + 1));
  for (const std::string& key : keys) {
    for (int k = 0; k < d->nkeys; ++k) {
      const ViewColumn& c = d->columns[d->key_column[k]];
      eng::KeyValue v = store.key_of(key, k);
      row_nulls[d->key_column[k]] = v.is_null;
      row[d->key_column[k]] = v.is_null ? (Datum)0 : to_datum(c.type, v.i, v.f, v.d, v.s);
    }
    sink_add(gone, false, row, row_nulls);
  }
  sink_write(gone, u, nullptr);
}

uint64 velostream_write_owned(const ViewDesc* d, const ViewUpsert* u, eng::ViewAggregator& store,
                              const uint32_t* groups, const uint8_t* created, size_t n) {
  if (n == 0) return 0;
  uint32_t* fresh = (uint32_t*)palloc(sizeof(uint32_t) * n);
  uint32_t* known = (uint32_t*)palloc(sizeof(uint32_t) * n);
  size_t nfresh = 0, nknown = 0;
  RowSink* gone = nullptr;  // known groups that fail HAVING: their rows leave the table
  Datum* row = (Datum*)palloc(sizeof(Datum) * (d->ncolumns + 1));
  bool* row_nulls = (bool*)palloc(sizeof(bool) * (d->ncolumns + 1));
  if (d->having != nullptr) gone = new_sink(d, n);
  for (size_t i = 0; i < n; ++i) {
    if (d->having != nullptr && !final_row(d, store, groups[i], row, row_nulls)) {
      if (!created[i]) sink_add(gone, false, row, row_nulls);  // its row may be in the table
      continue;
    }
    if (created[i]) fresh[nfresh++] = groups[i];
    else known[nknown++] = groups[i];
  }
  if (gone != nullptr) sink_write(gone, u, nullptr);
  if (nknown > 0) {
    // Rows written before: set their final values (ON CONFLICT also brings
    // back a row somebody deleted from the table).
    RowSink* sink = new_sink(d, nknown);
    sink_groups(sink, store, known, nknown, row, row_nulls);
    sink_write(sink, u, u->set_plan);
  }
  if (nfresh > 0) {
    // New groups: a plain INSERT, no speculative insertion. Only this worker
    // writes these keys, so a row that is already there means the routing
    // invariant broke (the key reached two partitions) or the row was put
    // there by hand: an error that sets the view aside (worker.cpp), never
    // an overwrite of what the other writer counted.
    // No subtransaction of its own: the caller's (worker.cpp flush_view) is
    // rolled back on any error; here a unique_violation only gets a message
    // that says what it means. The view's name is read before anything can
    // fail, so the handler touches no catalog.
    const char* view_name = get_rel_name(u->view);
    MemoryContext cxt = CurrentMemoryContext;
    PG_TRY();
    {
      if (!insert_direct(d, u->view, store, fresh, nfresh)) {
        RowSink* sink = new_sink(d, nfresh);
        sink_groups(sink, store, fresh, nfresh, row, row_nulls);
        sink_write(sink, u, u->insert_plan);
      }
    }
    PG_CATCH();
    {
      MemoryContextSwitchTo(cxt);
      if (CopyErrorData()->sqlerrcode != ERRCODE_UNIQUE_VIOLATION) PG_RE_THROW();
      FlushErrorState();
      ereport(ERROR, (errcode(ERRCODE_UNIQUE_VIOLATION),
                      errmsg("a new group of continuous view \"%s\" is already in its table", view_name),
                      errdetail("Each group of this view is written by one stream partition: either rows of one group "
                                "reached two partitions, or a row was inserted into the table by hand."),
                      errhint("Delete the row and call velostream.retry('%s'); if it recurs, drop and re-create the "
                              "view.",
                              view_name)));
    }
    PG_END_TRY();
  }
  return n;
}

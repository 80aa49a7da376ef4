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

Oid sum_state_type(const ViewColumn& c) {
  return (c.input_type == FLOAT8OID || c.input_type == FLOAT4OID) ? FLOAT8OID : NUMERICOID;
}

// "CASE ... END" adding two nullable sums: NULL only when both are NULL.
void append_sum_merge(StringInfo sql, const char* col) {
  appendStringInfo(sql, "CASE WHEN t.%s IS NULL THEN excluded.%s WHEN excluded.%s IS NULL THEN t.%s ELSE t.%s + excluded.%s END",
                   col, col, col, col, col, col);
}

void append_merge(StringInfo sql, SqlAgg agg, const char* col) {
  switch (agg) {
    case SqlAgg::kCountStar:
    case SqlAgg::kCount: appendStringInfo(sql, "t.%s + excluded.%s", col, col); break;
    case SqlAgg::kSum: append_sum_merge(sql, col); break;
    case SqlAgg::kMin: appendStringInfo(sql, "least(t.%s, excluded.%s)", col, col); break;
    case SqlAgg::kMax: appendStringInfo(sql, "greatest(t.%s, excluded.%s)", col, col); break;
    case SqlAgg::kAvg: break;  // only through the state table
    case SqlAgg::kExternal:
      elog(ERROR, "velostream: a view sharing its groups has an external aggregate");
      break;
  }
}

// A value of SQL type `type` from its engine form.
Datum to_datum(Oid type, int64_t i, double f, const eng::Decimal& d, std::string_view s) {
  return velostream_value_datum(type, i, f, d, s.data(), s.size());
}

// A sum's value as SQL type `type` (int8, numeric or float8).
Datum sum_datum(const eng::AggSpec& spec, Oid type, const eng::AggState& s) {
  eng::Value v;
  v.kind = spec.input == eng::Type::kInt64 ? eng::Value::Kind::kInt
         : spec.input == eng::Type::kFloat64 ? eng::Value::Kind::kFloat : eng::Value::Kind::kNumeric;
  v.i = s.i;
  v.f = s.f;
  v.d = s.d;
  bool isnull;
  return velostream_final_datum(v, type, &isnull);
}

}  // namespace

ViewUpsert* velostream_prepare_upsert(const ViewDesc* d, Oid view_oid, Oid state_oid, bool owned) {
  ViewUpsert* u = (ViewUpsert*)palloc0(sizeof(ViewUpsert));
  u->view = view_oid;
  u->elem_types = (Oid*)palloc0(sizeof(Oid) * (d->ncolumns + d->naggs + 1));
  StringInfoData unnest, keycols, sql;
  initStringInfo(&unnest);
  initStringInfo(&keycols);
  initStringInfo(&sql);
  int p = 0;
  for (int k = 0; k < d->nkeys; ++k) u->elem_types[p++] = d->columns[d->key_column[k]].type;
  for (int a = 0; a < d->naggs; ++a) {
    const ViewColumn& c = d->columns[d->agg_column[a]];
    switch (c.agg) {
      case SqlAgg::kCountStar: case SqlAgg::kCount: u->elem_types[p++] = INT8OID; break;
      case SqlAgg::kAvg: u->elem_types[p++] = sum_state_type(c); u->elem_types[p++] = INT8OID; break;
      default: u->elem_types[p++] = c.type; break;
    }
  }
  u->nparams = p;
  appendStringInfoString(&unnest, "SELECT * FROM unnest(");
  for (int i = 0; i < p; ++i) appendStringInfo(&unnest, "%s$%d", i ? ", " : "", i + 1);
  appendStringInfoChar(&unnest, ')');

  const char* view = qname(view_oid);
  for (int k = 0; k < d->nkeys; ++k)
    appendStringInfo(&keycols, "%s%s", k ? ", " : "", quote_identifier(d->columns[d->key_column[k]].name));
  StringInfoData conflict_keys, state_keys;
  initStringInfo(&conflict_keys);
  initStringInfo(&state_keys);
  for (int k = 0; k < d->nkeys; ++k) {
    Oid type = d->columns[d->key_column[k]].type;
    appendStringInfo(&conflict_keys, "%s%s", k ? ", " : "",
                     velostream_key_index_expr(quote_identifier(d->columns[d->key_column[k]].name), type));
    appendStringInfo(&state_keys, "%s%s", k ? ", " : "", velostream_key_index_expr(psprintf("k%d", k), type));
  }
  const char* conflict = d->nkeys ? conflict_keys.data : "(true)";

  // Shared by every shape below: the view's columns, the partial-state
  // columns (k0.., then a0.. or, for avg, a<i>_sum, a<i>_n), the final values
  // computed from them, and "col = excluded.col" for every aggregate.
  StringInfoData viewcols, statecols, finals, viewsets;
  initStringInfo(&viewcols);
  initStringInfo(&statecols);
  initStringInfo(&finals);
  initStringInfo(&viewsets);
  appendStringInfoString(&viewcols, keycols.data);
  for (int k = 0; k < d->nkeys; ++k) {
    appendStringInfo(&statecols, "%sk%d", k ? ", " : "", k);
    appendStringInfo(&finals, "%sk%d", k ? ", " : "", k);
  }
  for (int a = 0; a < d->naggs; ++a) {
    const ViewColumn& c = d->columns[d->agg_column[a]];
    const char* sep = (d->nkeys || a) ? ", " : "";
    const char* vcol = quote_identifier(c.name);
    appendStringInfo(&viewcols, "%s%s", sep, vcol);
    if (c.agg == SqlAgg::kAvg) {
      appendStringInfo(&statecols, "%sa%d_sum, a%d_n", sep, a, a);
      appendStringInfo(&finals, "%sCASE WHEN a%d_n = 0 THEN NULL ELSE a%d_sum / a%d_n::%s END", sep, a, a, a,
                       sum_state_type(c) == FLOAT8OID ? "float8" : "numeric");
    } else {
      appendStringInfo(&statecols, "%sa%d", sep, a);
      appendStringInfo(&finals, "%sa%d", sep, a);
    }
    appendStringInfo(&viewsets, "%s%s = excluded.%s", a ? ", " : "", vcol, vcol);
  }
  Oid* argtypes = (Oid*)palloc(sizeof(Oid) * (d->ncolumns + d->naggs + 1));
  for (int i = 0; i < p; ++i) argtypes[i] = get_array_type(u->elem_types[i]);
  auto prepare = [&](const char* text) {
    SPIPlanPtr plan = SPI_prepare(text, u->nparams, argtypes);
    if (plan == NULL)
      elog(ERROR, "velostream: could not prepare the writes of \"%s\" (%s): %s", view,
           SPI_result_code_string(SPI_result), text);
    SPI_keepplan(plan);
    return plan;
  };

  if (owned) {
    // The worker holds the full state and finalises it (final_row): write
    // final values, one array per view column. New groups with a plain
    // INSERT, known ones with ON CONFLICT ... SET col = excluded.col.
    for (int i = 0; i < d->ncolumns; ++i) u->elem_types[i] = d->columns[i].type;
    u->nparams = d->ncolumns;
    for (int i = 0; i < d->ncolumns; ++i) argtypes[i] = get_array_type(d->columns[i].type);
    p = d->ncolumns;
    resetStringInfo(&unnest);
    appendStringInfoString(&unnest, "SELECT * FROM unnest(");
    for (int i = 0; i < p; ++i) appendStringInfo(&unnest, "%s$%d", i ? ", " : "", i + 1);
    appendStringInfoChar(&unnest, ')');
    StringInfoData allcols;  // in the view's column order, as fill_finals
    initStringInfo(&allcols);
    for (int i = 0; i < d->ncolumns; ++i)
      appendStringInfo(&allcols, "%s%s", i ? ", " : "", quote_identifier(d->columns[i].name));
    appendStringInfo(&sql, "INSERT INTO %s AS t (%s) %s", view, allcols.data, unnest.data);
    u->insert_plan = prepare(sql.data);
    appendStringInfo(&sql, " ON CONFLICT (%s) DO ", conflict);
    if (d->naggs == 0) appendStringInfoString(&sql, "NOTHING");
    else appendStringInfo(&sql, "UPDATE SET %s", viewsets.data);
    u->set_plan = prepare(sql.data);
    return u;
  }
  if (!OidIsValid(state_oid)) {
    // Every aggregate is its own partial state: merge straight into the view.
    appendStringInfo(&sql, "INSERT INTO %s AS t (%s) %s ON CONFLICT (%s) DO ", view, viewcols.data, unnest.data,
                     conflict);
    if (d->naggs == 0) {
      appendStringInfoString(&sql, "NOTHING");
    } else {
      appendStringInfoString(&sql, "UPDATE SET ");
      for (int a = 0; a < d->naggs; ++a) {
        const ViewColumn& c = d->columns[d->agg_column[a]];
        const char* col = quote_identifier(c.name);
        appendStringInfo(&sql, "%s%s = ", a ? ", " : "", col);
        append_merge(&sql, c.agg, col);
      }
    }
  } else {
    // Merge into the partial states, then write the finalised row to the view.
    StringInfoData sets;
    initStringInfo(&sets);
    for (int a = 0; a < d->naggs; ++a) {
      const ViewColumn& c = d->columns[d->agg_column[a]];
      char col[32], n[32];
      if (c.agg == SqlAgg::kAvg) {
        snprintf(col, sizeof(col), "a%d_sum", a);
        snprintf(n, sizeof(n), "a%d_n", a);
        appendStringInfo(&sets, "%s%s = ", a ? ", " : "", col);
        append_sum_merge(&sets, col);
        appendStringInfo(&sets, ", %s = t.%s + excluded.%s", n, n, n);
      } else {
        snprintf(col, sizeof(col), "a%d", a);
        appendStringInfo(&sets, "%s%s = ", a ? ", " : "", col);
        append_merge(&sets, c.agg, col);
      }
    }
    const char* state_conflict = d->nkeys ? state_keys.data : "(true)";
    appendStringInfo(&sql, "WITH s AS (INSERT INTO %s AS t (%s) %s ON CONFLICT (%s) DO UPDATE SET %s RETURNING *) ",
                     qname(state_oid), statecols.data, unnest.data, state_conflict, sets.data);
    appendStringInfo(&sql, "INSERT INTO %s AS t (%s) SELECT %s FROM s ON CONFLICT (%s) DO UPDATE SET %s", view,
                     viewcols.data, finals.data, conflict, viewsets.data);
  }
  u->plan = prepare(sql.data);
  return u;
}

namespace {

// Fills the upsert's array parameters with groups[0..n) of `agg`, in that
// order: one array per key part and per partial state (avg: sum and count).
void fill_params(const ViewDesc* d, const ViewUpsert* u, const eng::ViewAggregator& agg, const uint32_t* order,
                 size_t n, Datum* params, char* param_nulls) {
  Datum* values = (Datum*)palloc(sizeof(Datum) * (n ? n : 1));
  bool* nulls = (bool*)palloc(sizeof(bool) * (n ? n : 1));
  int dims[1] = {(int)n}, lbs[1] = {1};

  int p = 0;
  auto add_param = [&](Oid elem) {
    int16 typlen;
    bool typbyval;
    char typalign;
    get_typlenbyvalalign(elem, &typlen, &typbyval, &typalign);
    params[p] = PointerGetDatum(construct_md_array(values, nulls, 1, dims, lbs, elem, typlen, typbyval, typalign));
    param_nulls[p] = ' ';
    ++p;
  };
  for (int k = 0; k < d->nkeys; ++k) {
    Oid type = u->elem_types[p];
    for (size_t j = 0; j < n; ++j) {
      eng::KeyValue v = agg.key(order[j], k);
      nulls[j] = v.is_null;
      values[j] = v.is_null ? (Datum)0 : to_datum(type, v.i, v.f, v.d, v.s);
    }
    add_param(type);
  }
  for (int a = 0; a < d->naggs; ++a) {
    const ViewColumn& c = d->columns[d->agg_column[a]];
    const eng::AggSpec& spec = agg.plan().aggs[a];
    switch (c.agg) {
      case SqlAgg::kCountStar:
      case SqlAgg::kCount:
        for (size_t j = 0; j < n; ++j) {
          nulls[j] = false;
          values[j] = Int64GetDatum(agg.state(order[j], a).n);
        }
        add_param(INT8OID);
        break;
      case SqlAgg::kSum:
      case SqlAgg::kAvg: {
        Oid type = c.agg == SqlAgg::kSum ? c.type : sum_state_type(c);
        for (size_t j = 0; j < n; ++j) {
          const eng::AggState& s = agg.state(order[j], a);
          nulls[j] = s.n == 0;
          values[j] = nulls[j] ? (Datum)0 : sum_datum(spec, type, s);
        }
        add_param(type);
        if (c.agg == SqlAgg::kAvg) {
          for (size_t j = 0; j < n; ++j) {
            nulls[j] = false;
            values[j] = Int64GetDatum(agg.state(order[j], a).n);
          }
          add_param(INT8OID);
        }
        break;
      }
      case SqlAgg::kExternal:
        elog(ERROR, "velostream: a view sharing its groups has an external aggregate");
        break;
      case SqlAgg::kMin:
      case SqlAgg::kMax:
        for (size_t j = 0; j < n; ++j) {
          const eng::AggState& s = agg.state(order[j], a);
          nulls[j] = s.n == 0;
          values[j] = nulls[j] ? (Datum)0 : to_datum(c.type, (int64_t)s.i, s.f, s.d, std::string_view());
        }
        add_param(c.type);
        break;
    }
  }
  pfree(values);
  pfree(nulls);
}

}  // namespace

uint64 velostream_upsert_delta(const ViewDesc* d, const ViewUpsert* u, const eng::ViewAggregator& agg) {
  const size_t n = agg.group_count();
  if (n == 0) return 0;
  // Key order, copied out of the engine before any PostgreSQL call can raise.
  uint32_t* order = (uint32_t*)palloc(sizeof(uint32_t) * n);
  {
    std::vector<uint32_t> sorted = agg.groups_in_key_order();
    memcpy(order, sorted.data(), sizeof(uint32_t) * n);
  }
  Datum* params = (Datum*)palloc(sizeof(Datum) * u->nparams);
  char* param_nulls = (char*)palloc(u->nparams);
  fill_params(d, u, agg, order, n, params, param_nulls);
  int rc = SPI_execute_plan(u->plan, params, param_nulls, false, 0);
  if (rc != SPI_OK_INSERT && rc != SPI_OK_INSERT_RETURNING)
    elog(ERROR, "velostream: upsert failed: %s", SPI_result_code_string(rc));
  return n;
}

namespace {

// The final values of group `g` of `store`, one per view column: keys as
// they are, aggregates finalised by their AggregateFunction. Raises the
// aggregate's error.
void final_row(const ViewDesc* d, eng::ViewAggregator& store, uint32_t g, Datum* values, bool* nulls) {
  for (int i = 0; i < d->ncolumns; ++i) {
    const ViewColumn& c = d->columns[i];
    if (c.is_key) {
      eng::KeyValue v = store.key(g, c.index);
      nulls[i] = v.is_null;
      values[i] = v.is_null ? (Datum)0 : to_datum(c.type, v.i, v.f, v.d, v.s);
      continue;
    }
    eng::Value v;
    if (!store.finalize(g, c.index, &v))
      ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION), errmsg("%s", store.error().c_str())));
    values[i] = velostream_final_datum(v, c.type, &nulls[i]);
  }
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

// Fills one array parameter per view column with the final values of
// groups[0..n) of `store`, in that order.
void fill_finals(const ViewDesc* d, eng::ViewAggregator& store, const uint32_t* groups, size_t n, Datum* params,
                 char* param_nulls) {
  Datum** values = (Datum**)palloc(sizeof(Datum*) * d->ncolumns);
  bool** nulls = (bool**)palloc(sizeof(bool*) * d->ncolumns);
  for (int i = 0; i < d->ncolumns; ++i) {
    values[i] = (Datum*)palloc(sizeof(Datum) * (n ? n : 1));
    nulls[i] = (bool*)palloc(sizeof(bool) * (n ? n : 1));
  }
  Datum* row = (Datum*)palloc(sizeof(Datum) * d->ncolumns);
  bool* row_nulls = (bool*)palloc(sizeof(bool) * d->ncolumns);
  for (size_t j = 0; j < n; ++j) {
    final_row(d, store, groups[j], row, row_nulls);
    for (int i = 0; i < d->ncolumns; ++i) {
      values[i][j] = row[i];
      nulls[i][j] = row_nulls[i];
    }
  }
  int dims[1] = {(int)n}, lbs[1] = {1};
  for (int i = 0; i < d->ncolumns; ++i) {
    Oid elem = d->columns[i].type;
    int16 typlen;
    bool typbyval;
    char typalign;
    get_typlenbyvalalign(elem, &typlen, &typbyval, &typalign);
    params[i] = PointerGetDatum(construct_md_array(values[i], nulls[i], 1, dims, lbs, elem, typlen, typbyval, typalign));
    param_nulls[i] = ' ';
  }
}

}  // namespace

uint64 velostream_write_owned(const ViewDesc* d, const ViewUpsert* u, eng::ViewAggregator& store,
                              const uint32_t* groups, const uint8_t* created, size_t n) {
  if (n == 0) return 0;
  uint32_t* fresh = (uint32_t*)palloc(sizeof(uint32_t) * n);
  uint32_t* known = (uint32_t*)palloc(sizeof(uint32_t) * n);
  size_t nfresh = 0, nknown = 0;
  for (size_t i = 0; i < n; ++i) {
    if (created[i]) fresh[nfresh++] = groups[i];
    else known[nknown++] = groups[i];
  }
  Datum* params = (Datum*)palloc(sizeof(Datum) * u->nparams);
  char* param_nulls = (char*)palloc(u->nparams);
  if (nknown > 0) {
    // Rows written before: set their final values (ON CONFLICT also brings
    // back a row somebody deleted from the table).
    fill_finals(d, store, known, nknown, params, param_nulls);
    int rc = SPI_execute_plan(u->set_plan, params, param_nulls, false, 0);
    if (rc != SPI_OK_INSERT) elog(ERROR, "velostream: update of owned groups failed: %s", SPI_result_code_string(rc));
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
        fill_finals(d, store, fresh, nfresh, params, param_nulls);
        int rc = SPI_execute_plan(u->insert_plan, params, param_nulls, false, 0);
        if (rc != SPI_OK_INSERT) elog(ERROR, "velostream: insert of new groups failed: %s", SPI_result_code_string(rc));
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

// The foreign-data wrapper behind streams: validation of options, and the
// INSERT / COPY path that appends rows to the stream's partition logs inside
// the user's transaction.
#include "pg/velostream.h"

extern "C" {
PG_FUNCTION_INFO_V1(velostream_fdw_handler);
PG_FUNCTION_INFO_V1(velostream_fdw_validator);
}

namespace {

// Rows buffered per heap_multi_insert call; also how many consecutive rows
// go to one partition before the next one takes over.
constexpr int kInsertBuffer = 1000;

struct InsertState {
  int nparts;
  Relation* logs;            // partition log tables
  BulkInsertState* bistate;  // one per partition
  TupleTableSlot** slots;    // buffer for the current partition
  int nbuffered;
  int current;               // partition receiving the buffered rows
  int natts;                 // stream columns (the log has one more: the xid)
  Datum xid;
  CommandId cid;
};

bool server_has_brokers(ForeignServer* server) {
  ListCell* lc;
  foreach (lc, server->options) {
    if (strcmp(((DefElem*)lfirst(lc))->defname, "brokers") == 0) return true;
  }
  return false;
}

void flush_buffer(InsertState* st) {
  if (st->nbuffered == 0) return;
  heap_multi_insert(st->logs[st->current], st->slots, st->nbuffered, st->cid, 0, st->bistate[st->current]);
  for (int i = 0; i < st->nbuffered; ++i) ExecClearTuple(st->slots[i]);
  st->nbuffered = 0;
  st->current = (st->current + 1) % st->nparts;
}

InsertState* begin_insert(Relation rel, EState* estate) {
  Oid relid = RelationGetRelid(rel);
  if (!velostream_is_local_stream(relid))
    ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                    errmsg("cannot insert into \"%s\"", RelationGetRelationName(rel)),
                    errdetail("Only streams on server velostream accept INSERT and COPY.")));
  InsertState* st = (InsertState*)palloc0(sizeof(InsertState));
  // The stream's partition logs, from the catalog.
  SPI_connect();
  Oid argtypes[1] = {OIDOID};
  Datum args[1] = {ObjectIdGetDatum(relid)};
  int rc = SPI_execute_with_args(
      "SELECT log_table::oid FROM velostream.stream_partitions WHERE stream = $1 ORDER BY partition", 1, argtypes,
      args, NULL, true, 0);
  if (rc != SPI_OK_SELECT || SPI_processed == 0)
    ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                    errmsg("stream \"%s\" has no partition logs", RelationGetRelationName(rel)),
                    errhint("Drop and re-create the stream.")));
  st->nparts = (int)SPI_processed;
  Oid* log_oids = (Oid*)palloc(sizeof(Oid) * st->nparts);
  for (int i = 0; i < st->nparts; ++i) {
    bool isnull;
    log_oids[i] = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
  }
  SPI_finish();

  st->logs = (Relation*)palloc(sizeof(Relation) * st->nparts);
  st->bistate = (BulkInsertState*)palloc(sizeof(BulkInsertState) * st->nparts);
  for (int i = 0; i < st->nparts; ++i) {
    st->logs[i] = table_open(log_oids[i], RowExclusiveLock);
    st->bistate[i] = GetBulkInsertState();
  }
  st->natts = RelationGetDescr(rel)->natts;
  if (RelationGetDescr(st->logs[0])->natts != st->natts + 1)
    ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                    errmsg("stream \"%s\" does not match its partition logs", RelationGetRelationName(rel)),
                    errhint("Streams cannot be altered; drop and re-create the stream.")));
  st->slots = (TupleTableSlot**)palloc(sizeof(TupleTableSlot*) * kInsertBuffer);
  for (int i = 0; i < kInsertBuffer; ++i)
    st->slots[i] = MakeSingleTupleTableSlot(RelationGetDescr(st->logs[0]), &TTSOpsHeapTuple);
  // Spread concurrent writers over the partitions.
  st->current = (int)(MyProcPid % st->nparts);
  st->xid = FullTransactionIdGetDatum(GetTopFullTransactionId());
  st->cid = GetCurrentCommandId(true);
  (void)estate;
  return st;
}

void end_insert(InsertState* st) {
  if (st == nullptr) return;
  flush_buffer(st);
  for (int i = 0; i < st->nparts; ++i) {
    FreeBulkInsertState(st->bistate[i]);
    table_close(st->logs[i], NoLock);
  }
  for (int i = 0; i < kInsertBuffer; ++i) ExecDropSingleTupleTableSlot(st->slots[i]);
}

TupleTableSlot* insert_row(InsertState* st, TupleTableSlot* slot) {
  slot_getallattrs(slot);
  TupleTableSlot* dst = st->slots[st->nbuffered];
  ExecClearTuple(dst);
  memcpy(dst->tts_values, slot->tts_values, sizeof(Datum) * st->natts);
  memcpy(dst->tts_isnull, slot->tts_isnull, sizeof(bool) * st->natts);
  dst->tts_values[st->natts] = st->xid;
  dst->tts_isnull[st->natts] = false;
  ExecStoreVirtualTuple(dst);
  ExecMaterializeSlot(dst);  // copies the values: the input slot is reused
  if (++st->nbuffered == kInsertBuffer) flush_buffer(st);
  return slot;
}

// ---- FDW callbacks ------------------------------------------------------

void get_rel_size(PlannerInfo* root, RelOptInfo* baserel, Oid relid) {
  if (root->parse->commandType != CMD_SELECT && root->parse->resultRelation == (int)baserel->relid)
    ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                    errmsg("cannot update or delete rows of stream \"%s\"", get_rel_name(relid)),
                    errdetail("Streams are append-only: INSERT and COPY only.")));
  ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                  errmsg("cannot read from stream \"%s\"", get_rel_name(relid)),
                  errdetail("A stream's rows are consumed by its continuous views, not stored for reading."),
                  errhint("Query a continuous view, or run the same SELECT over a table.")));
}

int is_updatable(Relation) { return 1 << CMD_INSERT; }

List* plan_modify(PlannerInfo* root, ModifyTable* plan, Index rti, int) {
  if (plan->operation != CMD_INSERT) {
    RangeTblEntry* rte = planner_rt_fetch(rti, root);
    ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                    errmsg("cannot update or delete rows of stream \"%s\"", get_rel_name(rte->relid)),
                    errdetail("Streams are append-only.")));
  }
  if (plan->onConflictAction != ONCONFLICT_NONE)
    ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED), errmsg("ON CONFLICT is not supported on streams")));
  return NIL;
}

void begin_modify(ModifyTableState* mtstate, ResultRelInfo* rinfo, List*, int, int eflags) {
  if (eflags & EXEC_FLAG_EXPLAIN_ONLY) return;
  rinfo->ri_FdwState = begin_insert(rinfo->ri_RelationDesc, mtstate->ps.state);
}

TupleTableSlot* exec_insert(EState*, ResultRelInfo* rinfo, TupleTableSlot* slot, TupleTableSlot*) {
  return insert_row((InsertState*)rinfo->ri_FdwState, slot);
}

void end_modify(EState*, ResultRelInfo* rinfo) { end_insert((InsertState*)rinfo->ri_FdwState); }

void begin_foreign_insert(ModifyTableState* mtstate, ResultRelInfo* rinfo) {
  rinfo->ri_FdwState = begin_insert(rinfo->ri_RelationDesc, mtstate->ps.state);
}

void end_foreign_insert(EState*, ResultRelInfo* rinfo) { end_insert((InsertState*)rinfo->ri_FdwState); }

void explain_modify(ModifyTableState*, ResultRelInfo*, List*, int, ExplainState*) {}

bool option_in(const char* name, const char* const* list) {
  for (; *list; ++list)
    if (strcmp(name, *list) == 0) return true;
  return false;
}

}  // namespace

bool velostream_is_velostream_server(Oid serverid) {
  ForeignServer* server = GetForeignServer(serverid);
  ForeignDataWrapper* fdw = GetForeignDataWrapper(server->fdwid);
  return strcmp(fdw->fdwname, "velostream") == 0;
}

bool velostream_is_local_stream(Oid relid) {
  if (get_rel_relkind(relid) != RELKIND_FOREIGN_TABLE) return false;
  Oid serverid = GetForeignServerIdByRelId(relid);
  if (!velostream_is_velostream_server(serverid)) return false;
  return !server_has_brokers(GetForeignServer(serverid));
}

/// velostream.fdw_handler(): the FdwRoutine of streams.
Datum velostream_fdw_handler(PG_FUNCTION_ARGS) {
  FdwRoutine* r = makeNode(FdwRoutine);
  r->GetForeignRelSize = get_rel_size;
  r->IsForeignRelUpdatable = is_updatable;
  r->PlanForeignModify = plan_modify;
  r->BeginForeignModify = begin_modify;
  r->ExecForeignInsert = exec_insert;
  r->EndForeignModify = end_modify;
  r->BeginForeignInsert = begin_foreign_insert;
  r->EndForeignInsert = end_foreign_insert;
  r->ExplainForeignModify = explain_modify;
  PG_RETURN_POINTER(r);
}

/// velostream.fdw_validator(options text[], catalog oid): rejects unknown
/// options and malformed values with FDW_INVALID_OPTION_NAME / _VALUE.
Datum velostream_fdw_validator(PG_FUNCTION_ARGS) {
  List* options = untransformRelOptions(PG_GETARG_DATUM(0));
  Oid catalog = PG_GETARG_OID(1);
  static const char* const server_opts[] = {"brokers", nullptr};
  static const char* const table_opts[] = {"partitions", nullptr};
  ListCell* lc;
  foreach (lc, options) {
    DefElem* def = (DefElem*)lfirst(lc);
    const char* const* valid = nullptr;
    const char* valid_text = "";
    if (catalog == ForeignServerRelationId) { valid = server_opts; valid_text = "brokers"; }
    else if (catalog == ForeignTableRelationId) { valid = table_opts; valid_text = "partitions"; }
    if (valid == nullptr || !option_in(def->defname, valid))
      ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
                      errmsg("invalid option \"%s\"", def->defname),
                      valid ? errhint("Valid options in this context are: %s", valid_text)
                            : errhint("There are no valid options in this context.")));
    if (strcmp(def->defname, "partitions") == 0) {
      int n = 0;
      char* end;
      const char* v = defGetString(def);
      n = (int)strtol(v, &end, 10);
      if (*v == '\0' || *end != '\0' || n < 1 || n > 64)
        ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
                        errmsg("invalid value for option \"partitions\": \"%s\"", v),
                        errhint("partitions must be an integer from 1 to 64.")));
    }
  }
  PG_RETURN_VOID();
}

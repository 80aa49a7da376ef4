// The foreign-data wrapper behind streams: validation of options, and the
// INSERT / COPY path that appends rows to the stream's partition logs inside
// the user's transaction.
#include <librdkafka/rdkafka.h>

#include "pg/velostream.h"

extern "C" {
PG_FUNCTION_INFO_V1(velostream_fdw_handler);
PG_FUNCTION_INFO_V1(velostream_fdw_validator);
}

namespace {

// Rows buffered per partition for one heap_multi_insert call; without a
// routing column, also how many consecutive rows go to one partition.
constexpr int kInsertBuffer = 1000;

struct InsertState {
  int nparts;
  Relation* logs;             // partition log tables
  BulkInsertState* bistate;   // one per partition
  TupleTableSlot*** slots;    // per partition: kInsertBuffer slots
  int* nbuffered;             // per partition
  int current;                // round robin: partition receiving rows
  AttrNumber route_attno;     // 0: round robin; else route by this column's hash
  FmgrInfo route_hash;        // hash function of the routing column's type
  Oid route_collation;
  int natts;                  // stream columns (the log has one more: the xid)
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

void flush_partition(InsertState* st, int p) {
  if (st->nbuffered[p] == 0) return;
  heap_multi_insert(st->logs[p], st->slots[p], st->nbuffered[p], st->cid, 0, st->bistate[p]);
  for (int i = 0; i < st->nbuffered[p]; ++i) ExecClearTuple(st->slots[p][i]);
  st->nbuffered[p] = 0;
}

// The stream column to route rows by: the first column that is a plain
// GROUP BY column of every view on the stream, so that each group of every
// view is owned by one partition (one upsert per group and flush, no two
// workers updating the same row). 0 when there is none: round robin.
const char* kRouteQuery =
    "SELECT log_table::oid, (SELECT k FROM velostream.views v, unnest(v.key_columns) k "
    "                        WHERE v.stream = $1 GROUP BY k "
    "                        HAVING count(*) = (SELECT count(*) FROM velostream.views WHERE stream = $1) "
    "                        ORDER BY k LIMIT 1) "
    "FROM velostream.stream_partitions WHERE stream = $1 ORDER BY partition";

InsertState* begin_insert(Relation rel) {
  Oid relid = RelationGetRelid(rel);
  if (!velostream_is_local_stream(relid))
    ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                    errmsg("cannot insert into Kafka stream \"%s\"", RelationGetRelationName(rel)),
                    errdetail("A Kafka stream is fed by its topic."),
                    errhint("Produce the rows to the topic, or use a stream on server velostream.")));
  InsertState* st = (InsertState*)palloc0(sizeof(InsertState));
  // The stream's partition logs and routing column, from the catalog.
  SPI_connect();
  Oid argtypes[1] = {OIDOID};
  Datum args[1] = {ObjectIdGetDatum(relid)};
  int rc = SPI_execute_with_args(kRouteQuery, 1, argtypes, args, NULL, true, 0);
  if (rc != SPI_OK_SELECT || SPI_processed == 0)
    ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                    errmsg("stream \"%s\" has no partition logs", RelationGetRelationName(rel)),
                    errhint("Drop and re-create the stream.")));
  st->nparts = (int)SPI_processed;
  Oid* log_oids = (Oid*)palloc(sizeof(Oid) * st->nparts);
  for (int i = 0; i < st->nparts; ++i) {
    bool isnull;
    log_oids[i] = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
    Datum route = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull);
    if (i == 0 && !isnull) st->route_attno = DatumGetInt16(route);
  }
  SPI_finish();

  st->natts = RelationGetDescr(rel)->natts;
  if (st->route_attno > 0 && st->route_attno <= st->natts && st->nparts > 1) {
    Form_pg_attribute att = TupleDescAttr(RelationGetDescr(rel), st->route_attno - 1);
    TypeCacheEntry* tce = lookup_type_cache(att->atttypid, TYPECACHE_HASH_PROC_FINFO);
    if (OidIsValid(tce->hash_proc)) {
      fmgr_info_copy(&st->route_hash, &tce->hash_proc_finfo, CurrentMemoryContext);
      st->route_collation = att->attcollation;
    } else {
      st->route_attno = 0;
    }
  } else {
    st->route_attno = 0;
  }

  st->logs = (Relation*)palloc(sizeof(Relation) * st->nparts);
  st->bistate = (BulkInsertState*)palloc(sizeof(BulkInsertState) * st->nparts);
  st->slots = (TupleTableSlot***)palloc0(sizeof(TupleTableSlot**) * st->nparts);
  st->nbuffered = (int*)palloc0(sizeof(int) * st->nparts);
  for (int i = 0; i < st->nparts; ++i) {
    st->logs[i] = table_open(log_oids[i], RowExclusiveLock);
    st->bistate[i] = GetBulkInsertState();
  }
  if (RelationGetDescr(st->logs[0])->natts != st->natts + 1)
    ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                    errmsg("stream \"%s\" does not match its partition logs", RelationGetRelationName(rel)),
                    errhint("Streams cannot be altered; drop and re-create the stream.")));
  // Spread concurrent round-robin writers over the partitions.
  st->current = (int)(MyProcPid % st->nparts);
  st->xid = FullTransactionIdGetDatum(GetTopFullTransactionId());
  st->cid = GetCurrentCommandId(true);
  return st;
}

void end_insert(InsertState* st) {
  if (st == nullptr) return;
  for (int p = 0; p < st->nparts; ++p) {
    flush_partition(st, p);
    if (st->slots[p])
      for (int i = 0; i < kInsertBuffer; ++i) ExecDropSingleTupleTableSlot(st->slots[p][i]);
    FreeBulkInsertState(st->bistate[p]);
    table_close(st->logs[p], NoLock);
  }
}

TupleTableSlot* insert_row(InsertState* st, TupleTableSlot* slot) {
  slot_getallattrs(slot);
  int p = st->current;
  if (st->route_attno > 0) {
    int a = st->route_attno - 1;
    p = 0;
    if (!slot->tts_isnull[a]) {
      uint32 h = DatumGetUInt32(FunctionCall1Coll(&st->route_hash, st->route_collation, slot->tts_values[a]));
      p = (int)(h % (uint32)st->nparts);
    }
  }
  if (st->slots[p] == nullptr) {
    st->slots[p] = (TupleTableSlot**)palloc(sizeof(TupleTableSlot*) * kInsertBuffer);
    for (int i = 0; i < kInsertBuffer; ++i)
      st->slots[p][i] = MakeSingleTupleTableSlot(RelationGetDescr(st->logs[p]), &TTSOpsHeapTuple);
  }
  TupleTableSlot* dst = st->slots[p][st->nbuffered[p]];
  ExecClearTuple(dst);
  memcpy(dst->tts_values, slot->tts_values, sizeof(Datum) * st->natts);
  memcpy(dst->tts_isnull, slot->tts_isnull, sizeof(bool) * st->natts);
  dst->tts_values[st->natts] = st->xid;
  dst->tts_isnull[st->natts] = false;
  ExecStoreVirtualTuple(dst);
  ExecMaterializeSlot(dst);  // copies the values: the input slot is reused
  if (++st->nbuffered[p] == kInsertBuffer) {
    flush_partition(st, p);
    if (st->route_attno == 0) st->current = (st->current + 1) % st->nparts;
  }
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

void begin_modify(ModifyTableState*, ResultRelInfo* rinfo, List*, int, int eflags) {
  if (eflags & EXEC_FLAG_EXPLAIN_ONLY) return;
  rinfo->ri_FdwState = begin_insert(rinfo->ri_RelationDesc);
}

TupleTableSlot* exec_insert(EState*, ResultRelInfo* rinfo, TupleTableSlot* slot, TupleTableSlot*) {
  return insert_row((InsertState*)rinfo->ri_FdwState, slot);
}

void end_modify(EState*, ResultRelInfo* rinfo) { end_insert((InsertState*)rinfo->ri_FdwState); }

void begin_foreign_insert(ModifyTableState*, ResultRelInfo* rinfo) {
  rinfo->ri_FdwState = begin_insert(rinfo->ri_RelationDesc);
}

void end_foreign_insert(EState*, ResultRelInfo* rinfo) { end_insert((InsertState*)rinfo->ri_FdwState); }

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

const char* const velostream_kafka_metadata_columns[4] = {"_partition", "_offset", "_timestamp", "_key"};
const Oid velostream_kafka_metadata_types[4] = {INT4OID, INT8OID, TIMESTAMPTZOID, TEXTOID};

bool velostream_is_kafka_server(Oid serverid) { return server_has_brokers(GetForeignServer(serverid)); }

bool velostream_is_stream(Oid relid) {
  if (get_rel_relkind(relid) != RELKIND_FOREIGN_TABLE) return false;
  return velostream_is_velostream_server(GetForeignServerIdByRelId(relid));
}

bool velostream_is_local_stream(Oid relid) {
  return velostream_is_stream(relid) && !velostream_is_kafka_server(GetForeignServerIdByRelId(relid));
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
  PG_RETURN_POINTER(r);
}

// Checks that librdkafka knows property `name` and accepts `value`.
void check_kafka_property(const char* name, const char* value) {
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_res_t res = rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr));
  rd_kafka_conf_destroy(conf);
  if (res == RD_KAFKA_CONF_UNKNOWN)
    ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_OPTION_NAME), errmsg("invalid option \"%s\"", name),
                    errhint("Server and user mapping options are brokers and librdkafka properties such as "
                            "security.protocol or sasl.username.")));
  if (res != RD_KAFKA_CONF_OK)
    ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
                    errmsg("invalid value for option \"%s\": %s", name, errstr)));
}

/// velostream.fdw_validator(options text[], catalog oid): rejects unknown
/// options and malformed values with FDW_INVALID_OPTION_NAME /
/// FDW_INVALID_ATTRIBUTE_VALUE. Server and user mapping options other than
/// `brokers` are librdkafka properties, checked by librdkafka itself.
Datum velostream_fdw_validator(PG_FUNCTION_ARGS) {
  List* options = untransformRelOptions(PG_GETARG_DATUM(0));
  Oid catalog = PG_GETARG_OID(1);
  static const char* const table_opts[] = {"partitions", "topic", "format", "start_offset", nullptr};
  ListCell* lc;
  foreach (lc, options) {
    DefElem* def = (DefElem*)lfirst(lc);
    const char* v = defGetString(def);
    if (catalog == ForeignServerRelationId || catalog == UserMappingRelationId) {
      if (strcmp(def->defname, "brokers") == 0) check_kafka_property("bootstrap.servers", v);
      else check_kafka_property(def->defname, v);
      continue;
    }
    if (catalog != ForeignTableRelationId || !option_in(def->defname, table_opts))
      ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_OPTION_NAME), errmsg("invalid option \"%s\"", def->defname),
                      catalog == ForeignTableRelationId
                          ? errhint("Valid options in this context are: partitions, topic, format, start_offset")
                          : errhint("There are no valid options in this context.")));
    if (strcmp(def->defname, "partitions") == 0) {
      char* end;
      long n = strtol(v, &end, 10);
      if (*v == '\0' || *end != '\0' || n < 1 || n > 64)
        ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
                        errmsg("invalid value for option \"partitions\": \"%s\"", v),
                        errhint("partitions must be an integer from 1 to 64.")));
    } else if (strcmp(def->defname, "format") == 0 && strcmp(v, "csv") != 0 && strcmp(v, "json") != 0) {
      ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
                      errmsg("invalid value for option \"format\": \"%s\"", v), errhint("Use csv or json.")));
    } else if (strcmp(def->defname, "start_offset") == 0 && strcmp(v, "earliest") != 0 && strcmp(v, "latest") != 0) {
      ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
                      errmsg("invalid value for option \"start_offset\": \"%s\"", v),
                      errhint("Use earliest or latest, as Kafka's auto.offset.reset.")));
    } else if (strcmp(def->defname, "topic") == 0 && *v == '\0') {
      ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE), errmsg("option \"topic\" must not be empty")));
    }
  }
  PG_RETURN_VOID();
}

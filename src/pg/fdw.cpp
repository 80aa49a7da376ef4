// The foreign-data wrapper behind streams: validation of options, and the
// INSERT / COPY path that appends rows to the stream's partition logs inside
// the user's transaction.
#include <librdkafka/rdkafka.h>

#include <string>

#include "engine/batch_codec.h"
#include "pg/translate.h"
#include "pg/velostream.h"

extern "C" {
PG_FUNCTION_INFO_V1(velostream_fdw_handler);
PG_FUNCTION_INFO_V1(velostream_fdw_validator);
}

namespace eng = velostream::engine;

namespace {

// One partition's batch under construction. A C++ object: created with new,
// deleted by the memory-context callback of the statement (also on abort).
struct PartitionBatch {
  eng::RecordBatch batch;
  size_t rows = 0;
  std::string bytes;  // encode buffer, reused
};

struct InsertState {
  int nparts;
  Relation* logs;             // partition log tables
  BulkInsertState* bistate;   // one per partition
  PartitionBatch** batches;   // per partition, created on first row
  size_t capacity;            // rows per log batch (velostream.batch_size)
  int current;                // round robin: partition receiving rows
  AttrNumber route_attno;     // 0: round robin; else route by this column's hash
  FmgrInfo route_hash;        // hash function of the routing column's type
  Oid route_collation;
  int natts;                  // stream columns
  Oid* types;                 // SQL type of each stream column
  eng::Type* engine_types;    // engine type of each column (kInt64 if unsupported)
  bool* stored;               // column has an engine type (else not stored)
  Datum xid;
  CommandId cid;
  TupleDesc log_desc;
};

bool server_has_brokers(ForeignServer* server) {
  ListCell* lc;
  foreach (lc, server->options) {
    if (strcmp(((DefElem*)lfirst(lc))->defname, "brokers") == 0) return true;
  }
  return false;
}

void delete_batches(void* arg) {
  InsertState* st = (InsertState*)arg;
  for (int p = 0; p < st->nparts; ++p) {
    delete st->batches[p];
    st->batches[p] = nullptr;
  }
}

// Appends partition p's batch to its log as one row (xid, rows, batch).
void flush_partition(InsertState* st, int p) {
  PartitionBatch* pb = st->batches[p];
  if (pb == nullptr || pb->rows == 0) return;
  pb->batch.rows = pb->rows;
  bool failed = false;
  try {
    pb->bytes.clear();
    eng::encode_batch(pb->batch, &pb->bytes);
  } catch (const std::exception&) {
    failed = true;
  }
  if (failed) ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory encoding a stream batch")));
  bytea* data = (bytea*)palloc(VARHDRSZ + pb->bytes.size());
  SET_VARSIZE(data, VARHDRSZ + pb->bytes.size());
  memcpy(VARDATA(data), pb->bytes.data(), pb->bytes.size());
  Datum values[3] = {st->xid, Int32GetDatum((int32)pb->rows), PointerGetDatum(data)};
  bool nulls[3] = {false, false, false};
  HeapTuple tuple = heap_form_tuple(st->log_desc, values, nulls);
  heap_insert(st->logs[p], tuple, st->cid, 0, st->bistate[p]);
  heap_freetuple(tuple);
  pfree(data);
  pb->rows = 0;
  pb->batch.arena.reset();
}

// The stream's partition logs and the column rows are routed by
// (velostream.streams.route_column: the first plain GROUP BY column of the
// stream's first view), so that every group of a view grouping by it lives in
// one partition and its worker owns the group. NULL: round robin.
const char* kRouteQuery =
    "SELECT p.log_table::oid, s.route_column FROM velostream.stream_partitions p "
    "JOIN velostream.streams s USING (stream) WHERE p.stream = $1 ORDER BY p.partition";

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
  // Read with the latest snapshot, not the statement's: a continuous view
  // created while this statement waited for its lock already routes it.
  PushActiveSnapshot(GetLatestSnapshot());
  int rc = SPI_execute_with_args(kRouteQuery, 1, argtypes, args, NULL, true, 0);
  PopActiveSnapshot();
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

  TupleDesc desc = RelationGetDescr(rel);
  st->natts = desc->natts;
  if (st->route_attno > 0 && st->route_attno <= st->natts && st->nparts > 1) {
    Form_pg_attribute att = TupleDescAttr(desc, st->route_attno - 1);
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
  st->types = (Oid*)palloc(sizeof(Oid) * st->natts);
  st->engine_types = (eng::Type*)palloc(sizeof(eng::Type) * st->natts);
  st->stored = (bool*)palloc(sizeof(bool) * st->natts);
  for (int c = 0; c < st->natts; ++c) {
    Form_pg_attribute att = TupleDescAttr(desc, c);
    st->types[c] = att->atttypid;
    st->engine_types[c] = eng::Type::kInt64;
    st->stored[c] = !att->attisdropped && velostream_engine_type(att->atttypid, &st->engine_types[c]);
  }

  st->logs = (Relation*)palloc(sizeof(Relation) * st->nparts);
  st->bistate = (BulkInsertState*)palloc(sizeof(BulkInsertState) * st->nparts);
  st->batches = (PartitionBatch**)palloc0(sizeof(PartitionBatch*) * st->nparts);
  velostream_on_context_reset(CurrentMemoryContext, delete_batches, st);
  for (int i = 0; i < st->nparts; ++i) {
    st->logs[i] = table_open(log_oids[i], RowExclusiveLock);
    st->bistate[i] = GetBulkInsertState();
  }
  st->log_desc = RelationGetDescr(st->logs[0]);
  if (st->log_desc->natts != 3)
    ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                    errmsg("stream \"%s\" does not match its partition logs", RelationGetRelationName(rel)),
                    errhint("Drop and re-create the stream.")));
  st->capacity = (size_t)velostream_batch_size;
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
    FreeBulkInsertState(st->bistate[p]);
    table_close(st->logs[p], NoLock);
  }
  delete_batches(st);
}

PartitionBatch* new_partition_batch(InsertState* st) {
  PartitionBatch* pb = nullptr;
  try {
    pb = new PartitionBatch();
    pb->batch.columns.resize(st->natts);
    for (int c = 0; c < st->natts; ++c) {
      pb->batch.columns[c].type = st->engine_types[c];
      pb->batch.columns[c].used = st->stored[c];
      if (st->stored[c]) pb->batch.columns[c].resize(st->capacity);
    }
  } catch (const std::exception&) {
    delete pb;
    pb = nullptr;
  }
  if (pb == nullptr) ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory for a stream batch")));
  return pb;
}

// Stores the slot's values as row `row` of `b`. Raises ERROR for a numeric
// value the engine cannot hold exactly (more than 38 significant digits).
void store_row(InsertState* st, eng::RecordBatch* b, size_t row, TupleTableSlot* slot) {
  for (int c = 0; c < st->natts; ++c) {
    if (!st->stored[c]) continue;
    eng::Column& col = b->columns[c];
    bool isnull = slot->tts_isnull[c];
    col.null[row] = isnull;
    if (isnull) continue;
    Datum v = slot->tts_values[c];
    switch (st->types[c]) {
      case INT2OID: col.i64[row] = DatumGetInt16(v); break;
      case INT4OID: col.i64[row] = DatumGetInt32(v); break;
      case INT8OID: case TIMESTAMPOID: case TIMESTAMPTZOID: col.i64[row] = DatumGetInt64(v); break;
      case BOOLOID: col.i64[row] = DatumGetBool(v); break;
      case DATEOID: col.i64[row] = DatumGetDateADT(v); break;
      case FLOAT4OID: col.f64[row] = DatumGetFloat4(v); break;
      case FLOAT8OID: col.f64[row] = DatumGetFloat8(v); break;
      case NUMERICOID: {
        char* text = DatumGetCString(DirectFunctionCall1(numeric_out, v));
        if (!eng::Decimal::parse(text, &col.dec[row]))
          ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                          errmsg("numeric value %s in column \"%s\" has more than 38 significant digits", text,
                                 NameStr(TupleDescAttr(slot->tts_tupleDescriptor, c)->attname)),
                          errdetail("Continuous views compute numeric aggregates exactly with 38 digits."),
                          errhint("Round the value, or declare the stream column as float8.")));
        pfree(text);
        break;
      }
      case TEXTOID: case VARCHAROID: {
        struct varlena* t = pg_detoast_datum_packed((struct varlena*)DatumGetPointer(v));
        bool failed = false;
        try {
          col.str[row] = b->arena.copy(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
        } catch (const std::exception&) {
          failed = true;
        }
        if (failed) ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory for a stream batch")));
        if ((Pointer)t != DatumGetPointer(v)) pfree(t);
        break;
      }
      default: break;
    }
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
  if (st->batches[p] == nullptr) st->batches[p] = new_partition_batch(st);
  PartitionBatch* pb = st->batches[p];
  store_row(st, &pb->batch, pb->rows, slot);
  if (++pb->rows == st->capacity) {
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

// Partition worker: owns one partition of one stream. Each cycle is one
// transaction that consumes the committed rows of the partition's log
// (deleting them), runs every continuous view of the stream over each decoded
// batch, and merges the views' deltas into their tables. Deletes and upserts
// commit together, so a crash anywhere re-reads exactly the rows whose
// results were not committed: nothing is lost or counted twice.
#include <string>
#include <vector>

#include "pg/flush.h"
#include "pg/kafka_source.h"
#include "pg/translate.h"
#include "pg/velostream.h"

namespace eng = velostream::engine;

extern "C" {
PGDLLEXPORT void velostream_worker_main(Datum arg);
}

/// What the launcher passes in bgw_extra.
struct WorkerArgs {
  Oid database;
  int partition;
};

namespace {

// Owner of relation `relid` (InvalidOid if it is gone).
Oid get_rel_owner(Oid relid) {
  HeapTuple tp = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
  if (!HeapTupleIsValid(tp)) return InvalidOid;
  Oid owner = ((Form_pg_class)GETSTRUCT(tp))->relowner;
  ReleaseSysCache(tp);
  return owner;
}

// One continuous view as this worker runs it. Lives in its own memory
// context; the C++ plan and aggregator are deleted with it.
struct WorkerView {
  Oid view;
  Oid state;
  MemoryContext cxt;
  ViewDesc* desc;
  eng::ViewAggregator* agg;
  ViewUpsert* upsert;
  bool seen;
};

Oid stream_oid;
int partition_no;
char* stream_name;
List* views = NIL;                 // of WorkerView*, in TopMemoryContext
eng::RecordBatch* batch = nullptr;  // reused for every batch
std::vector<uint8_t>* used = nullptr;
Oid* column_types = nullptr;       // SQL type of each stream column
int ncolumns = 0;
MemoryContext batch_cxt;           // detoasted values of the current batch
SPIPlanPtr stats_plan = nullptr;
KafkaSource* kafka = nullptr;      // set for Kafka streams

void delete_aggregator(void* arg) { delete static_cast<eng::ViewAggregator*>(arg); }

// pg_snapshot text "xmin:xmax:xip,..." -> StartSnapshot.
void parse_snapshot(const char* text, eng::StartSnapshot* out) {
  char* end;
  out->xmin = strtoll(text, &end, 10);
  out->xmax = strtoll(end + 1, &end, 10);
  out->xip.clear();
  while (*end == ':' || *end == ',') {
    if (end[1] == '\0') break;
    out->xip.push_back(strtoll(end + 1, &end, 10));
  }
}

void remove_view(WorkerView* v) {
  if (v->upsert) SPI_freeplan(v->upsert->plan);
  MemoryContextDelete(v->cxt);  // runs delete_aggregator and the plan's deleter
  pfree(v);
}

WorkerView* add_view(Oid view, Oid state, const char* snapshot, const char* query_tree) {
  WorkerView* v = (WorkerView*)MemoryContextAllocZero(TopMemoryContext, sizeof(WorkerView));
  v->view = view;
  v->state = state;
  v->cxt = AllocSetContextCreate(TopMemoryContext, "velostream view", ALLOCSET_SMALL_SIZES);
  MemoryContext old = MemoryContextSwitchTo(v->cxt);
  Query* query = (Query*)stringToNode(query_tree);
  v->desc = velostream_translate_query(query);
  // Local streams: rows committed before the view was created are not its
  // own. A Kafka view starts at the stream's current offsets instead.
  if (kafka == nullptr) parse_snapshot(snapshot, &v->desc->plan->start);
  v->agg = new eng::ViewAggregator(*v->desc->plan);
  MemoryContextCallback* cb = (MemoryContextCallback*)palloc0(sizeof(MemoryContextCallback));
  cb->func = delete_aggregator;
  cb->arg = v->agg;
  MemoryContextRegisterResetCallback(v->cxt, cb);
  v->upsert = velostream_prepare_upsert(v->desc, view, state);
  MemoryContextSwitchTo(old);
  return v;
}

// Brings the view list in line with the catalog. SPI connected.
void refresh_views() {
  Oid argtypes[1] = {OIDOID};
  Datum args[1] = {ObjectIdGetDatum(stream_oid)};
  int rc = SPI_execute_with_args(
      "SELECT view::oid, coalesce(state_table::oid, 0), start_snapshot::text, query_tree "
      "FROM velostream.views WHERE stream = $1 ORDER BY view::oid",
      1, argtypes, args, NULL, false, 0);
  if (rc != SPI_OK_SELECT) elog(ERROR, "velostream: reading velostream.views failed");
  ListCell* lc;
  foreach (lc, views) ((WorkerView*)lfirst(lc))->seen = false;
  bool changed = false;
  uint64 n = SPI_processed;
  SPITupleTable* tt = SPI_tuptable;
  for (uint64 i = 0; i < n; ++i) {
    bool isnull;
    Oid view = DatumGetObjectId(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull));
    WorkerView* found = nullptr;
    foreach (lc, views) {
      WorkerView* v = (WorkerView*)lfirst(lc);
      if (v->view == view) found = v;
    }
    if (found == nullptr) {
      Oid state = DatumGetObjectId(SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull));
      char* snapshot = SPI_getvalue(tt->vals[i], tt->tupdesc, 3);
      char* tree = SPI_getvalue(tt->vals[i], tt->tupdesc, 4);
      found = add_view(view, state, snapshot, tree);
      MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
      views = lappend(views, found);
      MemoryContextSwitchTo(old);
      changed = true;
      elog(LOG, "velostream: worker %s/%d runs continuous view %s", stream_name, partition_no, get_rel_name(view));
    }
    found->seen = true;
  }
  foreach (lc, views) {
    WorkerView* v = (WorkerView*)lfirst(lc);
    if (!v->seen) {
      views = foreach_delete_current(views, lc);
      remove_view(v);
      changed = true;
    }
  }
  if (changed && kafka == nullptr) {
    // Decode only the columns some view reads (a Kafka message is decoded
    // whole, so that a bad value in any column makes it a dead letter).
    std::fill(used->begin(), used->end(), 0);
    foreach (lc, views) eng::mark_used_columns(*((WorkerView*)lfirst(lc))->desc->plan, used);
    for (int c = 0; c < ncolumns; ++c) {
      eng::Column& col = batch->columns[c];
      col.used = (*used)[c] != 0;
      if (col.used) velostream_engine_type(column_types[c], &col.type);
    }
  }
}

// Runs every view over the first `rows` rows of the batch.
void feed_views(size_t rows) {
  batch->rows = rows;
  batch->xid.resize(rows);
  if (rows == 0) return;
  char error[256] = "";
  ListCell* lc;
  foreach (lc, views) {
    WorkerView* v = (WorkerView*)lfirst(lc);
    try {
      if (!v->agg->consume(*batch)) snprintf(error, sizeof(error), "%s", v->agg->error().c_str());
    } catch (const std::exception& e) {
      snprintf(error, sizeof(error), "%s", e.what());
    }
    if (error[0])
      ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
                      errmsg("velostream: continuous view \"%s\" failed: %s", get_rel_name(v->view), error)));
  }
}

void dead_letter(const char* payload, const char* reason) {
  Oid argtypes[4] = {OIDOID, INT4OID, TEXTOID, TEXTOID};
  Datum args[4] = {ObjectIdGetDatum(stream_oid), Int32GetDatum(partition_no), CStringGetTextDatum(payload),
                   CStringGetTextDatum(reason)};
  SPI_execute_with_args("INSERT INTO velostream.errors (stream, partition, payload, reason) VALUES ($1, $2, $3, $4)",
                        4, argtypes, args, NULL, false, 0);
}

// Decodes a log tuple into row `row` of the batch. Returns false (after
// writing a dead letter) if a value cannot be represented by the engine.
bool decode_row(size_t row, Datum* values, bool* isnull) {
  for (int c = 0; c < ncolumns; ++c) {
    eng::Column& col = batch->columns[c];
    if (!col.used) continue;
    col.null[row] = isnull[c];
    if (isnull[c]) continue;
    Datum v = values[c];
    switch (column_types[c]) {
      case INT2OID: col.i64[row] = DatumGetInt16(v); break;
      case INT4OID: col.i64[row] = DatumGetInt32(v); break;
      case INT8OID: case TIMESTAMPOID: case TIMESTAMPTZOID: col.i64[row] = DatumGetInt64(v); break;
      case BOOLOID: col.i64[row] = DatumGetBool(v); break;
      case DATEOID: col.i64[row] = DatumGetDateADT(v); break;
      case FLOAT4OID: col.f64[row] = DatumGetFloat4(v); break;
      case FLOAT8OID: col.f64[row] = DatumGetFloat8(v); break;
      case NUMERICOID: {
        char* text = DatumGetCString(DirectFunctionCall1(numeric_out, v));
        if (!eng::Decimal::parse(text, &col.dec[row])) {
          char reason[128];
          snprintf(reason, sizeof(reason), "column %d: numeric value needs more than 38 significant digits", c + 1);
          dead_letter(text, reason);
          return false;
        }
        break;
      }
      case TEXTOID: case VARCHAROID: {
        struct varlena* t = pg_detoast_datum_packed((struct varlena*)DatumGetPointer(v));
        col.str[row] = batch->arena.copy(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
        break;
      }
      default: break;
    }
  }
  batch->xid[row] = (int64_t)U64FromFullTransactionId(DatumGetFullTransactionId(values[ncolumns]));
  return true;
}

void record_stats(WorkerView* v, uint64 groups) {
  if (stats_plan == nullptr) {
    Oid types[5] = {OIDOID, INT4OID, INT8OID, INT8OID, INT8OID};
    stats_plan = SPI_prepare(
        "INSERT INTO velostream.view_partition_stats AS s "
        "(view, partition, events_in, events_selected, groups_upserted, flushes, last_flush) "
        "VALUES ($1, $2, $3, $4, $5, 1, now()) ON CONFLICT (view, partition) DO UPDATE SET "
        "events_in = s.events_in + excluded.events_in, events_selected = s.events_selected + excluded.events_selected, "
        "groups_upserted = s.groups_upserted + excluded.groups_upserted, flushes = s.flushes + 1, "
        "last_flush = excluded.last_flush",
        5, types);
    if (stats_plan == nullptr) elog(ERROR, "velostream: could not prepare the stats upsert");
    SPI_keepplan(stats_plan);
  }
  Datum args[5] = {ObjectIdGetDatum(v->view), Int32GetDatum(partition_no), Int64GetDatum((int64)v->agg->rows_in()),
                   Int64GetDatum((int64)v->agg->rows_selected()), Int64GetDatum((int64)groups)};
  SPI_execute_plan(stats_plan, args, NULL, false, 0);
}

// Consumes the committed rows of a local stream's partition log: decodes
// them into batches (feeding the views) and deletes them, in the current
// transaction. Returns the rows consumed.
uint64 read_log(Oid log_oid, size_t capacity, uint64 max_rows, TimestampTz start) {
  pgstat_report_activity(STATE_RUNNING, "velostream: consuming");
  Relation log = table_open(log_oid, RowExclusiveLock);
  TupleDesc desc = RelationGetDescr(log);
  Datum* values = (Datum*)palloc(sizeof(Datum) * desc->natts);
  bool* nulls = (bool*)palloc(sizeof(bool) * desc->natts);
  Snapshot snap = RegisterSnapshot(GetLatestSnapshot());
  TableScanDesc scan = table_beginscan(log, snap, 0, NULL);
  uint64 consumed = 0;
  size_t row = 0;
  batch->reset(capacity);
  HeapTuple tuple;
  while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL) {
    heap_deform_tuple(tuple, desc, values, nulls);
    MemoryContext old = MemoryContextSwitchTo(batch_cxt);
    if (decode_row(row, values, nulls)) ++row;
    MemoryContextSwitchTo(old);
    simple_heap_delete(log, &tuple->t_self);
    ++consumed;
    if (row == capacity) {
      feed_views(row);
      batch->reset(capacity);
      MemoryContextReset(batch_cxt);
      row = 0;
      if (consumed >= max_rows ||
          TimestampDifferenceExceeds(start, GetCurrentTimestamp(), velostream_flush_interval_ms))
        break;
    }
  }
  feed_views(row);
  MemoryContextReset(batch_cxt);
  table_endscan(scan);
  UnregisterSnapshot(snap);
  table_close(log, NoLock);

  return consumed;
}

// One transaction: consume, aggregate, flush. Returns the rows consumed.
uint64 run_cycle() {
  SetCurrentStatementStartTimestamp();
  StartTransactionCommand();
  SPI_connect();
  PushActiveSnapshot(GetTransactionSnapshot());

  if (!OidIsValid(get_extension_oid("velostream", true))) {
    SPI_finish();
    PopActiveSnapshot();
    CommitTransactionCommand();
    elog(LOG, "velostream: extension dropped, worker %s/%d exits", stream_name, partition_no);
    proc_exit(0);
  }
  // Lock the tables we write before reading the catalog, so a view dropped
  // meanwhile is seen as dropped rather than written after its DROP.
  ListCell* lc;
  foreach (lc, views) {
    WorkerView* v = (WorkerView*)lfirst(lc);
    LockRelationOid(v->view, RowExclusiveLock);
    if (OidIsValid(v->state)) LockRelationOid(v->state, RowExclusiveLock);
  }
  Oid argtypes[2] = {OIDOID, INT4OID};
  Datum args[2] = {ObjectIdGetDatum(stream_oid), Int32GetDatum(partition_no)};
  int rc = SPI_execute_with_args(
      "SELECT p.log_table::oid, s.paused FROM velostream.stream_partitions p JOIN velostream.streams s USING (stream) "
      "WHERE p.stream = $1 AND p.partition = $2",
      2, argtypes, args, NULL, false, 1);
  if (rc != SPI_OK_SELECT || SPI_processed == 0) {
    SPI_finish();
    PopActiveSnapshot();
    CommitTransactionCommand();
    elog(LOG, "velostream: stream %s dropped, worker %d exits", stream_name, partition_no);
    proc_exit(0);
  }
  bool isnull;
  Oid log_oid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
  bool paused = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
  refresh_views();
  const size_t capacity = (size_t)velostream_batch_size;
  const uint64 max_rows = 64 * (uint64)capacity;  // bounds one transaction
  TimestampTz start = GetCurrentTimestamp();
  uint64 consumed = 0;
  if (kafka != nullptr && velostream_kafka_config_changed(kafka)) {
    SPI_finish();
    PopActiveSnapshot();
    CommitTransactionCommand();
    proc_exit(0);  // the launcher restarts the worker with the new options
  }
  if (kafka != nullptr) {
    velostream_kafka_set_paused(kafka, paused);
    pgstat_report_activity(STATE_RUNNING, "velostream: consuming Kafka");
    consumed = velostream_kafka_read(kafka, capacity, max_rows, feed_views);
  } else if (!paused) {
    consumed = read_log(log_oid, capacity, max_rows, start);
  }

  TimestampTz read_done = GetCurrentTimestamp();
  // Flush: every view's delta, and its statistics, in this transaction.
  if (consumed > 0) {
    pgstat_report_activity(STATE_RUNNING, "velostream: flushing");
    foreach (lc, views) {
      WorkerView* v = (WorkerView*)lfirst(lc);
      if (v->agg->rows_in() == 0) continue;
      // The upsert runs as the view's owner, in a restricted security
      // context: triggers, defaults or constraints the owner put on the
      // table never run with the worker's superuser rights.
      Oid owner = get_rel_owner(v->view);
      if (OidIsValid(v->state) && get_rel_owner(v->state) != owner) {
        // the view changed hands (ALTER TABLE ... OWNER TO): its state follows
        char* sql = psprintf("ALTER TABLE %s OWNER TO %s",
                             quote_qualified_identifier("velostream", get_rel_name(v->state)),
                             quote_identifier(GetUserNameFromId(owner, false)));
        velostream_spi_exec(sql, SPI_OK_UTILITY);
      }
      Oid save_userid;
      int save_sec;
      GetUserIdAndSecContext(&save_userid, &save_sec);
      SetUserIdAndSecContext(owner, save_sec | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
      TimestampTz flush_start = GetCurrentTimestamp();
      uint64 groups = velostream_upsert_delta(v->desc, v->upsert, *v->agg);
      SetUserIdAndSecContext(save_userid, save_sec);
      elog(DEBUG2, "velostream: %s/%d flushed " UINT64_FORMAT " groups of %s in %ld us", stream_name, partition_no,
           groups, get_rel_name(v->view), (long)(GetCurrentTimestamp() - flush_start));
      record_stats(v, groups);
      v->agg->clear();
    }
  }
  if (kafka != nullptr) velostream_kafka_save(kafka, true);
  SPI_finish();
  PopActiveSnapshot();
  CommitTransactionCommand();
  if (consumed > 0) {
    TimestampTz done = GetCurrentTimestamp();
    elog(DEBUG1, "velostream: %s/%d consumed " UINT64_FORMAT " rows: read+aggregate %ld us, flush+commit %ld us",
         stream_name, partition_no, consumed, (long)(read_done - start), (long)(done - read_done));
  }
  pgstat_report_stat(false);
  pgstat_report_activity(STATE_IDLE, NULL);
  return consumed;
}

}  // namespace

void velostream_worker_main(Datum arg) {
  WorkerArgs wa;
  memcpy(&wa, MyBgworkerEntry->bgw_extra, sizeof(wa));
  stream_oid = DatumGetObjectId(arg);
  partition_no = wa.partition;
  pqsignal(SIGHUP, SignalHandlerForConfigReload);
  pqsignal(SIGTERM, die);
  BackgroundWorkerUnblockSignals();
  BackgroundWorkerInitializeConnectionByOid(wa.database, InvalidOid, 0);

  batch_cxt = AllocSetContextCreate(TopMemoryContext, "velostream batch", ALLOCSET_DEFAULT_SIZES);
  StartTransactionCommand();
  Relation rel = try_relation_open(stream_oid, AccessShareLock);
  if (rel == NULL) {
    CommitTransactionCommand();
    proc_exit(0);
  }
  stream_name = MemoryContextStrdup(TopMemoryContext, RelationGetRelationName(rel));
  TupleDesc desc = RelationGetDescr(rel);
  ncolumns = desc->natts;
  column_types = (Oid*)MemoryContextAlloc(TopMemoryContext, sizeof(Oid) * ncolumns);
  for (int c = 0; c < ncolumns; ++c) column_types[c] = TupleDescAttr(desc, c)->atttypid;
  relation_close(rel, AccessShareLock);
  CommitTransactionCommand();

  batch = new eng::RecordBatch();
  batch->columns.resize(ncolumns);
  used = new std::vector<uint8_t>(ncolumns, 0);

  // A Kafka stream's consumer is created here, after connecting: never in
  // the postmaster, whose forks would not inherit librdkafka's threads.
  SetCurrentStatementStartTimestamp();
  StartTransactionCommand();
  SPI_connect();
  PushActiveSnapshot(GetTransactionSnapshot());
  Oid argtypes[1] = {OIDOID};
  Datum args[1] = {ObjectIdGetDatum(stream_oid)};
  if (SPI_execute_with_args("SELECT kind, partitions FROM velostream.streams WHERE stream = $1", 1, argtypes, args,
                            NULL, true, 1) == SPI_OK_SELECT &&
      SPI_processed == 1) {
    char* kind = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
    bool isnull;
    int nparts = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
    if (strcmp(kind, "kafka") == 0) kafka = velostream_kafka_open(stream_oid, partition_no, nparts, batch);
  }
  SPI_finish();
  PopActiveSnapshot();
  CommitTransactionCommand();
  elog(LOG, "velostream: worker for stream %s partition %d started", stream_name, partition_no);

  for (;;) {
    CHECK_FOR_INTERRUPTS();
    if (ConfigReloadPending) {
      ConfigReloadPending = false;
      ProcessConfigFile(PGC_SIGHUP);
    }
    uint64 consumed = run_cycle();
    // A Kafka consumer with partitions already waited inside consume().
    if (consumed == 0 && (kafka == nullptr || !velostream_kafka_waits(kafka))) {
      (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, velostream_flush_interval_ms,
                      PG_WAIT_EXTENSION);
      ResetLatch(MyLatch);
    }
  }
}

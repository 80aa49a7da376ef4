// Partition worker: owns one partition of one stream. Each cycle is one
// transaction that consumes the committed rows of the partition's log
// (deleting them), runs every continuous view of the stream over each decoded
// batch, and merges the views' deltas into their tables. Deletes and upserts
// commit together, so a crash anywhere re-reads exactly the rows whose
// results were not committed: nothing is lost or counted twice.
#include <malloc.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "engine/batch_codec.h"
#include "pg/computed.h"
#include "pg/event_time.h"
#include "pg/flush.h"
#include "pg/kafka_source.h"
#include "pg/stream_writer.h"
#include "pg/translate.h"
#include "pg/types.h"
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

// One continuous view as this worker runs it. Lives in its own memory
// context; the C++ plan and aggregator are deleted with it.
struct WorkerView {
  Oid view;
  Oid state;
  MemoryContext cxt;
  ViewDesc* desc;
  eng::ViewAggregator* agg;    // the delta since the last flush
  ViewUpsert* upsert;
  bool seen;
  // Owned views only (store is NULL otherwise): this partition's full
  // state, and its changelog.
  eng::ViewAggregator* store;
  // Shared views only: the aggregator that merges and finalises the states
  // of the state table (velostream._merge_states).
  eng::ViewAggregator* merger;
  std::string* encoded;        // reused encode buffer
  SPIPlanPtr log_insert;
  SPIPlanPtr log_delete;
  // Bounded state (owned views without windows): groups evicted beyond
  // velostream.state_memory are rows of the state table with their key.
  SPIPlanPtr spill_take;       // DELETE ... WHERE key = ANY($2) RETURNING data
  SPIPlanPtr spill_put;        // INSERT ... ON CONFLICT (partition, key) DO UPDATE
  bool has_spill;              // this partition has evicted groups
  int64 log_bytes;             // changelog bytes written since the last snapshot
  int64 snapshot_bytes;        // size of the last snapshot
  // Failure isolation: a view whose flush failed is set aside. Its delta
  // (agg) keeps growing and is saved in velostream.pending_deltas with the
  // consumed positions, until a retry's flush succeeds.
  bool failing;
  int failures;                // consecutive failed flushes
  TimestampTz retry_at;        // next retry (velostream.retry() moves it to now)
  bool pending_row;            // a row of velostream.pending_deltas exists
  uint64 saved_rows_in;        // agg->rows_in() when the pending row was written
  bool pending_dirty;          // the delta changed without new rows (exchanged groups sent or received)
  std::string* pending_buf;    // reused encode buffer for the pending delta
  // Restored by pg_restore (velostream.views.restored_snapshot, restoring):
  // the view counts a restored log batch iff its start snapshot in the
  // dumped database did not hold the batch's writer; and it waits, counting
  // but not writing, until its result table has its unique index back.
  bool has_restored;
  eng::StartSnapshot* restored;
  bool restoring;
  bool runs_functions;         // has an aggregate PostgreSQL runs (pg_aggregate.h) or computed columns
  ComputedColumns* computed;   // its computed columns (pg/computed.h), or NULL
  // Event time (velostream.views.allowed_lateness, late): rows behind the
  // view's watermark minus the allowed lateness are late, not counted.
  int64 lateness_us;
  bool late_drop;              // late = 'drop': counted, not dead letters
  uint64 late_events;          // late rows since the last recorded statistics
  // Closing windows (owned views with a window): emit = 'final' writes a
  // window's rows once, when it closes; retention_us (-1: none) deletes them
  // from the table once they ended that long behind the watermark. closed_wm
  // is the watermark the view closed its windows through on this partition
  // (view_partition_stats.watermark), new_closed_wm the one its current
  // flush closes them through.
  bool emit_final;
  int64 retention_us;
  bool has_closed;
  int64 closed_wm;
  bool has_new_closed;
  int64 new_closed_wm;
  // Retention, on partition 0: the least watermark the view closed through
  // on the other partitions (has_others: every one closed some), read at the
  // cycle's start, and the window start its rows were deleted through.
  bool has_others;
  int64 others_closed;
  bool has_retained;
  int64 retained_through;
  // Exchanged groups (velostream.views.exchange; engine/view_aggregator.h):
  // an owned view whose rows reach every partition. At each flush the
  // groups of its delta that another partition owns go to that partition's
  // log (send_exchanged); the batches sent here are decoded into inbox and
  // merged into the delta (read_log). Its windows close only behind every
  // other partition's committed closing watermark (view_closing).
  bool exchange;
  eng::ViewAggregator* inbox;
  // Retention of a session view: the sessions this partition closed whose
  // rows are still in the table, by their end (last event + gap + 1 µs),
  // each with its encoded key; persisted as key rows of the state table
  // (data: the end), which a session view has no other use for.
  std::multimap<int64_t, std::string>* retained_sessions;
};

// Changelog compaction: a snapshot of all groups replaces the changelog
// once the changes written since the last snapshot outgrow it (four times its
// size plus this slack), so replay stays proportional to the state's size
// while a growing state is not rewritten at every flush.
constexpr int64 kSnapshotSlack = 8 << 20;

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
bool worker_error_recorded = false;  // stream_partitions.worker_error is set
// The stream's event time (event_time.h), read each cycle; the column is
// fixed at CREATE.
StreamEventTime event_time;
bool has_event_time = false;
// Watermarks (microseconds since 2000-01-01; each with its has_ flag), as
// begin_event_time() works them out:
// - source_wm: the stream's watermark when the cycle began, never below the
//   one this partition committed before (stream_partitions.source_watermark).
//   Rows read from the source (the partition's log of a local stream, the
//   topic partitions of a Kafka stream) are late against it; the rows a
//   Kafka worker routes to another partition's log carry it.
// - view_wm: the watermark this partition's views closed their windows at,
//   as committed (stream_partitions.watermark); view_cand: the one they may
//   close at in this cycle. A Kafka stream's partition may only go as far as
//   the source watermark every other partition committed (rows they route to
//   it carry at least that) and only once it has consumed every routed batch
//   its snapshot holds (log_drained): then no row it may still count is
//   behind view_cand minus a view's allowed lateness.
// - late_ref: the watermark the rows being fed are judged against.
bool has_source_wm = false, has_view_wm = false, has_view_cand = false, has_late_ref = false;
int64 source_wm = 0, view_wm = 0, view_cand = 0, late_ref = 0;
bool committed_source = false;  // source_wm as committed (no write needed)
int64 committed_source_wm = 0;
bool log_drained = false;
// The cycle consumed every batch of exchanged groups its snapshot holds.
bool exchange_drained = false;
bool routed_cycle = false;      // other partitions route rows to this one (begin_event_time)
// The least closing watermark (stream_partitions.watermark) the other
// partitions committed, as the log's snapshot sees it; others_closing_known:
// every other partition committed one. Exchanged views close behind it.
bool others_closing_known = false;
int64 others_closing_min = 0;
bool cycle_has_event = false;
int64 cycle_max_event = 0;
uint64 cycle_rows = 0;

void delete_aggregator(void* arg) { delete static_cast<eng::ViewAggregator*>(arg); }
void delete_string(void* arg) { delete static_cast<std::string*>(arg); }
void delete_snapshot(void* arg) { delete static_cast<eng::StartSnapshot*>(arg); }

// PostgreSQL functions a view calls (its aggregates' transition, combine,
// serialise and final functions, expressions) run as the view's owner in a
// restricted context, never as the worker. An abort restores the user.
struct OwnerContext {
  Oid user = InvalidOid;
  int sec = 0;
  bool active = false;
};

void enter_owner(const WorkerView* v, OwnerContext* c) {
  if (!v->runs_functions) return;
  Oid owner = velostream_rel_owner(v->view);
  GetUserIdAndSecContext(&c->user, &c->sec);
  SetUserIdAndSecContext(owner, c->sec | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
  c->active = true;
}

void leave_owner(const OwnerContext& c) {
  if (c.active) SetUserIdAndSecContext(c.user, c.sec);
}

// C++ calls on an owned view's state, with exceptions and error strings kept
// inside: they return false with a message in `error`.
bool load_groups(eng::ViewAggregator* into, const char* data, size_t len, char* error, size_t error_len) {
  try {
    std::string why;
    if (into->load_groups(data, len, &why)) return true;
    snprintf(error, error_len, "%s", why.c_str());
  } catch (const std::exception& e) {
    snprintf(error, error_len, "%s", e.what());
  }
  return false;
}

bool load_state(const WorkerView* v, eng::ViewAggregator* into, const char* data, size_t len, char* error,
                size_t error_len) {
  OwnerContext owner;
  enter_owner(v, &owner);
  bool ok = load_groups(into, data, len, error, error_len);
  leave_owner(owner);
  return ok;
}

bool merge_delta(WorkerView* v, uint32_t* groups, uint8_t* created, size_t* count, char* error, size_t error_len) {
  try {
    std::vector<uint32_t> g;
    std::vector<uint8_t> c;
    if (!v->store->merge(*v->agg, &g, &c)) {
      snprintf(error, error_len, "%s", v->store->error().c_str());
      return false;
    }
    memcpy(groups, g.data(), sizeof(uint32_t) * g.size());
    memcpy(created, c.data(), c.size());
    *count = g.size();
    return true;
  } catch (const std::exception& e) {
    snprintf(error, error_len, "%s", e.what());
    return false;
  }
}

// Encodes groups[0..n) of `from` (all groups if groups is NULL) into `out`.
bool encode_groups(const eng::ViewAggregator* from, const uint32_t* groups, size_t n, std::string* out,
                   char* error, size_t error_len) {
  try {
    out->clear();
    // A session view's changelog entry also lists the sessions that left
    // (merged into another or re-keyed) since the last merge.
    bool ok = groups == nullptr ? from->encode_all(out)
                                : from->encode_groups(groups, n, out,
                                                      from->plan().session.key_part >= 0 ? &from->gone_keys() : nullptr);
    if (!ok) snprintf(error, error_len, "%s", from->error().c_str());
    return ok;
  } catch (const std::exception& e) {
    snprintf(error, error_len, "%s", e.what());
    return false;
  }
}

// encode_groups as view v's owner; raises the error.
void encode_state(const WorkerView* v, const eng::ViewAggregator* from, const uint32_t* groups, size_t n,
                  std::string* out) {
  char error[256];
  OwnerContext owner;
  enter_owner(v, &owner);
  if (!encode_groups(from, groups, n, out, error, sizeof(error)))
    ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
                    errmsg("velostream: could not save the state of continuous view \"%s\": %s", get_rel_name(v->view),
                           error)));
  leave_owner(owner);
}

// A palloc'd bytea copy of `s`.
bytea* to_bytea(std::string_view s) {
  bytea* data = (bytea*)palloc(VARHDRSZ + s.size());
  SET_VARSIZE(data, VARHDRSZ + s.size());
  memcpy(VARDATA(data), s.data(), s.size());
  return data;
}

// a - b, saturating at PG_INT64_MIN.
int64 minus(int64 a, int64 b) {
  int64 r;
  return pg_sub_s64_overflow(a, b, &r) ? PG_INT64_MIN : r;
}

// Empties an owned view's store (C++ calls kept inside).
void clear_store(WorkerView* v) {
  try {
    v->store->clear();
  } catch (const std::exception&) {
  }
}

// Replays an owned view's changelog for this partition into its (empty) store.
void replay_changelog(WorkerView* v) {
  const char* qstate = quote_qualified_identifier("velostream", get_rel_name(v->state));
  v->log_bytes = 0;
  v->snapshot_bytes = 0;
  Oid argtypes[1] = {INT4OID};
  Datum args[1] = {Int32GetDatum(partition_no)};
  char* sql = psprintf("SELECT data FROM %s WHERE partition = $1 AND key IS NULL ORDER BY id", qstate);
  if (SPI_execute_with_args(sql, 1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
    elog(ERROR, "velostream: reading the state of %s failed", get_rel_name(v->view));
  for (uint64 i = 0; i < SPI_processed; ++i) {
    bool isnull;
    bytea* data = DatumGetByteaP(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
    char error[256];
    if (!load_state(v, v->store, VARDATA(data), VARSIZE(data) - VARHDRSZ, error, sizeof(error)))
      ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
                      errmsg("velostream: state of continuous view \"%s\" is unreadable: %s", get_rel_name(v->view),
                             error),
                      errhint("Drop and re-create the continuous view.")));
    // (a snapshot may span several rows: everything replayed counts as the
    // snapshot, so the next one comes after four times as much again)
    v->snapshot_bytes += VARSIZE(data) - VARHDRSZ;
  }
}

// The largest changelog encode buffer a view keeps between flushes (bytes).
constexpr size_t kKeepEncodedBytes = 4 << 20;

void delete_retained_map(void* arg) { delete static_cast<std::multimap<int64_t, std::string>*>(arg); }

// Adds a retained session (C++ kept inside): false if out of memory.
bool add_retained(WorkerView* v, int64_t end, const char* key, size_t len) {
  try {
    v->retained_sessions->emplace(end, std::string(key, len));
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

// Session view v's retained sessions on this partition, from the key rows
// of its state table (the end in data, 8 bytes).
void load_retained(WorkerView* v) {
  v->retained_sessions->clear();
  Oid types[1] = {INT4OID};
  Datum args[1] = {Int32GetDatum(partition_no)};
  if (SPI_execute_with_args(psprintf("SELECT key, data FROM %s WHERE partition = $1 AND key IS NOT NULL",
                                     quote_qualified_identifier("velostream", get_rel_name(v->state))),
                            1, types, args, NULL, true, 0) != SPI_OK_SELECT)
    elog(ERROR, "velostream: reading the retained sessions of %s failed", get_rel_name(v->view));
  for (uint64 i = 0; i < SPI_processed; ++i) {
    bool null_k, null_d;
    bytea* key = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &null_k));
    bytea* data = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &null_d));
    int64_t end;
    if (null_d || VARSIZE_ANY_EXHDR(data) != sizeof(end))
      ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
                      errmsg("velostream: a retained session of continuous view \"%s\" is unreadable",
                             get_rel_name(v->view))));
    memcpy(&end, VARDATA_ANY(data), sizeof(end));
    if (!add_retained(v, end, VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key)))
      ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
  }
}

// Replays the changelog and prepares the changelog writes.
void load_changelog(WorkerView* v) {
  replay_changelog(v);
  const char* qstate = quote_qualified_identifier("velostream", get_rel_name(v->state));
  Oid types[2] = {INT4OID, BYTEAOID};
  v->log_insert = SPI_prepare(psprintf("INSERT INTO %s (partition, data) VALUES ($1, $2)", qstate), 2, types);
  v->log_delete = SPI_prepare(psprintf("DELETE FROM %s WHERE partition = $1 AND key IS NULL", qstate), 1, types);
  if (v->log_insert == nullptr || v->log_delete == nullptr)
    elog(ERROR, "velostream: could not prepare the state writes of %s", get_rel_name(v->view));
  SPI_keepplan(v->log_insert);
  SPI_keepplan(v->log_delete);
  // Evicted groups (a state table from before 0.6 got its key column from
  // the update).
  Oid stypes[3] = {INT4OID, BYTEAARRAYOID, BYTEAARRAYOID};
  v->spill_take = SPI_prepare(
      psprintf("DELETE FROM %s WHERE partition = $1 AND key = ANY($2) RETURNING data", qstate), 2, stypes);
  v->spill_put = SPI_prepare(psprintf("INSERT INTO %s AS s (partition, key, data) SELECT $1, k, d FROM unnest($2, $3) "
                                      "AS u(k, d) ON CONFLICT (partition, key) WHERE key IS NOT NULL DO UPDATE SET "
                                      "data = excluded.data",
                                      qstate),
                             3, stypes);
  if (v->spill_take == nullptr || v->spill_put == nullptr)
    elog(ERROR, "velostream: could not prepare the evicted state of %s", get_rel_name(v->view));
  SPI_keepplan(v->spill_take);
  SPI_keepplan(v->spill_put);
  if (v->store->plan().session.key_part >= 0) {  // key rows: sessions retained in the table (retention)
    v->retained_sessions = new std::multimap<int64_t, std::string>();
    velostream_on_context_reset(v->cxt, delete_retained_map, v->retained_sessions);
    load_retained(v);
    return;
  }
  Datum args[1] = {Int32GetDatum(partition_no)};
  v->has_spill = SPI_execute_with_args(psprintf("SELECT 1 FROM %s WHERE partition = $1 AND key IS NOT NULL LIMIT 1",
                                                qstate),
                                       1, types, args, NULL, true, 1) == SPI_OK_SELECT &&
                 SPI_processed > 0;
}

// A snapshot is written in chunks of about this many bytes, one changelog row
// each: no value nears PostgreSQL's 1 GB limit on a bytea.
constexpr size_t kSnapshotChunkBytes = 64 << 20;

// Encodes the next snapshot chunk of owned view v's store (C++ kept inside),
// as its owner; raises on failure.
void encode_chunk(WorkerView* v, uint32_t* next, std::string* out) {
  char error[256] = "";
  OwnerContext owner;
  enter_owner(v, &owner);
  try {
    out->clear();
    if (!v->store->encode_chunk(next, kSnapshotChunkBytes, out)) snprintf(error, sizeof(error), "%s", v->store->error().c_str());
  } catch (const std::exception& e) {
    snprintf(error, sizeof(error), "%s", e.what());
  }
  if (error[0])
    ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
                    errmsg("velostream: could not save the state of continuous view \"%s\": %s", get_rel_name(v->view),
                           error)));
  leave_owner(owner);
}

// Replaces the changelog of this partition by a snapshot of every group of
// the store, in chunks (kSnapshotChunkBytes), in the flush's transaction.
void write_snapshot(WorkerView* v) {
  Datum args[2] = {Int32GetDatum(partition_no), (Datum)0};
  if (SPI_execute_plan(v->log_delete, args, NULL, false, 0) != SPI_OK_DELETE)
    elog(ERROR, "velostream: compacting the state of %s failed", get_rel_name(v->view));
  uint32_t next = 0;
  int64 total = 0;
  do {
    encode_chunk(v, &next, v->encoded);
    bytea* data = to_bytea(*v->encoded);
    args[1] = PointerGetDatum(data);
    if (SPI_execute_plan(v->log_insert, args, NULL, false, 0) != SPI_OK_INSERT)
      elog(ERROR, "velostream: writing the state of %s failed", get_rel_name(v->view));
    total += (int64)v->encoded->size();
    pfree(data);
  } while (next < v->store->group_count());
  v->snapshot_bytes = total;
  v->log_bytes = 0;
  if (v->encoded->capacity() > kKeepEncodedBytes) std::string().swap(*v->encoded);
}

// Appends the changed groups' states to the changelog, or replaces the
// changelog by a snapshot of every group when it has grown large enough.
// Runs in the flush's transaction, so state and result rows commit together.
void write_changelog(WorkerView* v, const uint32_t* groups, size_t n) {
  bool snapshot = v->log_bytes > 4 * v->snapshot_bytes + kSnapshotSlack;
  if (snapshot) {
    write_snapshot(v);
    return;
  }
  encode_state(v, v->store, groups, n, v->encoded);
  size_t len = v->encoded->size();
  bytea* data = to_bytea(*v->encoded);
  Datum args[2] = {Int32GetDatum(partition_no), PointerGetDatum(data)};
  if (SPI_execute_plan(v->log_insert, args, NULL, false, 0) != SPI_OK_INSERT)
    elog(ERROR, "velostream: writing the state of %s failed", get_rel_name(v->view));
  v->log_bytes += (int64)len;
  pfree(data);
  // A snapshot, or a cycle that changed many groups, grew the buffer to their
  // size: give it back rather than keep a copy's worth of every group's bytes.
  if (v->encoded->capacity() > kKeepEncodedBytes) std::string().swap(*v->encoded);
}

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
  if (v->upsert && v->upsert->plan) SPI_freeplan(v->upsert->plan);
  if (v->upsert && v->upsert->insert_plan) SPI_freeplan(v->upsert->insert_plan);
  if (v->upsert && v->upsert->set_plan) SPI_freeplan(v->upsert->set_plan);
  if (v->log_insert) SPI_freeplan(v->log_insert);
  if (v->log_delete) SPI_freeplan(v->log_delete);
  if (v->spill_take) SPI_freeplan(v->spill_take);
  if (v->spill_put) SPI_freeplan(v->spill_put);
  MemoryContextDelete(v->cxt);  // runs delete_aggregator (agg, store, inbox) and the plan's deleter
  pfree(v);
}

// ---- Failure isolation --------------------------------------------------
// A view's flush runs in a subtransaction. If it fails (a trigger that
// raises, a constraint, an overflow, a group key already in the table), the
// view is set aside: the subtransaction is rolled back, the error goes to
// velostream.view_partition_stats, and the view's delta is kept, in memory
// and in velostream.pending_deltas, in the transaction that consumes the
// stream: the other views go on, and nothing the set-aside view has not
// written is lost. Retries back off exponentially up to kMaxBackoffMs.

constexpr int kMaxBackoffMs = 60000;

// Loads the view's pending delta into its agg, and its failure state.
void load_pending(WorkerView* v) {
  Oid argtypes[2] = {OIDOID, INT4OID};
  Datum args[2] = {ObjectIdGetDatum(v->view), Int32GetDatum(partition_no)};
  if (SPI_execute_with_args("SELECT data, rows_in FROM velostream.pending_deltas WHERE view = $1 AND partition = $2",
                            2, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
    elog(ERROR, "velostream: reading velostream.pending_deltas failed");
  if (SPI_processed == 1) {
    bool isnull;
    bytea* data = DatumGetByteaP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
    char error[256];
    if (!load_state(v, v->agg, VARDATA(data), VARSIZE(data) - VARHDRSZ, error, sizeof(error)))
      ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
                      errmsg("velostream: pending delta of continuous view \"%s\" is unreadable: %s",
                             get_rel_name(v->view), error),
                      errhint("Drop and re-create the continuous view.")));
    // the rows it holds count in events_in once it is written
    int64 rows_in = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
    if (!isnull && rows_in > 0) v->agg->add_rows_in((uint64)rows_in);
    v->pending_row = true;
    v->saved_rows_in = v->agg->rows_in();
  }
  if (SPI_execute_with_args("SELECT status = 'failing', failures, next_retry FROM velostream.view_partition_stats "
                            "WHERE view = $1 AND partition = $2",
                            2, argtypes, args, NULL, true, 1) == SPI_OK_SELECT &&
      SPI_processed == 1) {
    bool isnull;
    HeapTuple t = SPI_tuptable->vals[0];
    TupleDesc td = SPI_tuptable->tupdesc;
    v->failing = DatumGetBool(SPI_getbinval(t, td, 1, &isnull));
    v->failures = DatumGetInt32(SPI_getbinval(t, td, 2, &isnull));
    Datum retry = SPI_getbinval(t, td, 3, &isnull);
    v->retry_at = isnull ? 0 : DatumGetTimestampTz(retry);
  }
}

// Saves the set-aside view's delta (replacing the previous one), in the
// current transaction, when it changed.
void save_pending(WorkerView* v) {
  if (v->pending_row && !v->pending_dirty && v->agg->rows_in() == v->saved_rows_in) return;
  encode_state(v, v->agg, nullptr, 0, v->pending_buf);
  Oid types[4] = {OIDOID, INT4OID, INT8OID, BYTEAOID};
  Datum args[4] = {ObjectIdGetDatum(v->view), Int32GetDatum(partition_no), Int64GetDatum((int64)v->agg->rows_in()),
                   PointerGetDatum(to_bytea(*v->pending_buf))};
  if (SPI_execute_with_args("INSERT INTO velostream.pending_deltas AS d (view, partition, rows_in, data) "
                            "VALUES ($1, $2, $3, $4) ON CONFLICT (view, partition) DO UPDATE SET "
                            "rows_in = excluded.rows_in, data = excluded.data, updated_at = now()",
                            4, types, args, NULL, false, 0) != SPI_OK_INSERT)
    elog(ERROR, "velostream: saving the pending delta of %s failed", get_rel_name(v->view));
  v->pending_row = true;
  v->pending_dirty = false;
  v->saved_rows_in = v->agg->rows_in();
}

// Deletes the view's pending delta after a successful flush.
void drop_pending(WorkerView* v) {
  if (!v->pending_row) return;
  Oid types[2] = {OIDOID, INT4OID};
  Datum args[2] = {ObjectIdGetDatum(v->view), Int32GetDatum(partition_no)};
  if (SPI_execute_with_args("DELETE FROM velostream.pending_deltas WHERE view = $1 AND partition = $2", 2, types, args,
                            NULL, false, 0) != SPI_OK_DELETE)
    elog(ERROR, "velostream: deleting the pending delta of %s failed", get_rel_name(v->view));
  v->pending_row = false;
  v->saved_rows_in = 0;
}

// Sets the view aside after its flush failed with `e`: records the error and
// the next retry, and logs it.
void set_aside(WorkerView* v, ErrorData* e) {
  v->failing = true;
  v->failures++;
  int64 backoff = std::min<int64>(kMaxBackoffMs, 1000LL << std::min(v->failures - 1, 16));
  v->retry_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), backoff);
  ereport(WARNING, (errcode(e->sqlerrcode),
                    errmsg("velostream: continuous view \"%s\" set aside on partition %d: %s", get_rel_name(v->view),
                           partition_no, e->message),
                    e->detail ? errdetail_internal("%s", e->detail) : 0,
                    errhint("The other views of stream %s go on; this one retries in %ld ms (velostream.retry() "
                            "retries at once) and catches up once the cause is fixed.",
                            stream_name, (long)backoff)));
  Oid types[6] = {OIDOID, INT4OID, TEXTOID, TEXTOID, INT4OID, TIMESTAMPTZOID};
  Datum args[6] = {ObjectIdGetDatum(v->view), Int32GetDatum(partition_no), CStringGetTextDatum(e->message),
                   CStringGetTextDatum(unpack_sql_state(e->sqlerrcode)), Int32GetDatum(v->failures),
                   TimestampTzGetDatum(v->retry_at)};
  if (SPI_execute_with_args("INSERT INTO velostream.view_partition_stats AS s (view, partition, status, last_error, "
                            "sqlstate, error_at, failures, next_retry) VALUES ($1, $2, 'failing', $3, $4, now(), $5, $6) "
                            "ON CONFLICT (view, partition) DO UPDATE SET status = 'failing', last_error = $3, "
                            "sqlstate = $4, error_at = now(), failures = $5, next_retry = $6",
                            6, types, args, NULL, false, 0) != SPI_OK_INSERT)
    elog(ERROR, "velostream: recording the failure of %s failed", get_rel_name(v->view));
}

// The next retry of a set-aside view, as velostream.retry() may have moved it.
void refresh_retry(WorkerView* v) {
  Oid types[2] = {OIDOID, INT4OID};
  Datum args[2] = {ObjectIdGetDatum(v->view), Int32GetDatum(partition_no)};
  if (SPI_execute_with_args("SELECT next_retry FROM velostream.view_partition_stats WHERE view = $1 AND partition = $2",
                            2, types, args, NULL, true, 1) == SPI_OK_SELECT &&
      SPI_processed == 1) {
    bool isnull;
    Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
    if (!isnull && DatumGetTimestampTz(d) < v->retry_at) v->retry_at = DatumGetTimestampTz(d);
  }
}

// The one group of a view without GROUP BY, in its delta (C++ kept inside).
void add_empty_group(WorkerView* v) {
  try {
    v->agg->add_empty_group();
  } catch (const std::exception&) {
    // out of memory: the row then appears with the first input
  }
}

WorkerView* add_view(Oid view, Oid state, const char* snapshot, const char* query_tree, bool owned, bool exchange,
                     const char* restored_snapshot, bool restoring) {
  WorkerView* v = (WorkerView*)MemoryContextAllocZero(TopMemoryContext, sizeof(WorkerView));
  v->view = view;
  v->state = state;
  v->cxt = AllocSetContextCreate(TopMemoryContext, "velostream view", ALLOCSET_SMALL_SIZES);
  MemoryContext old = MemoryContextSwitchTo(v->cxt);
  Query* query = (Query*)stringToNode(query_tree);
  v->desc = velostream_translate_query(query);
  for (const eng::AggSpec& a : v->desc->plan->aggs) v->runs_functions |= a.func == eng::AggFunc::kExternal;
  v->computed = velostream_compile_computed(v->desc, column_types);
  v->runs_functions |= v->computed != nullptr || v->desc->has_exprs || v->desc->having != nullptr;
  // Rows committed to the logs before the view was created are not its own
  // (a Kafka stream's routed rows too). The rows a Kafka worker feeds
  // straight from its topic partitions carry no writer (xid 0): the cycles
  // that see the view count them.
  parse_snapshot(snapshot, &v->desc->plan->start);
  v->agg = new eng::ViewAggregator(*v->desc->plan);
  velostream_on_context_reset(v->cxt, delete_aggregator, v->agg);
  v->pending_buf = new std::string();
  velostream_on_context_reset(v->cxt, delete_string, v->pending_buf);
  load_pending(v);
  MemoryContextSwitchTo(v->cxt);
  if (owned) {
    v->store = new eng::ViewAggregator(*v->desc->plan);
    velostream_on_context_reset(v->cxt, delete_aggregator, v->store);
    v->encoded = new std::string();
    velostream_on_context_reset(v->cxt, delete_string, v->encoded);
    load_changelog(v);
    MemoryContextSwitchTo(v->cxt);  // SPI calls return in SPI's own context
    if (exchange) {
      v->exchange = true;
      v->inbox = new eng::ViewAggregator(*v->desc->plan);
      velostream_on_context_reset(v->cxt, delete_aggregator, v->inbox);
    }
  } else {
    v->merger = new eng::ViewAggregator(*v->desc->plan);
    velostream_on_context_reset(v->cxt, delete_aggregator, v->merger);
  }
  if (restored_snapshot != nullptr) {
    v->restored = new eng::StartSnapshot();
    velostream_on_context_reset(v->cxt, delete_snapshot, v->restored);
    parse_snapshot(restored_snapshot, v->restored);
    v->has_restored = true;
  }
  v->restoring = restoring;
  // A restoring view's ON CONFLICT needs the unique index it does not have yet.
  if (!restoring) v->upsert = velostream_prepare_upsert(v->desc, view, state, owned);
  // Without GROUP BY the view has its one row even before any input (as the
  // batch query has): the first flush writes it; merging the empty states
  // again after a restart changes nothing.
  if (!restoring && v->desc->nkeys == 0) add_empty_group(v);
  MemoryContextSwitchTo(old);
  // The watermark it closed its windows through here, as committed.
  Oid cargs_types[2] = {OIDOID, INT4OID};
  Datum cargs[2] = {ObjectIdGetDatum(view), Int32GetDatum(partition_no)};
  if (SPI_execute_with_args("SELECT watermark FROM velostream.view_partition_stats WHERE view = $1 AND partition = $2 "
                            "AND watermark IS NOT NULL",
                            2, cargs_types, cargs, NULL, false, 1) == SPI_OK_SELECT &&
      SPI_processed == 1) {
    bool isnull;
    v->has_closed = true;
    v->closed_wm = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
  }
  return v;
}

// A restored view can be written once its result table has a valid unique
// index again (pg_restore creates indexes after the data): then its writes
// are prepared and views.restoring is cleared. False while it must wait.
bool restore_done(WorkerView* v) {
  if (!v->restoring) return true;
  Oid types[1] = {OIDOID};
  Datum args[1] = {ObjectIdGetDatum(v->view)};
  if (SPI_execute_with_args("SELECT 1 FROM pg_catalog.pg_index WHERE indrelid = $1 AND indisunique AND indisvalid "
                            "AND indisready",
                            1, types, args, NULL, true, 1) != SPI_OK_SELECT)
    elog(ERROR, "velostream: reading pg_index failed");
  if (SPI_processed == 0) return false;
  MemoryContext old = MemoryContextSwitchTo(v->cxt);
  v->upsert = velostream_prepare_upsert(v->desc, v->view, v->state, v->store != nullptr);
  MemoryContextSwitchTo(old);
  if (SPI_execute_with_args("UPDATE velostream.views SET restoring = false WHERE view = $1", 1, types, args, NULL,
                            false, 0) != SPI_OK_UPDATE)
    elog(ERROR, "velostream: updating velostream.views failed");
  v->restoring = false;
  elog(LOG, "velostream: restored continuous view %s runs on partition %d", get_rel_name(v->view), partition_no);
  return true;
}

// Brings the view list in line with the catalog as the active snapshot sees
// it; the log is then read with that same snapshot, so no committed row is
// fed to an older view list than the one its transaction saw. SPI connected.
void refresh_views() {
  Oid argtypes[1] = {OIDOID};
  Datum args[1] = {ObjectIdGetDatum(stream_oid)};
  int rc = SPI_execute_with_args(
      "SELECT view::oid, coalesce(state_table::oid, 0), start_snapshot::text, query_tree, owned, "
      "restored_snapshot::text, restoring, (extract(epoch FROM allowed_lateness) * 1000000)::int8, late = 'drop', "
      "emit = 'final', coalesce((extract(epoch FROM retention) * 1000000)::int8, -1), exchange "
      "FROM velostream.views WHERE stream = $1 ORDER BY view::oid",
      1, argtypes, args, NULL, true, 0);
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
      bool owned = DatumGetBool(SPI_getbinval(tt->vals[i], tt->tupdesc, 5, &isnull));
      char* restored = SPI_getvalue(tt->vals[i], tt->tupdesc, 6);
      bool restoring = DatumGetBool(SPI_getbinval(tt->vals[i], tt->tupdesc, 7, &isnull));
      bool exchange = DatumGetBool(SPI_getbinval(tt->vals[i], tt->tupdesc, 12, &isnull));
      found = add_view(view, state, snapshot, tree, owned, exchange, restored, restoring);
      MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
      views = lappend(views, found);
      MemoryContextSwitchTo(old);
      changed = true;
      elog(LOG, "velostream: worker %s/%d runs continuous view %s", stream_name, partition_no, get_rel_name(view));
    }
    found->seen = true;
    found->lateness_us = DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 8, &isnull));
    found->late_drop = DatumGetBool(SPI_getbinval(tt->vals[i], tt->tupdesc, 9, &isnull));
    found->emit_final = DatumGetBool(SPI_getbinval(tt->vals[i], tt->tupdesc, 10, &isnull));
    found->retention_us = DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 11, &isnull));
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
    // (room for the computed columns the plans also name)
    int extra = 0;
    foreach (lc, views) extra = Max(extra, ((WorkerView*)lfirst(lc))->desc->ncomputed + 1);
    used->assign(ncolumns + extra, 0);
    foreach (lc, views) {
      WorkerView* v = (WorkerView*)lfirst(lc);
      eng::mark_used_columns(*v->desc->plan, used);
      if (v->computed != nullptr) velostream_computed_mark_used(v->computed, used);
    }
    if (has_event_time) (*used)[event_time.column] = 1;  // the partition's watermark reads it
    for (int c = 0; c < ncolumns; ++c) {
      eng::Column& col = batch->columns[c];
      col.used = (*used)[c] != 0;
      if (col.used) velostream_engine_type(column_types[c], &col.type);
    }
  }
}

// While a log batch pg_restore carried is fed: its writer's transaction id
// in the dumped database; -1 otherwise.
int64_t restored_batch_xid = -1;

// Runs every view over the first `rows` rows of the batch. A restored batch
// goes only to the restored views whose dumped start snapshot did not hold
// its writer (views created after the restore never count it).
// Feeds the batch to view v's delta (C++ kept inside); error set on failure.
void consume_batch(WorkerView* v, char* error, size_t error_len) {
  try {
    if (!v->agg->consume(*batch)) snprintf(error, error_len, "%s", v->agg->error().c_str());
  } catch (const std::exception& e) {
    snprintf(error, error_len, "%s", e.what());
  }
}

void dead_letter(const char* payload, const char* reason) {
  Oid argtypes[4] = {OIDOID, INT4OID, TEXTOID, TEXTOID};
  Datum args[4] = {ObjectIdGetDatum(stream_oid), Int32GetDatum(partition_no), CStringGetTextDatum(payload),
                   CStringGetTextDatum(reason)};
  SPI_execute_with_args("INSERT INTO velostream.errors (stream, partition, payload, reason) VALUES ($1, $2, $3, $4)",
                        4, argtypes, args, NULL, false, 0);
}

// A row a view's computed columns could not be evaluated for: a dead letter
// naming the view and the error; the view skips the row, the stream goes on.
// Row `row` of batch `b` as a dead letter's payload: "(v1,v2,...)".
char* row_payload(const eng::RecordBatch& b, size_t row) {
  StringInfoData payload;
  initStringInfo(&payload);
  appendStringInfoChar(&payload, '(');
  for (int c = 0; c < ncolumns; ++c) {
    if (c) appendStringInfoChar(&payload, ',');
    if (!b.columns[c].used) continue;
    bool isnull;
    Datum d = velostream_column_datum(b.columns[c], row, column_types[c], &isnull);
    if (isnull) continue;
    Oid out;
    bool varlena;
    getTypeOutputInfo(column_types[c], &out, &varlena);
    appendStringInfoString(&payload, OidOutputFunctionCall(out, d));
  }
  appendStringInfoChar(&payload, ')');
  return payload.data;
}

void computed_error(const eng::RecordBatch& b, size_t row, const char* message, void* arg) {
  WorkerView* v = static_cast<WorkerView*>(arg);
  dead_letter(row_payload(b, row), psprintf("continuous view \"%s\": %s", get_rel_name(v->view), message));
}

// Columns that hold a view's computed columns while it consumes a batch,
// swapped in after the stream's columns and out again (decode_batch wants
// exactly the stream's); they keep their capacity.
std::vector<eng::Column>* spare_columns = nullptr;

// Takes the computed columns out of the batch again (also after an error).
void shrink_columns() {
  if (spare_columns == nullptr || batch->columns.size() <= (size_t)ncolumns) return;
  for (size_t i = ncolumns; i < batch->columns.size(); ++i)
    std::swap(batch->columns[i], (*spare_columns)[i - ncolumns]);
  batch->columns.resize(ncolumns);
}

// View v's allowed lateness as an interval (of time only, as it was given).
Interval* lateness_interval(const WorkerView* v) {
  Interval* iv = (Interval*)palloc0(sizeof(Interval));
  iv->time = v->lateness_us;
  return iv;
}

// Text of a timestamptz (microseconds since 2000-01-01) for messages.
const char* timestamptz_text(int64 ts) {
  return DatumGetCString(DirectFunctionCall1(timestamptz_out, TimestampTzGetDatum((TimestampTz)ts)));
}

// Sets the watermark the rows fed next are judged against (has: false, no
// row is late): each view skips those behind it minus its allowed lateness.
void set_late_reference(bool has, int64 wm) {
  has_late_ref = has;
  late_ref = wm;
  ListCell* lc;
  foreach (lc, views) {
    WorkerView* v = (WorkerView*)lfirst(lc);
    v->agg->set_late_before(has && has_event_time ? event_time.column : -1, has ? minus(wm, v->lateness_us) : 0);
  }
}

// The watermark this partition's views close their windows at in this
// cycle (see view_wm above): view_cand once a Kafka partition has drained
// the routed batches, else the committed one. False: none yet.
bool closing_watermark(int64* wm) {
  if (has_view_cand && (!routed_cycle || log_drained)) {
    *wm = view_cand;
    return true;
  }
  *wm = view_wm;
  return has_view_wm;
}

// The watermark view v closes its windows at in this cycle: the
// partition's (closing_watermark), and for an exchanged view no further
// than every other partition's committed closing watermark, and only once
// this cycle consumed every batch of exchanged groups its snapshot holds:
// the groups other partitions send here come from rows they judged against
// at least their closing watermark, and the ones they sent before
// committing it are among those batches. (This partition's own rows not
// read yet will be judged against a watermark at least as high.) Else the
// one it closed through (no move). False: none yet.
bool view_closing(const WorkerView* v, int64* wm) {
  if (!closing_watermark(wm)) return false;
  if (!v->exchange) return true;
  if (exchange_drained && others_closing_known) {
    *wm = Min(*wm, others_closing_min);
    return true;
  }
  *wm = v->closed_wm;
  return v->has_closed;
}

// True if closing_watermark() differs from the committed view_wm.
bool closing_watermark_moved() {
  int64 wm;
  bool has = closing_watermark(&wm);
  return has != has_view_wm || (has && wm != view_wm);
}

// The late rows of view v's last consume: counted, and dead letters unless
// the view's late = 'drop'.
void record_late(WorkerView* v) {
  const std::vector<uint32_t>& late = v->agg->late_rows();
  if (late.empty()) return;
  v->late_events += late.size();
  if (v->late_drop) return;
  const eng::Column& ts = batch->columns[event_time.column];
  const char* column = get_attname(stream_oid, (AttrNumber)(event_time.column + 1), false);
  const char* view = get_rel_name(v->view);
  const char* mark = timestamptz_text(late_ref);
  const char* lateness = DatumGetCString(DirectFunctionCall1(interval_out, IntervalPGetDatum(lateness_interval(v))));
  for (uint32_t r : late)
    dead_letter(row_payload(*batch, r),
                psprintf("late: continuous view \"%s\": %s %s is behind its watermark %s minus its allowed lateness "
                         "(%s)",
                         view, column, timestamptz_text(ts.i64[r]), mark, lateness));
}

// The largest event time of rows [0, rows) of the batch, for the
// partition's watermark (event_time.h): a local stream's partition is a
// source partition (a Kafka stream's are its topic partitions, which
// kafka_source.cpp tracks).
void note_event_times(size_t rows) {
  cycle_rows += rows;
  if (!has_event_time || kafka != nullptr) return;
  const eng::Column& ts = batch->columns[event_time.column];
  if (!ts.used) return;
  for (size_t r = 0; r < rows; ++r) {
    if (ts.null[r]) continue;
    if (!cycle_has_event || ts.i64[r] > cycle_max_event) cycle_max_event = ts.i64[r];
    cycle_has_event = true;
  }
}

void feed_views(size_t rows) {
  batch->rows = rows;
  batch->xid.resize(rows);
  if (rows == 0) return;
  note_event_times(rows);
  char error[256] = "";
  ListCell* lc;
  size_t extra = 0;
  foreach (lc, views) {
    WorkerView* v = (WorkerView*)lfirst(lc);
    if (v->computed != nullptr) extra = Max(extra, (size_t)v->desc->ncomputed + 1);
  }
  shrink_columns();  // after an error that left them in
  if (extra > 0) {
    if (spare_columns == nullptr) spare_columns = new std::vector<eng::Column>();
    if (spare_columns->size() < extra) spare_columns->resize(extra);
    batch->columns.resize(ncolumns + extra);
    for (size_t i = 0; i < extra; ++i) std::swap(batch->columns[ncolumns + i], (*spare_columns)[i]);
  }
  foreach (lc, views) {
    WorkerView* v = (WorkerView*)lfirst(lc);
    if (restored_batch_xid >= 0 && !(v->has_restored && !v->restored->visible(restored_batch_xid))) continue;
    OwnerContext owner;
    enter_owner(v, &owner);
    if (v->computed != nullptr) velostream_compute(v->computed, batch, rows, computed_error, v);
    consume_batch(v, error, sizeof(error));
    if (error[0] == '\0') {  // rows it skipped (a tumble window out of range, an argument that raises): dead letters
      for (const eng::RowError& e : v->agg->row_errors()) computed_error(*batch, e.row, e.message.c_str(), v);
      record_late(v);
    }
    leave_owner(owner);
    if (error[0]) {
      shrink_columns();
      ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
                      errmsg("velostream: continuous view \"%s\" failed: %s", get_rel_name(v->view), error)));
    }
  }
  shrink_columns();
}


// The cycle's router of a Kafka stream's consumed rows (NULL: no routing).
StreamWriter* router = nullptr;

// velostream_kafka_read's feed when rows are routed: the rows of this
// partition go to the views, the others to their partitions' logs.
void route_and_feed(size_t rows) {
  if (rows > 0) rows = velostream_router_route(router, batch, rows, partition_no);
  feed_views(rows);
}

// Decodes one log batch into `batch` (text values point into `data`).
// Returns false with the reason in `error` if the bytes are not a batch of
// this stream. No PostgreSQL calls: C++ objects live in this frame.
bool decode_log_batch(const char* data, size_t len, int64_t xid, char* error, size_t error_len) {
  try {
    shrink_columns();
    std::string why;
    if (!eng::decode_batch(data, len, batch, &why)) {
      snprintf(error, error_len, "%s", why.c_str());
      return false;
    }
    std::fill(batch->xid.begin(), batch->xid.end(), xid);
    return true;
  } catch (const std::exception& e) {
    snprintf(error, error_len, "%s", e.what());
    return false;
  }
}

// Deletes a C++ object when the memory context it is registered with goes
// (velostream_on_context_reset): frees it also when an ERROR leaves the
// frame that made it.
template <class T>
void delete_with_context(void* arg) {
  delete static_cast<T*>(arg);
}

// A new, empty T owned by memory context `cxt`: deleted when the context is
// reset or deleted, so also when an ERROR leaves the frame that made it.
// Raises out of memory.
template <class T>
T* new_in_context(MemoryContext cxt) {
  T* obj = nullptr;
  try {
    obj = new T();
  } catch (const std::exception&) {
  }
  if (obj == nullptr) ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
  velostream_on_context_reset(cxt, delete_with_context<T>, obj);
  return obj;
}

// ---- Exchanged groups ------------------------------------------------------

// The stream's partition logs by partition (read once: the partition count
// is fixed), and the prepared INSERT of a batch of exchanged groups into
// each (NULL until used).
Oid* partition_logs = nullptr;
int npartitions = 0;
SPIPlanPtr* exchange_insert = nullptr;

void load_partition_logs() {
  if (partition_logs != nullptr) return;
  Oid types[1] = {OIDOID};
  Datum args[1] = {ObjectIdGetDatum(stream_oid)};
  if (SPI_execute_with_args("SELECT partition, log_table::oid FROM velostream.stream_partitions WHERE stream = $1 "
                            "ORDER BY partition",
                            1, types, args, NULL, false, 0) != SPI_OK_SELECT)
    elog(ERROR, "velostream: reading the partitions of stream %s failed", stream_name);
  int n = (int)SPI_processed;
  Oid* logs = (Oid*)palloc0(sizeof(Oid) * (n + 1));
  for (int i = 0; i < n; ++i) {
    bool isnull;
    int p = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
    Datum log = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull);
    if (p != i || isnull) elog(ERROR, "velostream: stream %s lacks the log of partition %d", stream_name, i);
    logs[i] = DatumGetObjectId(log);
  }
  Oid* kept = (Oid*)MemoryContextAlloc(TopMemoryContext, sizeof(Oid) * (n + 1));
  memcpy(kept, logs, sizeof(Oid) * (n + 1));
  logs = kept;
  exchange_insert = (SPIPlanPtr*)MemoryContextAllocZero(TopMemoryContext, sizeof(SPIPlanPtr) * (n + 1));
  npartitions = n;
  partition_logs = logs;
}

// Splits exchanged view v's delta (C++ kept inside): the groups partition q
// owns, for each q but this one, encoded (encode_groups, no tombstones) into
// (*out)[q] (empty: none), then removed from the delta, which keeps this
// partition's groups and its row counts. *sent: the groups removed.
bool split_exchanged(WorkerView* v, std::vector<std::string>* out, size_t* sent, char* error, size_t error_len) {
  try {
    out->assign((size_t)npartitions, std::string());
    std::vector<std::vector<uint32_t>> remote((size_t)npartitions);
    std::vector<uint32_t> all;
    for (uint32_t g : v->agg->live_groups()) {  // (any order: the owner merges them in its own)
      uint32_t q = v->agg->owner_partition(g, (uint32_t)npartitions);
      if ((int)q != partition_no) remote[q].push_back(g);
    }
    for (size_t q = 0; q < remote.size(); ++q) {
      if (remote[q].empty()) continue;
      if (!v->agg->encode_groups(remote[q].data(), remote[q].size(), &(*out)[q])) {
        snprintf(error, error_len, "%s", v->agg->error().c_str());
        return false;
      }
      all.insert(all.end(), remote[q].begin(), remote[q].end());
    }
    *sent = all.size();
    // (a set-aside view's delta stays: it compacts; another's is merged and
    // cleared in this flush)
    if (!all.empty() && !v->agg->remove_groups(all.data(), all.size(), v->failing || v->restoring)) {
      snprintf(error, error_len, "%s", v->agg->error().c_str());
      return false;
    }
    return true;
  } catch (const std::exception& e) {
    snprintf(error, error_len, "%s", e.what());
    return false;
  }
}

// Exchanged view v, before its flush: the groups of its delta another
// partition owns go to that partition's log, one batch per partition
// (exchange_view = the view, rows = its groups), in the cycle's transaction
// that consumed their rows -- not in the view's flush, so they are sent even
// while the view is set aside here. Its owner merges them into its delta
// when it reads its log (merge_exchanged). Raises on failure (the cycle
// rolls back: nothing sent, nothing consumed).
void send_exchanged(WorkerView* v) {
  if (!v->exchange || v->agg->live_group_count() == 0) return;
  load_partition_logs();
  if (npartitions <= 1) return;
  MemoryContext tmp = AllocSetContextCreate(CurrentMemoryContext, "velostream exchange", ALLOCSET_SMALL_SIZES);
  std::vector<std::string>* out = new_in_context<std::vector<std::string>>(tmp);
  char error[256];
  size_t sent = 0;
  OwnerContext owner;
  enter_owner(v, &owner);  // external aggregates' serialise functions run as the view's owner
  bool ok = split_exchanged(v, out, &sent, error, sizeof(error));
  leave_owner(owner);
  if (!ok)
    ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
                    errmsg("velostream: could not send the groups of continuous view \"%s\" to their partitions: %s",
                           get_rel_name(v->view), error)));
  for (int q = 0; q < npartitions; ++q) {
    const std::string& bytes = (*out)[(size_t)q];
    if (bytes.empty()) continue;
    if (exchange_insert[q] == nullptr) {
      Oid types[3] = {INT4OID, BYTEAOID, OIDOID};
      char* sql = psprintf("INSERT INTO velostream.%s (" VELOSTREAM_XID_COLUMN ", rows, batch, exchange_view) "
                           "VALUES (pg_current_xact_id(), $1, $2, $3)",
                           quote_identifier(get_rel_name(partition_logs[q])));
      SPIPlanPtr plan = SPI_prepare(sql, 3, types);
      if (plan == nullptr) elog(ERROR, "velostream: could not prepare the exchange of stream %s", stream_name);
      SPI_keepplan(plan);
      exchange_insert[q] = plan;
    }
    uint32_t count;
    memcpy(&count, bytes.data() + sizeof(uint32_t), sizeof(count));  // encode_groups: magic, count, ...
    Datum args[3] = {Int32GetDatum((int32)count), PointerGetDatum(to_bytea(bytes)), ObjectIdGetDatum(v->view)};
    if (SPI_execute_plan(exchange_insert[q], args, NULL, false, 0) != SPI_OK_INSERT)
      elog(ERROR, "velostream: sending the groups of %s to partition %d failed", get_rel_name(v->view), q);
  }
  MemoryContextDelete(tmp);  // (deletes `out`)
  if (sent > 0) v->pending_dirty = true;  // a set-aside view's saved delta must lose them
  elog(DEBUG2, "velostream: %s/%d sent %zu groups of %s to their partitions", stream_name, partition_no, sent,
       get_rel_name(v->view));
}

// A batch of view v's groups another partition sent (encoded groups):
// loaded into its inbox and merged into its delta (C++ kept inside).
// Returns 0, or 1 if the bytes are not groups of the view (nothing merged),
// 2 if merging failed (the delta is unusable); the reason in `error`.
int merge_exchanged(WorkerView* v, const char* data, size_t len, char* error, size_t error_len) {
  try {
    std::string why;
    v->inbox->clear();
    int rc = 0;
    if (!v->inbox->load_groups(data, len, &why)) {
      snprintf(error, error_len, "%s", why.c_str());
      rc = 1;
    } else {
      std::vector<uint32_t> ids;
      std::vector<uint8_t> created;
      if (!v->agg->merge(*v->inbox, &ids, &created)) {
        snprintf(error, error_len, "%s", v->agg->error().c_str());
        rc = 2;
      }
    }
    v->inbox->clear();
    return rc;
  } catch (const std::exception& e) {
    snprintf(error, error_len, "%s", e.what());
    return 2;
  }
}

// Reads a batch of exchanged groups from this partition's log into view
// `view`'s delta, as its owner. A batch of a view dropped since is skipped
// (its log row is deleted all the same), one whose bytes are not the view's
// groups is a dead letter. Raises if merging fails (a sum beyond the
// engine's 38 digits, a combine function's error): the cycle rolls back
// and is retried, as when feeding rows fails.
void receive_exchanged(Oid view, const char* data, size_t len) {
  ListCell* lc;
  foreach (lc, views) {
    WorkerView* v = (WorkerView*)lfirst(lc);
    if (v->view != view) continue;
    if (!v->exchange) break;
    char error[256];
    OwnerContext owner;
    enter_owner(v, &owner);
    int rc = merge_exchanged(v, data, len, error, sizeof(error));
    leave_owner(owner);
    v->pending_dirty = true;  // a set-aside view saves its delta with these groups
    if (rc == 1) {
      dead_letter("", psprintf("unreadable groups of continuous view \"%s\" sent by another partition: %s",
                               get_rel_name(v->view), error));
      return;
    }
    if (rc != 0)
      ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
                      errmsg("velostream: continuous view \"%s\" failed to merge the groups another partition "
                             "sent: %s",
                             get_rel_name(v->view), error)));
    return;
  }
}

void record_stats(WorkerView* v, uint64 groups) {
  if (stats_plan == nullptr) {
    Oid types[7] = {OIDOID, INT4OID, INT8OID, INT8OID, INT8OID, INT8OID, TIMESTAMPTZOID};
    stats_plan = SPI_prepare(
        "INSERT INTO velostream.view_partition_stats AS s "
        "(view, partition, events_in, events_selected, groups_upserted, flushes, last_flush, late_events, watermark) "
        "VALUES ($1, $2, $3, $4, $5, 1, now(), $6, $7) ON CONFLICT (view, partition) DO UPDATE SET "
        "events_in = s.events_in + excluded.events_in, events_selected = s.events_selected + excluded.events_selected, "
        "late_events = s.late_events + excluded.late_events, "
        "groups_upserted = s.groups_upserted + excluded.groups_upserted, flushes = s.flushes + 1, "
        "last_flush = excluded.last_flush, status = 'running', last_error = NULL, sqlstate = NULL, failures = 0, "
        "next_retry = NULL, watermark = coalesce(excluded.watermark, s.watermark)",
        7, types);
    if (stats_plan == nullptr) elog(ERROR, "velostream: could not prepare the stats upsert");
    SPI_keepplan(stats_plan);
  }
  Datum args[7] = {ObjectIdGetDatum(v->view), Int32GetDatum(partition_no), Int64GetDatum((int64)v->agg->rows_in()),
                   Int64GetDatum((int64)v->agg->rows_selected()), Int64GetDatum((int64)groups),
                   Int64GetDatum((int64)v->late_events), TimestampTzGetDatum(v->new_closed_wm)};
  char nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', v->has_new_closed ? ' ' : 'n'};
  SPI_execute_plan(stats_plan, args, nulls, false, 0);
  v->late_events = 0;
  if (v->has_new_closed) {
    v->has_closed = true;
    v->closed_wm = v->new_closed_wm;
  }
}

// Consumes the committed batches of a local stream's partition log: decodes
// each one, feeds the views and deletes it, in the current transaction, until
// max_rows rows or the flush interval (log_drained: it read them all).
// When this worker runs an exchanged view, the batches of exchanged groups
// come first, all of them (exchange_drained), then the row batches. Returns
// the rows (and exchanged groups) consumed.
uint64 read_log(Oid log_oid, Snapshot snap, uint64 max_rows, TimestampTz start) {
  pgstat_report_activity(STATE_RUNNING, "velostream: consuming");
  restored_batch_xid = -1;  // also after an error in an earlier cycle
  Relation log = table_open(log_oid, RowExclusiveLock);
  TupleDesc desc = RelationGetDescr(log);
  if (desc->natts > 6) elog(ERROR, "velostream: partition log %s has unexpected columns", get_rel_name(log_oid));
  bool exchanging = false;
  ListCell* lc;
  foreach (lc, views) exchanging |= ((WorkerView*)lfirst(lc))->exchange;
  uint64 consumed = 0;
  bool drained = true;
  // Pass 0 (exchanging only): the exchanged groups; pass 1: the rest. (A
  // batch pass 0 deleted is still visible to pass 1's scan: it skips it.)
  for (int pass = exchanging ? 0 : 1; pass < 2 && drained; ++pass) {
    TableScanDesc scan = table_beginscan(log, snap, 0, NULL);
    HeapTuple tuple;
    while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL) {
      Datum values[6];
      bool nulls[6] = {false, false, false, true, true, true};
      // restored_xid: 4th column since 0.3, watermark 5th since 0.6, exchange_view 6th since 0.7
      heap_deform_tuple(tuple, desc, values, nulls);
      if (!nulls[5] && exchanging && pass == 1) continue;  // pass 0 took it
      if (nulls[5] && pass == 0) continue;
      MemoryContext old = MemoryContextSwitchTo(batch_cxt);
      bytea* data = DatumGetByteaP(values[2]);
      MemoryContextSwitchTo(old);
      int64_t xid = (int64_t)U64FromFullTransactionId(DatumGetFullTransactionId(values[0]));
      char error[256];
      if (!nulls[5]) {  // groups of an exchanged view, sent here by another partition
        receive_exchanged(DatumGetObjectId(values[5]), VARDATA(data), VARSIZE(data) - VARHDRSZ);
      } else if (decode_log_batch(VARDATA(data), VARSIZE(data) - VARHDRSZ, xid, error, sizeof(error))) {
        restored_batch_xid = nulls[3] ? -1 : (int64_t)U64FromFullTransactionId(DatumGetFullTransactionId(values[3]));
        // Rows another worker routed here are late against the watermark
        // they carry: the one their source had when they were read.
        if (!nulls[4] && has_event_time) set_late_reference(true, DatumGetTimestampTz(values[4]));
        feed_views(batch->rows);
        if (!nulls[4] && has_event_time) set_late_reference(has_source_wm, source_wm);
        restored_batch_xid = -1;
      } else {
        char* reason = psprintf("unreadable log batch of %d rows: %s", DatumGetInt32(values[1]), error);
        dead_letter("", reason);
      }
      MemoryContextReset(batch_cxt);
      simple_heap_delete(log, &tuple->t_self);
      consumed += (uint64)DatumGetInt32(values[1]);
      if (pass == 1 &&
          (consumed >= max_rows || TimestampDifferenceExceeds(start, GetCurrentTimestamp(), velostream_flush_interval_ms))) {
        drained = false;
        break;
      }
    }
    table_endscan(scan);
    if (pass == 0) exchange_drained = true;
  }
  log_drained = drained;
  if (!exchanging) exchange_drained = drained;
  table_close(log, NoLock);
  return consumed;
}

// True if the plan's groups are windows the watermark closes: a tumble,
// hop or cumulate window, or a session, over the stream's event time (a
// window over another column never closes: no row is late by it).
bool closes_windows(const eng::ViewPlan& plan) {
  if (!has_event_time) return false;
  if (plan.session.key_part >= 0) return plan.session.column == event_time.column;
  return plan.window.end_part >= 0 && plan.keys[plan.window.end_part].column == event_time.column;
}

// True if the plan's state is bounded by velostream.state_memory (evicting
// cold groups): a view whose windows do not close, but not sessions (their
// merging needs every session of a key in memory).
bool evicts(const eng::ViewPlan& plan) { return !closes_windows(plan) && plan.session.key_part < 0; }

// The groups of owned view v's store whose window ends by `limit` (C++ kept
// inside): a palloc'd array, its length in *n.
uint32_t* groups_ending_by(WorkerView* v, int64 limit, size_t* n) {
  *n = 0;
  uint32_t* out = nullptr;
  bool failed = false;
  try {
    std::vector<uint32_t> ids;
    v->store->groups_ending_by(limit, &ids);
    *n = ids.size();
    out = (uint32_t*)malloc(sizeof(uint32_t) * (ids.size() ? ids.size() : 1));
    if (out != nullptr) memcpy(out, ids.data(), sizeof(uint32_t) * ids.size());
  } catch (const std::exception&) {
    failed = true;
  }
  if (failed || out == nullptr) ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
  uint32_t* copy = (uint32_t*)palloc(sizeof(uint32_t) * (*n ? *n : 1));
  memcpy(copy, out, sizeof(uint32_t) * *n);
  free(out);
  return copy;
}

// Removes groups[0..n) from owned view v's store (C++ kept inside).
void remove_groups(WorkerView* v, const uint32_t* groups, size_t n) {
  char error[256] = "";
  try {
    if (!v->store->remove_groups(groups, n)) snprintf(error, sizeof(error), "%s", v->store->error().c_str());
  } catch (const std::exception& e) {
    snprintf(error, sizeof(error), "%s", e.what());
  }
  if (error[0])
    ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
                    errmsg("velostream: continuous view \"%s\" failed: %s", get_rel_name(v->view), error)));
}

// Retention, on partition 0 (see close_windows): the window start through
// which owned view v's rows leave its table, false if none may yet: windows
// that ended by the least watermark the view closed through on any partition
// minus max(retention, allowed lateness).
bool retention_limit(const WorkerView* v, int64* start_limit) {
  if (v->retention_us < 0 || partition_no != 0 || v->store == nullptr || !v->has_others) return false;
  const eng::ViewPlan& plan = v->store->plan();
  if (plan.window.end_part < 0) return false;
  bool has_own = v->has_new_closed || v->has_closed;
  if (!has_own) return false;
  int64 least = Min(v->others_closed, v->has_new_closed ? v->new_closed_wm : v->closed_wm);
  *start_limit = minus(minus(least, Max(v->retention_us, v->lateness_us)), plan.window.end_offset);
  return !v->has_retained || *start_limit > v->retained_through;
}

// Deletes the rows of owned view v past its retention (retention_limit).
void delete_retained(WorkerView* v) {
  int64 start_limit;
  if (!retention_limit(v, &start_limit)) return;
  const ViewColumn& col = v->desc->columns[v->desc->key_column[v->store->plan().window.end_part]];
  Oid dtypes[1] = {TIMESTAMPTZOID};
  Datum dargs[1] = {TimestampTzGetDatum(start_limit)};
  char* sql = psprintf("DELETE FROM %s WHERE %s <= $1",
                       quote_qualified_identifier(get_namespace_name(get_rel_namespace(v->view)), get_rel_name(v->view)),
                       quote_identifier(col.name));
  if (SPI_execute_with_args(sql, 1, dtypes, dargs, NULL, false, 0) != SPI_OK_DELETE)
    elog(ERROR, "velostream: deleting the windows of continuous view \"%s\" past its retention failed",
         get_rel_name(v->view));
  v->has_retained = true;  // (rolled back with a failed flush: then deleted again, harmlessly)
  v->retained_through = start_limit;
}

// Retention of a session view: the sessions closing now, groups[0..n) of
// its store, stay in the table until they ended the retention (or the
// allowed lateness, if longer) behind the watermark. Each partition deletes
// the rows of the sessions it owns (delete_retained_sessions); until then
// they are key rows of the state table (data: the session's end), written
// in the flush, and entries of retained_sessions.
void retain_sessions(WorkerView* v, const uint32_t* groups, size_t n) {
  if (n == 0) return;
  Datum* keys = (Datum*)palloc(sizeof(Datum) * n);
  Datum* ends = (Datum*)palloc(sizeof(Datum) * n);
  for (size_t i = 0; i < n; ++i) {
    int64_t end = 0;
    (void)v->store->window_end(groups[i], &end);  // a closing group has one
    std::string_view key = v->store->group_key(groups[i]);
    keys[i] = PointerGetDatum(to_bytea(key));
    ends[i] = PointerGetDatum(to_bytea(std::string_view((const char*)&end, sizeof(end))));
    if (!add_retained(v, end, key.data(), key.size()))
      ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
  }
  Datum args[3] = {Int32GetDatum(partition_no),
                   PointerGetDatum(construct_array(keys, (int)n, BYTEAOID, -1, false, TYPALIGN_INT)),
                   PointerGetDatum(construct_array(ends, (int)n, BYTEAOID, -1, false, TYPALIGN_INT))};
  if (SPI_execute_plan(v->spill_put, args, NULL, false, 0) != SPI_OK_INSERT)
    elog(ERROR, "velostream: recording the closed sessions of %s failed", get_rel_name(v->view));
}

// The keys of view v's retained sessions that ended by `limit` (C++ kept
// inside), taken out of retained_sessions: false if out of memory.
bool take_retained(WorkerView* v, int64_t limit, std::vector<std::string>* keys) {
  try {
    auto last = v->retained_sessions->upper_bound(limit);
    for (auto it = v->retained_sessions->begin(); it != last; ++it) keys->push_back(it->second);
    v->retained_sessions->erase(v->retained_sessions->begin(), last);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

// Retention of a session view on this partition: the rows of the sessions
// it closed that ended by the closing watermark `close` minus max(retention,
// allowed lateness) leave the table, and their key rows the state table.
// (A failed flush rolls the deletes back; its error path reloads
// retained_sessions.)
void delete_retained_sessions(WorkerView* v, int64 close) {
  if (v->retained_sessions == nullptr || v->retention_us < 0 || v->retained_sessions->empty()) return;
  int64 limit = minus(close, Max(v->retention_us, v->lateness_us));
  if (v->retained_sessions->begin()->first > limit) return;
  MemoryContext tmp = AllocSetContextCreate(CurrentMemoryContext, "velostream retention", ALLOCSET_SMALL_SIZES);
  std::vector<std::string>* keys = new_in_context<std::vector<std::string>>(tmp);
  if (!take_retained(v, limit, keys)) ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
  velostream_delete_owned_keys(v->desc, v->upsert, *v->store, *keys);
  size_t n = keys->size();
  Datum* kd = (Datum*)palloc(sizeof(Datum) * (n ? n : 1));
  for (size_t i = 0; i < n; ++i) kd[i] = PointerGetDatum(to_bytea((*keys)[i]));
  Datum args[2] = {Int32GetDatum(partition_no),
                   PointerGetDatum(construct_array(kd, (int)n, BYTEAOID, -1, false, TYPALIGN_INT))};
  if (SPI_execute_plan(v->spill_take, args, NULL, false, 0) != SPI_OK_DELETE_RETURNING)
    elog(ERROR, "velostream: deleting the retained sessions of %s failed", get_rel_name(v->view));
  MemoryContextDelete(tmp);
}

// Closes owned view v's windows: those that ended by this cycle's closing
// watermark minus the allowed lateness leave its store (memory follows open
// windows, not history), and with emit = 'final' their rows are written now,
// once. Windows it closed in an earlier flush (back in the store after a
// changelog replay) leave silently. With retention, partition 0 deletes the
// rows of windows that ended longer than the retention ago behind the least
// watermark the view closed through on any partition. Returns the rows
// written. Runs in the view's flush, as its owner.
uint64 close_windows(WorkerView* v) {
  v->has_new_closed = false;
  int64 close;
  if (!closes_windows(v->store->plan())) return 0;
  if (!view_closing(v, &close)) {
    delete_retained(v);
    return 0;
  }
  if (v->has_closed && close < v->closed_wm) close = v->closed_wm;  // never back
  size_t n;
  if (v->has_closed) {
    uint32_t* done = groups_ending_by(v, minus(v->closed_wm, v->lateness_us), &n);
    remove_groups(v, done, n);
  }
  uint32_t* closing = groups_ending_by(v, minus(close, v->lateness_us), &n);
  uint64 written = 0;
  if (v->emit_final && n > 0) {
    uint8_t* created = (uint8_t*)palloc(n);
    memset(created, 1, n);
    written = velostream_write_owned(v->desc, v->upsert, *v->store, closing, created, n);
  }
  if (v->retained_sessions != nullptr && v->retention_us >= 0) retain_sessions(v, closing, n);
  remove_groups(v, closing, n);
  v->has_new_closed = true;
  v->new_closed_wm = close;
  delete_retained(v);
  delete_retained_sessions(v, close);
  return written;
}

// Bounded state: the delta's groups that are not in owned view v's store but
// were evicted come back from the state table (their rows deleted there, in
// the flush's transaction) before the delta is merged, so they are updated,
// not created again.
void take_spilled(WorkerView* v) {
  if (!v->has_spill || !evicts(v->store->plan())) return;
  // freed with the flush's memory, also when a palloc below fails
  MemoryContext tmp = AllocSetContextCreate(CurrentMemoryContext, "velostream evicted keys", ALLOCSET_SMALL_SIZES);
  std::vector<uint32_t>* missing = new_in_context<std::vector<uint32_t>>(tmp);
  bool failed = false;
  try {
    v->store->missing_keys(*v->agg, missing);
  } catch (const std::exception&) {
    failed = true;
  }
  if (failed) ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
  size_t n = missing->size();
  Datum* keys = (Datum*)palloc(sizeof(Datum) * (n ? n : 1));
  for (size_t i = 0; i < n; ++i) {
    keys[i] = PointerGetDatum(to_bytea(v->agg->group_key((*missing)[i])));
  }
  MemoryContextDelete(tmp);  // (deletes `missing`)
  if (n == 0) return;
  Datum args[2] = {Int32GetDatum(partition_no),
                   PointerGetDatum(construct_array(keys, (int)n, BYTEAOID, -1, false, TYPALIGN_INT))};
  if (SPI_execute_plan(v->spill_take, args, NULL, false, 0) != SPI_OK_DELETE_RETURNING)
    elog(ERROR, "velostream: reading the evicted state of %s failed", get_rel_name(v->view));
  for (uint64 i = 0; i < SPI_processed; ++i) {
    bool isnull;
    bytea* data = DatumGetByteaP(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
    char error[256];
    if (!load_state(v, v->store, VARDATA(data), VARSIZE(data) - VARHDRSZ, error, sizeof(error)))
      ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
                      errmsg("velostream: evicted state of continuous view \"%s\" is unreadable: %s",
                             get_rel_name(v->view), error)));
  }
}

// Groups evicted per statement (and per encode buffer).
constexpr size_t kEvictChunk = 8192;

// Bounded state: when owned view v's store (no windows) holds more than
// velostream.state_memory, its least recently updated groups, down to half
// of it, are written to the state table by key and leave the store, which
// compacts. In the flush's transaction, after the changelog write.
void evict_chunk(WorkerView* v, const uint32_t* groups, size_t count);

void evict_cold(WorkerView* v) {
  if (!evicts(v->store->plan())) return;
  // The budget bounds the peak: the store (at most half of it) plus the
  // cycle's delta (an eighth: cycle_max_rows) plus what compacting takes
  // (the store, its live groups encoded and loaded back).
  const size_t budget = (size_t)velostream_state_memory_kb * 1024;
  if (v->store->memory_bytes() <= budget / 2) return;
  // The coldest groups, down to a quarter of the budget, then written in
  // chunks (small buffers), then out of the store, which compacts.
  MemoryContext tmp = AllocSetContextCreate(CurrentMemoryContext, "velostream eviction list", ALLOCSET_SMALL_SIZES);
  std::vector<uint32_t>* cold = new_in_context<std::vector<uint32_t>>(tmp);  // freed on ERROR too
  char error[256] = "";
  try {
    v->store->coldest_groups(budget / 4, cold);
  } catch (const std::exception& e) {
    snprintf(error, sizeof(error), "%s", e.what());
  }
  size_t n = error[0] ? 0 : cold->size();
  for (size_t at = 0; at < n; at += kEvictChunk) evict_chunk(v, cold->data() + at, Min(kEvictChunk, n - at));
  if (!error[0]) {
    try {
      if (!v->store->remove_groups(cold->data(), cold->size()) || !v->store->compact())
        snprintf(error, sizeof(error), "%s", v->store->error().c_str());
    } catch (const std::exception& e) {
      snprintf(error, sizeof(error), "%s", e.what());
    }
  }
  MemoryContextDelete(tmp);  // (deletes cold)
  if (error[0])
    ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
                    errmsg("velostream: could not evict state of continuous view \"%s\": %s", get_rel_name(v->view),
                           error)));
  malloc_trim(0);  // the compacted store's old memory back to the system
  elog(DEBUG1, "velostream: %s/%d evicted %zu groups of %s", stream_name, partition_no, n, get_rel_name(v->view));
}

// Writes groups[0..count) of owned view v's store to its state table, by key.
void evict_chunk(WorkerView* v, const uint32_t* groups, size_t count) {
  // 1. C++ only: each group encoded (key and group bytes side by side in
  //    one buffer).
  // Everything of one chunk lives in a context of its own, the C++ buffers
  // included (deleted with it, also when an ERROR leaves this frame).
  MemoryContext tmp = AllocSetContextCreate(CurrentMemoryContext, "velostream eviction", ALLOCSET_DEFAULT_SIZES);
  std::string* buf = new_in_context<std::string>(tmp);
  std::vector<size_t>* ends = new_in_context<std::vector<size_t>>(tmp);  // per group: end of its key, end of its bytes
  char error[256] = "";
  OwnerContext owner;
  enter_owner(v, &owner);
  try {
    for (size_t i = 0; i < count; ++i) {
      uint32_t g = groups[i];
      std::string_view k = v->store->group_key(g);
      buf->append(k.data(), k.size());
      ends->push_back(buf->size());
      if (!v->store->encode_groups(&g, 1, buf)) {
        snprintf(error, sizeof(error), "%s", v->store->error().c_str());
        break;
      }
      ends->push_back(buf->size());
    }
  } catch (const std::exception& e) {
    snprintf(error, sizeof(error), "%s", e.what());
  }
  leave_owner(owner);
  // 2. The rows, by key, in the flush's transaction (their copies in a
  //    context of their own, freed after the statement).
  size_t n = error[0] ? 0 : ends->size() / 2;
  MemoryContext old = MemoryContextSwitchTo(tmp);
  if (n > 0) {
    Datum* keys = (Datum*)palloc(sizeof(Datum) * n);
    Datum* datas = (Datum*)palloc(sizeof(Datum) * n);
    size_t at = 0;
    for (size_t i = 0; i < n; ++i) {
      for (int part = 0; part < 2; ++part) {
        size_t end = (*ends)[2 * i + part];
        (part == 0 ? keys : datas)[i] = PointerGetDatum(to_bytea(std::string_view(*buf).substr(at, end - at)));
        at = end;
      }
    }
    Datum args[3] = {Int32GetDatum(partition_no),
                     PointerGetDatum(construct_array(keys, (int)n, BYTEAOID, -1, false, TYPALIGN_INT)),
                     PointerGetDatum(construct_array(datas, (int)n, BYTEAOID, -1, false, TYPALIGN_INT))};
    int rc = SPI_execute_plan(v->spill_put, args, NULL, false, 0);
    if (rc != SPI_OK_INSERT) snprintf(error, sizeof(error), "writing the evicted groups failed");
    else v->has_spill = true;
  }
  MemoryContextSwitchTo(old);
  MemoryContextDelete(tmp);  // (deletes buf and ends)
  if (error[0])
    ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
                    errmsg("velostream: could not evict state of continuous view \"%s\": %s", get_rel_name(v->view),
                           error)));
}

// Writes view v's delta into its tables, as the view's owner in a restricted
// security context (triggers, defaults or constraints the owner put on the
// table never run with the worker's superuser rights). Returns the groups
// written. Raises on failure; the caller's subtransaction is then rolled back.
uint64 write_view(WorkerView* v) {
  Oid owner = velostream_rel_owner(v->view);
  if (OidIsValid(v->state) && velostream_rel_owner(v->state) != owner) {
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
  uint64 groups;
  if (v->store != nullptr) {
    size_t n = v->agg->group_count();
    uint32_t* ids = (uint32_t*)palloc(sizeof(uint32_t) * (n ? n : 1));
    uint8_t* created = (uint8_t*)palloc(n ? n : 1);
    char error[256];
    take_spilled(v);
    if (!merge_delta(v, ids, created, &n, error, sizeof(error)))
      ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                      errmsg("velostream: continuous view \"%s\" failed: %s", get_rel_name(v->view), error)));
    // Sessions merged into another or re-keyed: their rows go (the merged
    // sessions are written again under their keys).
    if (!v->emit_final && v->store->plan().session.key_part >= 0 && !v->store->gone_keys().empty())
      velostream_delete_owned_keys(v->desc, v->upsert, *v->store, v->store->gone_keys());
    // emit = 'final': rows appear when their window closes (close_windows)
    groups = v->emit_final ? 0 : velostream_write_owned(v->desc, v->upsert, *v->store, ids, created, n);
    if (n > 0) write_changelog(v, ids, n);
    groups += close_windows(v);
    evict_cold(v);
  } else {
    groups = velostream_upsert_delta(v->desc, v->upsert, *v->agg, *v->merger);
  }
  SetUserIdAndSecContext(save_userid, save_sec);  // also restored by an abort
  return groups;
}

// True if owned view v has windows to close: the closing watermark moved
// past the one it closed through.
bool close_due(const WorkerView* v) {
  int64 close;
  if (v->store == nullptr || !closes_windows(v->store->plan())) return false;
  if (!view_closing(v, &close)) {
    int64 limit;
    return retention_limit(v, &limit);
  }
  if (!v->has_closed || close > v->closed_wm) return true;
  int64 limit;
  return retention_limit(v, &limit);
}

// Flushes view v if it has a delta or windows to close (or retries it if it
// is set aside and its retry is due), in a subtransaction of the cycle's
// transaction.
void flush_view(WorkerView* v) {
  send_exchanged(v);
  bool has_delta = v->agg->rows_in() > 0 || v->agg->group_count() > 0 || close_due(v);
  if (!has_delta && !v->failing && !v->restoring) return;
  if (!restore_done(v)) {
    if (has_delta || v->pending_dirty) save_pending(v);  // counted, kept with the consumed positions
    return;
  }
  if (!has_delta && !v->failing) return;
  if (v->failing) {
    refresh_retry(v);
    if (GetCurrentTimestamp() < v->retry_at) {
      save_pending(v);  // the rows consumed for it commit with the consumed positions
      return;
    }
  }
  TimestampTz flush_start = GetCurrentTimestamp();
  MemoryContext cxt = CurrentMemoryContext;
  ResourceOwner owner = CurrentResourceOwner;
  ErrorData* error = nullptr;
  uint64 groups = 0;
  BeginInternalSubTransaction(NULL);
  MemoryContextSwitchTo(cxt);
  PG_TRY();
  {
    groups = write_view(v);
    ReleaseCurrentSubTransaction();
    MemoryContextSwitchTo(cxt);
    CurrentResourceOwner = owner;
  }
  PG_CATCH();
  {
    MemoryContextSwitchTo(cxt);
    error = CopyErrorData();
    FlushErrorState();
    RollbackAndReleaseCurrentSubTransaction();
    MemoryContextSwitchTo(cxt);
    CurrentResourceOwner = owner;
  }
  PG_END_TRY();
  if (error != nullptr) {
    if (v->store != nullptr) {
      // The store merged the delta before the write failed: rebuild it from
      // the committed changelog, which the rolled-back write did not reach.
      clear_store(v);
      replay_changelog(v);
      if (v->retained_sessions != nullptr) load_retained(v);
    }
    set_aside(v, error);
    save_pending(v);
    return;
  }
  elog(DEBUG2, "velostream: %s/%d flushed " UINT64_FORMAT " groups of %s in %ld us", stream_name, partition_no, groups,
       get_rel_name(v->view), (long)(GetCurrentTimestamp() - flush_start));
  if (v->failing)
    ereport(LOG, (errmsg("velostream: continuous view \"%s\" on partition %d caught up after %d failed flushes",
                         get_rel_name(v->view), partition_no, v->failures)));
  v->failing = false;
  v->failures = 0;
  drop_pending(v);
  record_stats(v, groups);
  // A view with bounded state keeps no more than an eighth of its budget
  // for the next delta.
  if (v->store != nullptr && evicts(v->store->plan()) &&
      v->agg->memory_bytes() > (size_t)velostream_state_memory_kb * 1024 / 8)
    v->agg->release();
  else
    v->agg->clear();
}

// Event time, at the start of a cycle: the stream's options (watermark_delay
// and idle_timeout may have been altered), its watermark from what the source
// partitions have committed (event_time.h), and this partition's watermarks
// (see source_wm above). `routed`: other partitions route rows to this one
// (a Kafka stream with logs). SPI connected.
void begin_event_time(bool routed) {
  cycle_has_event = false;
  cycle_rows = 0;
  has_source_wm = has_view_wm = has_view_cand = committed_source = false;
  others_closing_known = false;
  log_drained = exchange_drained = false;
  routed_cycle = routed;
  has_event_time = velostream_stream_event_time(stream_oid, &event_time);
  if (has_event_time) {
    Oid argtypes[1] = {OIDOID};
    Datum args[1] = {ObjectIdGetDatum(stream_oid)};
    if (SPI_execute_with_args("SELECT partition, source_watermark, watermark FROM velostream.stream_partitions "
                              "WHERE stream = $1",
                              1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
      elog(ERROR, "velostream: reading the watermarks of stream %s failed", stream_name);
    bool others_known = true;  // every other partition committed a source watermark
    int64 others_min = PG_INT64_MAX;
    others_closing_known = true;
    others_closing_min = PG_INT64_MAX;
    for (uint64 i = 0; i < SPI_processed; ++i) {
      HeapTuple t = SPI_tuptable->vals[i];
      bool null_p, null_s, null_v;
      int p = DatumGetInt32(SPI_getbinval(t, SPI_tuptable->tupdesc, 1, &null_p));
      Datum src = SPI_getbinval(t, SPI_tuptable->tupdesc, 2, &null_s);
      Datum vw = SPI_getbinval(t, SPI_tuptable->tupdesc, 3, &null_v);
      if (p == partition_no) {
        if (!null_s) {
          committed_source = has_source_wm = true;
          committed_source_wm = source_wm = DatumGetTimestampTz(src);
        }
        if (!null_v) {
          has_view_wm = true;
          view_wm = DatumGetTimestampTz(vw);
        }
      } else {
        if (null_s) others_known = false;
        else others_min = Min(others_min, DatumGetTimestampTz(src));
        if (null_v) others_closing_known = false;
        else others_closing_min = Min(others_closing_min, DatumGetTimestampTz(vw));
      }
    }
    int64 now_wm;
    if (velostream_stream_watermark(stream_oid, event_time, &now_wm)) {
      source_wm = has_source_wm ? Max(source_wm, now_wm) : now_wm;
      has_source_wm = true;
    }
    if (has_source_wm && (!routed || others_known)) {
      int64 cand = routed ? Min(source_wm, others_min) : source_wm;
      has_view_cand = true;
      view_cand = has_view_wm ? Max(view_wm, cand) : cand;
    }
  }
  set_late_reference(has_source_wm, source_wm);
  // Retention (partition 0): the watermarks the other partitions closed
  // each view's windows through.
  ListCell* lc;
  foreach (lc, views) {
    WorkerView* v = (WorkerView*)lfirst(lc);
    v->has_new_closed = false;
    v->has_others = false;
    if (partition_no != 0 || v->retention_us < 0 || v->store == nullptr) continue;
    Oid types[2] = {OIDOID, OIDOID};
    Datum args[2] = {ObjectIdGetDatum(v->view), ObjectIdGetDatum(stream_oid)};
    if (SPI_execute_with_args("SELECT count(s.watermark), min(s.watermark), "
                              "(SELECT partitions FROM velostream.streams WHERE stream = $2) "
                              "FROM velostream.view_partition_stats s WHERE s.view = $1 AND s.partition <> 0",
                              2, types, args, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
      continue;
    bool isnull;
    int64 known = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
    Datum least = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
    int parts = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
    if (known < parts - 1) continue;  // a partition that never closed a window may still write any
    v->has_others = true;
    v->others_closed = known == 0 ? PG_INT64_MAX : DatumGetTimestampTz(least);
  }
}

// Event time, at the end of a cycle: a local stream partition's largest
// event time and the time it last received rows, and the partition's
// watermarks, committed with what it consumed.
void end_event_time() {
  if (!has_event_time) return;
  if (kafka == nullptr && cycle_rows > 0) {
    Oid argtypes[3] = {OIDOID, INT4OID, TIMESTAMPTZOID};
    Datum args[3] = {ObjectIdGetDatum(stream_oid), Int32GetDatum(partition_no), TimestampTzGetDatum(cycle_max_event)};
    char nulls[3] = {' ', ' ', cycle_has_event ? ' ' : 'n'};
    SPI_execute_with_args("UPDATE velostream.stream_partitions SET last_input_at = now(), "
                          "max_event_time = greatest(max_event_time, $3) WHERE stream = $1 AND partition = $2",
                          3, argtypes, args, nulls, false, 0);
  }
  bool source_moved = has_source_wm && !(committed_source && committed_source_wm == source_wm);
  bool view_moved = closing_watermark_moved();
  if (!source_moved && !view_moved) return;
  int64 close = 0;
  bool has_close = closing_watermark(&close);
  Oid argtypes[4] = {OIDOID, INT4OID, TIMESTAMPTZOID, TIMESTAMPTZOID};
  Datum args[4] = {ObjectIdGetDatum(stream_oid), Int32GetDatum(partition_no), TimestampTzGetDatum(source_wm),
                   TimestampTzGetDatum(close)};
  char nulls[4] = {' ', ' ', has_source_wm ? ' ' : 'n', has_close ? ' ' : 'n'};
  SPI_execute_with_args("UPDATE velostream.stream_partitions SET source_watermark = $3, watermark = $4 "
                        "WHERE stream = $1 AND partition = $2",
                        4, argtypes, args, nulls, false, 0);
}

// The most rows one cycle consumes: 64 batches, or fewer when a view with
// bounded state (an owned view without windows) would otherwise build a
// delta of more than an eighth of velostream.state_memory, at the bytes per
// group its store holds now (128 before it holds any): every row may be a
// new group, and the delta is held beside the store until the flush.
uint64 cycle_max_rows(size_t capacity) {
  uint64 max_rows = 64 * (uint64)capacity;
  ListCell* lc;
  foreach (lc, views) {
    WorkerView* v = (WorkerView*)lfirst(lc);
    if (v->store == nullptr || !evicts(v->store->plan())) continue;
    size_t live = v->store->live_group_count();
    size_t per_group = live > 1000 ? v->store->memory_bytes() / live : 128;
    uint64 rows = (uint64)velostream_state_memory_kb * 1024 / 8 / Max(per_group, (size_t)16);
    max_rows = Min(max_rows, Max(rows, (uint64)capacity));
  }
  return max_rows;
}

// One transaction: consume, aggregate, flush. Returns the rows consumed.
uint64 run_cycle() {
  router = nullptr;  // freed with an aborted cycle's memory
  SetCurrentStatementStartTimestamp();
  StartTransactionCommand();
  SPI_connect();
  PushActiveSnapshot(GetTransactionSnapshot());

  // A cycle holds the extension in ROW EXCLUSIVE mode before any other lock:
  // DROP EXTENSION (ACCESS EXCLUSIVE) and the DROPs of streams and views
  // (SHARE, utility_hook.cpp) take it first too, so they wait for the cycle,
  // or the cycle for them, instead of each holding a table the other needs.
  Oid extension = get_extension_oid("velostream", true);
  if (OidIsValid(extension)) {
    LockDatabaseObject(ExtensionRelationId, extension, 0, RowExclusiveLock);
    extension = get_extension_oid("velostream", true);  // dropped while we waited?
  }
  // A Kafka cycle writes the stream as INSERT does (it routes what it
  // consumes): CREATE of a view (SHARE) waits for it, and it for the CREATE,
  // so a row a view counts was decoded and routed by a cycle that saw the view.
  if (OidIsValid(extension) && kafka != nullptr) LockRelationOid(stream_oid, RowExclusiveLock);
  if (!OidIsValid(extension)) {
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
  // One snapshot for the view list and the log: a row whose transaction
  // committed after a view's CREATE is only read together with that view.
  Snapshot snap = RegisterSnapshot(GetLatestSnapshot());
  PushActiveSnapshot(snap);
  refresh_views();
  // The watermarks with the log's snapshot too: a routed batch is read in
  // this cycle iff the source watermark its router committed with it is
  // seen here (read_only SPI queries use the active snapshot).
  begin_event_time(kafka != nullptr && OidIsValid(log_oid));
  PopActiveSnapshot();
  const size_t capacity = (size_t)velostream_batch_size;
  const uint64 max_rows = cycle_max_rows(capacity);  // bounds one transaction
  TimestampTz start = GetCurrentTimestamp();
  uint64 consumed = 0;
  if (kafka != nullptr && velostream_kafka_config_changed(kafka)) {
    UnregisterSnapshot(snap);
    SPI_finish();
    PopActiveSnapshot();
    CommitTransactionCommand();
    proc_exit(0);  // the launcher restarts the worker with the new options
  }
  if (kafka != nullptr) {
    // First the rows the stream's other workers routed to this partition,
    // then this worker's topic partitions: each consumed row is routed by
    // the stream's routing column, to this worker's views or to another
    // partition's log, in this transaction with the consumed offsets.
    if (!paused && OidIsValid(log_oid)) consumed = read_log(log_oid, snap, max_rows, start);
    velostream_kafka_set_paused(kafka, paused);
    pgstat_report_activity(STATE_RUNNING, "velostream: consuming Kafka");
    Relation stream = relation_open(stream_oid, NoLock);  // locked above
    router = OidIsValid(log_oid) ? velostream_router_begin(stream, *batch) : nullptr;
    // The routed rows carry this cycle's source watermark; -infinity when
    // there is none yet (no row of theirs is late, wherever they go).
    if (router != nullptr && has_event_time)
      velostream_router_set_watermark(router, has_source_wm ? source_wm : DT_NOBEGIN);
    consumed += velostream_kafka_read(kafka, capacity, max_rows, router != nullptr ? route_and_feed : feed_views);
    velostream_writer_end(router);
    router = nullptr;
    relation_close(stream, NoLock);
  } else if (!paused) {
    consumed = read_log(log_oid, snap, max_rows, start);
  }

  TimestampTz read_done = GetCurrentTimestamp();
  // Flush: every view's delta, and its statistics, in this transaction; a
  // view whose flush fails is set aside without holding the others back.
  if (consumed > 0) pgstat_report_activity(STATE_RUNNING, "velostream: flushing");
  foreach (lc, views) flush_view((WorkerView*)lfirst(lc));
  if (kafka != nullptr) velostream_kafka_save(kafka, true);
  end_event_time();
  if (worker_error_recorded) {
    Oid etypes[2] = {OIDOID, INT4OID};
    Datum eargs[2] = {ObjectIdGetDatum(stream_oid), Int32GetDatum(partition_no)};
    SPI_execute_with_args("UPDATE velostream.stream_partitions SET worker_error = NULL, worker_sqlstate = NULL, "
                          "worker_failures = 0 WHERE stream = $1 AND partition = $2",
                          2, etypes, eargs, NULL, false, 0);
    worker_error_recorded = false;
  }
  UnregisterSnapshot(snap);
  SPI_finish();
  PopActiveSnapshot();
  CommitTransactionCommand();
  if (consumed > 0) {
    TimestampTz done = GetCurrentTimestamp();
    elog(DEBUG1, "velostream: %s/%d consumed " UINT64_FORMAT " rows: read+aggregate %ld us, flush+commit %ld us",
         stream_name, partition_no, consumed, (long)(read_done - start), (long)(done - read_done));
  }
  // A large cycle may have released large buffers (a delta, a changelog
  // snapshot's encoding): give their pages back to the system, which glibc
  // does only for the top of its heap. Measured in bench/memory_bench.sh.
  if (consumed >= 16 * (uint64)velostream_batch_size) malloc_trim(0);
  pgstat_report_stat(false);
  pgstat_report_activity(STATE_IDLE, NULL);
  return consumed;
}

// Fencing: takes this partition's lock for the life of the process, waiting
// while another worker (one a restarted launcher did not start) still holds
// it. Only the holder runs cycles, so no two workers ever consume the same
// partition, whatever dies or restarts; the lock goes with the process.
void fence_partition() {
  LOCKTAG tag;
  velostream_fence_locktag(&tag, stream_oid, partition_no);
  bool logged = false;
  while (LockAcquire(&tag, ExclusiveLock, true, true) == LOCKACQUIRE_NOT_AVAIL) {
    if (!logged)
      elog(LOG, "velostream: another worker still runs stream %u partition %d; waiting for it to exit", stream_oid,
           partition_no);
    logged = true;
    (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 200, PG_WAIT_EXTENSION);
    ResetLatch(MyLatch);
    CHECK_FOR_INTERRUPTS();
  }
}

// A cycle failed as a whole (not one view's flush, which flush_view sets
// aside): the error is already in the server log. Records it for
// velostream.stats in a new transaction, waits a back-off that grows with
// consecutive failures (up to 30 s), and exits; the launcher restarts the
// worker, which resumes from the last committed position.
void worker_failed(ErrorData* e) {
  int failures = 1;
  PG_TRY();
  {
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    SPI_connect();
    PushActiveSnapshot(GetTransactionSnapshot());
    Oid types[4] = {OIDOID, INT4OID, TEXTOID, TEXTOID};
    Datum args[4] = {ObjectIdGetDatum(stream_oid), Int32GetDatum(partition_no), CStringGetTextDatum(e->message),
                     CStringGetTextDatum(unpack_sql_state(e->sqlerrcode))};
    if (SPI_execute_with_args("UPDATE velostream.stream_partitions SET worker_error = $3, worker_sqlstate = $4, "
                              "worker_error_at = now(), worker_failures = worker_failures + 1 "
                              "WHERE stream = $1 AND partition = $2 RETURNING worker_failures",
                              4, types, args, NULL, false, 1) == SPI_OK_UPDATE_RETURNING &&
        SPI_processed == 1) {
      bool isnull;
      failures = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
    }
    SPI_finish();
    PopActiveSnapshot();
    CommitTransactionCommand();
  }
  PG_CATCH();
  {
    EmitErrorReport();
    FlushErrorState();
    AbortCurrentTransaction();
  }
  PG_END_TRY();
  long backoff = failures <= 1 ? 0 : std::min(30000L, 1000L << std::min(failures - 2, 10));
  TimestampTz until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), backoff);
  while (GetCurrentTimestamp() < until) {
    (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 200, PG_WAIT_EXTENSION);
    ResetLatch(MyLatch);
    CHECK_FOR_INTERRUPTS();
  }
  proc_exit(1);
}

// run_cycle, with an ERROR that escapes it (the stream's log or offsets
// cannot be read, the catalog is damaged, an engine limit) reported by
// worker_failed instead of silently restarting the worker.
uint64 guarded_cycle() {
  uint64 consumed = 0;
  PG_TRY();
  { consumed = run_cycle(); }
  PG_CATCH();
  {
    HOLD_INTERRUPTS();
    MemoryContextSwitchTo(TopMemoryContext);
    ErrorData* e = CopyErrorData();
    EmitErrorReport();
    FlushErrorState();
    AbortCurrentTransaction();
    RESUME_INTERRUPTS();
    worker_failed(e);
  }
  PG_END_TRY();
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
  fence_partition();

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
  Oid argtypes[2] = {OIDOID, INT4OID};
  Datum args[2] = {ObjectIdGetDatum(stream_oid), Int32GetDatum(partition_no)};
  if (!velostream_catalog_current()) {
    // The database's catalog is older than this library: wait for
    // ALTER EXTENSION velostream UPDATE (the launcher starts us again).
    SPI_finish();
    PopActiveSnapshot();
    CommitTransactionCommand();
    proc_exit(0);
  }
  if (SPI_execute_with_args("SELECT s.kind, s.partitions, p.worker_error IS NOT NULL FROM velostream.streams s "
                            "JOIN velostream.stream_partitions p USING (stream) WHERE s.stream = $1 AND p.partition = $2",
                            2, argtypes, args, NULL, true, 1) == SPI_OK_SELECT &&
      SPI_processed == 1) {
    bool had_error;
    worker_error_recorded = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &had_error));
    char* kind = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
    bool isnull;
    int nparts = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
    if (strcmp(kind, "kafka") == 0) kafka = velostream_kafka_open(stream_oid, partition_no, nparts, batch);
  }
  has_event_time = velostream_stream_event_time(stream_oid, &event_time);  // before the first refresh_views
  if (kafka != nullptr && has_event_time) velostream_kafka_set_event_time(kafka, event_time.column);
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
    uint64 consumed = guarded_cycle();
    // A Kafka consumer with partitions already waited inside consume().
    if (consumed == 0 && (kafka == nullptr || !velostream_kafka_waits(kafka))) {
      (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, velostream_flush_interval_ms,
                      PG_WAIT_EXTENSION);
      ResetLatch(MyLatch);
    }
  }
}

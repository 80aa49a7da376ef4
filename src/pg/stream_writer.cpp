// Appending rows to a local stream's partition logs (see stream_writer.h).
#include <string>
#include <vector>

#include "engine/batch_codec.h"
#include "pg/translate.h"
#include "pg/stream_writer.h"
#include "pg/types.h"
#include "pg/velostream.h"

extern "C" {
#include "common/hashfn.h"
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

// The stream's partition logs and the column rows are routed by
// (velostream.streams.route_column: the first plain GROUP BY column of the
// stream's first view), so that every group of a view grouping by it lives in
// one partition and its worker owns the group. NULL: round robin.
const char* kRouteQuery =
    "SELECT p.log_table::oid, s.route_column FROM velostream.stream_partitions p "
    "JOIN velostream.streams s USING (stream) WHERE p.stream = $1 ORDER BY p.partition";

}  // namespace

struct StreamWriter {
  int nparts;
  Relation* logs;             // partition log tables
  BulkInsertState* bistate;   // one per partition
  PartitionBatch** batches;   // per partition, created on first row
  size_t capacity;            // rows per log batch (velostream.batch_size)
  int current;                // round robin: partition receiving rows
  int route;                  // routing column (0-based), -1: round robin
  bool route_text_hash;       // route by hash_any of the text, as hashtext does
  FmgrInfo route_hash;        // else: hash function of the routing column's type
  Oid route_collation;
  int natts;                  // stream columns
  TupleDesc desc;             // the stream's (open for the statement)
  Oid* types;                 // SQL type of each stream column
  eng::Type* engine_types;    // engine type of each column (kInt64 if unsupported)
  bool* stored;               // column has an engine type (else not stored)
  StagedValue* staged;        // the row being appended
  Pointer* to_free;           // detoasted copies of the staged row's text
  Datum xid;
  CommandId cid;
  TupleDesc log_desc;
  std::vector<int32_t>* route_scratch;  // router: each row's partition
  bool has_watermark;         // router: the batches' watermark column (else NULL)
  int64 watermark;
};

namespace {

void delete_batches(void* arg) {
  StreamWriter* w = (StreamWriter*)arg;
  delete w->route_scratch;
  w->route_scratch = nullptr;
  for (int p = 0; p < w->nparts; ++p) {
    delete w->batches[p];
    w->batches[p] = nullptr;
  }
}

// Appends partition p's batch to its log as one row (xid, rows, batch).
void flush_partition(StreamWriter* w, int p) {
  PartitionBatch* pb = w->batches[p];
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
  // (xid, rows, batch, restored_xid NULL, watermark, exchange_view NULL); a
  // log created by 0.1 or 0.2 got restored_xid as its fourth column from the
  // 0.3 upgrade, one created before 0.6 its watermark from the 0.6 upgrade,
  // before 0.7 its exchange_view from the 0.7 upgrade.
  Datum values[6] = {w->xid, Int32GetDatum((int32)pb->rows), PointerGetDatum(data), (Datum)0,
                     TimestampTzGetDatum(w->watermark), (Datum)0};
  bool nulls[6] = {false, false, false, true, !w->has_watermark, true};
  HeapTuple tuple = heap_form_tuple(w->log_desc, values, nulls);
  heap_insert(w->logs[p], tuple, w->cid, 0, w->bistate[p]);
  heap_freetuple(tuple);
  pfree(data);
  pb->rows = 0;
  pb->batch.arena.reset();
}

PartitionBatch* new_partition_batch(StreamWriter* w) {
  PartitionBatch* pb = nullptr;
  try {
    pb = new PartitionBatch();
    pb->batch.columns.resize(w->natts);
    for (int c = 0; c < w->natts; ++c) {
      pb->batch.columns[c].type = w->engine_types[c];
      pb->batch.columns[c].used = w->stored[c];
      if (w->stored[c]) pb->batch.columns[c].resize(w->capacity);
    }
  } catch (const std::exception&) {
    delete pb;
    pb = nullptr;
  }
  if (pb == nullptr) ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory for a stream batch")));
  return pb;
}

// hashtext() hashes the bytes of a text under a deterministic collation;
// the COPY path routes by those bytes without building a text datum.
bool hashes_text_bytes(Oid type, Oid collation) {
  if (type != TEXTOID && type != VARCHAROID) return false;
  if (!OidIsValid(collation)) return false;
  if (lc_collate_is_c(collation)) return true;
  pg_locale_t locale = pg_newlocale_from_collation(collation);
  return locale == 0 || locale->deterministic;
}

// The PostgreSQL value of a staged routing column, for its hash function.
Datum route_datum(StreamWriter* w, const StagedValue& v) {
  if (v.has_datum) return v.datum;
  if (w->types[w->route] == NUMERICOID)  // staged values of this type always carry their Datum
    elog(ERROR, "velostream: cannot route a staged numeric value without its Datum");
  return velostream_value_datum(w->types[w->route], v.i, v.f, v.d, v.s, v.len);
}

int partition_of(StreamWriter* w) {
  if (w->route < 0) return w->current;
  const StagedValue& v = w->staged[w->route];
  if (v.isnull) return 0;
  uint32 h;
  if (w->route_text_hash)
    h = DatumGetUInt32(hash_any((const unsigned char*)v.s, (int)v.len));
  else
    h = DatumGetUInt32(FunctionCall1Coll(&w->route_hash, w->route_collation, route_datum(w, v)));
  return (int)(h % (uint32)w->nparts);
}

// velostream_writer_begin and velostream_router_begin: opens the logs and
// reads the routing column; NULL if `routed_only` and the stream has no
// routing column or one partition.
StreamWriter* open_writer(Relation rel, bool routed_only) {
  Oid relid = RelationGetRelid(rel);
  StreamWriter* w = (StreamWriter*)palloc0(sizeof(StreamWriter));
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
  w->nparts = (int)SPI_processed;
  if (routed_only && w->nparts == 1) {
    SPI_finish();
    return nullptr;
  }
  Oid* log_oids = (Oid*)palloc(sizeof(Oid) * w->nparts);
  AttrNumber route_attno = 0;
  for (int i = 0; i < w->nparts; ++i) {
    bool isnull;
    log_oids[i] = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
    if (isnull)
      ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                      errmsg("stream \"%s\" has no partition logs", RelationGetRelationName(rel)),
                      errhint("Run ALTER EXTENSION velostream UPDATE.")));
    Datum route = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull);
    if (i == 0 && !isnull) route_attno = DatumGetInt16(route);
  }
  SPI_finish();

  if (routed_only && route_attno == 0) return nullptr;
  TupleDesc desc = RelationGetDescr(rel);
  w->natts = desc->natts;
  w->desc = desc;
  w->route = -1;
  if (route_attno > 0 && route_attno <= w->natts && w->nparts > 1) {
    Form_pg_attribute att = TupleDescAttr(desc, route_attno - 1);
    TypeCacheEntry* tce = lookup_type_cache(att->atttypid, TYPECACHE_HASH_PROC_FINFO);
    if (OidIsValid(tce->hash_proc)) {
      w->route = route_attno - 1;
      fmgr_info_copy(&w->route_hash, &tce->hash_proc_finfo, CurrentMemoryContext);
      w->route_collation = att->attcollation;
      w->route_text_hash = hashes_text_bytes(att->atttypid, att->attcollation);
    }
  }
  if (routed_only && w->route < 0) return nullptr;
  w->types = (Oid*)palloc(sizeof(Oid) * w->natts);
  w->engine_types = (eng::Type*)palloc(sizeof(eng::Type) * w->natts);
  w->stored = (bool*)palloc(sizeof(bool) * w->natts);
  // StagedValue holds a Decimal (128-bit, 16-byte aligned); palloc aligns to 8.
  w->staged = (StagedValue*)TYPEALIGN(alignof(StagedValue), palloc0(sizeof(StagedValue) * w->natts + alignof(StagedValue)));
  w->to_free = (Pointer*)palloc0(sizeof(Pointer) * w->natts);
  for (int c = 0; c < w->natts; ++c) {
    Form_pg_attribute att = TupleDescAttr(desc, c);
    w->types[c] = att->atttypid;
    w->engine_types[c] = eng::Type::kInt64;
    w->stored[c] = !att->attisdropped && velostream_engine_type(att->atttypid, &w->engine_types[c]);
  }

  w->logs = (Relation*)palloc(sizeof(Relation) * w->nparts);
  w->bistate = (BulkInsertState*)palloc(sizeof(BulkInsertState) * w->nparts);
  w->batches = (PartitionBatch**)palloc0(sizeof(PartitionBatch*) * w->nparts);
  velostream_on_context_reset(CurrentMemoryContext, delete_batches, w);
  for (int i = 0; i < w->nparts; ++i) {
    w->logs[i] = table_open(log_oids[i], RowExclusiveLock);
    w->bistate[i] = GetBulkInsertState();
  }
  w->log_desc = RelationGetDescr(w->logs[0]);
  if (w->log_desc->natts != 6)  // 3 before catalog 0.3, 4 before 0.6, 5 before 0.7: their upgrades add the columns
    ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                    errmsg("stream \"%s\" does not match its partition logs", RelationGetRelationName(rel)),
                    errhint("Drop and re-create the stream.")));
  w->capacity = (size_t)velostream_batch_size;
  // Spread concurrent round-robin writers over the partitions.
  w->current = (int)(MyProcPid % w->nparts);
  w->xid = FullTransactionIdGetDatum(GetTopFullTransactionId());
  w->cid = GetCurrentCommandId(true);
  return w;
}

}  // namespace

StreamWriter* velostream_writer_begin(Relation rel) {
  if (!velostream_is_local_stream(RelationGetRelid(rel)))
    ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                    errmsg("cannot insert into Kafka stream \"%s\"", RelationGetRelationName(rel)),
                    errdetail("A Kafka stream is fed by its topic."),
                    errhint("Produce the rows to the topic, or use a stream on server velostream.")));
  return open_writer(rel, false);
}

StreamWriter* velostream_router_begin(Relation rel, const eng::RecordBatch& shape) {
  StreamWriter* w = open_writer(rel, true);
  if (w == nullptr) return nullptr;
  for (int c = 0; c < w->natts; ++c) {
    w->stored[c] = w->stored[c] && c < (int)shape.columns.size() && shape.columns[c].used;
    if (w->stored[c] && shape.columns[c].type != w->engine_types[c])
      elog(ERROR, "velostream: column %d of stream %s is decoded as another type than it is logged", c + 1,
           RelationGetRelationName(rel));
  }
  w->route_scratch = new std::vector<int32_t>();
  return w;
}

namespace {

// Partition of each of rows [0, n) of `b` by the routing column, into `out`
// (NULL keys: partition 0, as partition_of).
void route_rows(StreamWriter* w, const eng::RecordBatch& b, size_t n, int32_t* out) {
  const eng::Column& col = b.columns[w->route];
  const Oid type = w->types[w->route];
  for (size_t r = 0; r < n; ++r) {
    if (col.null[r]) {
      out[r] = 0;
      continue;
    }
    uint32 h;
    if (w->route_text_hash) {
      h = DatumGetUInt32(hash_any((const unsigned char*)col.str[r].data(), (int)col.str[r].size()));
    } else {
      static const eng::Decimal kNoDecimal{};
      Datum d;
      switch (col.type) {
        case eng::Type::kInt64: d = velostream_value_datum(type, col.i64[r], 0, kNoDecimal, nullptr, 0); break;
        case eng::Type::kFloat64: d = velostream_value_datum(type, 0, col.f64[r], kNoDecimal, nullptr, 0); break;
        case eng::Type::kNumeric: d = velostream_value_datum(type, 0, 0, col.dec[r], nullptr, 0); break;
        case eng::Type::kText:
          d = velostream_value_datum(type, 0, 0, kNoDecimal, col.str[r].data(), col.str[r].size());
          break;
        default: elog(ERROR, "velostream: cannot route rows by a column of type %s", format_type_be(type));
      }
      h = DatumGetUInt32(FunctionCall1Coll(&w->route_hash, w->route_collation, d));
    }
    out[r] = (int32_t)(h % (uint32)w->nparts);
  }
}

// Copies row r of column `from` to row `to` of `dst`, text into `arena`.
void copy_value(const eng::Column& from, size_t r, eng::Column* dst, size_t to, eng::Arena* arena) {
  dst->null[to] = from.null[r];
  if (from.null[r]) return;
  switch (from.type) {
    case eng::Type::kInt64: dst->i64[to] = from.i64[r]; break;
    case eng::Type::kFloat64: dst->f64[to] = from.f64[r]; break;
    case eng::Type::kNumeric: dst->dec[to] = from.dec[r]; break;
    case eng::Type::kInterval: dst->iv[to] = from.iv[r]; break;
    case eng::Type::kText: dst->str[to] = arena->copy(from.str[r].data(), from.str[r].size()); break;
  }
}

// Moves row r of column c to row `to` (< r) within the same batch.
void move_value(eng::Column* c, size_t r, size_t to) {
  c->null[to] = c->null[r];
  switch (c->type) {
    case eng::Type::kInt64: c->i64[to] = c->i64[r]; break;
    case eng::Type::kFloat64: c->f64[to] = c->f64[r]; break;
    case eng::Type::kNumeric: c->dec[to] = c->dec[r]; break;
    case eng::Type::kInterval: c->iv[to] = c->iv[r]; break;
    case eng::Type::kText: c->str[to] = c->str[r]; break;
  }
}

}  // namespace

size_t velostream_router_route(StreamWriter* w, eng::RecordBatch* b, size_t rows, int self) {
  std::vector<int32_t>& part = *w->route_scratch;
  bool failed = false;
  try {
    part.resize(rows);
  } catch (const std::exception&) {
    failed = true;
  }
  if (failed) ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory routing a stream batch")));
  route_rows(w, *b, rows, part.data());
  // Room for every row routed elsewhere: a partition batch that would
  // overflow is written first (rows <= capacity, so one write is enough).
  size_t* counts = (size_t*)palloc0(sizeof(size_t) * w->nparts);
  for (size_t r = 0; r < rows; ++r) counts[part[r]]++;
  for (int p = 0; p < w->nparts; ++p) {
    if (p == self || counts[p] == 0) continue;
    if (w->batches[p] == nullptr) w->batches[p] = new_partition_batch(w);
    if (w->batches[p]->rows + counts[p] > w->capacity) flush_partition(w, p);
  }
  size_t* pos = (size_t*)palloc0(sizeof(size_t) * w->nparts);
  try {
    for (int c = 0; c < w->natts; ++c) {
      if (!w->stored[c]) continue;
      eng::Column& col = b->columns[c];
      for (int p = 0; p < w->nparts; ++p) pos[p] = p == self || counts[p] == 0 ? 0 : w->batches[p]->rows;
      size_t keep = 0;
      for (size_t r = 0; r < rows; ++r) {
        int p = part[r];
        if (p == self) {
          if (keep != r) move_value(&col, r, keep);
          ++keep;
        } else {
          PartitionBatch* pb = w->batches[p];
          copy_value(col, r, &pb->batch.columns[c], pos[p]++, &pb->batch.arena);
        }
      }
    }
  } catch (const std::exception&) {
    failed = true;
  }
  if (failed) ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory routing a stream batch")));
  for (int p = 0; p < w->nparts; ++p) {
    if (p == self || counts[p] == 0) continue;
    w->batches[p]->rows += counts[p];
    if (w->batches[p]->rows == w->capacity) flush_partition(w, p);
  }
  size_t own = counts[self];
  pfree(counts);
  pfree(pos);
  return own;
}

void velostream_router_set_watermark(StreamWriter* w, int64 watermark) {
  w->has_watermark = true;
  w->watermark = watermark;
}

void velostream_writer_end(StreamWriter* w) {
  if (w == nullptr) return;
  for (int p = 0; p < w->nparts; ++p) {
    flush_partition(w, p);
    FreeBulkInsertState(w->bistate[p]);
    table_close(w->logs[p], NoLock);
  }
  delete_batches(w);
}

StagedValue* velostream_writer_row(StreamWriter* w) { return w->staged; }

void velostream_writer_stage_datum(StreamWriter* w, int c, Datum v, bool isnull) {
  StagedValue& s = w->staged[c];
  s.isnull = isnull;
  s.has_datum = !isnull;
  s.datum = v;
  if (isnull) return;
  if (velostream_datum_fixed(w->types[c], v, &s.i, &s.f)) return;
  switch (w->types[c]) {
    case NUMERICOID: {
      if (!w->stored[c]) break;
      char* text = DatumGetCString(DirectFunctionCall1(numeric_out, v));
      if (!eng::Decimal::parse(text, &s.d))
        ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                        errmsg("numeric value %s in column \"%s\" has more than 38 significant digits", text,
                               NameStr(TupleDescAttr(w->desc, c)->attname)),
                        errdetail("Continuous views compute numeric aggregates exactly with 38 digits."),
                        errhint("Round the value, or declare the stream column as float8.")));
      pfree(text);
      break;
    }
    case INTERVALOID: memcpy(&s.iv, DatumGetIntervalP(v), sizeof(s.iv)); break;
    case TEXTOID: case VARCHAROID: {
      struct varlena* t = pg_detoast_datum_packed((struct varlena*)DatumGetPointer(v));
      s.s = VARDATA_ANY(t);
      s.len = VARSIZE_ANY_EXHDR(t);
      if ((Pointer)t != DatumGetPointer(v)) w->to_free[c] = (Pointer)t;
      break;
    }
    default: break;
  }
}

void velostream_writer_append(StreamWriter* w) {
  int p = partition_of(w);
  if (w->batches[p] == nullptr) w->batches[p] = new_partition_batch(w);
  PartitionBatch* pb = w->batches[p];
  eng::RecordBatch& b = pb->batch;
  size_t row = pb->rows;
  bool failed = false;
  for (int c = 0; c < w->natts; ++c) {
    if (!w->stored[c]) continue;
    const StagedValue& v = w->staged[c];
    eng::Column& col = b.columns[c];
    col.null[row] = v.isnull;
    if (v.isnull) continue;
    switch (w->engine_types[c]) {
      case eng::Type::kInt64: col.i64[row] = v.i; break;
      case eng::Type::kFloat64: col.f64[row] = v.f; break;
      case eng::Type::kNumeric: col.dec[row] = v.d; break;
      case eng::Type::kInterval: col.iv[row] = v.iv; break;
      case eng::Type::kText:
        try {
          col.str[row] = b.arena.copy(v.s, v.len);
        } catch (const std::exception&) {
          failed = true;
        }
        break;
    }
  }
  if (failed) ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory for a stream batch")));
  for (int c = 0; c < w->natts; ++c) {
    if (w->to_free[c] != nullptr) {
      pfree(w->to_free[c]);
      w->to_free[c] = nullptr;
    }
  }
  if (++pb->rows == w->capacity) {
    flush_partition(w, p);
    if (w->route < 0) w->current = (w->current + 1) % w->nparts;
  }
}

void velostream_writer_insert_slot(StreamWriter* w, TupleTableSlot* slot) {
  slot_getallattrs(slot);
  for (int c = 0; c < w->natts; ++c)
    if (w->stored[c] || c == w->route) velostream_writer_stage_datum(w, c, slot->tts_values[c], slot->tts_isnull[c]);
  velostream_writer_append(w);
}

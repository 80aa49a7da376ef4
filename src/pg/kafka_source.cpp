// Engine and librdkafka headers first: PostgreSQL's Min/Max macros would
// break abseil's templates.
#include <algorithm>
#include <string>
#include <vector>

#include "engine/decoder.h"
#include "kafka/assignment.h"
#include "kafka/consumer.h"
#include "pg/kafka_source.h"
#include "pg/types.h"
#include "pg/velostream.h"

namespace eng = velostream::engine;

// What a consumer is opened with, from the server, user mapping and stream
// options; compared each cycle to notice ALTER ... OPTIONS.
struct StreamConfig {
  std::vector<std::pair<std::string, std::string>> client;  // librdkafka properties
  std::string topic, format, start_offset;
  bool operator==(const StreamConfig& o) const {
    return client == o.client && topic == o.topic && format == o.format && start_offset == o.start_offset;
  }
};

struct KafkaSource {
  Oid stream;
  int worker, nworkers;
  std::string name;
  StreamConfig config;  // as opened; see velostream_kafka_config_changed
  velostream::kafka::Consumer consumer;
  eng::MessageDecoder* decoder = nullptr;
  eng::RecordBatch* batch = nullptr;
  int meta_col[4] = {-1, -1, -1, -1};  // batch column of _partition, _offset, _timestamp, _key
  int npartitions = 0;                  // topic partitions assigned so far
  TimestampTz last_metadata = 0;
  TimestampTz last_idle_save = 0;
  bool paused = false;
  // Per topic partition (index = partition id).
  std::vector<int64_t> next;      // next offset to consume; -1: none yet
  std::vector<int64_t> consumed;  // messages this cycle
  std::vector<int64_t> dead;      // dead letters this cycle
  std::vector<int64_t> lost;      // messages lost to retention, found this cycle
  // Event time (issue 11): the batch column of the stream's event time (-1:
  // none), and each topic partition's largest event time this cycle
  // (has_event 0: none yet), saved with its offsets.
  int event_column = -1;
  std::vector<int64_t> max_event;
  std::vector<uint8_t> has_event;
  // The next offset as committed in velostream.kafka_offsets (-1: NULL): the
  // save is a compare-and-set against it, so a worker whose partition was
  // consumed by another since can never commit.
  std::vector<int64_t> committed;
  std::vector<int32_t> resets;    // partitions whose position fell outside the log
  // Gaps of this cycle: messages lost outside velostream's control.
  std::vector<int32_t> gap_partition;
  std::vector<int64_t> gap_first, gap_last;  // gap_last -1: unknown
  std::vector<std::string> gap_reason;
  // Dead letters of this cycle.
  std::vector<int32_t> dl_partition;
  std::vector<int64_t> dl_offset;
  std::vector<std::string> dl_payload, dl_reason;
  std::string last_error;
  std::string reported_error;  // last_error as stored in velostream.stream_partitions
  TimestampTz cycle_start = 0;
  std::string error_buf;
};

namespace {

constexpr int kMetadataEveryMs = 5000;
constexpr int kIdleSaveEveryMs = 1000;
constexpr size_t kConsumeBatch = 1024;
constexpr size_t kExcerpt = 256;

bool owns(const KafkaSource* s, int32_t p) { return p % s->nworkers == s->worker; }

// Kafka stream columns are of native types (streams.cpp checks at CREATE).
eng::FieldKind kind_of(Oid type) {
  const SqlType* t = velostream_sql_type(type);
  return t ? t->field : eng::FieldKind::kText;
}

void add_options(List* options, std::vector<std::pair<std::string, std::string>>* conf) {
  ListCell* lc;
  foreach (lc, options) {
    DefElem* def = (DefElem*)lfirst(lc);
    const char* name = strcmp(def->defname, "brokers") == 0 ? "bootstrap.servers" : def->defname;
    conf->emplace_back(name, defGetString(def));
  }
}

// Text safe to store: valid in the database encoding, no NUL; other bytes
// are written as \xNN.
char* printable(const std::string& s) {
  size_t len = std::min(s.size(), kExcerpt);
  if (memchr(s.data(), 0, len) == nullptr && pg_verifymbstr(s.data(), (int)len, true)) return pnstrdup(s.data(), len);
  StringInfoData out;
  initStringInfo(&out);
  for (size_t i = 0; i < len; ++i) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c < 0x7f) appendStringInfoChar(&out, (char)c);
    else appendStringInfo(&out, "\\x%02x", c);
  }
  return out.data;
}

void grow(KafkaSource* s, int n) {
  if ((int)s->next.size() >= n) return;
  s->next.resize(n, -1);
  s->consumed.resize(n, 0);
  s->dead.resize(n, 0);
  s->lost.resize(n, 0);
  s->committed.resize(n, -1);
  s->max_event.resize(n, 0);
  s->has_event.resize(n, 0);
}

// Assigns the owned partitions, at the stored offsets, when the topic's
// partition count is first known or has grown.
void ensure_assignment(KafkaSource* s) {
  TimestampTz now = GetCurrentTimestamp();
  if (s->npartitions > 0 && !TimestampDifferenceExceeds(s->last_metadata, now, kMetadataEveryMs)) return;
  s->last_metadata = now;
  std::string err;
  int n = s->consumer.partition_count(s->npartitions > 0 ? 1000 : 2000, &err);
  if (n <= 0) {
    if (!err.empty() && err != s->last_error)
      ereport(LOG, (errmsg("velostream: stream %s: cannot read topic metadata: %s", s->name.c_str(), err.c_str())));
    if (!err.empty()) s->last_error = "metadata: " + err;
    return;
  }
  s->last_error.clear();  // brokers answered
  if (n <= s->npartitions) return;
  grow(s, n);
  Oid argtypes[1] = {OIDOID};
  Datum args[1] = {ObjectIdGetDatum(s->stream)};
  if (SPI_execute_with_args("SELECT kafka_partition, next_offset FROM velostream.kafka_offsets WHERE stream = $1", 1,
                            argtypes, args, NULL, false, 0) != SPI_OK_SELECT)
    elog(ERROR, "velostream: reading velostream.kafka_offsets failed");
  std::vector<int64_t> stored(n, -1);
  for (uint64 r = 0; r < SPI_processed; ++r) {
    bool null1, null2;
    int32 p = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &null1));
    Datum off = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2, &null2);
    if (p >= 0 && p < n && !null2) stored[p] = DatumGetInt64(off);
  }
  int64_t policy = s->config.start_offset == "earliest" ? velostream::kafka::kOffsetEarliest : velostream::kafka::kOffsetLatest;
  std::vector<std::pair<int32_t, int64_t>> assignment =
      velostream::kafka::plan_assignment(s->worker, s->nworkers, n, s->next, stored, policy);
  for (const auto& a : assignment) {
    if (a.second >= 0) s->next[a.first] = a.second;
    if (a.first >= s->npartitions) s->committed[a.first] = stored[a.first];  // newly assigned to us
  }
  // Every partition of the topic has its row, so that saves are
  // compare-and-set updates, and so that a partition whose owner has not
  // started yet holds the stream's watermark back (event_time.h) instead of
  // being unknown.
  {
    Oid types[3] = {OIDOID, INT4OID, INT4OID};
    Datum args3[3] = {ObjectIdGetDatum(s->stream), Int32GetDatum(n), Int32GetDatum(s->nworkers)};
    if (SPI_execute_with_args("INSERT INTO velostream.kafka_offsets (stream, kafka_partition, worker) "
                              "SELECT $1, p, p % $3 FROM generate_series(0, $2 - 1) p "
                              "ON CONFLICT (stream, kafka_partition) DO NOTHING",
                              3, types, args3, NULL, false, 0) != SPI_OK_INSERT)
      elog(ERROR, "velostream: registering Kafka partitions failed");
  }
  if (!s->consumer.assign(assignment, &err))
    ereport(ERROR, (errcode(ERRCODE_FDW_ERROR), errmsg("velostream: stream %s: assigning partitions failed: %s",
                                                      s->name.c_str(), err.c_str())));
  if (s->paused) s->consumer.set_paused(true);
  ereport(LOG, (errmsg("velostream: stream %s worker %d consumes %zu of %d partitions of its topic", s->name.c_str(),
                       s->worker, assignment.size(), n)));
  s->npartitions = n;
}

// Decodes one message into row `row`; false if it became a dead letter.
bool decode_message(KafkaSource* s, const rd_kafka_message_t* m, size_t row) {
  std::string_view payload(static_cast<const char*>(m->payload), m->payload ? m->len : 0);
  std::string& err = s->error_buf;
  bool ok = s->decoder->decode(payload, s->batch, row, &err);
  if (ok && s->meta_col[3] >= 0) {
    eng::Column& key = s->batch->columns[s->meta_col[3]];
    if (m->key == nullptr) {
      key.null[row] = 1;
    } else {
      ok = eng::parse_field(eng::FieldKind::kText, std::string_view(static_cast<const char*>(m->key), m->key_len),
                            &key, row, &s->batch->arena, &err);
      if (!ok) err = "message key: " + err;
    }
  }
  if (!ok) {
    s->dl_partition.push_back(m->partition);
    s->dl_offset.push_back(m->offset);
    s->dl_payload.emplace_back(payload.substr(0, kExcerpt));
    s->dl_reason.push_back(err);
    s->dead[m->partition]++;
    return false;
  }
  if (s->meta_col[0] >= 0) {
    s->batch->columns[s->meta_col[0]].i64[row] = m->partition;
    s->batch->columns[s->meta_col[0]].null[row] = 0;
  }
  if (s->meta_col[1] >= 0) {
    s->batch->columns[s->meta_col[1]].i64[row] = m->offset;
    s->batch->columns[s->meta_col[1]].null[row] = 0;
  }
  if (s->meta_col[2] >= 0) {
    rd_kafka_timestamp_type_t tstype;
    int64_t ms = rd_kafka_message_timestamp(m, &tstype);
    eng::Column& c = s->batch->columns[s->meta_col[2]];
    c.null[row] = ms < 0;
    c.i64[row] = ms * 1000 - 946684800LL * 1000000;  // Unix ms -> PostgreSQL microseconds
  }
  s->batch->xid[row] = 0;  // Kafka rows are never hidden by a view's start snapshot
  return true;
}

// Partitions whose position fell outside the partition's log (the broker
// answered OFFSET_OUT_OF_RANGE and auto.offset.reset is "error"): the
// messages between the position and the log start are gone (retention, or
// the topic was recreated). Records the gap for velostream.errors and
// kafka_stats, and goes on from the log start (a seek of that partition
// alone). A partition whose log start cannot be read or sought stays in
// `resets` and is tried again next cycle, with the reason in last_error
// (shown in velostream.stats). Raises nothing: the caller logs the WARNINGs
// collected in `warnings` (no ereport while C++ objects live here).
void handle_resets(KafkaSource* s, std::vector<std::string>* warnings) {
  if (s->resets.empty()) return;
  std::vector<int32_t> retry;
  std::string err;
  for (int32_t p : s->resets) {
    int64_t low = -1, high = -1;
    if (!s->consumer.watermarks(p, 2000, &low, &high, &err)) {
      s->last_error = "partition " + std::to_string(p) + " is outside the topic's log and its log start is unknown: " + err;
      retry.push_back(p);
      continue;
    }
    int64_t from = s->next[p] >= 0 ? s->next[p] : low;
    int64_t to = from < low || from > high ? low : from;
    // Fetching of the partition stopped on the error: restart it at `to`,
    // and only then record the gap (a failed attempt records nothing).
    if (!s->consumer.reposition(p, to, &err)) {
      s->last_error = "partition " + std::to_string(p) + " is outside the topic's log; restarting it at offset " +
                      std::to_string(to) + " failed: " + err;
      retry.push_back(p);
      continue;
    }
    if (s->paused) s->consumer.set_paused(true);
    char reason[512];
    if (from < low) {
      snprintf(reason, sizeof(reason),
               "messages lost: offsets %lld to %lld of partition %d were deleted from topic %s (retention) before "
               "they were consumed; consuming goes on at the log start %lld",
               (long long)from, (long long)(low - 1), p, s->config.topic.c_str(), (long long)low);
      s->gap_partition.push_back(p);
      s->gap_first.push_back(from);
      s->gap_last.push_back(low - 1);
      s->gap_reason.push_back(reason);
      s->lost[p] += low - from;
    } else if (from > high) {
      snprintf(reason, sizeof(reason),
               "stored offset %lld of partition %d is beyond the end of topic %s's log (%lld): the topic was deleted "
               "and recreated or truncated; consuming goes on at its log start %lld",
               (long long)from, p, s->config.topic.c_str(), (long long)high, (long long)low);
      s->gap_partition.push_back(p);
      s->gap_first.push_back(from);
      s->gap_last.push_back(-1);
      s->gap_reason.push_back(reason);
    } else {
      snprintf(reason, sizeof(reason), "offset %lld of partition %d was out of range and is valid again",
               (long long)from, p);
    }
    warnings->push_back(reason);
    s->next[p] = to;
  }
  s->resets.swap(retry);
}

}  // namespace

// Call inside a transaction.
StreamConfig stream_config(Oid stream, int worker) {
  Relation rel = table_open(stream, AccessShareLock);
  ForeignServer* server = GetForeignServer(GetForeignServerIdByRelId(stream));
  Oid owner = rel->rd_rel->relowner;
  StreamConfig c;
  c.client.emplace_back("group.id", std::string("velostream-") + get_database_name(MyDatabaseId) + "-" +
                                        std::to_string(stream));
  c.client.emplace_back("client.id",
                        std::string("velostream-") + RelationGetRelationName(rel) + "-" + std::to_string(worker));
  add_options(server->options, &c.client);
  // Secrets: the user mapping of the stream's owner, else the PUBLIC one.
  Oid users[2] = {owner, InvalidOid};
  for (Oid user : users) {
    HeapTuple tp = SearchSysCache2(USERMAPPINGUSERSERVER, ObjectIdGetDatum(user), ObjectIdGetDatum(server->serverid));
    if (!HeapTupleIsValid(tp)) continue;
    ReleaseSysCache(tp);
    add_options(GetUserMapping(user, server->serverid)->options, &c.client);
    break;
  }
  const char* v;
  c.topic = (v = velostream_table_option(stream, "topic")) ? v : "";
  c.format = (v = velostream_table_option(stream, "format")) ? v : "csv";
  c.start_offset = (v = velostream_table_option(stream, "start_offset")) ? v : "latest";
  table_close(rel, AccessShareLock);
  return c;
}

KafkaSource* velostream_kafka_open(Oid stream, int worker, int nworkers, eng::RecordBatch* batch) {
  StreamConfig conf = stream_config(stream, worker);
  Relation rel = table_open(stream, AccessShareLock);
  TupleDesc desc = RelationGetDescr(rel);

  KafkaSource* s = new KafkaSource();
  s->stream = stream;
  s->worker = worker;
  s->nworkers = nworkers;
  s->name = RelationGetRelationName(rel);
  s->config = conf;
  s->batch = batch;
  std::vector<eng::FieldSpec> fields;
  batch->columns.resize(desc->natts);
  for (int i = 0; i < desc->natts; ++i) {
    Form_pg_attribute att = TupleDescAttr(desc, i);
    int meta = -1;
    for (int m = 0; m < 4; ++m)
      if (strcmp(NameStr(att->attname), velostream_kafka_metadata_columns[m]) == 0) meta = m;
    eng::FieldKind kind = kind_of(att->atttypid);
    batch->columns[i].used = true;
    batch->columns[i].type = eng::storage_type(kind);
    if (meta >= 0) s->meta_col[meta] = i;
    else fields.push_back({NameStr(att->attname), kind, i});
  }
  table_close(rel, AccessShareLock);
  s->decoder = new eng::MessageDecoder(conf.format == "json" ? eng::MessageFormat::kJson : eng::MessageFormat::kCsv,
                                       std::move(fields));
  std::string err;
  if (!s->consumer.open(conf.client, conf.topic, &err))
    ereport(ERROR, (errcode(ERRCODE_FDW_ERROR),
                    errmsg("velostream: stream %s: cannot create the Kafka consumer: %s", s->name.c_str(), err.c_str())));
  return s;
}

bool velostream_kafka_config_changed(KafkaSource* s) {
  if (stream_config(s->stream, s->worker) == s->config) return false;
  ereport(LOG, (errmsg("velostream: stream %s: server, user mapping or stream options changed; worker %d restarts",
                       s->name.c_str(), s->worker)));
  return true;
}

void velostream_kafka_set_event_time(KafkaSource* s, int column) { s->event_column = column; }

bool velostream_kafka_waits(const KafkaSource* s) { return s->npartitions > 0 && !s->paused; }

void velostream_kafka_set_paused(KafkaSource* s, bool paused) {
  if (paused == s->paused) return;
  s->paused = paused;
  if (s->npartitions > 0) s->consumer.set_paused(paused);
}

uint64 velostream_kafka_read(KafkaSource* s, size_t capacity, uint64 max_rows, void (*feed)(size_t rows)) {
  s->cycle_start = GetCurrentTimestamp();
  ensure_assignment(s);
  std::fill(s->consumed.begin(), s->consumed.end(), 0);
  std::fill(s->dead.begin(), s->dead.end(), 0);
  std::fill(s->lost.begin(), s->lost.end(), 0);
  std::fill(s->has_event.begin(), s->has_event.end(), 0);
  s->gap_partition.clear();
  s->gap_first.clear();
  s->gap_last.clear();
  s->gap_reason.clear();
  {
    std::vector<std::string> warnings;
    handle_resets(s, &warnings);
    for (const std::string& w : warnings)
      ereport(WARNING, (errcode(ERRCODE_FDW_ERROR), errmsg("velostream: stream %s: %s", s->name.c_str(), w.c_str())));
  }
  s->dl_partition.clear();
  s->dl_offset.clear();
  s->dl_payload.clear();
  s->dl_reason.clear();
  if (s->npartitions == 0 || s->paused) return 0;

  rd_kafka_message_t* msgs[kConsumeBatch];
  uint64 total = 0;
  size_t row = 0;
  s->batch->reset(capacity);
  int timeout = velostream_flush_interval_ms;
  for (;;) {
    size_t want = std::min(kConsumeBatch, capacity - row);
    size_t n = s->consumer.consume(msgs, want, timeout);
    std::string client_error = s->consumer.take_error();
    if (!client_error.empty()) {
      if (client_error != s->last_error)
        ereport(LOG, (errmsg("velostream: stream %s: %s", s->name.c_str(), client_error.c_str())));
      s->last_error = client_error;
    }
    if (n == 0) break;
    for (size_t i = 0; i < n; ++i) {
      rd_kafka_message_t* m = msgs[i];
      if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET) {
        if (std::find(s->resets.begin(), s->resets.end(), m->partition) == s->resets.end())
          s->resets.push_back(m->partition);
      } else if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
          s->last_error = rd_kafka_message_errstr(m);
          ereport(LOG, (errmsg("velostream: stream %s: %s", s->name.c_str(), s->last_error.c_str())));
        }
      } else if (m->partition >= 0 && m->partition < (int32_t)s->next.size() &&
                 (s->next[m->partition] < 0 || m->offset >= s->next[m->partition])) {
        if (decode_message(s, m, row)) {
          if (s->event_column >= 0) {
            const eng::Column& ts = s->batch->columns[s->event_column];
            if (!ts.null[row] && (!s->has_event[m->partition] || ts.i64[row] > s->max_event[m->partition])) {
              s->max_event[m->partition] = ts.i64[row];
              s->has_event[m->partition] = 1;
            }
          }
          ++row;
        }
        s->next[m->partition] = m->offset + 1;
        s->consumed[m->partition]++;
        ++total;
        s->last_error.clear();
      }
      rd_kafka_message_destroy(m);
    }
    if (row == capacity) {
      feed(row);
      s->batch->reset(capacity);
      row = 0;
    }
    if (total >= max_rows ||
        TimestampDifferenceExceeds(s->cycle_start, GetCurrentTimestamp(), velostream_flush_interval_ms))
      break;
    timeout = 0;  // take what is already fetched, then flush
  }
  feed(row);
  return total;
}

void velostream_kafka_save(KafkaSource* s, bool force) {
  uint64 consumed = 0;
  for (int64_t c : s->consumed) consumed += (uint64)c;
  TimestampTz now = GetCurrentTimestamp();
  bool idle_due = TimestampDifferenceExceeds(s->last_idle_save, now, kIdleSaveEveryMs);
  if (consumed == 0 && s->dl_partition.empty() && s->gap_partition.empty() && !(force && idle_due)) return;

  // Gaps: messages lost outside velostream's control, one dead letter each.
  if (!s->gap_partition.empty()) {
    int n = (int)s->gap_partition.size();
    Datum* parts = (Datum*)palloc(sizeof(Datum) * n);
    Datum* first = (Datum*)palloc(sizeof(Datum) * n);
    Datum* last = (Datum*)palloc(sizeof(Datum) * n);
    bool* last_null = (bool*)palloc(sizeof(bool) * n);
    Datum* reasons = (Datum*)palloc(sizeof(Datum) * n);
    for (int i = 0; i < n; ++i) {
      parts[i] = Int32GetDatum(s->gap_partition[i]);
      first[i] = Int64GetDatum(s->gap_first[i]);
      last[i] = Int64GetDatum(s->gap_last[i]);
      last_null[i] = s->gap_last[i] < 0;
      reasons[i] = CStringGetTextDatum(s->gap_reason[i].c_str());
    }
    int dims[1] = {n}, lbs[1] = {1};
    Oid types[5] = {OIDOID, INT4ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, TEXTARRAYOID};
    Datum args[5] = {ObjectIdGetDatum(s->stream),
                     PointerGetDatum(construct_array(parts, n, INT4OID, 4, true, TYPALIGN_INT)),
                     PointerGetDatum(construct_array(first, n, INT8OID, 8, true, TYPALIGN_DOUBLE)),
                     PointerGetDatum(construct_md_array(last, last_null, 1, dims, lbs, INT8OID, 8, true, TYPALIGN_DOUBLE)),
                     PointerGetDatum(construct_array(reasons, n, TEXTOID, -1, false, TYPALIGN_INT))};
    if (SPI_execute_with_args("INSERT INTO velostream.errors (stream, partition, \"offset\", last_offset, reason) "
                              "SELECT $1, * FROM unnest($2, $3, $4, $5)",
                              5, types, args, NULL, false, 0) != SPI_OK_INSERT)
      elog(ERROR, "velostream: recording lost Kafka messages failed");
  }

  // Dead letters, in the transaction that moves the offsets past them.
  if (!s->dl_partition.empty()) {
    int n = (int)s->dl_partition.size();
    Datum* parts = (Datum*)palloc(sizeof(Datum) * n);
    Datum* offs = (Datum*)palloc(sizeof(Datum) * n);
    Datum* payloads = (Datum*)palloc(sizeof(Datum) * n);
    Datum* reasons = (Datum*)palloc(sizeof(Datum) * n);
    for (int i = 0; i < n; ++i) {
      parts[i] = Int32GetDatum(s->dl_partition[i]);
      offs[i] = Int64GetDatum(s->dl_offset[i]);
      payloads[i] = CStringGetTextDatum(printable(s->dl_payload[i]));
      reasons[i] = CStringGetTextDatum(printable(s->dl_reason[i]));
    }
    Oid types[5] = {OIDOID, INT4ARRAYOID, INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID};
    Datum args[5] = {ObjectIdGetDatum(s->stream),
                     PointerGetDatum(construct_array(parts, n, INT4OID, 4, true, TYPALIGN_INT)),
                     PointerGetDatum(construct_array(offs, n, INT8OID, 8, true, TYPALIGN_DOUBLE)),
                     PointerGetDatum(construct_array(payloads, n, TEXTOID, -1, false, TYPALIGN_INT)),
                     PointerGetDatum(construct_array(reasons, n, TEXTOID, -1, false, TYPALIGN_INT))};
    if (SPI_execute_with_args("INSERT INTO velostream.errors (stream, partition, \"offset\", payload, reason) "
                              "SELECT $1, * FROM unnest($2, $3, $4, $5)",
                              5, types, args, NULL, false, 0) != SPI_OK_INSERT)
      elog(ERROR, "velostream: writing dead letters failed");
  }

  // Positions and statistics of every owned partition. High watermarks come
  // from fetch responses, which a caught-up consumer gets at least every
  // fetch.wait.max.ms (200 ms); so an idle save without client errors vouches
  // for every message produced a second before its transaction began, which
  // is what watermark_checked_at records for wait(). (Asking the broker with
  // rd_kafka_query_watermark_offsets instead blocks past its timeout in
  // librdkafka 2.0.2 when the broker is down, and with it shutdown.)
  bool idle = consumed == 0;
  if (idle) s->last_idle_save = now;
  // The worker's broker / topic error, for velostream.stats and operators.
  if (s->last_error != s->reported_error) {
    Oid etypes[3] = {OIDOID, INT4OID, TEXTOID};
    Datum eargs[3] = {ObjectIdGetDatum(s->stream), Int32GetDatum(s->worker),
                      s->last_error.empty() ? (Datum)0 : CStringGetTextDatum(printable(s->last_error))};
    char enulls[3] = {' ', ' ', s->last_error.empty() ? 'n' : ' '};
    SPI_execute_with_args("UPDATE velostream.stream_partitions SET last_error = $3, error_at = now() "
                          "WHERE stream = $1 AND partition = $2",
                          3, etypes, eargs, enulls, false, 0);
    s->reported_error = s->last_error;
  }

  std::vector<int32_t> owned;
  for (int32_t p = 0; p < s->npartitions; ++p)
    if (owns(s, p)) owned.push_back(p);
  int n = (int)owned.size();
  if (n == 0) return;
  double seconds = std::max(1e-3, (double)(now - s->cycle_start) / 1e6);
  Datum* parts = (Datum*)palloc(sizeof(Datum) * n);
  Datum* next = (Datum*)palloc(sizeof(Datum) * n);
  bool* next_null = (bool*)palloc(sizeof(bool) * n);
  Datum* hwm = (Datum*)palloc(sizeof(Datum) * n);
  bool* hwm_null = (bool*)palloc(sizeof(bool) * n);
  Datum* msgs = (Datum*)palloc(sizeof(Datum) * n);
  Datum* dead = (Datum*)palloc(sizeof(Datum) * n);
  Datum* rate = (Datum*)palloc(sizeof(Datum) * n);
  bool vouch = idle && s->last_error.empty();
  for (int i = 0; i < n; ++i) {
    int32_t p = owned[i];
    parts[i] = Int32GetDatum(p);
    next_null[i] = s->next[p] < 0;
    next[i] = Int64GetDatum(s->next[p]);
    int64_t h = s->consumer.high_watermark(p);
    if (h < 0) vouch = false;
    hwm_null[i] = h < 0;
    hwm[i] = Int64GetDatum(h);
    msgs[i] = Int64GetDatum(s->consumed[p]);
    dead[i] = Int64GetDatum(s->dead[p]);
    rate[i] = Float8GetDatum(s->consumed[p] / seconds);
  }
  Datum* events = (Datum*)palloc(sizeof(Datum) * n);
  bool* events_null = (bool*)palloc(sizeof(bool) * n);
  for (int i = 0; i < n; ++i) {
    events[i] = TimestampTzGetDatum(s->max_event[owned[i]]);
    events_null[i] = !s->has_event[owned[i]];
  }
  Datum* lost = (Datum*)palloc(sizeof(Datum) * n);
  Datum* expected = (Datum*)palloc(sizeof(Datum) * n);
  bool* expected_null = (bool*)palloc(sizeof(bool) * n);
  for (int i = 0; i < n; ++i) {
    lost[i] = Int64GetDatum(s->lost[owned[i]]);
    expected[i] = Int64GetDatum(s->committed[owned[i]]);
    expected_null[i] = s->committed[owned[i]] < 0;
  }
  int dims[1] = {n}, lbs[1] = {1};
  Oid types[13] = {OIDOID, INT4OID, INT4ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID,
                   FLOAT8ARRAYOID, TEXTOID, BOOLOID, INT8ARRAYOID, INT8ARRAYOID, TIMESTAMPTZARRAYOID};
  Datum args[13] = {
      ObjectIdGetDatum(s->stream), Int32GetDatum(s->worker),
      PointerGetDatum(construct_array(parts, n, INT4OID, 4, true, TYPALIGN_INT)),
      PointerGetDatum(construct_md_array(next, next_null, 1, dims, lbs, INT8OID, 8, true, TYPALIGN_DOUBLE)),
      PointerGetDatum(construct_md_array(hwm, hwm_null, 1, dims, lbs, INT8OID, 8, true, TYPALIGN_DOUBLE)),
      PointerGetDatum(construct_array(msgs, n, INT8OID, 8, true, TYPALIGN_DOUBLE)),
      PointerGetDatum(construct_array(dead, n, INT8OID, 8, true, TYPALIGN_DOUBLE)),
      PointerGetDatum(construct_array(rate, n, FLOAT8OID, 8, true, TYPALIGN_DOUBLE)),
      s->last_error.empty() ? (Datum)0 : CStringGetTextDatum(printable(s->last_error)),
      BoolGetDatum(vouch),
      PointerGetDatum(construct_array(lost, n, INT8OID, 8, true, TYPALIGN_DOUBLE)),
      PointerGetDatum(construct_md_array(expected, expected_null, 1, dims, lbs, INT8OID, 8, true, TYPALIGN_DOUBLE)),
      PointerGetDatum(construct_md_array(events, events_null, 1, dims, lbs, TIMESTAMPTZOID, 8, true, TYPALIGN_DOUBLE))};
  char nulls[13] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', s->last_error.empty() ? 'n' : ' ', ' ', ' ', ' ', ' '};
  // Compare-and-set: each row moves only from the next offset this worker
  // last committed. With fencing no other worker runs this partition; if one
  // ever did, this cycle fails instead of counting its messages twice.
  int rc = SPI_execute_with_args(
      "UPDATE velostream.kafka_offsets AS k SET worker = $2, "
      "  next_offset = coalesce(u.o, k.next_offset), high_watermark = coalesce(u.h, k.high_watermark), "
      "  messages = k.messages + u.m, dead_letters = k.dead_letters + u.d, lost = k.lost + u.l, rate = u.r, "
      "  last_error = $9, updated_at = now(), "
      "  watermark_checked_at = coalesce(CASE WHEN $10 THEN now() - interval '1 second' END, k.watermark_checked_at), "
      "  max_event_time = greatest(k.max_event_time, u.t), "
      "  last_input_at = CASE WHEN u.m > 0 THEN now() ELSE k.last_input_at END "
      "FROM unnest($3, $4, $5, $6, $7, $8, $11, $12, $13) AS u(p, o, h, m, d, r, l, e, t) "
      "WHERE k.stream = $1 AND k.kafka_partition = u.p AND k.next_offset IS NOT DISTINCT FROM u.e",
      13, types, args, nulls, false, 0);
  if (rc != SPI_OK_UPDATE) elog(ERROR, "velostream: saving Kafka offsets failed: %s", SPI_result_code_string(rc));
  if (SPI_processed != (uint64)n)
    ereport(ERROR, (errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
                    errmsg("velostream: the committed Kafka offsets of stream %s moved under worker %d", s->name.c_str(),
                           s->worker),
                    errdetail("Another process committed positions of the same topic partitions; this worker's cycle "
                              "is discarded and it restarts from the committed offsets.")));
  for (int32_t p : owned)
    if (s->next[p] >= 0) s->committed[p] = s->next[p];

}

// Stream creation: the partition log tables behind a stream fed by
// INSERT/COPY, and its catalog rows.
#include "pg/event_time.h"
#include "pg/types.h"
#include "pg/velostream.h"

namespace {

// The stream's partition count: OPTIONS (partitions 'n'), or the GUC.
int stream_partitions(Oid relid) {
  const char* v = velostream_table_option(relid, "partitions");
  return v ? atoi(v) : velostream_partitions;
}

// Kafka streams: a topic, metadata columns of the right types, and data
// columns of types the decoders parse.
void check_kafka_stream(Oid relid, TupleDesc desc) {
  if (velostream_table_option(relid, "topic") == nullptr)
    ereport(ERROR, (errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
                    errmsg("a Kafka stream needs a topic"),
                    errhint("Add OPTIONS (topic 'name'), and optionally format 'csv' | 'json' and start_offset "
                            "'earliest' | 'latest'.")));
  for (int i = 0; i < desc->natts; ++i) {
    Form_pg_attribute att = TupleDescAttr(desc, i);
    const char* name = NameStr(att->attname);
    for (int m = 0; m < 4; ++m) {
      if (strcmp(name, velostream_kafka_metadata_columns[m]) == 0 && att->atttypid != velostream_kafka_metadata_types[m])
        ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                        errmsg("metadata column \"%s\" must be of type %s", name,
                               format_type_be(velostream_kafka_metadata_types[m]))));
    }
    if (velostream_sql_type(att->atttypid) == nullptr)
      ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                      errmsg("column \"%s\" of a Kafka stream cannot be of type %s", name,
                             format_type_be(att->atttypid)),
                      errhint("Supported: smallint, integer, bigint, real, double precision, numeric, text, "
                              "varchar, boolean, date, timestamp, timestamptz, interval.")));
  }
}

// Creates partition p's log of stream `relid` and returns its oid. One row
// per batch of rows: the writing transaction's id, the row count and the
// batch in the engine's log format (engine/batch_codec.h); restored_xid is
// set on batches pg_restore carried (the writer's transaction id in the
// dumped database); watermark on the batches a Kafka stream's worker routed
// (its source watermark, which their rows' lateness is judged against);
// exchange_view on the batches of one view's groups that another partition's
// worker sent to this one, which owns them (worker.cpp: encoded groups, not
// rows, for that view alone). A local stream's rows come from INSERT and COPY; a Kafka
// stream's from its partition workers, which route what they consume by the
// stream's routing column (worker.cpp). Vacuumed often: every row is deleted
// once its partition worker consumed it. SPI connected, as superuser.
Oid create_partition_log(Oid relid, int p) {
  char log_name[NAMEDATALEN];
  snprintf(log_name, sizeof(log_name), "stream_%u_p%d", relid, p);
  Oid log_oid = velostream_create_blob_table(
      log_name,
      "(" VELOSTREAM_XID_COLUMN " xid8 NOT NULL, rows int4 NOT NULL, batch bytea NOT NULL, restored_xid xid8, "
      "watermark timestamptz, exchange_view oid) "
      "WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000, "
      "autovacuum_vacuum_insert_threshold = -1, autovacuum_vacuum_cost_delay = 0)",
      "batch");
  // The log is a member of the extension (pg_dump leaves it out, DROP of
  // the log alone is refused); the sql_drop trigger drops it with its stream.
  velostream_make_member(log_oid);
  return log_oid;
}

}  // namespace

extern "C" {
PGDLLEXPORT Datum velostream_create_partition_logs(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(velostream_create_partition_logs);
}

/// velostream._create_partition_logs(stream regclass) RETURNS void: creates
/// the partition logs a stream lacks (Kafka streams created before catalog
/// 0.5 had none). For the extension's update script.
Datum velostream_create_partition_logs(PG_FUNCTION_ARGS) {
  Oid relid = PG_GETARG_OID(0);
  Oid save_userid;
  int save_sec;
  velostream_begin_as_superuser(&save_userid, &save_sec);
  SPI_connect();
  Oid argtypes[1] = {OIDOID};
  Datum args[1] = {ObjectIdGetDatum(relid)};
  if (SPI_execute_with_args("SELECT partition FROM velostream.stream_partitions WHERE stream = $1 AND log_table IS NULL "
                            "ORDER BY partition",
                            1, argtypes, args, NULL, false, 0) != SPI_OK_SELECT)
    elog(ERROR, "velostream: reading velostream.stream_partitions failed");
  uint64 n = SPI_processed;
  int* parts = (int*)palloc(sizeof(int) * (n + 1));
  for (uint64 i = 0; i < n; ++i) {
    bool isnull;
    parts[i] = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
  }
  for (uint64 i = 0; i < n; ++i)
    velostream_spi_exec(psprintf("UPDATE velostream.stream_partitions SET log_table = %u WHERE stream = %u AND "
                                 "partition = %d",
                                 create_partition_log(relid, parts[i]), relid, parts[i]),
                        SPI_OK_UPDATE);
  SPI_finish();
  velostream_end_as_superuser(save_userid, save_sec);
  PG_RETURN_VOID();
}

const char* velostream_table_option(Oid relid, const char* name) {
  ForeignTable* ft = GetForeignTable(relid);
  ListCell* lc;
  foreach (lc, ft->options) {
    DefElem* def = (DefElem*)lfirst(lc);
    if (strcmp(def->defname, name) == 0) return defGetString(def);
  }
  return nullptr;
}

void velostream_create_stream(Oid relid) {
  if (!OidIsValid(get_extension_oid("velostream", true))) return;
  Relation rel = table_open(relid, AccessShareLock);
  TupleDesc desc = RelationGetDescr(rel);
  for (int i = 0; i < desc->natts; ++i) {
    if (strcmp(NameStr(TupleDescAttr(desc, i)->attname), VELOSTREAM_XID_COLUMN) == 0)
      ereport(ERROR, (errcode(ERRCODE_DUPLICATE_COLUMN),
                      errmsg("column name \"%s\" is reserved in streams", VELOSTREAM_XID_COLUMN)));
  }
  bool kafka = velostream_is_kafka_server(GetForeignServerIdByRelId(relid));
  StreamEventTime event_time;
  (void)velostream_stream_event_time(relid, &event_time);  // checks the options
  if (kafka) {
    check_kafka_stream(relid, desc);
  } else {
    static const char* const kafka_only[] = {"topic", "format", "start_offset"};
    for (const char* opt : kafka_only)
      if (velostream_table_option(relid, opt))
        ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
                        errmsg("option \"%s\" is only for Kafka streams", opt),
                        errhint("Kafka streams use a server with a brokers option.")));
  }
  table_close(rel, AccessShareLock);

  int nparts = stream_partitions(relid);
  // The catalog rows and the logs belong to velostream, not to the stream's
  // owner (who needs no rights on schema velostream).
  Oid save_userid;
  int save_sec;
  velostream_begin_as_superuser(&save_userid, &save_sec);
  SPI_connect();
  StringInfoData sql;
  initStringInfo(&sql);
  appendStringInfo(&sql, "INSERT INTO velostream.streams (stream, kind, partitions) VALUES (%u, '%s', %d)", relid,
                   kafka ? "kafka" : "local", nparts);
  velostream_spi_exec(sql.data, SPI_OK_INSERT);
  for (int p = 0; p < nparts; ++p) {
    resetStringInfo(&sql);
    appendStringInfo(&sql,
                     "INSERT INTO velostream.stream_partitions (stream, partition, log_table) VALUES (%u, %d, %u)",
                     relid, p, create_partition_log(relid, p));
    velostream_spi_exec(sql.data, SPI_OK_INSERT);
  }
  SPI_finish();
  velostream_end_as_superuser(save_userid, save_sec);
}

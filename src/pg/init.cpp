// Module entry point: GUCs, hooks, the launcher, and the preload check.
#include "engine/batch_codec.h"
#include "pg/types.h"
#include "pg/event_time.h"
#include "pg/velostream.h"

extern "C" {
PG_MODULE_MAGIC;
void _PG_init(void);
PG_FUNCTION_INFO_V1(velostream_assert_preloaded);
}

char* velostream_database = nullptr;
int velostream_partitions = 2;
int velostream_flush_interval_ms = 100;
int velostream_batch_size = 8192;
int velostream_state_memory_kb = 256 * 1024;

// velostream.batch_size's maximum: the rows of one stream log batch, which
// the engine's decode_batch accepts up to kMaxBatchRows.
constexpr int kMaxBatchSize = 1000000;
static_assert(kMaxBatchSize <= velostream::engine::kMaxBatchRows, "log batches must stay decodable");

void _PG_init(void) {
  velostream_types_init();
  // The launcher and the workers are started by the postmaster, and
  // velostream.database can only be defined then.
  if (!process_shared_preload_libraries_in_progress)
    ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                    errmsg("velostream must be loaded via shared_preload_libraries"),
                    errhint("Add 'velostream' to shared_preload_libraries in postgresql.conf and restart the server.")));

  DefineCustomStringVariable("velostream.database",
                             "Database whose streams and continuous views the background workers maintain.",
                             "CREATE EXTENSION velostream is only accepted in this database.",
                             &velostream_database, "postgres", PGC_POSTMASTER, 0, NULL, NULL, NULL);
  DefineCustomIntVariable("velostream.partitions",
                          "Number of partitions (and partition workers) of a new stream.",
                          "A stream keeps the count it was created with; OPTIONS (partitions 'n') overrides it.",
                          &velostream_partitions, 2, 1, 64, PGC_USERSET, 0, NULL, NULL, NULL);
  DefineCustomIntVariable("velostream.flush_interval",
                          "How often a partition worker merges its aggregated delta into the views' tables.",
                          "Each flush is one transaction covering the stream rows it consumed.",
                          &velostream_flush_interval_ms, 100, 1, 60000, PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
  DefineCustomIntVariable("velostream.batch_size",
                          "Stream rows per engine batch, and per stream log row written by INSERT/COPY.",
                          NULL, &velostream_batch_size, 8192, 64, kMaxBatchSize, PGC_SIGHUP, 0, NULL, NULL, NULL);
  DefineCustomIntVariable("velostream.state_memory",
                          "Memory a partition worker keeps for the state of one continuous view without windows.",
                          "Beyond it the least recently updated groups are evicted to the view's state table and "
                          "read back when their key reappears (views that own their groups).",
                          &velostream_state_memory_kb, 256 * 1024, 1024, INT_MAX, PGC_SIGHUP, GUC_UNIT_KB, NULL, NULL,
                          NULL);
  DefineCustomBoolVariable("velostream.fast_copy",
                           "COPY FROM STDIN into a stream converts common fields without PostgreSQL's executor.",
                           "Integers, ISO 8601 timestamps with a zone and text are read directly; any other field "
                           "uses the column's input function. Off: every COPY runs PostgreSQL's own COPY.",
                           &velostream_fast_copy, true, PGC_USERSET, 0, NULL, NULL, NULL);
  DefineCustomBoolVariable("velostream.native_expressions",
                           "Partition workers evaluate expressions of continuous views natively where they can.",
                           "Off: PostgreSQL's executor evaluates every expression a continuous view computes per "
                           "row (same results, slower; for comparisons and benchmarks). Read when a worker "
                           "(re)loads its views.",
                           &velostream_native_expressions, true, PGC_SIGHUP, 0, NULL, NULL, NULL);
  DefineCustomIntVariable("velostream.idle_timeout",
                          "How long a stream partition that receives no rows holds its stream's watermark back.",
                          "After this, the partition's event time no longer holds back the watermark of the views "
                          "on the stream (a stream's OPTIONS (idle_timeout) overrides it).",
                          &velostream_idle_timeout_ms, 30000, 1, INT_MAX, PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
  MarkGUCPrefixReserved("velostream");

  velostream_install_utility_hook();
  velostream_register_launcher();
}

/// velostream._assert_preloaded(): called by CREATE EXTENSION. Loading the
/// library has already refused a server that did not preload it (_PG_init);
/// this raises OBJECT_NOT_IN_PREREQUISITE_STATE unless this is the database
/// the workers serve.
Datum velostream_assert_preloaded(PG_FUNCTION_ARGS) {
  const char* db = get_database_name(MyDatabaseId);
  if (db == nullptr || strcmp(db, velostream_database) != 0)
    ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                    errmsg("velostream can only be created in database \"%s\"", velostream_database),
                    errhint("Set velostream.database = '%s' in postgresql.conf and restart the server to use it here.",
                            db ? db : "")));
  PG_RETURN_VOID();
}

void velostream_spi_exec(const char* sql, int expected) {
  int rc = SPI_execute(sql, false, 0);
  if (rc != expected) elog(ERROR, "velostream: SPI_execute failed (%s): %s", SPI_result_code_string(rc), sql);
}

void velostream_on_context_reset(MemoryContext cxt, MemoryContextCallbackFunction fn, void* arg) {
  MemoryContextCallback* cb = (MemoryContextCallback*)MemoryContextAllocZero(cxt, sizeof(MemoryContextCallback));
  cb->func = fn;
  cb->arg = arg;
  MemoryContextRegisterResetCallback(cxt, cb);
}

Oid velostream_create_blob_table(const char* name, const char* definition, const char* blob_column) {
  velostream_spi_exec(psprintf("CREATE TABLE velostream.%s %s", name, definition), SPI_OK_UTILITY);
  velostream_spi_exec(psprintf("ALTER TABLE velostream.%s ALTER COLUMN %s SET STORAGE EXTERNAL", name, blob_column),
                      SPI_OK_UTILITY);
  return get_relname_relid(name, get_namespace_oid("velostream", false));
}

Oid velostream_rel_owner(Oid relid) {
  HeapTuple tp = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
  if (!HeapTupleIsValid(tp)) return InvalidOid;
  Oid owner = ((Form_pg_class)GETSTRUCT(tp))->relowner;
  ReleaseSysCache(tp);
  return owner;
}

void velostream_begin_as_superuser(Oid* save_userid, int* save_sec_context) {
  GetUserIdAndSecContext(save_userid, save_sec_context);
  SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID, *save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
}

void velostream_end_as_superuser(Oid save_userid, int save_sec_context) {
  SetUserIdAndSecContext(save_userid, save_sec_context);
}

bool velostream_catalog_current(void) {
  Oid ext = get_extension_oid("velostream", true);
  if (!OidIsValid(ext)) return false;
  Relation rel = table_open(ExtensionRelationId, AccessShareLock);
  ScanKeyData key;
  ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(ext));
  SysScanDesc scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
  HeapTuple tup = systable_getnext(scan);
  bool current = false;
  if (HeapTupleIsValid(tup)) {
    bool isnull;
    Datum v = heap_getattr(tup, Anum_pg_extension_extversion, RelationGetDescr(rel), &isnull);
    current = !isnull && strcmp(text_to_cstring(DatumGetTextPP(v)), VELOSTREAM_CATALOG_VERSION) == 0;
  }
  systable_endscan(scan);
  table_close(rel, AccessShareLock);
  return current;
}

void velostream_fence_locktag(LOCKTAG* tag, Oid stream, int partition) {
  SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, stream, (uint32)partition, VELOSTREAM_FENCE_LOCK_SPACE);
}

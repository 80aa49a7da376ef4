// Stream creation: the partition log tables behind a stream fed by
// INSERT/COPY, and its catalog rows.
#include "pg/velostream.h"

namespace {

// The stream's partition count: OPTIONS (partitions 'n'), or the GUC.
int stream_partitions(Oid relid) {
  ForeignTable* ft = GetForeignTable(relid);
  ListCell* lc;
  foreach (lc, ft->options) {
    DefElem* def = (DefElem*)lfirst(lc);
    if (strcmp(def->defname, "partitions") == 0) return atoi(defGetString(def));
  }
  return velostream_partitions;
}

}  // namespace

void velostream_create_stream(Oid relid) {
  if (!OidIsValid(get_extension_oid("velostream", true))) return;
  Relation rel = table_open(relid, AccessShareLock);
  TupleDesc desc = RelationGetDescr(rel);
  for (int i = 0; i < desc->natts; ++i) {
    if (strcmp(NameStr(TupleDescAttr(desc, i)->attname), VELOSTREAM_XID_COLUMN) == 0)
      ereport(ERROR, (errcode(ERRCODE_DUPLICATE_COLUMN),
                      errmsg("column name \"%s\" is reserved in streams", VELOSTREAM_XID_COLUMN)));
  }
  table_close(rel, AccessShareLock);

  int nparts = stream_partitions(relid);
  char* stream_name = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)), get_rel_name(relid));
  SPI_connect();
  StringInfoData sql;
  initStringInfo(&sql);
  appendStringInfo(&sql, "INSERT INTO velostream.streams (stream, partitions) VALUES (%u, %d)", relid, nparts);
  velostream_spi_exec(sql.data, SPI_OK_INSERT);
  for (int p = 0; p < nparts; ++p) {
    // Same columns as the stream, plus the inserting transaction's id. Vacuum
    // often: every row is deleted once its partition worker consumed it.
    char log_name[NAMEDATALEN];
    snprintf(log_name, sizeof(log_name), "stream_%u_p%d", relid, p);
    resetStringInfo(&sql);
    appendStringInfo(&sql,
                     "CREATE TABLE velostream.%s (LIKE %s, " VELOSTREAM_XID_COLUMN " xid8 NOT NULL) "
                     "WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000, "
                     "autovacuum_vacuum_insert_threshold = -1, autovacuum_vacuum_cost_delay = 0)",
                     log_name, stream_name);
    velostream_spi_exec(sql.data, SPI_OK_UTILITY);
    Oid log_oid = get_relname_relid(log_name, get_namespace_oid("velostream", false));
    // The log lives and dies with its stream (DROP of the log alone is refused).
    ObjectAddress log_addr, stream_addr;
    ObjectAddressSet(log_addr, RelationRelationId, log_oid);
    ObjectAddressSet(stream_addr, RelationRelationId, relid);
    recordDependencyOn(&log_addr, &stream_addr, DEPENDENCY_INTERNAL);
    resetStringInfo(&sql);
    appendStringInfo(&sql,
                     "INSERT INTO velostream.stream_partitions (stream, partition, log_table) VALUES (%u, %d, %u)",
                     relid, p, log_oid);
    velostream_spi_exec(sql.data, SPI_OK_INSERT);
  }
  SPI_finish();
}

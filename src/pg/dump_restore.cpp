// pg_dump / pg_restore support (see sql/velostream--0.2--0.3.sql for the
// whole scheme): the tables velostream creates behind streams and views are
// extension members, and a view is kept as SQL text that analyses the same
// way in the restored database.
#include "pg/velostream.h"

extern "C" {
#include "parser/analyze.h"
#include "parser/parser.h"
}

namespace {

// Runs fn() with search_path set to '' for its duration (restored on error
// by the transaction's abort).
template <typename Fn>
auto with_empty_search_path(Fn fn) {
  int nest = NewGUCNestLevel();
  (void)set_config_option("search_path", "", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
  auto result = fn();
  AtEOXact_GUC(true, nest);
  return result;
}

}  // namespace

void velostream_make_member(Oid relid) {
  Oid ext = get_extension_oid("velostream", false);
  deleteDependencyRecordsForClass(RelationRelationId, relid, RelationRelationId, DEPENDENCY_INTERNAL);
  if (getExtensionOfObject(RelationRelationId, relid) == ext) return;
  ObjectAddress table, extension;
  ObjectAddressSet(table, RelationRelationId, relid);
  ObjectAddressSet(extension, ExtensionRelationId, ext);
  recordDependencyOn(&table, &extension, DEPENDENCY_EXTENSION);
  CommandCounterIncrement();
}

char* velostream_query_sql(Query* query) {
  Query* copy = (Query*)copyObjectImpl(query);
  return with_empty_search_path([&] { return pg_get_querydef(copy, false); });
}

Query* velostream_parse_query_sql(const char* sql) {
  return with_empty_search_path([&] {
    List* raw = raw_parser(sql, RAW_PARSE_DEFAULT);
    if (list_length(raw) != 1 || !IsA(((RawStmt*)linitial(raw))->stmt, SelectStmt))
      ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                      errmsg("velostream: a continuous view's query must be one SELECT")));
    return parse_analyze_fixedparams((RawStmt*)linitial(raw), sql, nullptr, 0, nullptr);
  });
}

extern "C" {
PGDLLEXPORT Datum velostream_make_member_sql(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum velostream_drop_member(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum velostream_query_sql_fn(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum velostream_hold_workers(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(velostream_hold_workers);
PG_FUNCTION_INFO_V1(velostream_make_member_sql);
PG_FUNCTION_INFO_V1(velostream_drop_member);
PG_FUNCTION_INFO_V1(velostream_query_sql_fn);
}

namespace {

// Refuses anything but a table velostream created in schema velostream
// behind a stream or view.
void check_internal_table(Oid relid) {
  Oid nsp = get_namespace_oid("velostream", false);
  const char* name = get_rel_name(relid);
  if (get_rel_relkind(relid) != RELKIND_RELATION || get_rel_namespace(relid) != nsp ||
      (strncmp(name, "stream_", 7) != 0 && strncmp(name, "view_", 5) != 0))
    ereport(ERROR, (errcode(ERRCODE_WRONG_OBJECT_TYPE),
                    errmsg("\"%s\" is not a table velostream created behind a stream or view", name)));
}

}  // namespace

/// velostream._make_member(rel regclass): velostream_make_member, for the
/// upgrade script (tables created by 0.1 and 0.2).
Datum velostream_make_member_sql(PG_FUNCTION_ARGS) {
  Oid relid = PG_GETARG_OID(0);
  check_internal_table(relid);
  velostream_make_member(relid);
  PG_RETURN_VOID();
}

/// velostream._drop_member(rel oid): drops a partition log or view state
/// table (called by the sql_drop event trigger once its stream or view is
/// gone). Does nothing if the table is gone already.
Datum velostream_drop_member(PG_FUNCTION_ARGS) {
  Oid relid = PG_GETARG_OID(0);
  if (get_rel_name(relid) == nullptr) PG_RETURN_VOID();
  check_internal_table(relid);
  deleteDependencyRecordsForClass(RelationRelationId, relid, ExtensionRelationId, DEPENDENCY_EXTENSION);
  CommandCounterIncrement();
  ObjectAddress table;
  ObjectAddressSet(table, RelationRelationId, relid);
  performDeletion(&table, DROP_RESTRICT, PERFORM_DELETION_INTERNAL);
  PG_RETURN_VOID();
}

/// velostream._query_sql(query_tree text): velostream_query_sql of a stored
/// parse tree (nodeToString), for the upgrade script.
Datum velostream_query_sql_fn(PG_FUNCTION_ARGS) {
  Query* query = (Query*)stringToNode(text_to_cstring(PG_GETARG_TEXT_PP(0)));
  PG_RETURN_TEXT_P(cstring_to_text(velostream_query_sql(query)));
}

/// velostream._hold_workers(): takes the extension's lock in SHARE mode until
/// the end of the transaction: waits for running worker cycles (they hold it
/// in ROW EXCLUSIVE mode) and holds off new ones. Used by the restore of a
/// stream (sql/velostream--0.2--0.3.sql).
Datum velostream_hold_workers(PG_FUNCTION_ARGS) {
  LockDatabaseObject(ExtensionRelationId, get_extension_oid("velostream", false), 0, ShareLock);
  PG_RETURN_VOID();
}

// ProcessUtility hook: the DDL of streams and continuous views.
//  - CREATE FOREIGN TABLE ... SERVER velostream: create the partition logs.
//  - CREATE MATERIALIZED VIEW ... WITH (velostream.continuous): a continuous view.
//  - DROP MATERIALIZED VIEW on a continuous view: drop its table.
//  - ALTER (FOREIGN) TABLE / RENAME COLUMN on a stream's columns, or dropping,
//    retyping or renaming a continuous view's column: refused (its logs and
//    its workers' writes would no longer match).
//  - COPY ... FROM STDIN into a stream: the fast path of copy_from.cpp.
//
// The statements velostream runs itself (CREATE of a continuous view, COPY on
// the fast path) still pass through the hooks of extensions loaded before it
// (pg_stat_statements, pgaudit, ...): they are handed down the chain as a
// CALL of velostream._run_intercepted(), which runs them, keeping their
// query text, query id and completion (COPY n), so those hooks see and time
// them. Extensions loaded after velostream see them anyway (their hooks
// call ours).
#include "pg/velostream.h"

namespace {

ProcessUtility_hook_type prev_hook = nullptr;

/// A statement velostream runs itself, while it travels down the hook chain
/// as a CALL of velostream._run_intercepted().
struct Intercepted {
  PlannedStmt* pstmt;
  const char* query_string;
  QueryCompletion* qc;
  bool done;
};
Intercepted* intercepted = nullptr;

void run_intercepted(PlannedStmt* pstmt, const char* query_string, QueryCompletion* qc) {
  Node* parsetree = pstmt->utilityStmt;
  if (IsA(parsetree, CreateTableAsStmt)) {
    velostream_create_continuous_view((CreateTableAsStmt*)parsetree, query_string, pstmt->stmt_location,
                                      pstmt->stmt_len);
  } else if (!velostream_copy_from((CopyStmt*)parsetree, query_string, qc)) {
    elog(ERROR, "velostream: the COPY fast path refused a statement it had accepted");
  }
}

// Runs an intercepted statement through the hooks below ours (see the top).
void run_through_chain(PlannedStmt* pstmt, const char* query_string, ProcessUtilityContext context,
                       ParamListInfo params, QueryEnvironment* query_env, DestReceiver* dest, QueryCompletion* qc) {
  Oid nsp = get_namespace_oid("velostream", true);
  Oid proc = OidIsValid(nsp) ? GetSysCacheOid3(PROCNAMEARGSNSP, Anum_pg_proc_oid, CStringGetDatum("_run_intercepted"),
                                               PointerGetDatum(buildoidvector(nullptr, 0)), ObjectIdGetDatum(nsp))
                             : InvalidOid;
  if (!OidIsValid(proc)) {  // an extension script older than 0.2
    run_intercepted(pstmt, query_string, qc);
    return;
  }
  CallStmt* call = makeNode(CallStmt);
  call->funcexpr = makeFuncExpr(proc, VOIDOID, NIL, InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL);
  PlannedStmt* wrapped = makeNode(PlannedStmt);
  memcpy(wrapped, pstmt, sizeof(PlannedStmt));
  wrapped->utilityStmt = (Node*)call;  // same query id, text location and length
  Intercepted mine = {pstmt, query_string, qc, false};
  Intercepted* outer = intercepted;
  intercepted = &mine;
  PG_TRY();
  { prev_hook(wrapped, query_string, false, context, params, query_env, dest, qc); }
  PG_FINALLY();
  { intercepted = outer; }
  PG_END_TRY();
  if (!mine.done)
    ereport(ERROR, (errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
                    errmsg("a ProcessUtility hook loaded before velostream did not run the statement")));
}

bool is_continuous(CreateTableAsStmt* stmt) {
  if (stmt->objtype != OBJECT_MATVIEW || stmt->into == nullptr) return false;
  ListCell* lc;
  foreach (lc, stmt->into->options) {
    DefElem* def = (DefElem*)lfirst(lc);
    if (def->defnamespace && strcmp(def->defnamespace, "velostream") == 0) return true;
  }
  return false;
}

// DROP MATERIALIZED VIEW naming continuous views becomes DROP TABLE.
void rewrite_drop(DropStmt* stmt) {
  if (stmt->removeType != OBJECT_MATVIEW) return;
  int continuous = 0, total = 0;
  ListCell* lc;
  foreach (lc, stmt->objects) {
    RangeVar* rv = makeRangeVarFromNameList((List*)lfirst(lc));
    Oid relid = RangeVarGetRelid(rv, NoLock, true);
    ++total;
    if (OidIsValid(relid) && velostream_is_continuous_view(relid)) ++continuous;
  }
  if (continuous == 0) return;
  if (continuous != total)
    ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                    errmsg("cannot drop continuous views and other materialized views in one statement")));
  stmt->removeType = OBJECT_TABLE;
}

// The columns of a stream are the layout of its logged batches and of the
// views' plans, and a view's columns are what its worker writes: DDL that
// changes them is refused before it runs (ALTER TABLE works on foreign
// tables too, so the statement's object type proves nothing).
void refuse_stream_column_change(const char* relname) {
  ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                  errmsg("cannot alter the columns of stream \"%s\"", relname),
                  errdetail("Rows already written and the continuous views on it depend on its columns."),
                  errhint("Create a new stream with the columns you need, and views on it.")));
}

void refuse_view_column_change(const char* relname, const char* column, const char* what) {
  ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                  errmsg("cannot %s column \"%s\" of continuous view \"%s\"", what, column, relname),
                  errdetail("Its partition workers write this column."),
                  errhint("Drop the continuous view and create it again with the columns you need.")));
}

// Attribute number of column `name` of `relid`, or 0.
AttrNumber column_attnum(Oid relid, const char* name) { return name ? get_attnum(relid, name) : 0; }

void check_alter(AlterTableStmt* stmt) {
  Oid relid = RangeVarGetRelid(stmt->relation, NoLock, true);
  if (!OidIsValid(relid)) return;
  ListCell* lc;
  if (velostream_is_stream(relid)) {
    foreach (lc, stmt->cmds) {
      AlterTableCmd* cmd = (AlterTableCmd*)lfirst(lc);
      if (cmd->subtype == AT_GenericOptions) {
        // The partition count is fixed at CREATE: the logs, the workers and
        // the views' ownership were set up for it (velostream.streams).
        ListCell* oc;
        foreach (oc, (List*)cmd->def) {
          DefElem* opt = (DefElem*)lfirst(oc);
          // The event time column is fixed too: the views' windows and the
          // partitions' watermarks were computed from it.
          if (strcmp(opt->defname, "event_time") == 0)
            ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                            errmsg("cannot change the event time column of stream \"%s\"", stmt->relation->relname),
                            errdetail("Its partitions' watermarks were computed from the column it was created with."),
                            errhint("Create a new stream with OPTIONS (event_time 'column'), and views on it.")));
          if ((strcmp(opt->defname, "watermark_delay") == 0 || strcmp(opt->defname, "idle_timeout") == 0) &&
              opt->defaction != DEFELEM_DROP && velostream_table_option(relid, "event_time") == nullptr)
            ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
                            errmsg("option \"%s\" of stream \"%s\" needs option \"event_time\"", opt->defname,
                                   stmt->relation->relname),
                            errhint("A stream's event time column is chosen when it is created.")));
          if (strcmp(opt->defname, "partitions") == 0)
            ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                            errmsg("cannot change the partitions of stream \"%s\"", stmt->relation->relname),
                            errdetail("Its partition logs, its workers and the ownership of its views' groups were "
                                      "set up for the partition count it was created with."),
                            errhint("Create a new stream with OPTIONS (partitions 'n'), and views on it.")));
        }
        continue;
      }
      if (cmd->subtype == AT_ChangeOwner) continue;
      refuse_stream_column_change(stmt->relation->relname);
    }
    return;
  }
  if (!velostream_is_continuous_view(relid)) return;
  int ncolumns = velostream_view_column_count(relid);
  foreach (lc, stmt->cmds) {
    AlterTableCmd* cmd = (AlterTableCmd*)lfirst(lc);
    const char* what = nullptr;
    if (cmd->subtype == AT_DropColumn) what = "drop";
    else if (cmd->subtype == AT_AlterColumnType) what = "change the type of";
    if (what == nullptr) continue;
    AttrNumber att = column_attnum(relid, cmd->name);
    if (att > 0 && att <= ncolumns) refuse_view_column_change(stmt->relation->relname, cmd->name, what);
  }
}

// ALTER ... RENAME COLUMN of a stream or of a view's column.
void check_rename(RenameStmt* stmt) {
  if (stmt->renameType != OBJECT_COLUMN || stmt->relation == nullptr) return;
  Oid relid = RangeVarGetRelid(stmt->relation, NoLock, true);
  if (!OidIsValid(relid)) return;
  if (velostream_is_stream(relid)) refuse_stream_column_change(stmt->relation->relname);
  if (!velostream_is_continuous_view(relid)) return;
  AttrNumber att = column_attnum(relid, stmt->subname);
  if (att > 0 && att <= velostream_view_column_count(relid))
    refuse_view_column_change(stmt->relation->relname, stmt->subname, "rename");
}

// True if continuous view `relid` was restored by pg_restore and is still
// waiting for its unique index (velostream.views.restoring).
bool view_restoring(Oid relid) {
  if (!velostream_catalog_current()) return false;  // no restore before 0.3
  SPI_connect();
  Oid argtypes[1] = {OIDOID};
  Datum args[1] = {ObjectIdGetDatum(relid)};
  bool restoring = SPI_execute_with_args("SELECT 1 FROM velostream.views WHERE view = $1 AND restoring", 1, argtypes,
                                         args, NULL, true, 1) == SPI_OK_SELECT &&
                   SPI_processed > 0;
  SPI_finish();
  return restoring;
}

// TRUNCATE of a continuous view's table would not reset the view: its
// workers keep the groups' state and would write the totals back. Allowed
// while pg_restore is loading a restored view's table (pg_restore -j
// truncates each table it loads; nothing has written it but the restore).
void check_truncate(TruncateStmt* stmt) {
  ListCell* lc;
  foreach (lc, stmt->relations) {
    RangeVar* rv = (RangeVar*)lfirst(lc);
    Oid relid = RangeVarGetRelid(rv, NoLock, true);
    if (OidIsValid(relid) && velostream_is_continuous_view(relid) && !view_restoring(relid))
      ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                      errmsg("cannot truncate continuous view \"%s\"", rv->relname),
                      errdetail("Its partition workers keep the state of every group."),
                      errhint("Drop the continuous view and create it again to start from zero.")));
  }
}

// A DROP that can remove streams or continuous views first takes the
// extension in SHARE mode, which waits for running worker cycles and holds off
// new ones (they take it in ROW EXCLUSIVE mode before anything else, see
// worker.cpp): otherwise the DROP could lock a view's table a worker holds
// while the worker waits for a table the DROP already locked, a deadlock.
void lock_out_workers(Node* parsetree) {
  bool affects = IsA(parsetree, DropOwnedStmt);
  if (IsA(parsetree, DropStmt)) {
    DropStmt* stmt = (DropStmt*)parsetree;
    if (stmt->removeType == OBJECT_SCHEMA) affects = true;
    if (stmt->removeType == OBJECT_FOREIGN_TABLE || stmt->removeType == OBJECT_MATVIEW ||
        stmt->removeType == OBJECT_TABLE) {
      ListCell* lc;
      foreach (lc, stmt->objects) {
        Oid relid = RangeVarGetRelid(makeRangeVarFromNameList((List*)lfirst(lc)), NoLock, true);
        if (OidIsValid(relid) && (velostream_is_stream(relid) || velostream_is_continuous_view(relid))) affects = true;
      }
    }
  }
  if (!affects) return;
  Oid extension = get_extension_oid("velostream", true);
  if (OidIsValid(extension)) LockDatabaseObject(ExtensionRelationId, extension, 0, ShareLock);
}

// DROP OWNED BY r: the state tables behind r's continuous views belong to r
// (the workers write them as the view's owner) and are members of the
// extension, which DROP OWNED cannot drop by themselves. They are handed to
// the bootstrap superuser first; DROP OWNED then drops the views, and the
// sql_drop trigger their state tables.
void release_owned_state(DropOwnedStmt* stmt) {
  Oid nsp = get_namespace_oid("velostream", true);
  if (!OidIsValid(get_extension_oid("velostream", true)) || !OidIsValid(nsp) ||
      !OidIsValid(get_relname_relid("views", nsp)))
    return;
  List* roles = roleSpecsToIds(stmt->roles);
  Oid save_userid;
  int save_sec;
  velostream_begin_as_superuser(&save_userid, &save_sec);
  SPI_connect();
  if (SPI_execute("SELECT state_table::oid FROM velostream.views WHERE state_table IS NOT NULL", true, 0) !=
      SPI_OK_SELECT)
    elog(ERROR, "velostream: reading velostream.views failed");
  uint64 n = SPI_processed;
  Oid* tables = (Oid*)palloc(sizeof(Oid) * (n + 1));
  for (uint64 i = 0; i < n; ++i) {
    bool isnull;
    tables[i] = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
  }
  const char* superuser = quote_identifier(GetUserNameFromId(BOOTSTRAP_SUPERUSERID, false));
  for (uint64 i = 0; i < n; ++i) {
    Oid owner = velostream_rel_owner(tables[i]);
    if (!OidIsValid(owner) || !list_member_oid(roles, owner)) continue;
    velostream_spi_exec(psprintf("ALTER TABLE velostream.%s OWNER TO %s", quote_identifier(get_rel_name(tables[i])),
                                 superuser),
                        SPI_OK_UTILITY);
  }
  SPI_finish();
  velostream_end_as_superuser(save_userid, save_sec);
}

void velostream_process_utility(PlannedStmt* pstmt, const char* query_string, bool read_only_tree,
                                ProcessUtilityContext context, ParamListInfo params, QueryEnvironment* query_env,
                                DestReceiver* dest, QueryCompletion* qc) {
  Node* parsetree = pstmt->utilityStmt;
  // pg_upgrade's restore carries every table and catalog row as it was.
  if (IsBinaryUpgrade) {
    if (prev_hook) prev_hook(pstmt, query_string, read_only_tree, context, params, query_env, dest, qc);
    else standard_ProcessUtility(pstmt, query_string, read_only_tree, context, params, query_env, dest, qc);
    return;
  }
  if ((IsA(parsetree, CreateTableAsStmt) && is_continuous((CreateTableAsStmt*)parsetree)) ||
      (IsA(parsetree, CopyStmt) && velostream_copy_applies((CopyStmt*)parsetree, query_string))) {
    if (prev_hook == nullptr) run_intercepted(pstmt, query_string, qc);
    else run_through_chain(pstmt, query_string, context, params, query_env, dest, qc);
    return;
  }
  if (IsA(parsetree, DropStmt) && ((DropStmt*)parsetree)->removeType == OBJECT_MATVIEW) {
    if (read_only_tree) {
      pstmt = (PlannedStmt*)copyObjectImpl(pstmt);
      parsetree = pstmt->utilityStmt;
      read_only_tree = false;
    }
    rewrite_drop((DropStmt*)parsetree);
  }
  if (IsA(parsetree, DropStmt) || IsA(parsetree, DropOwnedStmt)) lock_out_workers(parsetree);
  if (IsA(parsetree, DropOwnedStmt)) release_owned_state((DropOwnedStmt*)parsetree);
  if (IsA(parsetree, AlterTableStmt)) check_alter((AlterTableStmt*)parsetree);
  if (IsA(parsetree, RenameStmt)) check_rename((RenameStmt*)parsetree);
  if (IsA(parsetree, TruncateStmt)) check_truncate((TruncateStmt*)parsetree);

  if (prev_hook)
    prev_hook(pstmt, query_string, read_only_tree, context, params, query_env, dest, qc);
  else
    standard_ProcessUtility(pstmt, query_string, read_only_tree, context, params, query_env, dest, qc);

  if (IsA(parsetree, CreateForeignTableStmt)) {
    CreateForeignTableStmt* cft = (CreateForeignTableStmt*)parsetree;
    Oid relid = RangeVarGetRelid(cft->base.relation, NoLock, true);
    if (OidIsValid(relid) && velostream_is_stream(relid)) velostream_create_stream(relid);
  }
}

}  // namespace

extern "C" {
PGDLLEXPORT Datum velostream_run_intercepted(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(velostream_run_intercepted);
}

/// velostream._run_intercepted(): the procedure an intercepted statement
/// travels down the hook chain as; runs it. Refuses any other call.
Datum velostream_run_intercepted(PG_FUNCTION_ARGS) {
  if (intercepted == nullptr || intercepted->done)
    ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                    errmsg("velostream._run_intercepted() is internal to velostream")));
  intercepted->done = true;
  run_intercepted(intercepted->pstmt, intercepted->query_string, intercepted->qc);
  PG_RETURN_VOID();
}

void velostream_install_utility_hook(void) {
  prev_hook = ProcessUtility_hook;
  ProcessUtility_hook = velostream_process_utility;
}

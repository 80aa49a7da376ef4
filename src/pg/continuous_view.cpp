// CREATE MATERIALIZED VIEW ... WITH (velostream.continuous): validates the
// query, creates the result table (and the partial-state table behind it
// when an aggregate needs one) and registers the view for the workers.
#include "pg/translate.h"
#include "pg/types.h"
#include "pg/event_time.h"
#include "pg/velostream.h"

namespace {

/// What pg_restore carried for a continuous view (velostream._restore_view).
struct RestoredView {
  bool owned;              ///< the view owned its groups in the dumped database
  bool exchange;           ///< ... by exchanging them between partitions (catalog 0.7)
  const char* snapshot;    ///< its start snapshot there (pg_snapshot text)
  TimestampTz created_at;
};

void add_dependency(Oid dependent, Oid referenced, DependencyType type) {
  ObjectAddress a, b;
  ObjectAddressSet(a, RelationRelationId, dependent);
  ObjectAddressSet(b, RelationRelationId, referenced);
  recordDependencyOn(&a, &b, type);
}

// Checks the WITH (...) list: velostream.continuous and nothing else.
// A continuous view's options (WITH (velostream.x = ...)).
struct ContinuousViewOptions {
  const char* allowed_lateness = nullptr;  // as given; NULL: 0
  const char* late = nullptr;              // dead_letter | drop; NULL: dead_letter
  const char* emit = nullptr;              // changes | final; NULL: changes
  const char* retention = nullptr;         // as given; NULL: keep every window
  const char* idle_timeout = nullptr;      // as given; NULL: the stream's
  bool any() const { return allowed_lateness || late || emit || retention || idle_timeout; }
  // The first event-time option given, for messages.
  const char* first() const {
    return allowed_lateness ? "velostream.allowed_lateness"
           : late           ? "velostream.late"
           : emit           ? "velostream.emit"
           : retention      ? "velostream.retention"
                            : "velostream.idle_timeout";
  }
};

void check_options(List* options, ContinuousViewOptions* out) {
  ListCell* lc;
  foreach (lc, options) {
    DefElem* def = (DefElem*)lfirst(lc);
    bool ours = def->defnamespace && strcmp(def->defnamespace, "velostream") == 0;
    if (ours && strcmp(def->defname, "continuous") == 0) {
      if (!defGetBoolean(def))
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("velostream.continuous = false is not a continuous view"),
                        errhint("Leave out the option to create an ordinary materialized view.")));
      continue;
    }
    if (ours && strcmp(def->defname, "allowed_lateness") == 0) {
      out->allowed_lateness = defGetString(def);
      (void)velostream_parse_event_interval("velostream.allowed_lateness", out->allowed_lateness);
      continue;
    }
    if (ours && strcmp(def->defname, "emit") == 0) {
      out->emit = defGetString(def);
      if (strcmp(out->emit, "changes") != 0 && strcmp(out->emit, "final") != 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("invalid value for option \"velostream.emit\": \"%s\"", out->emit),
                        errhint("Use changes (rows update as events arrive) or final (a window's row appears once, "
                                "when the watermark passes its end plus the allowed lateness).")));
      continue;
    }
    if (ours && strcmp(def->defname, "retention") == 0) {
      out->retention = defGetString(def);
      (void)velostream_parse_event_interval("velostream.retention", out->retention);
      continue;
    }
    if (ours && strcmp(def->defname, "idle_timeout") == 0) {
      out->idle_timeout = defGetString(def);
      (void)velostream_parse_event_interval("velostream.idle_timeout", out->idle_timeout);
      continue;
    }
    if (ours && strcmp(def->defname, "late") == 0) {
      out->late = defGetString(def);
      if (strcmp(out->late, "dead_letter") != 0 && strcmp(out->late, "drop") != 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("invalid value for option \"velostream.late\": \"%s\"", out->late),
                        errhint("Use dead_letter (late events go to velostream.errors) or drop (they are only "
                                "counted in velostream.stats.late_events).")));
      continue;
    }
    ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                    errmsg("option \"%s%s%s\" is not supported for continuous views", ours ? "velostream." : "",
                           def->defnamespace && !ours ? def->defnamespace : "",
                           def->defname),
                    errhint("The options of a continuous view are velostream.continuous, "
                            "velostream.allowed_lateness, velostream.late, velostream.emit, "
                            "velostream.retention and velostream.idle_timeout.")));
  }
}

// "name type COLLATE x" for one result column.
void append_column(StringInfo sql, const char* name, Oid type, int32 typmod, Oid collation) {
  appendStringInfo(sql, "%s %s", quote_identifier(name), format_type_with_typemod(type, typmod));
  if (OidIsValid(collation) && collation != get_typcollation(type) && collation != DEFAULT_COLLATION_OID)
    appendStringInfo(sql, " COLLATE %s", generate_collation_name(collation));
}

}  // namespace

bool velostream_is_continuous_view(Oid relid) {
  if (!OidIsValid(get_extension_oid("velostream", true))) return false;
  if (get_rel_relkind(relid) != RELKIND_RELATION) return false;
  // Not yet during CREATE EXTENSION, whose tables' foreign keys are ALTER
  // TABLE subcommands run through the utility hook.
  Oid nsp = get_namespace_oid("velostream", true);
  if (!OidIsValid(nsp) || !OidIsValid(get_relname_relid("views", nsp))) return false;
  SPI_connect();
  Oid argtypes[1] = {OIDOID};
  Datum args[1] = {ObjectIdGetDatum(relid)};
  int rc = SPI_execute_with_args("SELECT 1 FROM velostream.views WHERE view = $1", 1, argtypes, args, NULL, true, 1);
  bool found = rc == SPI_OK_SELECT && SPI_processed > 0;
  SPI_finish();
  return found;
}

int velostream_view_column_count(Oid relid) {
  SPI_connect();
  Oid argtypes[1] = {OIDOID};
  Datum args[1] = {ObjectIdGetDatum(relid)};
  int n = 0;
  if (SPI_execute_with_args("SELECT query_tree FROM velostream.views WHERE view = $1", 1, argtypes, args, NULL, true,
                            1) == SPI_OK_SELECT &&
      SPI_processed == 1) {
    Query* q = (Query*)stringToNode(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
    ListCell* lc;
    foreach (lc, q->targetList)
      if (!((TargetEntry*)lfirst(lc))->resjunk) ++n;
  }
  SPI_finish();
  return n;
}

// The order of a view's group keys in its unique indexes (the result
// table's and a shared view's state table's): window keys (tumble) first,
// then the others in GROUP BY order. Event time mostly moves forward, so the
// groups of new windows land at the right edge of the index, where B-tree
// insertion takes its fast path and touches few pages; GROUP BY order would
// spread them over the whole index (issue 10's profile: B-tree insertion was
// a third of the COPY path's worker time). Uniqueness and ON CONFLICT
// inference do not depend on the order.
int* index_key_order(const ViewDesc* d) {
  int* order = (int*)palloc(sizeof(int) * (d->nkeys + 1));
  int n = 0;
  for (int k = 0; k < d->nkeys; ++k)
    if (d->plan->keys[k].is_window()) order[n++] = k;
  for (int k = 0; k < d->nkeys; ++k)
    if (!d->plan->keys[k].is_window()) order[n++] = k;
  return order;
}

// True if the current transaction has written rows to local stream
// `stream`'s partition logs (they are visible to it). SPI connected.
bool wrote_to_stream(Oid stream) {
  FullTransactionId xid = GetTopFullTransactionIdIfAny();
  if (!FullTransactionIdIsValid(xid)) return false;  // it has written nothing at all
  Oid argtypes[1] = {OIDOID};
  Datum args[1] = {ObjectIdGetDatum(stream)};
  if (SPI_execute_with_args("SELECT log_table::oid FROM velostream.stream_partitions WHERE stream = $1", 1, argtypes,
                            args, NULL, false, 0) != SPI_OK_SELECT)
    elog(ERROR, "velostream: reading velostream.stream_partitions failed");
  uint64 nlogs = SPI_processed;
  Oid* logs = (Oid*)palloc(sizeof(Oid) * (nlogs + 1));
  for (uint64 i = 0; i < nlogs; ++i) {
    bool isnull;
    logs[i] = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
  }
  for (uint64 i = 0; i < nlogs; ++i) {
    char* sql = psprintf("SELECT 1 FROM velostream.%s WHERE " VELOSTREAM_XID_COLUMN " = $1 LIMIT 1",
                         quote_identifier(get_rel_name(logs[i])));
    Oid xtypes[1] = {XID8OID};
    Datum xargs[1] = {FullTransactionIdGetDatum(xid)};
    if (SPI_execute_with_args(sql, 1, xtypes, xargs, NULL, false, 1) != SPI_OK_SELECT)
      elog(ERROR, "velostream: reading a stream log failed");
    if (SPI_processed > 0) return true;
  }
  return false;
}

// 3b. The partial-state table of a view with shared groups: keys k0.., and
//     every aggregate's partial state in s (bytea, as
//     ViewAggregator::group_state_bytes writes them), merged by the
//     aggregates' combine functions (velostream._merge_states). Unique on the
//     keys, owned by the view's owner (workers write it as the owner), a
//     member of the extension. Returns its OID. SPI connected, superuser.
static Oid create_shared_state(Oid view_oid, const ViewDesc* d, const char* owner_name) {
  StringInfoData sql;
  initStringInfo(&sql);
  char state_name[NAMEDATALEN];
  snprintf(state_name, sizeof(state_name), "view_%u_state", view_oid);
  appendStringInfo(&sql, "CREATE TABLE velostream.%s (", state_name);
  for (int k = 0; k < d->nkeys; ++k) {
    const ViewColumn& col = d->columns[d->key_column[k]];
    char name[32];
    snprintf(name, sizeof(name), "k%d", k);
    append_column(&sql, name, col.type, col.typmod, col.collation);
    appendStringInfoString(&sql, ", ");
  }
  appendStringInfoString(&sql, "s bytea NOT NULL");
  appendStringInfoString(&sql, ") WITH (fillfactor = 70)");
  velostream_spi_exec(sql.data, SPI_OK_UTILITY);
  Oid state_oid = get_relname_relid(state_name, get_namespace_oid("velostream", false));
  resetStringInfo(&sql);
  appendStringInfo(&sql, "CREATE UNIQUE INDEX ON velostream.%s (", state_name);
  int* order = index_key_order(d);
  for (int i = 0; i < d->nkeys; ++i) {
    int k = order[i];
    appendStringInfo(&sql, "%s%s", i ? ", " : "",
                     velostream_key_index_expr(psprintf("k%d", k), d->columns[d->key_column[k]].type));
  }
  if (d->nkeys == 0) appendStringInfoString(&sql, "(true)");
  appendStringInfoString(&sql, ") NULLS NOT DISTINCT");
  velostream_spi_exec(sql.data, SPI_OK_UTILITY);
  // Owned like the view: workers write both as the view's owner.
  resetStringInfo(&sql);
  appendStringInfo(&sql, "ALTER TABLE velostream.%s OWNER TO %s", state_name, owner_name);
  velostream_spi_exec(sql.data, SPI_OK_UTILITY);
  velostream_make_member(state_oid);
  return state_oid;
}

// Registers continuous view `view_oid` (its result table exists) for the
// workers: chooses the stream's routing column (first view of a local stream),
// decides whether the view owns its groups, creates its state table (a member
// of the extension, owned by the view's owner) and inserts its catalog row.
// `restore` is NULL for CREATE MATERIALIZED VIEW, or what pg_restore carried
// (velostream_restore_view). `needs_owner`: the view needs each group in one
// worker (emit final, retention, sessions), so if the stream's routing does
// not give it that, its groups are exchanged between the partitions.
// SPI connected. Returns whether the view owns its groups.
static bool register_view(Oid view_oid, Query* query, ViewDesc* d, const char* definition, const RestoredView* restore,
                          bool needs_owner) {
  // The state table and the catalog row belong to velostream (the workers
  // write them); the result table belongs to the view's creator.
  Oid save_userid;
  int save_sec;
  velostream_begin_as_superuser(&save_userid, &save_sec);
  const char* owner_name = quote_identifier(GetUserNameFromId(velostream_rel_owner(view_oid), false));
  StringInfoData sql;
  initStringInfo(&sql);

  // 2. Ownership. A stream routes rows by one column (the first plain GROUP
  //    BY column of its first view): INSERT and COPY route each row to a
  //    partition's log, and a Kafka stream's workers route what they consume
  //    (worker.cpp). A view grouping by that column, or any view of a
  //    one-partition stream, has each group in one partition, so that
  //    partition's worker owns the group's state and writes its row alone.
  //    Other views merge partial states in SQL (shared groups). A Kafka
  //    stream created before catalog 0.5 has no logs until the update: its
  //    rows are not routed.
  bool owned = false;
  Oid argtypes1[1] = {OIDOID};
  Datum args1[1] = {ObjectIdGetDatum(d->stream)};
  if (SPI_execute_with_args("SELECT s.route_column, s.partitions, "
                            "  EXISTS (SELECT 1 FROM velostream.views v WHERE v.stream = s.stream), "
                            "  NOT EXISTS (SELECT 1 FROM velostream.stream_partitions p "
                            "              WHERE p.stream = s.stream AND p.log_table IS NULL) "
                            "FROM velostream.streams s WHERE s.stream = $1",
                            1, argtypes1, args1, NULL, false, 1) != SPI_OK_SELECT ||
      SPI_processed != 1)
    elog(ERROR, "velostream: stream %u is not in velostream.streams", d->stream);
  bool route_null, isnull;
  int route = DatumGetInt16(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &route_null));
  int nparts = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
  bool has_views = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
  bool routes = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull));
  if (!has_views && restore == nullptr && routes) {
    route_null = true;
    for (int k = 0; k < d->nkeys && route_null; ++k)
      if (!d->plan->keys[k].is_window() && d->plan->keys[k].column < d->stream_columns) {  // not computed
        route = d->plan->keys[k].column + 1;
        route_null = false;
      }
    // Rows this transaction wrote before the stream had a routing column
    // went to the partitions in turn; a view owning its groups by that
    // column would find them in the wrong partitions.
    if (!route_null && nparts > 1 && wrote_to_stream(d->stream))
      ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                      errmsg("cannot create the first continuous view of stream \"%s\" in a transaction that "
                             "has written to it",
                             get_rel_name(d->stream)),
                      errdetail("The first view chooses the column the stream routes rows by (\"%s\"); the rows "
                                "this transaction wrote before were routed without it.",
                                get_attname(d->stream, (AttrNumber)route, false)),
                      errhint("Commit the rows first, or create the view before writing to the stream.")));
    resetStringInfo(&sql);
    if (route_null)
      appendStringInfo(&sql, "UPDATE velostream.streams SET route_column = NULL WHERE stream = %u", d->stream);
    else
      appendStringInfo(&sql, "UPDATE velostream.streams SET route_column = %d WHERE stream = %u", route, d->stream);
    velostream_spi_exec(sql.data, SPI_OK_UPDATE);
  }
  owned = nparts == 1;
  for (int k = 0; k < d->nkeys && !route_null && routes; ++k)
    if (!d->plan->keys[k].is_window() && d->plan->keys[k].column < d->stream_columns &&
        d->plan->keys[k].column + 1 == route)
      owned = true;
  // Exchanged groups: a view that needs each group in one worker but whose
  // rows reach several partitions owns its groups all the same: each worker
  // aggregates the rows it reads and sends the groups another partition owns
  // (by the hash of the group's key) to that partition's log, in the
  // transaction that consumes them (worker.cpp). Needs the partition logs.
  bool exchange = false;
  if (restore != nullptr && restore->exchange) {
    exchange = true;
    owned = true;
  } else if (restore == nullptr && !owned && needs_owner && routes) {
    exchange = true;
    owned = true;
  }
  if (restore != nullptr && owned != restore->owned)
    ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                    errmsg("cannot restore continuous view \"%s\": its stream no longer routes rows as it did",
                           get_rel_name(view_oid)),
                    errdetail("The view was %s its groups in the dumped database.",
                              restore->owned ? "the owner of" : "sharing"),
                    errhint("Restore the stream's foreign table with the same options (partitions).")));

  Oid state_oid = InvalidOid;
  if (owned) {
    // 3a. The state changelog of an owned view: per partition, the states of
    //     the groups each flush changed (ViewAggregator::encode_groups), with
    //     a full snapshot now and then; a restarted worker replays it in id
    //     order. Rows with a key are groups evicted beyond
    //     velostream.state_memory (worker.cpp), read back by key.
    char state_name[NAMEDATALEN];
    snprintf(state_name, sizeof(state_name), "view_%u_state", view_oid);
    state_oid = velostream_create_blob_table(
        state_name,
        "(id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, partition int4 NOT NULL, data bytea NOT NULL, key bytea)",
        "data");
    resetStringInfo(&sql);
    appendStringInfo(&sql, "CREATE UNIQUE INDEX %s_key ON velostream.%s (partition, key) WHERE key IS NOT NULL",
                     state_name, state_name);
    velostream_spi_exec(sql.data, SPI_OK_UTILITY);
    resetStringInfo(&sql);
    appendStringInfo(&sql, "ALTER TABLE velostream.%s OWNER TO %s", state_name, owner_name);
    velostream_spi_exec(sql.data, SPI_OK_UTILITY);
    velostream_make_member(state_oid);
  } else if (d->naggs > 0) {
    state_oid = create_shared_state(view_oid, d, owner_name);
  }

  // 4. The catalog row; the workers pick it up on their next flush.
  // Plain column keys (1-based attnums): INSERT routes rows by one they all share.
  Datum* keycols = (Datum*)palloc(sizeof(Datum) * (d->nkeys + 1));
  int nkeycols = 0;
  for (int k = 0; k < d->nkeys; ++k)
    if (!d->plan->keys[k].is_window() && d->plan->keys[k].column < d->stream_columns)  // not computed
      keycols[nkeycols++] = Int16GetDatum(d->plan->keys[k].column + 1);
  ArrayType* keyarr = construct_array(keycols, nkeycols, INT2OID, 2, true, TYPALIGN_SHORT);
  Oid argtypes[12] = {OIDOID,  OIDOID,  OIDOID,  TEXTOID, TEXTOID,        INT2ARRAYOID,
                      BOOLOID, TEXTOID, BOOLOID, TEXTOID, TIMESTAMPTZOID, BOOLOID};
  Datum args[12] = {ObjectIdGetDatum(view_oid),
                    ObjectIdGetDatum(d->stream),
                    ObjectIdGetDatum(state_oid),
                    CStringGetTextDatum(nodeToString(query)),
                    CStringGetTextDatum(definition),
                    PointerGetDatum(keyarr),
                    BoolGetDatum(owned),
                    CStringGetTextDatum(velostream_query_sql(query)),
                    BoolGetDatum(restore != nullptr),
                    restore ? CStringGetTextDatum(restore->snapshot) : (Datum)0,
                    TimestampTzGetDatum(restore ? restore->created_at : 0),
                    BoolGetDatum(exchange)};
  char nulls[12] = {' ', ' ', OidIsValid(state_oid) ? ' ' : 'n', ' ', ' ', ' ', ' ', ' ', ' ',
                    restore ? ' ' : 'n', restore ? ' ' : 'n', ' '};
  // The view counts the rows of every transaction that commits after its
  // CREATE (or its restore) or with it: the start snapshot is the
  // statement's, with this transaction's own xid added as still running
  // (PostgreSQL leaves it out, and whether it falls below xmax depends on
  // unrelated commits). A restored view also counts the restored log batches
  // that its start snapshot in the dumped database did not hold
  // (restored_snapshot, see worker.cpp).
  // A catalog before 0.3 (before ALTER EXTENSION velostream UPDATE) has no
  // query_sql, restoring, restored_snapshot: the update script fills
  // query_sql from query_tree.
  Oid views_rel = get_relname_relid("views", get_namespace_oid("velostream", false));
  bool current = OidIsValid(views_rel) && get_attnum(views_rel, "query_sql") != InvalidAttrNumber;
  bool has_exchange = current && get_attnum(views_rel, "exchange") != InvalidAttrNumber;  // catalog 0.7
  char* insert = psprintf(
      "INSERT INTO velostream.views (view, stream, state_table, start_snapshot, query_tree, definition, key_columns, "
      "owned%s) SELECT $1, $2, $3, CASE WHEN x >= pg_snapshot_xmax(s) THEN s "
      "ELSE (least(pg_snapshot_xmin(s), x) || ':' || pg_snapshot_xmax(s) || ':' || (SELECT string_agg(v::text, ',' "
      "ORDER BY v) FROM (SELECT pg_snapshot_xip(s) UNION SELECT x) u(v)))::pg_snapshot END, $4, $5, $6, $7%s "
      "FROM (SELECT pg_current_snapshot(), pg_current_xact_id()) c(s, x)",
      current ? (has_exchange ? ", query_sql, restoring, restored_snapshot, created_at, exchange"
                              : ", query_sql, restoring, restored_snapshot, created_at")
              : "",
      current ? (has_exchange ? ", $8, $9, $10::pg_snapshot, coalesce($11, now()), $12"
                              : ", $8, $9, $10::pg_snapshot, coalesce($11, now())")
              : "");
  if (exchange && !has_exchange)
    ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                    errmsg("continuous view \"%s\" needs catalog 0.7", get_rel_name(view_oid)),
                    errhint("Run ALTER EXTENSION velostream UPDATE.")));
  int rc = SPI_execute_with_args(insert, has_exchange ? 12 : current ? 11 : 7, argtypes, args, nulls, false, 0);
  if (rc != SPI_OK_INSERT) elog(ERROR, "velostream: could not register continuous view: %s", SPI_result_code_string(rc));
  velostream_end_as_superuser(save_userid, save_sec);
  return owned;
}

void velostream_create_continuous_view(CreateTableAsStmt* stmt, const char* query_string, int stmt_location,
                                       int stmt_len) {
  if (!OidIsValid(get_extension_oid("velostream", true)))
    ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT), errmsg("extension \"velostream\" is not installed"),
                    errhint("Run CREATE EXTENSION velostream first.")));
  IntoClause* into = stmt->into;
  ContinuousViewOptions opts;
  check_options(into->options, &opts);
  if (!IsA(stmt->query, Query)) elog(ERROR, "velostream: CREATE MATERIALIZED VIEW query was not analysed");
  Query* query = (Query*)stmt->query;

  ViewDesc* d = velostream_translate_query(query);
  StreamEventTime event_time;
  if (opts.any() && !velostream_stream_event_time(d->stream, &event_time))
    ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                    errmsg("option \"%s\" needs a stream with an event time", opts.first()),
                    errdetail("Stream \"%s\" has no event_time option, so it has no watermark and no event is late.",
                              get_rel_name(d->stream)),
                    errhint("Create the stream with OPTIONS (event_time 'column', watermark_delay 'interval').")));
  // Windows close by event time: emit final and retention need a window
  // over the stream's event time column.
  if ((opts.emit != nullptr && strcmp(opts.emit, "final") == 0) || opts.retention != nullptr) {
    const char* option = opts.retention != nullptr && !(opts.emit && strcmp(opts.emit, "final") == 0)
                             ? "velostream.retention"
                             : "velostream.emit = 'final'";
    const bool session = d->plan->session.key_part >= 0;
    int part = d->plan->window.end_part;
    if (part < 0 && !session)
      ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                      errmsg("option %s needs a window", option),
                      errdetail("Only a window's row is ever complete: the view has no tumble(), hop() or cumulate() "
                                "window in its GROUP BY."),
                      errhint("Group by tumble(%s, size).", get_attname(d->stream, (AttrNumber)(event_time.column + 1),
                                                                        false))));
    if ((session ? d->plan->session.column : d->plan->keys[part].column) != event_time.column)
      ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                      errmsg("option %s needs a window over the stream's event time \"%s\"", option,
                             get_attname(d->stream, (AttrNumber)(event_time.column + 1), false)),
                      errdetail("The watermark closes windows of the event time only.")));
  }
  if (pg_class_aclcheck(d->stream, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
    ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                    errmsg("permission denied for stream %s", get_rel_name(d->stream))));

  // Column aliases: CREATE MATERIALIZED VIEW v (a, b, ...) AS ...
  int i = 0;
  ListCell* lc;
  foreach (lc, into->colNames) {
    if (i >= d->ncolumns) ereport(ERROR, (errcode(ERRCODE_SYNTAX_ERROR), errmsg("too many column names were specified")));
    d->columns[i++].name = pstrdup(strVal(lfirst(lc)));
  }
  // The stored query names its output columns as the table does, so that
  // the workers and a restore see the aliases.
  i = 0;
  foreach (lc, query->targetList) {
    TargetEntry* te = (TargetEntry*)lfirst(lc);
    if (!te->resjunk && i < d->ncolumns) te->resname = pstrdup(d->columns[i++].name);
  }

  Oid nsp = RangeVarGetCreationNamespace(into->rel);
  const char* nspname = get_namespace_name(nsp);
  const char* relname = into->rel->relname;
  if (OidIsValid(get_relname_relid(relname, nsp))) {
    if (stmt->if_not_exists) {
      ereport(NOTICE, (errcode(ERRCODE_DUPLICATE_TABLE),
                       errmsg("relation \"%s\" already exists, skipping", relname)));
      return;
    }
    ereport(ERROR, (errcode(ERRCODE_DUPLICATE_TABLE), errmsg("relation \"%s\" already exists", relname)));
  }
  char* qualified = quote_qualified_identifier(nspname, relname);

  StringInfoData sql, keys;
  initStringInfo(&sql);
  initStringInfo(&keys);
  int* order = index_key_order(d);
  for (int i = 0; i < d->nkeys; ++i) {
    int k = order[i];
    appendStringInfo(&keys, "%s%s", i ? ", " : "",
                     velostream_key_index_expr(quote_identifier(d->columns[d->key_column[k]].name),
                                               d->columns[d->key_column[k]].type));
  }
  if (d->nkeys == 0) appendStringInfoString(&keys, "(true)");  // one row: unique on a constant

  // Writers of the stream (INSERT, COPY, and a Kafka stream's worker cycles,
  // which route what they consume) wait while the view is created, and the
  // view is created after every writer in progress has finished: a row the
  // view counts was therefore routed, and decoded, knowing the view (see
  // route_column below), and a Kafka cycle feeds only the views it saw.
  LockRelationOid(d->stream, ShareLock);

  SPI_connect();
  // 1. The result table: exactly the SELECT's columns and types.
  appendStringInfo(&sql, "CREATE TABLE %s (", qualified);
  for (int c = 0; c < d->ncolumns; ++c) {
    if (c) appendStringInfoString(&sql, ", ");
    const ViewColumn& col = d->columns[c];
    append_column(&sql, col.name, col.type, col.typmod, col.collation);
  }
  // Room on each page for HOT updates: rows are rewritten at every flush.
  appendStringInfoString(&sql, ") WITH (fillfactor = 70)");
  if (into->tableSpaceName) appendStringInfo(&sql, " TABLESPACE %s", quote_identifier(into->tableSpaceName));
  velostream_spi_exec(sql.data, SPI_OK_UTILITY);
  Oid view_oid = get_relname_relid(relname, nsp);
  resetStringInfo(&sql);
  char index_name[NAMEDATALEN];
  snprintf(index_name, sizeof(index_name), "%.50s_key", relname);
  appendStringInfo(&sql, "CREATE UNIQUE INDEX %s ON %s (%s) NULLS NOT DISTINCT", quote_identifier(index_name),
                   qualified, keys.data);
  velostream_spi_exec(sql.data, SPI_OK_UTILITY);
  add_dependency(view_oid, d->stream, DEPENDENCY_NORMAL);

  const char* definition = query_string;
  if (stmt_location >= 0 && stmt_len > 0) definition = pnstrdup(query_string + stmt_location, stmt_len);
  else if (stmt_location > 0) definition = pstrdup(query_string + stmt_location);
  const bool session = d->plan->session.key_part >= 0;
  const bool needs_owner =
      session || (opts.emit != nullptr && strcmp(opts.emit, "final") == 0) || opts.retention != nullptr;
  bool owned = register_view(view_oid, query, d, definition, nullptr, needs_owner);
  if (needs_owner && !owned)  // only a stream without partition logs (a Kafka stream before catalog 0.5)
    ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                    errmsg("%s needs each group of the view in one partition, and stream \"%s\" has no partition "
                           "logs to exchange them",
                           session ? "a session window" : opts.retention != nullptr ? "velostream.retention"
                                                                                  : "velostream.emit = 'final'",
                           get_rel_name(d->stream)),
                    errhint("Run ALTER EXTENSION velostream UPDATE.")));
  if (opts.any()) {
    Oid save_userid;
    int save_sec;
    velostream_begin_as_superuser(&save_userid, &save_sec);
    Oid types[6] = {OIDOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};
    Datum args[6] = {ObjectIdGetDatum(view_oid), CStringGetTextDatum(opts.allowed_lateness ? opts.allowed_lateness : "0"),
                     CStringGetTextDatum(opts.late ? opts.late : "dead_letter"),
                     CStringGetTextDatum(opts.emit ? opts.emit : "changes"),
                     opts.retention ? CStringGetTextDatum(opts.retention) : (Datum)0,
                     opts.idle_timeout ? CStringGetTextDatum(opts.idle_timeout) : (Datum)0};
    char nulls[6] = {' ', ' ', ' ', ' ', opts.retention ? ' ' : 'n', opts.idle_timeout ? ' ' : 'n'};
    if (SPI_execute_with_args("UPDATE velostream.views SET allowed_lateness = $2::interval, late = $3, emit = $4, "
                              "retention = $5::interval, idle_timeout = $6::interval WHERE view = $1",
                              6, types, args, nulls, false, 0) != SPI_OK_UPDATE)
      elog(ERROR, "velostream: could not store the options of continuous view %u", view_oid);
    velostream_end_as_superuser(save_userid, save_sec);
  }
  SPI_finish();
}


extern "C" {
PGDLLEXPORT Datum velostream_restore_view(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(velostream_restore_view);
}

/// velostream._restore_view(view regclass, query_sql text, owned boolean,
/// definition text, restored_snapshot pg_snapshot, created_at timestamptz
/// [, exchange boolean (catalog 0.7)]):
/// registers the restored table `view` as a continuous view again, from the
/// schema-qualified SQL text of its SELECT (views.query_sql); called by the
/// restore trigger of velostream.dump_data. Raises if the query no longer
/// analyses, names another stream layout, or its columns do not match the
/// table's. The view waits for its unique index (restoring = true).
Datum velostream_restore_view(PG_FUNCTION_ARGS) {
  for (int a = 0; a < 5; ++a)
    if (PG_ARGISNULL(a)) elog(ERROR, "velostream._restore_view: argument %d is NULL", a + 1);
  Oid view_oid = PG_GETARG_OID(0);
  char* query_sql = text_to_cstring(PG_GETARG_TEXT_PP(1));
  RestoredView restore;
  restore.owned = PG_GETARG_BOOL(2);
  char* definition = text_to_cstring(PG_GETARG_TEXT_PP(3));
  restore.snapshot = DatumGetCString(DirectFunctionCall1(pg_snapshot_out, PG_GETARG_DATUM(4)));
  restore.created_at = PG_ARGISNULL(5) ? 0 : PG_GETARG_TIMESTAMPTZ(5);
  restore.exchange = PG_NARGS() > 6 && !PG_ARGISNULL(6) && PG_GETARG_BOOL(6);
  if (get_rel_relkind(view_oid) != RELKIND_RELATION)
    ereport(ERROR, (errcode(ERRCODE_WRONG_OBJECT_TYPE),
                    errmsg("cannot restore continuous view \"%s\": it is not a table", get_rel_name(view_oid))));
  if (velostream_is_continuous_view(view_oid))
    ereport(ERROR, (errcode(ERRCODE_DUPLICATE_OBJECT),
                    errmsg("\"%s\" is a continuous view already", get_rel_name(view_oid)),
                    errhint("Restore into a database without velostream's data.")));

  Query* query = velostream_parse_query_sql(query_sql);
  ViewDesc* d = velostream_translate_query(query);
  // The restored table must have the view's columns, as its workers write them.
  Relation rel = table_open(view_oid, AccessShareLock);
  TupleDesc td = RelationGetDescr(rel);
  int att = 0;
  for (int c = 0; c < d->ncolumns; ++c) {
    while (att < td->natts && TupleDescAttr(td, att)->attisdropped) ++att;
    if (att >= td->natts || strcmp(NameStr(TupleDescAttr(td, att)->attname), d->columns[c].name) != 0 ||
        TupleDescAttr(td, att)->atttypid != d->columns[c].type)
      ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                      errmsg("cannot restore continuous view \"%s\": its table does not have the view's columns",
                             RelationGetRelationName(rel)),
                      errdetail("Column %d should be \"%s\" of type %s.", c + 1, d->columns[c].name,
                                format_type_be(d->columns[c].type))));
    ++att;
  }
  table_close(rel, AccessShareLock);
  add_dependency(view_oid, d->stream, DEPENDENCY_NORMAL);
  SPI_connect();
  register_view(view_oid, query, d, definition, &restore, false);
  SPI_finish();
  PG_RETURN_VOID();
}

// ---- Upgrade to catalog 0.4: shared views' partial states as bytea -------

namespace {

// The engine's serialised bytes of native aggregate `spec` in state `st`.
bool native_state_bytes(const velostream::engine::AggSpec& spec, const velostream::engine::AggState& st,
                        std::string* out) {
  try {
    std::string error;
    return velostream::engine::make_native_aggregate(spec)->serialize(&st, out, &error);
  } catch (const std::exception&) {
    return false;
  }
}

// A numeric, integer or float Datum of SQL type `type` as an engine state
// value: integers into i, floats into f, numerics into d (and i, when their
// scale is 0: sums of integers).
void state_value(Oid type, Datum v, velostream::engine::AggState* st, Oid view, const char* column) {
  int64_t i = 0;
  double f = 0;
  if (velostream_datum_fixed(type, v, &i, &f)) {
    st->i = i;
    st->f = f;
    return;
  }
  char* text = DatumGetCString(DirectFunctionCall1(numeric_out, v));
  if (!velostream::engine::Decimal::parse(text, &st->d))
    ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                    errmsg("cannot convert continuous view \"%s\": the partial state of column \"%s\" has more "
                           "than 38 digits",
                           get_rel_name(view), column),
                    errdetail("The state is %s; catalog 0.4 keeps numeric states in 38 digits.", text),
                    errhint("Drop the view (or re-create it) before ALTER EXTENSION velostream UPDATE.")));
  if (st->d.scale == 0 && st->d.kind == velostream::engine::Decimal::kFinite) st->i = st->d.coef;
}

}  // namespace

extern "C" {
PGDLLEXPORT Datum velostream_convert_shared_state(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(velostream_convert_shared_state);
}

/// velostream._convert_shared_state(view regclass): rewrites the partial
/// states of a continuous view whose groups are shared (catalog 0.3: merged
/// in SQL, count/sum/min/max in the view's own columns, avg's sum and count
/// in view_<oid>_state) into the 0.4 state table (keys, s bytea with every
/// aggregate's engine state, merged by velostream._merge_states). Run by the
/// 0.3 -> 0.4 update script with the workers held off; does nothing for
/// owned views.
Datum velostream_convert_shared_state(PG_FUNCTION_ARGS) {
  namespace eng = velostream::engine;
  Oid view = PG_GETARG_OID(0);
  SPI_connect();
  Oid argtypes[1] = {OIDOID};
  Datum args[1] = {ObjectIdGetDatum(view)};
  if (SPI_execute_with_args("SELECT query_tree, coalesce(state_table::oid, 0), owned FROM velostream.views "
                            "WHERE view = $1",
                            1, argtypes, args, NULL, true, 1) != SPI_OK_SELECT ||
      SPI_processed != 1)
    elog(ERROR, "velostream: %u is not a continuous view", view);
  bool isnull;
  char* tree = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
  Oid old_state = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
  bool owned = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
  // Owned views keep their changelog; a state table with column s was made
  // by this library already (a view created on the older catalog with it).
  if (owned || (OidIsValid(old_state) && get_attnum(old_state, "s") != InvalidAttrNumber)) {
    SPI_finish();
    PG_RETURN_VOID();
  }
  ViewDesc* d = velostream_translate_query((Query*)stringToNode(tree));
  StringInfoData sql;
  initStringInfo(&sql);
  if (d->naggs == 0) {  // nothing to keep: the keys are the view's rows
    if (OidIsValid(old_state)) {
      appendStringInfo(&sql, "SELECT velostream._drop_member(%u)", old_state);
      velostream_spi_exec(sql.data, SPI_OK_SELECT);
    }
    SPI_finish();
    PG_RETURN_VOID();
  }

  // The old partial states, from the old state table (keys k<i>, a<i> or
  // a<i>_sum, a<i>_n for avg) or, without one, the view's own columns.
  appendStringInfoString(&sql, "SELECT ");
  for (int k = 0; k < d->nkeys; ++k) {
    const char* name = OidIsValid(old_state) ? psprintf("k%d", k) : quote_identifier(d->columns[d->key_column[k]].name);
    appendStringInfo(&sql, "%s%s", k ? ", " : "", name);
  }
  for (int a = 0; a < d->naggs; ++a) {
    const char* sep = (d->nkeys || a) ? ", " : "";
    const ViewColumn& c = d->columns[d->agg_column[a]];
    if (!OidIsValid(old_state)) appendStringInfo(&sql, "%s%s, NULL::int8", sep, quote_identifier(c.name));
    else if (c.agg == SqlAgg::kAvg) appendStringInfo(&sql, "%sa%d_sum, a%d_n", sep, a, a);
    else appendStringInfo(&sql, "%sa%d, NULL::int8", sep, a);
  }
  Oid source = OidIsValid(old_state) ? old_state : view;
  appendStringInfo(&sql, " FROM %s",
                   quote_qualified_identifier(get_namespace_name(get_rel_namespace(source)), get_rel_name(source)));
  if (SPI_execute(sql.data, false, 0) != SPI_OK_SELECT) elog(ERROR, "velostream: reading %s failed", sql.data);
  SPITupleTable* rows = SPI_tuptable;
  uint64 nrows = SPI_processed;

  // The new table, under the old one's name once that is renamed.
  const char* owner_name = quote_identifier(GetUserNameFromId(velostream_rel_owner(view), false));
  if (OidIsValid(old_state)) {
    resetStringInfo(&sql);
    appendStringInfo(&sql, "ALTER TABLE velostream.%s RENAME TO %s",
                     quote_identifier(get_rel_name(old_state)), quote_identifier(psprintf("view_%u_state_0_3", view)));
    velostream_spi_exec(sql.data, SPI_OK_UTILITY);
  }
  Oid new_state = create_shared_state(view, d, owner_name);
  resetStringInfo(&sql);
  appendStringInfo(&sql, "INSERT INTO velostream.%s VALUES (", quote_identifier(get_rel_name(new_state)));
  Oid* types = (Oid*)palloc(sizeof(Oid) * (d->nkeys + 1));
  for (int k = 0; k < d->nkeys; ++k) {
    types[k] = d->columns[d->key_column[k]].type;
    appendStringInfo(&sql, "$%d, ", k + 1);
  }
  types[d->nkeys] = BYTEAOID;
  appendStringInfo(&sql, "$%d)", d->nkeys + 1);
  SPIPlanPtr insert = SPI_prepare(sql.data, d->nkeys + 1, types);
  if (insert == NULL) elog(ERROR, "velostream: could not prepare %s", sql.data);
  Datum* values = (Datum*)palloc(sizeof(Datum) * (d->nkeys + 1));
  char* nulls = (char*)palloc(d->nkeys + 1);
  std::string* bytes = new std::string();
  velostream_on_context_reset(CurrentMemoryContext, [](void* p) { delete static_cast<std::string*>(p); }, bytes);
  for (uint64 r = 0; r < nrows; ++r) {
    HeapTuple t = rows->vals[r];
    for (int k = 0; k < d->nkeys; ++k) {
      bool kn;
      values[k] = SPI_getbinval(t, rows->tupdesc, k + 1, &kn);
      nulls[k] = kn ? 'n' : ' ';
    }
    bytes->clear();
    for (int a = 0; a < d->naggs; ++a) {
      const ViewColumn& c = d->columns[d->agg_column[a]];
      const eng::AggSpec& spec = d->plan->aggs[a];
      int att = d->nkeys + 2 * a + 1;
      bool vn, nn;
      Datum v = SPI_getbinval(t, rows->tupdesc, att, &vn);
      Datum n = SPI_getbinval(t, rows->tupdesc, att + 1, &nn);
      Oid vtype = SPI_gettypeid(rows->tupdesc, att);
      eng::AggState st;
      if (c.agg == SqlAgg::kCount || c.agg == SqlAgg::kCountStar) {
        st.n = vn ? 0 : DatumGetInt64(v);
      } else if (!vn) {
        state_value(vtype, v, &st, view, c.name);
        if (c.agg == SqlAgg::kAvg) {
          st.n = nn ? 0 : DatumGetInt64(n);
        } else if ((c.agg == SqlAgg::kSum) && spec.input == eng::Type::kInt64) {
          // a sum of n int8 values is within n * 2^63; any n that bounds it will do
          __int128 mag = st.i < 0 ? -st.i : st.i;
          st.n = (int64_t)(mag >> 63) + 1;
        } else {
          st.n = 1;
        }
      }
      if (!native_state_bytes(spec, st, bytes)) elog(ERROR, "velostream: could not encode a partial state");
    }
    values[d->nkeys] = PointerGetDatum(cstring_to_text_with_len(bytes->data(), (int)bytes->size()));
    nulls[d->nkeys] = ' ';
    if (SPI_execute_plan(insert, values, nulls, false, 0) != SPI_OK_INSERT)
      elog(ERROR, "velostream: could not write the partial states of %s", get_rel_name(view));
  }
  resetStringInfo(&sql);
  if (OidIsValid(old_state)) {
    appendStringInfo(&sql, "SELECT velostream._drop_member(%u)", old_state);
    velostream_spi_exec(sql.data, SPI_OK_SELECT);
    resetStringInfo(&sql);
  }
  appendStringInfo(&sql, "UPDATE velostream.views SET state_table = %u WHERE view = %u", new_state, view);
  velostream_spi_exec(sql.data, SPI_OK_UPDATE);
  SPI_finish();
  PG_RETURN_VOID();
}

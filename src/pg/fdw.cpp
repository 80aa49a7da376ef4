// The foreign-data wrapper behind streams: validation of options, and the
// INSERT / COPY callbacks, which append rows to the stream's partition logs
// inside the user's transaction (stream_writer.cpp).
#include <librdkafka/rdkafka.h>

#include "pg/stream_writer.h"
#include "pg/event_time.h"
#include "pg/velostream.h"

extern "C" {
PG_FUNCTION_INFO_V1(velostream_fdw_handler);
PG_FUNCTION_INFO_V1(velostream_fdw_validator);
}

namespace {

bool server_has_brokers(ForeignServer* server) {
  ListCell* lc;
  foreach (lc, server->options) {
    if (strcmp(((DefElem*)lfirst(lc))->defname, "brokers") == 0) return true;
  }
  return false;
}

// ---- FDW callbacks ------------------------------------------------------

void get_rel_size(PlannerInfo* root, RelOptInfo* baserel, Oid relid) {
  if (root->parse->commandType != CMD_SELECT && root->parse->resultRelation == (int)baserel->relid)
    ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                    errmsg("cannot update or delete rows of stream \"%s\"", get_rel_name(relid)),
                    errdetail("Streams are append-only: INSERT and COPY only.")));
  ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                  errmsg("cannot read from stream \"%s\"", get_rel_name(relid)),
                  errdetail("A stream's rows are consumed by its continuous views, not stored for reading."),
                  errhint("Query a continuous view, or run the same SELECT over a table.")));
}

int is_updatable(Relation) { return 1 << CMD_INSERT; }

List* plan_modify(PlannerInfo* root, ModifyTable* plan, Index rti, int) {
  if (plan->operation != CMD_INSERT) {
    RangeTblEntry* rte = planner_rt_fetch(rti, root);
    ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                    errmsg("cannot update or delete rows of stream \"%s\"", get_rel_name(rte->relid)),
                    errdetail("Streams are append-only.")));
  }
  if (plan->onConflictAction != ONCONFLICT_NONE)
    ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED), errmsg("ON CONFLICT is not supported on streams")));
  return NIL;
}

void begin_modify(ModifyTableState*, ResultRelInfo* rinfo, List*, int, int eflags) {
  if (eflags & EXEC_FLAG_EXPLAIN_ONLY) return;
  rinfo->ri_FdwState = velostream_writer_begin(rinfo->ri_RelationDesc);
}

TupleTableSlot* exec_insert(EState*, ResultRelInfo* rinfo, TupleTableSlot* slot, TupleTableSlot*) {
  velostream_writer_insert_slot((StreamWriter*)rinfo->ri_FdwState, slot);
  return slot;
}

void end_modify(EState*, ResultRelInfo* rinfo) { velostream_writer_end((StreamWriter*)rinfo->ri_FdwState); }

void begin_foreign_insert(ModifyTableState*, ResultRelInfo* rinfo) {
  rinfo->ri_FdwState = velostream_writer_begin(rinfo->ri_RelationDesc);
}

void end_foreign_insert(EState*, ResultRelInfo* rinfo) { velostream_writer_end((StreamWriter*)rinfo->ri_FdwState); }

bool option_in(const char* name, const char* const* list) {
  for (; *list; ++list)
    if (strcmp(name, *list) == 0) return true;
  return false;
}

}  // namespace

bool velostream_is_velostream_server(Oid serverid) {
  ForeignServer* server = GetForeignServer(serverid);
  ForeignDataWrapper* fdw = GetForeignDataWrapper(server->fdwid);
  return strcmp(fdw->fdwname, "velostream") == 0;
}

const char* const velostream_kafka_metadata_columns[4] = {"_partition", "_offset", "_timestamp", "_key"};
const Oid velostream_kafka_metadata_types[4] = {INT4OID, INT8OID, TIMESTAMPTZOID, TEXTOID};

bool velostream_is_kafka_server(Oid serverid) { return server_has_brokers(GetForeignServer(serverid)); }

bool velostream_is_stream(Oid relid) {
  if (get_rel_relkind(relid) != RELKIND_FOREIGN_TABLE) return false;
  return velostream_is_velostream_server(GetForeignServerIdByRelId(relid));
}

bool velostream_is_local_stream(Oid relid) {
  return velostream_is_stream(relid) && !velostream_is_kafka_server(GetForeignServerIdByRelId(relid));
}

/// velostream.fdw_handler(): the FdwRoutine of streams.
Datum velostream_fdw_handler(PG_FUNCTION_ARGS) {
  FdwRoutine* r = makeNode(FdwRoutine);
  r->GetForeignRelSize = get_rel_size;
  r->IsForeignRelUpdatable = is_updatable;
  r->PlanForeignModify = plan_modify;
  r->BeginForeignModify = begin_modify;
  r->ExecForeignInsert = exec_insert;
  r->EndForeignModify = end_modify;
  r->BeginForeignInsert = begin_foreign_insert;
  r->EndForeignInsert = end_foreign_insert;
  PG_RETURN_POINTER(r);
}

// Checks that librdkafka knows property `name` and accepts `value`.
void check_kafka_property(const char* name, const char* value) {
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_res_t res = rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr));
  rd_kafka_conf_destroy(conf);
  if (res == RD_KAFKA_CONF_UNKNOWN)
    ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_OPTION_NAME), errmsg("invalid option \"%s\"", name),
                    errhint("Server and user mapping options are brokers and librdkafka properties such as "
                            "security.protocol or sasl.username.")));
  if (res != RD_KAFKA_CONF_OK)
    ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
                    errmsg("invalid value for option \"%s\": %s", name, errstr)));
}

/// velostream.fdw_validator(options text[], catalog oid): rejects unknown
/// options and malformed values with FDW_INVALID_OPTION_NAME /
/// FDW_INVALID_ATTRIBUTE_VALUE. Server and user mapping options other than
/// `brokers` are librdkafka properties, checked by librdkafka itself.
Datum velostream_fdw_validator(PG_FUNCTION_ARGS) {
  List* options = untransformRelOptions(PG_GETARG_DATUM(0));
  Oid catalog = PG_GETARG_OID(1);
  static const char* const table_opts[] = {"partitions", "topic",      "format",          "start_offset",
                                           "event_time", "watermark_delay", "idle_timeout",  nullptr};
  ListCell* lc;
  foreach (lc, options) {
    DefElem* def = (DefElem*)lfirst(lc);
    const char* v = defGetString(def);
    if (catalog == ForeignServerRelationId || catalog == UserMappingRelationId) {
      if (strcmp(def->defname, "brokers") == 0) check_kafka_property("bootstrap.servers", v);
      else check_kafka_property(def->defname, v);
      continue;
    }
    if (catalog != ForeignTableRelationId || !option_in(def->defname, table_opts))
      ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_OPTION_NAME), errmsg("invalid option \"%s\"", def->defname),
                      catalog == ForeignTableRelationId
                          ? errhint("Valid options in this context are: partitions, topic, format, start_offset, "
                                    "event_time, watermark_delay, idle_timeout")
                          : errhint("There are no valid options in this context.")));
    if (strcmp(def->defname, "partitions") == 0) {
      char* end;
      long n = strtol(v, &end, 10);
      if (*v == '\0' || *end != '\0' || n < 1 || n > 64)
        ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
                        errmsg("invalid value for option \"partitions\": \"%s\"", v),
                        errhint("partitions must be an integer from 1 to 64.")));
    } else if (strcmp(def->defname, "format") == 0 && strcmp(v, "csv") != 0 && strcmp(v, "json") != 0) {
      ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
                      errmsg("invalid value for option \"format\": \"%s\"", v), errhint("Use csv or json.")));
    } else if (strcmp(def->defname, "start_offset") == 0 && strcmp(v, "earliest") != 0 && strcmp(v, "latest") != 0) {
      ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
                      errmsg("invalid value for option \"start_offset\": \"%s\"", v),
                      errhint("Use earliest or latest, as Kafka's auto.offset.reset.")));
    } else if (strcmp(def->defname, "watermark_delay") == 0 || strcmp(def->defname, "idle_timeout") == 0) {
      (void)velostream_parse_event_interval(def->defname, v);
    } else if (strcmp(def->defname, "event_time") == 0 && *v == '\0') {
      ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE), errmsg("option \"event_time\" must not be empty"),
                      errhint("Name the stream's timestamptz column that holds each event's time.")));
    } else if (strcmp(def->defname, "topic") == 0 && *v == '\0') {
      ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE), errmsg("option \"topic\" must not be empty")));
    }
  }
  PG_RETURN_VOID();
}

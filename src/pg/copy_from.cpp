// COPY ... FROM STDIN into a local stream, without PostgreSQL's per-row
// executor: COPY's own reader splits the lines into fields (all of COPY's
// options, encodings and errors are PostgreSQL's), and the common field types
// are converted straight into the engine's form -- integers and ISO 8601
// timestamps with a zone by strict parsers whose results equal PostgreSQL's
// input functions, text as is. Every other field (other types and forms,
// NULL handling of domains) goes through the column's input function, as in
// a plain COPY. The rows are then appended exactly as INSERT appends them
// (stream_writer.cpp), so routing and the stream log are the same.
//
// Cases it does not take (binary format, FREEZE, a file or program, WHERE,
// triggers, row-level security, defaults of omitted columns) and
// velostream.fast_copy = off run PostgreSQL's COPY, through the FDW.
#include "engine/fields.h"
#include "pg/stream_writer.h"
#include "pg/velostream.h"

extern "C" {
#include "commands/copy.h"
#include "commands/copyfrom_internal.h"
#include "commands/progress.h"
#include "parser/parse_relation.h"
#include "utils/rls.h"
}

namespace eng = velostream::engine;

bool velostream_fast_copy = true;

namespace {

enum class FieldPath : uint8_t { kInput, kInteger, kTimestamp, kTimestampTz, kText };

struct FieldPlan {
  FieldPath path;
  int64_t min, max;  // kInteger
};

FieldPlan plan_field(Form_pg_attribute att) {
  switch (att->atttypid) {
    case INT2OID: return {FieldPath::kInteger, PG_INT16_MIN, PG_INT16_MAX};
    case INT4OID: return {FieldPath::kInteger, PG_INT32_MIN, PG_INT32_MAX};
    case INT8OID: return {FieldPath::kInteger, PG_INT64_MIN, PG_INT64_MAX};
    case TIMESTAMPTZOID: return {att->atttypmod < 0 ? FieldPath::kTimestampTz : FieldPath::kInput, 0, 0};
    case TIMESTAMPOID: return {att->atttypmod < 0 ? FieldPath::kTimestamp : FieldPath::kInput, 0, 0};
    case TEXTOID: return {FieldPath::kText, 0, 0};
    case VARCHAROID: return {att->atttypmod < 0 ? FieldPath::kText : FieldPath::kInput, 0, 0};
    default: return {FieldPath::kInput, 0, 0};
  }
}

// True if this COPY can take the fast path before anything is sent to the
// client; `rel` is then open with RowExclusiveLock.
bool applies(ParseState* pstate, CopyStmt* stmt, Relation* rel_out, List** attnums_out) {
  if (!velostream_fast_copy || !stmt->is_from || stmt->relation == nullptr || stmt->filename != nullptr ||
      stmt->is_program || stmt->whereClause != nullptr)
    return false;
  Oid relid = RangeVarGetRelid(stmt->relation, NoLock, true);
  if (!OidIsValid(relid) || !velostream_is_local_stream(relid)) return false;
  CopyFormatOptions opts;
  memset(&opts, 0, sizeof(opts));
  ProcessCopyOptions(pstate, &opts, true, stmt->options);
  if (opts.binary || opts.freeze) return false;
  Relation rel = table_openrv(stmt->relation, RowExclusiveLock);
  if (RelationGetRelid(rel) != relid || rel->trigdesc != nullptr ||
      check_enable_rls(relid, InvalidOid, false) == RLS_ENABLED) {
    table_close(rel, NoLock);
    return false;
  }
  TupleDesc desc = RelationGetDescr(rel);
  List* attnums = CopyGetAttnums(desc, rel, stmt->attlist);
  for (int c = 0; c < desc->natts; ++c) {
    Form_pg_attribute att = TupleDescAttr(desc, c);
    if (!att->attisdropped && att->atthasdef && !list_member_int(attnums, c + 1)) {
      table_close(rel, NoLock);
      return false;
    }
  }
  *rel_out = rel;
  *attnums_out = attnums;
  return true;
}

}  // namespace

bool velostream_copy_applies(CopyStmt* stmt, const char* query_string) {
  ParseState* pstate = make_parsestate(nullptr);
  pstate->p_sourcetext = query_string;
  Relation rel;
  List* attnums;
  bool takes = applies(pstate, stmt, &rel, &attnums);
  if (takes) table_close(rel, NoLock);  // the lock stays until the COPY runs
  free_parsestate(pstate);
  return takes;
}

bool velostream_copy_from(CopyStmt* stmt, const char* query_string, QueryCompletion* qc) {
  ParseState* pstate = make_parsestate(nullptr);
  pstate->p_sourcetext = query_string;
  Relation rel;
  List* attnums;
  if (!applies(pstate, stmt, &rel, &attnums)) {
    free_parsestate(pstate);
    return false;
  }
  // The checks of DoCopy and ProcessUtility for COPY FROM a table.
  PreventCommandIfReadOnly("COPY FROM");
  PreventCommandIfParallelMode("COPY FROM");
  PreventCommandDuringRecovery("COPY FROM");
  ParseNamespaceItem* nsitem = addRangeTableEntryForRelation(pstate, rel, RowExclusiveLock, nullptr, false, false);
  RangeTblEntry* rte = nsitem->p_rte;
  rte->requiredPerms = ACL_INSERT;
  ListCell* lc;
  foreach (lc, attnums)
    rte->insertedCols = bms_add_member(rte->insertedCols, lfirst_int(lc) - FirstLowInvalidHeapAttributeNumber);
  ExecCheckRTPerms(pstate->p_rtable, true);

  CopyFromState cstate = BeginCopyFrom(pstate, rel, nullptr, nullptr, false, nullptr, stmt->attlist, stmt->options);
  StreamWriter* w = velostream_writer_begin(rel);
  TupleDesc desc = RelationGetDescr(rel);
  int nattrs = list_length(cstate->attnumlist);
  int* attno = (int*)palloc(sizeof(int) * (nattrs + 1));
  FieldPlan* plans = (FieldPlan*)palloc(sizeof(FieldPlan) * (nattrs + 1));
  int k = 0;
  foreach (lc, cstate->attnumlist) {
    attno[k] = lfirst_int(lc) - 1;
    plans[k] = plan_field(TupleDescAttr(desc, attno[k]));
    ++k;
  }
  // Columns not in the COPY's list stay NULL (none has a default).
  StagedValue* row = velostream_writer_row(w);
  for (int c = 0; c < desc->natts; ++c) {
    row[c].isnull = true;
    row[c].has_datum = false;
  }

  ErrorContextCallback errcallback;
  errcallback.callback = CopyFromErrorCallback;
  errcallback.arg = (void*)cstate;
  errcallback.previous = error_context_stack;
  error_context_stack = &errcallback;

  MemoryContext rowcxt = AllocSetContextCreate(CurrentMemoryContext, "velostream COPY rows", ALLOCSET_DEFAULT_SIZES);
  MemoryContext old = MemoryContextSwitchTo(rowcxt);
  const bool csv = cstate->opts.csv_mode;
  uint64 processed = 0;
  char** fields;
  int nfields;
  while (NextCopyFromRawFields(cstate, &fields, &nfields)) {
    CHECK_FOR_INTERRUPTS();
    if (nattrs > 0 && nfields > nattrs)
      ereport(ERROR, (errcode(ERRCODE_BAD_COPY_FILE_FORMAT), errmsg("extra data after last expected column")));
    for (int f = 0; f < nattrs; ++f) {
      int m = attno[f];
      Form_pg_attribute att = TupleDescAttr(desc, m);
      if (f >= nfields)
        ereport(ERROR, (errcode(ERRCODE_BAD_COPY_FILE_FORMAT),
                        errmsg("missing data for column \"%s\"", NameStr(att->attname))));
      char* string = fields[f];
      if (csv) {
        if (string == nullptr && cstate->opts.force_notnull_flags[m])
          string = cstate->opts.null_print;
        else if (string != nullptr && cstate->opts.force_null_flags[m] && strcmp(string, cstate->opts.null_print) == 0)
          string = nullptr;
      }
      StagedValue& v = row[m];
      const FieldPlan& plan = plans[f];
      if (plan.path != FieldPath::kInput) {
        // these types' input functions are strict: NULL stays NULL
        v.has_datum = false;
        v.isnull = string == nullptr;
        if (v.isnull) continue;
        bool done = false;
        switch (plan.path) {
          case FieldPath::kInteger: done = eng::parse_pg_integer(string, plan.min, plan.max, &v.i); break;
          case FieldPath::kTimestampTz: done = eng::parse_pg_timestamp(string, true, &v.i); break;
          case FieldPath::kTimestamp: done = eng::parse_pg_timestamp(string, false, &v.i); break;
          case FieldPath::kText:
            v.s = string;
            v.len = strlen(string);
            done = true;
            break;
          case FieldPath::kInput: break;
        }
        if (done) continue;
      }
      cstate->cur_attname = NameStr(att->attname);
      cstate->cur_attval = string;
      Datum d = InputFunctionCall(&cstate->in_functions[m], string, cstate->typioparams[m], att->atttypmod);
      velostream_writer_stage_datum(w, m, d, string == nullptr);
      cstate->cur_attname = nullptr;
      cstate->cur_attval = nullptr;
    }
    velostream_writer_append(w);
    if (++processed % 8192 == 0) {
      MemoryContextReset(rowcxt);
      pgstat_progress_update_param(PROGRESS_COPY_TUPLES_PROCESSED, (int64)processed);
    }
  }
  MemoryContextSwitchTo(old);
  error_context_stack = errcallback.previous;
  pgstat_progress_update_param(PROGRESS_COPY_TUPLES_PROCESSED, (int64)processed);
  velostream_writer_end(w);
  EndCopyFrom(cstate);
  MemoryContextDelete(rowcxt);
  table_close(rel, NoLock);
  free_parsestate(pstate);
  if (qc) SetQueryCompletion(qc, CMDTAG_COPY, processed);
  return true;
}

// PostgreSQL's aggregate protocol behind the engine's AggregateFunction.
//
// Memory, as nodeAgg.c keeps it:
//  - each instance (one per aggregator: a worker's delta or its full state)
//    has its own context; group states live in the per-tuple memory of
//    `aggcontext_`, an ExprContext that transition functions find through a
//    stand-in AggState node (AggCheckCallContext, AggGetAggref,
//    AggRegisterCallback), and that reset() rescans, running their callbacks;
//  - transition, combine and serialise functions run in the per-tuple memory
//    of `econtext_`, reset every few hundred rows; a pass-by-reference
//    transition value they return that is not the old one is copied into
//    aggcontext and the old one freed (ExecAggCopyTransValue);
//  - a strict transition function with a NULL initial value takes the first
//    non-NULL input as the state (ExecAggInitGroup); a strict combine
//    function copies the source state into an empty one.
// Arguments are stream columns converted to Datums, constants, or any other
// expression over the stream's columns, evaluated by the executor
// (ExecInitExpr / ExecEvalExpr) on a virtual slot holding the row.
//
// PostgreSQL errors never cross into the engine: every entry point runs its
// PostgreSQL calls under PG_TRY in a frame with no C++ objects and returns
// false with the message. The caller then raises an ERROR that aborts the
// transaction, which releases what the interrupted call held.
#include "pg/pg_aggregate.h"

#include <cstring>
#include <string>
#include <vector>

#include "pg/types.h"

namespace eng = velostream::engine;

namespace {

// One group's state: nodeAgg's AggStatePerGroupData. Zeroed bytes mean "not
// yet initialised" (the initial value is applied on first use).
struct PgState {
  Datum value;
  bool isnull;
  bool no_trans_value;  // strict transfn, NULL initial value, no input yet
  bool ready;
};

// An argument of the aggregate.
struct Arg {
  enum Kind { kColumn, kConst, kExpr } kind;
  int column;          // kColumn: stream column (0-based)
  Oid type;            // SQL type of the value
  Node* expr;          // the prototype's expression (kConst: a Const)
  int16 typlen;        // kExpr: of `type`, to keep values across rows
  bool typbyval;
};

// What every instance of one aggregate shares: the catalog facts, read once
// at translation. Pointers are into the translating memory context, which
// outlives every instance (the plan is deleted with it).
struct PgAggInfo {
  Aggref* aggref;
  Oid transfn, combinefn, serialfn, deserialfn, finalfn;
  bool finalextra;
  Oid transtype;
  int16 transtyplen;
  bool transtypbyval;
  bool init_is_null;
  char* init_text;
  Oid resulttype;
  int16 resulttyplen;
  bool resulttypbyval;
  int nargs;
  Oid* input_types;  // [nargs]
  Arg* args;         // [nargs]
  int max_attno;     // highest stream attribute an expression argument reads
  int nexpr_columns;
  int* expr_columns; // the stream columns (0-based) expression arguments read
  bool has_expr;     // some argument is an expression (evaluated in prepare())
};

// prepare()'s progress through its rows, kept across the guarded calls.
struct PrepareCall {
  const eng::AggRows* rows;
  size_t next;   // the row being evaluated
  bool in_row;   // an error now is that row's
};

class PgAggregate final : public eng::AggregateFunction {
 public:
  explicit PgAggregate(const PgAggInfo* info) : info_(info) {}
  ~PgAggregate() override {
    if (cxt_ != nullptr) MemoryContextDelete(cxt_);
  }

  std::unique_ptr<eng::AggregateFunction> clone() const override { return std::make_unique<PgAggregate>(info_); }
  size_t state_size() const override { return sizeof(PgState); }
  void init(void*) override {}  // zeroed bytes: initialised on first use
  void mark_used(std::vector<uint8_t>* used) const override { mark_columns(info_, used); }

  // Expression arguments are evaluated for the whole batch before any state
  // changes, so a row whose argument raises (e.g. division by zero inside
  // make_interval(days => 100 / x)) is dropped as a dead letter; update()
  // then uses the values computed here.
  bool has_prepare() const override { return info_->has_expr; }
  void prepare(const eng::AggRows& rows, std::vector<eng::RowError>* failed) override {
    cache_valid_ = false;
    PrepareCall call{&rows, 0, false};
    ErrorText e;
    while (call.next < rows.count) {
      if (guarded(&PgAggregate::do_prepare, &call, nullptr, 0, &e)) {
        cache_valid_ = true;
        return;
      }
      if (!call.in_row) return;  // not a row's error: update() meets it again and reports it
      failed->push_back(eng::RowError{rows.rows[call.next], e.text});
      ++call.next;
    }
    cache_valid_ = true;
  }
  bool update(const eng::AggRows& rows, char* states, size_t stride, std::string* error) override {
    ErrorText e;
    const bool ok = guarded(&PgAggregate::do_update, &rows, states, stride, &e);
    cache_valid_ = false;
    if (!ok) return fail(e, error);
    return true;
  }
  bool combine(const void* src, void* dst, std::string* error) override {
    ErrorText e;
    if (!guarded(&PgAggregate::do_combine, src, static_cast<char*>(dst), 0, &e)) return fail(e, error);
    return true;
  }
  bool serialize(const void* state, std::string* out, std::string* error) override {
    ErrorText e;
    Bytes b{nullptr, 0};
    if (!guarded(&PgAggregate::do_serialize, state, reinterpret_cast<char*>(&b), 0, &e)) return fail(e, error);
    out->append(b.data, b.len);
    MemoryContextReset(econtext_->ecxt_per_tuple_memory);
    return true;
  }
  bool deserialize(const char*& p, const char* end, void* state, std::string* error) override {
    // flag byte (0: NULL state, 1: a value), then u32 length and the bytes
    if (end - p < 1 || static_cast<uint8_t>(*p) > 1) return corrupt(error);
    Bytes b{nullptr, 0};
    bool isnull = *p++ == 0;
    if (!isnull) {
      uint32_t len;
      if (end - p < 4) return corrupt(error);
      std::memcpy(&len, p, 4);
      p += 4;
      if (static_cast<size_t>(end - p) < len) return corrupt(error);
      b = Bytes{p, len};
      p += len;
    }
    ErrorText e;
    if (!guarded(&PgAggregate::do_deserialize, isnull ? nullptr : &b, static_cast<char*>(state), 0, &e))
      return fail(e, error);
    return true;
  }
  bool finalize(const void* state, eng::Value* out, std::string* error) override {
    ErrorText e;
    *out = eng::Value();
    if (!guarded(&PgAggregate::do_finalize, state, reinterpret_cast<char*>(out), 0, &e)) return fail(e, error);
    return true;
  }
  void reset() override {
    if (cxt_ == nullptr) return;
    ErrorText e;
    guarded(&PgAggregate::do_reset, nullptr, nullptr, 0, &e);  // callbacks' errors: nothing to report them to
  }

 private:
  struct ErrorText {
    char text[512] = "";
  };
  struct Bytes {
    const char* data;
    uint32_t len;
  };
  using Step = void (PgAggregate::*)(const void*, char*, size_t);

  static void mark_columns(const PgAggInfo* info, std::vector<uint8_t>* used) {
    for (int i = 0; i < info->nargs; ++i)
      if (info->args[i].kind == Arg::kColumn) (*used)[info->args[i].column] = 1;
    for (int j = 0; j < info->nexpr_columns; ++j) (*used)[info->expr_columns[j]] = 1;
  }

  bool fail(const ErrorText& e, std::string* error) {
    const char* name = get_func_name_safe();
    *error = std::string(name) + "(): " + e.text;
    return false;
  }
  const char* get_func_name_safe() { return name_; }
  static bool corrupt(std::string* error) {
    *error = "state batch is truncated or corrupt";
    return false;
  }

  // Runs one step with PostgreSQL errors caught: no C++ object lives in this
  // frame or in the step's.
  bool guarded(Step step, const void* in, char* out, size_t stride, ErrorText* e) {
    MemoryContext old = CurrentMemoryContext;
    volatile bool ok = true;
    PG_TRY();
    {
      setup();
      (this->*step)(in, out, stride);
      MemoryContextSwitchTo(old);
    }
    PG_CATCH();
    {
      MemoryContextSwitchTo(old);
      ErrorData* ed = CopyErrorData();
      FlushErrorState();
      strlcpy(e->text, ed->message ? ed->message : "unknown error", sizeof(e->text));
      FreeErrorData(ed);
      ok = false;
    }
    PG_END_TRY();
    return ok;
  }

  void setup();
  void ready(PgState* s);
  void copy_trans_value(PgState* s, Datum value, bool isnull);
  Datum arg_value(int i, const eng::RecordBatch& b, uint32_t row, bool* isnull);
  void do_update(const void* rows, char* states, size_t stride);
  void do_prepare(const void* call, char*, size_t);
  void fill_slot(const eng::RecordBatch& b, uint32_t r);
  void do_combine(const void* src, char* dst, size_t);
  void do_serialize(const void* state, char* out, size_t);
  void do_deserialize(const void* bytes, char* state, size_t);
  void do_finalize(const void* state, char* out, size_t);
  void do_reset(const void*, char*, size_t) { ReScanExprContext(aggcontext_); }

  const PgAggInfo* info_;
  char name_[NAMEDATALEN] = "aggregate";
  MemoryContext cxt_ = nullptr;     // everything of this instance
  ExprContext* econtext_ = nullptr;  // per-call memory, expression arguments' scan slot
  ExprContext* aggcontext_ = nullptr;  // group states' memory
  AggState* aggstate_ = nullptr;    // stand-in for nodeAgg's node
  AggStatePerTrans pertrans_ = nullptr;
  FunctionCallInfo trans_fcinfo_ = nullptr, combine_fcinfo_ = nullptr, serial_fcinfo_ = nullptr,
                   deserial_fcinfo_ = nullptr, final_fcinfo_ = nullptr;
  FmgrInfo transfn_, combinefn_, serialfn_, deserialfn_, finalfn_;
  Datum init_value_ = 0;
  ExprState** arg_states_ = nullptr;  // [nargs], for expression arguments
  Datum* const_values_ = nullptr;     // [nargs], for constants
  bool* const_nulls_ = nullptr;
  TupleTableSlot* slot_ = nullptr;    // the stream row expression arguments read
  // prepare()'s values of the expression arguments: [batch row * nargs + i],
  // in batch_cxt_ (reset by each prepare()); valid for the next update().
  MemoryContext batch_cxt_ = nullptr;
  Datum* cache_values_ = nullptr;
  bool* cache_nulls_ = nullptr;
  bool cache_valid_ = false;
  int final_nargs_ = 1;
  int rows_since_reset_ = 0;
};

void PgAggregate::setup() {
  if (cxt_ != nullptr) return;
  const PgAggInfo* in = info_;
  MemoryContext cxt = AllocSetContextCreate(TopMemoryContext, "velostream aggregate", ALLOCSET_DEFAULT_SIZES);
  MemoryContext old = MemoryContextSwitchTo(cxt);
  strlcpy(name_, get_func_name(in->aggref->aggfnoid), sizeof(name_));
  Aggref* aggref = (Aggref*)copyObjectImpl(in->aggref);
  econtext_ = CreateStandaloneExprContext();
  aggcontext_ = CreateStandaloneExprContext();
  aggstate_ = makeNode(AggState);
  aggstate_->curaggcontext = aggcontext_;
  aggstate_->tmpcontext = econtext_;
  pertrans_ = (AggStatePerTrans)palloc0(sizeof(AggStatePerTransData));
  pertrans_->aggref = aggref;
  aggstate_->curpertrans = pertrans_;

  Oid collation = aggref->inputcollid;
  Expr* transexpr = nullptr;
  Expr* combineexpr = nullptr;
  build_aggregate_transfn_expr(in->input_types, in->nargs, 0, aggref->aggvariadic, in->transtype, collation,
                               in->transfn, InvalidOid, &transexpr, nullptr);
  fmgr_info_cxt(in->transfn, &transfn_, cxt);
  fmgr_info_set_expr((Node*)transexpr, &transfn_);
  trans_fcinfo_ = (FunctionCallInfo)palloc0(SizeForFunctionCallInfo(in->nargs + 1));
  InitFunctionCallInfoData(*trans_fcinfo_, &transfn_, in->nargs + 1, collation, (Node*)aggstate_, nullptr);

  Oid transtype = in->transtype;
  build_aggregate_transfn_expr(&transtype, 1, 0, false, in->transtype, collation, in->combinefn, InvalidOid,
                               &combineexpr, nullptr);
  fmgr_info_cxt(in->combinefn, &combinefn_, cxt);
  fmgr_info_set_expr((Node*)combineexpr, &combinefn_);
  combine_fcinfo_ = (FunctionCallInfo)palloc0(SizeForFunctionCallInfo(2));
  InitFunctionCallInfoData(*combine_fcinfo_, &combinefn_, 2, collation, (Node*)aggstate_, nullptr);

  if (OidIsValid(in->serialfn)) {
    Expr* e = nullptr;
    build_aggregate_serialfn_expr(in->serialfn, &e);
    fmgr_info_cxt(in->serialfn, &serialfn_, cxt);
    fmgr_info_set_expr((Node*)e, &serialfn_);
    serial_fcinfo_ = (FunctionCallInfo)palloc0(SizeForFunctionCallInfo(1));
    InitFunctionCallInfoData(*serial_fcinfo_, &serialfn_, 1, InvalidOid, (Node*)aggstate_, nullptr);
    build_aggregate_deserialfn_expr(in->deserialfn, &e);
    fmgr_info_cxt(in->deserialfn, &deserialfn_, cxt);
    fmgr_info_set_expr((Node*)e, &deserialfn_);
    deserial_fcinfo_ = (FunctionCallInfo)palloc0(SizeForFunctionCallInfo(2));
    InitFunctionCallInfoData(*deserial_fcinfo_, &deserialfn_, 2, InvalidOid, (Node*)aggstate_, nullptr);
  }
  if (OidIsValid(in->finalfn)) {
    final_nargs_ = in->finalextra ? in->nargs + 1 : 1;
    Expr* e = nullptr;
    build_aggregate_finalfn_expr(in->input_types, final_nargs_, in->transtype, in->resulttype, collation, in->finalfn,
                                 &e);
    fmgr_info_cxt(in->finalfn, &finalfn_, cxt);
    fmgr_info_set_expr((Node*)e, &finalfn_);
    final_fcinfo_ = (FunctionCallInfo)palloc0(SizeForFunctionCallInfo(final_nargs_));
    InitFunctionCallInfoData(*final_fcinfo_, &finalfn_, final_nargs_, collation, (Node*)aggstate_, nullptr);
  }
  if (!in->init_is_null) {
    Oid typinput, typioparam;
    getTypeInputInfo(in->transtype, &typinput, &typioparam);
    init_value_ = OidInputFunctionCall(typinput, in->init_text, typioparam, -1);
  }

  // Arguments: constants copied, expressions compiled over a virtual slot
  // with one attribute per stream column up to the highest one they read.
  arg_states_ = (ExprState**)palloc0(sizeof(ExprState*) * (in->nargs + 1));
  const_values_ = (Datum*)palloc0(sizeof(Datum) * (in->nargs + 1));
  const_nulls_ = (bool*)palloc0(sizeof(bool) * (in->nargs + 1));
  for (int i = 0; i < in->nargs; ++i) {
    const Arg& a = in->args[i];
    if (a.kind == Arg::kConst) {
      Const* c = (Const*)a.expr;
      const_nulls_[i] = c->constisnull;
      const_values_[i] = c->constisnull ? (Datum)0 : datumCopy(c->constvalue, c->constbyval, c->constlen);
    } else if (a.kind == Arg::kExpr) {
      arg_states_[i] = ExecInitExpr((Expr*)copyObjectImpl(a.expr), nullptr);
    }
  }
  if (in->max_attno > 0) {
    TupleDesc desc = CreateTemplateTupleDesc(in->max_attno);
    for (int c = 1; c <= in->max_attno; ++c) TupleDescInitEntry(desc, (AttrNumber)c, nullptr, INT4OID, -1, 0);
    for (int i = 0; i < in->nargs; ++i) {
      if (in->args[i].kind != Arg::kExpr) continue;
      List* vars = pull_var_clause(in->args[i].expr, 0);
      ListCell* lc;
      foreach (lc, vars) {
        Var* v = (Var*)lfirst(lc);
        TupleDescInitEntry(desc, v->varattno, nullptr, v->vartype, v->vartypmod, 0);
      }
    }
    slot_ = MakeSingleTupleTableSlot(desc, &TTSOpsVirtual);
    econtext_->ecxt_scantuple = slot_;
  }
  MemoryContextSwitchTo(old);
  cxt_ = cxt;  // set up: only now, so an error above retries from scratch
}

// Gives a state its initial value (initialize_aggregate).
void PgAggregate::ready(PgState* s) {
  if (s->ready) return;
  s->ready = true;
  s->isnull = info_->init_is_null;
  s->no_trans_value = info_->init_is_null;
  s->value = (Datum)0;
  if (!info_->init_is_null) {
    MemoryContext old = MemoryContextSwitchTo(aggcontext_->ecxt_per_tuple_memory);
    s->value = datumCopy(init_value_, info_->transtypbyval, info_->transtyplen);
    MemoryContextSwitchTo(old);
  }
}

// ExecAggCopyTransValue: a new pass-by-reference value goes into aggcontext.
void PgAggregate::copy_trans_value(PgState* s, Datum value, bool isnull) {
  if (!info_->transtypbyval && DatumGetPointer(value) != DatumGetPointer(s->value)) {
    MemoryContext agg = aggcontext_->ecxt_per_tuple_memory;
    if (!isnull) {
      MemoryContext old = MemoryContextSwitchTo(agg);
      if (!(DatumIsReadWriteExpandedObject(value, false, info_->transtyplen) &&
            MemoryContextGetParent(DatumGetEOHP(value)->eoh_context) == agg))
        value = datumCopy(value, false, info_->transtyplen);
      MemoryContextSwitchTo(old);
    } else {
      value = (Datum)0;
    }
    if (!s->isnull) {
      if (DatumIsReadWriteExpandedObject(s->value, false, info_->transtyplen))
        DeleteExpandedObject(s->value);
      else
        pfree(DatumGetPointer(s->value));
    }
  }
  s->value = value;
  s->isnull = isnull;
}

Datum PgAggregate::arg_value(int i, const eng::RecordBatch& b, uint32_t row, bool* isnull) {
  const Arg& a = info_->args[i];
  switch (a.kind) {
    case Arg::kConst:
      *isnull = const_nulls_[i];
      return const_values_[i];
    case Arg::kExpr:
      if (cache_valid_) {
        const size_t at = (size_t)row * info_->nargs + i;
        *isnull = cache_nulls_[at];
        return cache_values_[at];
      }
      return ExecEvalExpr(arg_states_[i], econtext_, isnull);
    case Arg::kColumn:
      return velostream_column_datum(b.columns[a.column], row, a.type, isnull);
  }
  *isnull = true;
  return (Datum)0;
}

void PgAggregate::do_update(const void* in, char* states, size_t stride) {
  const eng::AggRows& rows = *static_cast<const eng::AggRows*>(in);
  const PgAggInfo* info = info_;
  const eng::RecordBatch& b = *rows.batch;
  FunctionCallInfo fc = trans_fcinfo_;
  MemoryContext tmp = econtext_->ecxt_per_tuple_memory;
  MemoryContextSwitchTo(tmp);
  const bool strict = transfn_.fn_strict;
  for (size_t k = 0; k < rows.count; ++k) {
    const uint32_t r = rows.rows[k];
    PgState* s = reinterpret_cast<PgState*>(states + rows.groups[k] * stride);
    ready(s);
    if (!cache_valid_) fill_slot(b, r);
    bool anynull = false;
    for (int i = 0; i < info->nargs; ++i) {
      bool isnull;
      fc->args[i + 1].value = arg_value(i, b, r, &isnull);
      fc->args[i + 1].isnull = isnull;
      anynull |= isnull;
    }
    if (strict) {
      if (anynull) continue;
      if (s->no_trans_value) {
        // the first non-NULL input is the state (ExecAggInitGroup)
        MemoryContext old = MemoryContextSwitchTo(aggcontext_->ecxt_per_tuple_memory);
        s->value = datumCopy(fc->args[1].value, info->transtypbyval, info->transtyplen);
        MemoryContextSwitchTo(old);
        s->isnull = false;
        s->no_trans_value = false;
        continue;
      }
      if (s->isnull) continue;
    }
    fc->args[0].value = s->value;
    fc->args[0].isnull = s->isnull;
    fc->isnull = false;
    Datum result = FunctionCallInvoke(fc);
    copy_trans_value(s, result, fc->isnull);
    if (++rows_since_reset_ >= 256) {
      rows_since_reset_ = 0;
      ResetExprContext(econtext_);
    }
  }
  ResetExprContext(econtext_);
}

// The stream row `r` of `b` in slot_, for expression arguments (if any).
void PgAggregate::fill_slot(const eng::RecordBatch& b, uint32_t r) {
  if (slot_ == nullptr) return;
  ExecClearTuple(slot_);
  for (int j = 0; j < info_->nexpr_columns; ++j) {
    const int c = info_->expr_columns[j];
    slot_->tts_values[c] = velostream_column_datum(b.columns[c], r, TupleDescAttr(slot_->tts_tupleDescriptor, c)->atttypid,
                                                   &slot_->tts_isnull[c]);
  }
  ExecStoreVirtualTuple(slot_);
}

void PgAggregate::do_prepare(const void* in, char*, size_t) {
  PrepareCall* call = const_cast<PrepareCall*>(static_cast<const PrepareCall*>(in));
  const eng::AggRows& rows = *call->rows;
  const eng::RecordBatch& b = *rows.batch;
  const PgAggInfo* info = info_;
  if (call->next == 0) {  // a new batch: room for every row's values
    if (batch_cxt_ == nullptr)
      batch_cxt_ = AllocSetContextCreate(cxt_, "velostream aggregate arguments", ALLOCSET_DEFAULT_SIZES);
    MemoryContextReset(batch_cxt_);
    cache_values_ = (Datum*)MemoryContextAllocZero(batch_cxt_, sizeof(Datum) * (b.rows * info->nargs + 1));
    cache_nulls_ = (bool*)MemoryContextAllocZero(batch_cxt_, sizeof(bool) * (b.rows * info->nargs + 1));
  }
  MemoryContextSwitchTo(econtext_->ecxt_per_tuple_memory);
  for (; call->next < rows.count; ++call->next) {
    const uint32_t r = rows.rows[call->next];
    fill_slot(b, r);
    for (int i = 0; i < info->nargs; ++i) {
      const Arg& a = info->args[i];
      if (a.kind != Arg::kExpr) continue;
      bool isnull;
      call->in_row = true;
      Datum v = ExecEvalExpr(arg_states_[i], econtext_, &isnull);
      call->in_row = false;
      const size_t at = (size_t)r * info->nargs + i;
      cache_nulls_[at] = isnull;
      if (!isnull && !a.typbyval) {  // kept until update(): in batch_cxt_
        MemoryContext tmp = MemoryContextSwitchTo(batch_cxt_);
        v = datumCopy(v, false, a.typlen);
        MemoryContextSwitchTo(tmp);
      }
      cache_values_[at] = v;
    }
    if ((call->next & 255) == 255) ResetExprContext(econtext_);
  }
  ResetExprContext(econtext_);
}

void PgAggregate::do_combine(const void* src_bytes, char* dst_bytes, size_t) {
  PgState src = *static_cast<const PgState*>(src_bytes);
  PgState* dst = reinterpret_cast<PgState*>(dst_bytes);
  ready(&src);  // an untouched source is the initial value (copied into this instance's memory)
  ready(dst);
  MemoryContextSwitchTo(econtext_->ecxt_per_tuple_memory);
  if (combinefn_.fn_strict) {
    if (src.isnull) return;
    if (dst->no_trans_value || dst->isnull) {
      if (!dst->no_trans_value) return;  // strict: a NULL state stays NULL
      MemoryContext old = MemoryContextSwitchTo(aggcontext_->ecxt_per_tuple_memory);
      dst->value = datumCopy(src.value, info_->transtypbyval, info_->transtyplen);
      MemoryContextSwitchTo(old);
      dst->isnull = false;
      dst->no_trans_value = false;
      return;
    }
  }
  FunctionCallInfo fc = combine_fcinfo_;
  fc->args[0].value = dst->value;
  fc->args[0].isnull = dst->isnull;
  fc->args[1].value = src.value;
  fc->args[1].isnull = src.isnull;
  fc->isnull = false;
  Datum result = FunctionCallInvoke(fc);
  copy_trans_value(dst, result, fc->isnull);
  dst->no_trans_value = false;
  ResetExprContext(econtext_);
}

void PgAggregate::do_serialize(const void* state, char* out, size_t) {
  PgState s = *static_cast<const PgState*>(state);
  Bytes* b = reinterpret_cast<Bytes*>(out);
  MemoryContextSwitchTo(econtext_->ecxt_per_tuple_memory);
  if (!s.ready) {  // the initial value
    s.isnull = info_->init_is_null;
    s.value = init_value_;
  }
  // flag, u32 length, bytes: built in per-call memory, appended by the caller
  const char* data = nullptr;
  uint32 len = 0;
  if (!s.isnull) {
    if (info_->transtype == INTERNALOID) {
      FunctionCallInfo fc = serial_fcinfo_;
      fc->args[0].value = s.value;
      fc->args[0].isnull = false;
      fc->isnull = false;
      bytea* v = DatumGetByteaPP(FunctionCallInvoke(fc));
      data = VARDATA_ANY(v);
      len = VARSIZE_ANY_EXHDR(v);
    } else if (info_->transtypbyval) {
      Datum* copy = (Datum*)palloc(sizeof(Datum));
      *copy = s.value;
      data = (const char*)copy;
      len = sizeof(Datum);
    } else {
      Datum flat = datumCopy(s.value, false, info_->transtyplen);  // flattens an expanded object
      data = DatumGetPointer(flat);
      len = (uint32)datumGetSize(flat, false, info_->transtyplen);
    }
  }
  char* buf = (char*)palloc(1 + 4 + len);
  buf[0] = s.isnull ? 0 : 1;
  size_t n = 1;
  if (!s.isnull) {
    memcpy(buf + 1, &len, 4);
    memcpy(buf + 5, data, len);
    n = 5 + len;
  }
  b->data = buf;
  b->len = (uint32_t)n;
}

void PgAggregate::do_deserialize(const void* in, char* state, size_t) {
  const Bytes* b = static_cast<const Bytes*>(in);
  PgState* s = reinterpret_cast<PgState*>(state);
  s->ready = true;
  s->no_trans_value = false;
  if (b == nullptr) {
    s->isnull = true;
    s->no_trans_value = info_->init_is_null;
    s->value = (Datum)0;
    return;
  }
  MemoryContext agg = aggcontext_->ecxt_per_tuple_memory;
  if (info_->transtype == INTERNALOID) {
    MemoryContextSwitchTo(econtext_->ecxt_per_tuple_memory);
    bytea* v = (bytea*)palloc(VARHDRSZ + b->len);
    SET_VARSIZE(v, VARHDRSZ + b->len);
    memcpy(VARDATA(v), b->data, b->len);
    FunctionCallInfo fc = deserial_fcinfo_;
    fc->args[0].value = PointerGetDatum(v);
    fc->args[0].isnull = false;
    fc->args[1].value = (Datum)0;
    fc->args[1].isnull = false;
    fc->isnull = false;
    MemoryContextSwitchTo(agg);  // deserialise functions build the state in the current context
    s->value = FunctionCallInvoke(fc);
    s->isnull = fc->isnull;
    ResetExprContext(econtext_);
    return;
  }
  if (info_->transtypbyval) {
    if (b->len != sizeof(Datum)) ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED), errmsg("state is corrupt")));
    memcpy(&s->value, b->data, sizeof(Datum));
    s->isnull = false;
    return;
  }
  bool ok = info_->transtyplen > 0 ? b->len == (uint32)info_->transtyplen
            : info_->transtyplen == -1 ? b->len >= VARHDRSZ && VARSIZE_ANY(b->data) == b->len
                                       : b->len > 0 && memchr(b->data, 0, b->len) == b->data + b->len - 1;
  if (!ok) ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED), errmsg("state is corrupt")));
  char* copy = (char*)MemoryContextAlloc(agg, b->len);
  memcpy(copy, b->data, b->len);
  s->value = PointerGetDatum(copy);
  s->isnull = false;
}

void PgAggregate::do_finalize(const void* state, char* out, size_t) {
  PgState s = *static_cast<const PgState*>(state);
  eng::Value* v = reinterpret_cast<eng::Value*>(out);
  if (!s.ready) {
    s.isnull = info_->init_is_null;
    s.value = init_value_;
  }
  Datum result;
  bool isnull;
  if (final_fcinfo_ != nullptr) {
    FunctionCallInfo fc = final_fcinfo_;
    fc->args[0].value = s.value;
    fc->args[0].isnull = s.isnull;
    for (int i = 1; i < final_nargs_; ++i) {  // FINALFUNC_EXTRA: NULLs of the input types
      fc->args[i].value = (Datum)0;
      fc->args[i].isnull = true;
    }
    if (finalfn_.fn_strict && (s.isnull || final_nargs_ > 1)) {
      result = (Datum)0;
      isnull = true;
    } else {
      pertrans_->aggshared = true;  // the state is kept: final functions must not change it
      fc->isnull = false;
      result = FunctionCallInvoke(fc);
      isnull = fc->isnull;
      pertrans_->aggshared = false;
    }
  } else {
    result = s.value;
    isnull = s.isnull;
  }
  if (isnull) return;  // v stays kNull
  if (!info_->resulttypbyval) result = datumCopy(result, false, info_->resulttyplen);  // caller's context
  v->kind = eng::Value::Kind::kDatum;
  v->datum = (uint64_t)result;
}

// numeric.c's Int128AggState (PostgreSQL 15 with HAVE_INT128): the
// transition state of var_samp & co. over smallint and integer
// (int2_accum / int4_accum), which numeric_poly_serialize and the
// numeric_poly_* final functions read.
struct PolyNumAggState {
  bool calcSumX2;
  int64 N;
  int128 sumX;
  int128 sumX2;
};

// IntVarianceAggregate's state.
struct alignas(16) Moments {
  __int128 sum = 0;
  __int128 sum2 = 0;
  int64 n = 0;
};

// A native aggregate over one column whose state keeps PostgreSQL's format:
// its subclass folds rows natively and serialises, deserialises and finalises
// through pg(), a PgAggregate of the same aggregate (cloned on first use), so
// stored states are the bytes velostream_pg_aggregate's implementation
// writes and results are PostgreSQL's final function's.
class PgFormatAggregate : public eng::AggregateFunction {
 public:
  PgFormatAggregate(int column, std::shared_ptr<const eng::AggregateFunction> pg)
      : column_(column), pg_proto_(std::move(pg)) {}
  void mark_used(std::vector<uint8_t>* used) const override { (*used)[column_] = 1; }
  void reset() override {
    if (pg_) pg_->reset();
  }

 protected:
  eng::AggregateFunction* pg() {
    if (!pg_) pg_ = pg_proto_->clone();
    return pg_.get();
  }

  const int column_;
  const std::shared_ptr<const eng::AggregateFunction> pg_proto_;

 private:
  std::unique_ptr<eng::AggregateFunction> pg_;
};

// velostream_int_variance_aggregate.
class IntVarianceAggregate final : public PgFormatAggregate {
 public:
  using PgFormatAggregate::PgFormatAggregate;

  std::unique_ptr<eng::AggregateFunction> clone() const override {
    return std::make_unique<IntVarianceAggregate>(column_, pg_proto_);
  }
  size_t state_size() const override { return sizeof(Moments); }
  void init(void* state) override { new (state) Moments(); }

  bool update(const eng::AggRows& in, char* states, size_t stride, std::string*) override {
    const eng::Column& c = in.batch->columns[column_];
    for (size_t k = 0; k < in.count; ++k) {
      const uint32_t r = in.rows[k];
      if (c.null[r]) continue;
      Moments* m = reinterpret_cast<Moments*>(states + in.groups[k] * stride);
      const __int128 x = c.i64[r];
      m->n++;
      m->sum += x;
      m->sum2 += x * x;  // |x| < 2^31: no overflow before 2^63 rows
    }
    return true;
  }
  bool combine(const void* src, void* dst, std::string*) override {
    const Moments* a = static_cast<const Moments*>(src);
    Moments* b = static_cast<Moments*>(dst);
    b->n += a->n;
    b->sum += a->sum;
    b->sum2 += a->sum2;
    return true;
  }
  // Through PostgreSQL's numeric_poly_serialize / _deserialize: the bytes
  // PgAggregate writes for the same aggregate.
  bool serialize(const void* state, std::string* out, std::string* error) override {
    PgState st = as_pg(*static_cast<const Moments*>(state));
    return pg()->serialize(&st, out, error);
  }
  bool deserialize(const char*& p, const char* end, void* state, std::string* error) override {
    PgState st{};
    if (!pg()->deserialize(p, end, &st, error)) return false;
    Moments* m = new (state) Moments();
    if (!st.isnull && st.ready) {
      const PolyNumAggState* ps = reinterpret_cast<const PolyNumAggState*>(DatumGetPointer(st.value));
      m->n = ps->N;
      m->sum = ps->sumX;
      m->sum2 = ps->sumX2;
    }
    pg()->reset();
    return true;
  }
  bool finalize(const void* state, eng::Value* out, std::string* error) override {
    PgState st = as_pg(*static_cast<const Moments*>(state));
    return pg()->finalize(&st, out, error);
  }

 private:
  // A PostgreSQL state holding m (in poly_, valid until the next call).
  PgState as_pg(const Moments& m) {
    poly_.calcSumX2 = true;
    poly_.N = m.n;
    poly_.sumX = m.sum;
    poly_.sumX2 = m.sum2;
    PgState st{};
    st.value = PointerGetDatum(&poly_);
    st.isnull = false;
    st.ready = true;
    return st;
  }

  PolyNumAggState poly_{};
};

// IntervalAggregate's state: the least / greatest value or the sum, and the
// number of non-NULL inputs (0: no value).
struct alignas(16) IntervalState {
  eng::Interval v;
  int64 n = 0;
};

// velostream_interval_aggregate.
class IntervalAggregate final : public PgFormatAggregate {
 public:
  enum Func { kMin, kMax, kSum, kAvg };
  IntervalAggregate(Func func, int column, std::shared_ptr<const eng::AggregateFunction> pg)
      : PgFormatAggregate(column, std::move(pg)), func_(func) {}

  std::unique_ptr<eng::AggregateFunction> clone() const override {
    return std::make_unique<IntervalAggregate>(func_, column_, pg_proto_);
  }
  size_t state_size() const override { return sizeof(IntervalState); }
  void init(void* state) override { new (state) IntervalState(); }

  bool update(const eng::AggRows& in, char* states, size_t stride, std::string* error) override {
    const eng::Column& c = in.batch->columns[column_];
    for (size_t k = 0; k < in.count; ++k) {
      const uint32_t r = in.rows[k];
      if (c.null[r]) continue;
      if (!fold(c.iv[r], 1, reinterpret_cast<IntervalState*>(states + in.groups[k] * stride), error)) return false;
    }
    return true;
  }
  bool combine(const void* src, void* dst, std::string* error) override {
    const IntervalState* a = static_cast<const IntervalState*>(src);
    return a->n == 0 || fold(a->v, a->n, static_cast<IntervalState*>(dst), error);
  }
  // Through PostgreSQL's own state format: the bytes PgAggregate writes for
  // the same aggregate (an interval, or avg's interval[] {sum, count}).
  bool serialize(const void* state, std::string* out, std::string* error) override {
    PgState st = as_pg(*static_cast<const IntervalState*>(state));
    bool ok = pg()->serialize(&st, out, error);
    release(&st);
    return ok;
  }
  bool deserialize(const char*& p, const char* end, void* state, std::string* error) override {
    PgState st{};
    if (!pg()->deserialize(p, end, &st, error)) return false;
    IntervalState* s = new (state) IntervalState();
    if (!st.isnull && st.ready) {
      if (func_ == kAvg) {
        ArrayType* a = DatumGetArrayTypeP(st.value);
        if (ARR_NDIM(a) != 1 || ARR_DIMS(a)[0] != 2 || ARR_HASNULL(a) || ARR_ELEMTYPE(a) != INTERVALOID) {
          *error = "avg(interval) state is corrupt";
          pg()->reset();
          return false;
        }
        const Interval* v = reinterpret_cast<const Interval*>(ARR_DATA_PTR(a));
        memcpy(&s->v, &v[0], sizeof(eng::Interval));
        s->n = v[1].time;
      } else {
        memcpy(&s->v, DatumGetIntervalP(st.value), sizeof(eng::Interval));
        s->n = 1;
      }
    }
    pg()->reset();
    return true;
  }
  bool finalize(const void* state, eng::Value* out, std::string* error) override {
    PgState st = as_pg(*static_cast<const IntervalState*>(state));
    bool ok = pg()->finalize(&st, out, error);
    release(&st);
    return ok;
  }

 private:
  // Folds `n` inputs summing to (or extreme) `x` into s, as PostgreSQL's
  // interval_smaller / interval_larger (a tie takes the newer value, as
  // they do) and interval_pl (each field overflow-checked) do.
  bool fold(const eng::Interval& x, int64 n, IntervalState* s, std::string* error) {
    if (func_ == kMin || func_ == kMax) {
      if (s->n == 0 || (func_ == kMin ? s->v.span() >= x.span() : s->v.span() <= x.span())) s->v = x;
      s->n += n;
      return true;
    }
    eng::Interval r;
    if (__builtin_add_overflow(s->v.month, x.month, &r.month) || __builtin_add_overflow(s->v.day, x.day, &r.day) ||
        __builtin_add_overflow(s->v.time, x.time, &r.time)) {
      *error = "interval out of range";
      return false;
    }
    s->v = r;
    s->n += n;
    return true;
  }
  // A PostgreSQL state holding s: for avg an interval[] {sum, count as
  // microseconds} (interval_accum's), palloc'd until release(); else the
  // value in iv_, or NULL without input (a strict transfn, no initcond).
  PgState as_pg(const IntervalState& s) {
    PgState st{};
    st.ready = true;
    if (func_ == kAvg) {
      Interval v[2];
      memcpy(&v[0], &s.v, sizeof(Interval));
      memset(&v[1], 0, sizeof(Interval));
      v[1].time = s.n;
      Datum d[2] = {IntervalPGetDatum(&v[0]), IntervalPGetDatum(&v[1])};
      st.value = PointerGetDatum(construct_array(d, 2, INTERVALOID, sizeof(Interval), false, TYPALIGN_DOUBLE));
      return st;
    }
    if (s.n == 0) {
      st.isnull = true;
      st.no_trans_value = true;
      return st;
    }
    memcpy(&iv_, &s.v, sizeof(Interval));
    st.value = IntervalPGetDatum(&iv_);
    return st;
  }
  void release(PgState* st) {
    if (func_ == kAvg) pfree(DatumGetPointer(st->value));
  }

  const Func func_;
  Interval iv_{};
};

}  // namespace

std::shared_ptr<const eng::AggregateFunction> velostream_pg_aggregate(Aggref* aggref, const char* describe) {
  HeapTuple tup = SearchSysCache1(AGGFNOID, ObjectIdGetDatum(aggref->aggfnoid));
  if (!HeapTupleIsValid(tup)) elog(ERROR, "cache lookup failed for aggregate %u", aggref->aggfnoid);
  Form_pg_aggregate form = (Form_pg_aggregate)GETSTRUCT(tup);
  PgAggInfo* in = (PgAggInfo*)palloc0(sizeof(PgAggInfo));
  in->aggref = aggref;
  in->transfn = form->aggtransfn;
  in->combinefn = form->aggcombinefn;
  in->serialfn = form->aggserialfn;
  in->deserialfn = form->aggdeserialfn;
  in->finalfn = form->aggfinalfn;
  in->finalextra = form->aggfinalextra;
  char finalmodify = form->aggfinalmodify;
  Oid declared_transtype = form->aggtranstype;
  bool initnull;
  Datum init = SysCacheGetAttr(AGGFNOID, tup, Anum_pg_aggregate_agginitval, &initnull);
  in->init_is_null = initnull;
  in->init_text = initnull ? nullptr : TextDatumGetCString(init);
  ReleaseSysCache(tup);

  const char* name = get_func_name(aggref->aggfnoid);
  if (!OidIsValid(in->combinefn)) {
    bool ordered_list = strcmp(name, "array_agg") == 0 || strcmp(name, "string_agg") == 0 ||
                        strcmp(name, "json_agg") == 0 || strcmp(name, "jsonb_agg") == 0 ||
                        strcmp(name, "xmlagg") == 0 || strcmp(name, "json_object_agg") == 0 ||
                        strcmp(name, "jsonb_object_agg") == 0;
    ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                    errmsg("aggregate %s has no combine function, so a continuous view cannot merge its partial "
                           "states: %s",
                           name, describe),
                    ordered_list ? errhint("Aggregate the rows' values with count(DISTINCT ...) or keep the raw rows "
                                           "in a table instead.")
                                 : errhint("Continuous views accept aggregates with a COMBINEFUNC (PARALLEL SAFE "
                                           "aggregates); for percentiles use tdigest_percentile() of the tdigest "
                                           "extension.")));
  }
  if (finalmodify == AGGMODIFY_READ_WRITE)
    ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                    errmsg("aggregate %s has a final function that modifies its state, which a continuous view "
                           "finalises again at every update: %s",
                           name, describe)));
  Oid inputs[FUNC_MAX_ARGS];
  in->nargs = get_aggregate_argtypes(aggref, inputs);
  in->input_types = (Oid*)palloc(sizeof(Oid) * (in->nargs + 1));
  memcpy(in->input_types, inputs, sizeof(Oid) * in->nargs);
  in->transtype = resolve_aggregate_transtype(aggref->aggfnoid, declared_transtype, inputs, in->nargs);
  get_typlenbyval(in->transtype, &in->transtyplen, &in->transtypbyval);
  if (in->transtype == INTERNALOID && (!OidIsValid(in->serialfn) || !OidIsValid(in->deserialfn)))
    ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                    errmsg("aggregate %s has no serialization functions for its internal state: %s", name, describe),
                    errhint("A continuous view stores partial states; declare SERIALFUNC and DESERIALFUNC.")));
  in->resulttype = aggref->aggtype;
  get_typlenbyval(in->resulttype, &in->resulttyplen, &in->resulttypbyval);

  // Execute rights, as nodeAgg checks them: the aggregate for the view's
  // creator, its support functions for the aggregate's owner.
  if (pg_proc_aclcheck(aggref->aggfnoid, GetUserId(), ACL_EXECUTE) != ACLCHECK_OK)
    aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_AGGREGATE, name);

  in->args = (Arg*)palloc0(sizeof(Arg) * (in->nargs + 1));
  int i = 0;
  ListCell* lc;
  foreach (lc, aggref->args) {
    TargetEntry* tle = (TargetEntry*)lfirst(lc);
    // as the planner prepares it: constants folded, COLLATE clauses resolved
    Node* e = (Node*)expression_planner((Expr*)tle->expr);
    Node* bare = e;
    while (IsA(bare, RelabelType)) bare = (Node*)((RelabelType*)bare)->arg;
    Arg& a = in->args[i++];
    a.type = exprType(e);
    a.expr = e;
    eng::Type t;
    if (IsA(bare, Var) && ((Var*)bare)->varno == 1 && ((Var*)bare)->varattno > 0 &&
        velostream_engine_type(exprType(bare), &t)) {
      // a column (through a binary-compatible relabelling, e.g. varchar as text)
      a.kind = Arg::kColumn;
      a.column = ((Var*)bare)->varattno - 1;
      a.type = exprType(bare);
    } else if (IsA(e, Const)) {
      a.kind = Arg::kConst;
    } else {
      a.kind = Arg::kExpr;
      get_typlenbyval(a.type, &a.typlen, &a.typbyval);
      in->has_expr = true;
      List* vars = pull_var_clause(e, 0);
      ListCell* vc;
      foreach (vc, vars) {
        Var* v = (Var*)lfirst(vc);
        if (!velostream_engine_type(v->vartype, &t))
          ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                          errmsg("a column of type %s in an aggregate's argument is not supported in a continuous "
                                 "view: %s",
                                 format_type_be(v->vartype), describe)));
        if (v->varattno > in->max_attno) in->max_attno = v->varattno;
      }
    }
  }
  if (aggref->aggfilter != NULL)  // the engine applies FILTER before the rows reach the aggregate
    elog(ERROR, "velostream: aggregate %s reached PostgreSQL's path with its FILTER clause", name);
  in->expr_columns = (int*)palloc0(sizeof(int) * (in->max_attno + 1));
  for (int c = 1; c <= in->max_attno; ++c) {
    bool reads = false;
    for (int k = 0; k < in->nargs && !reads; ++k) {
      if (in->args[k].kind != Arg::kExpr) continue;
      List* vars = pull_var_clause(in->args[k].expr, 0);
      ListCell* vc;
      foreach (vc, vars) reads |= ((Var*)lfirst(vc))->varattno == c;
    }
    if (reads) in->expr_columns[in->nexpr_columns++] = c - 1;
  }
  if (i != in->nargs) elog(ERROR, "velostream: aggregate %s has %d arguments, expected %d", name, i, in->nargs);
  return std::make_shared<PgAggregate>(in);
}

std::shared_ptr<const eng::AggregateFunction> velostream_int_variance_aggregate(Aggref* aggref, int column,
                                                                               const char* describe) {
  return std::make_shared<IntVarianceAggregate>(column, velostream_pg_aggregate(aggref, describe));
}

std::shared_ptr<const eng::AggregateFunction> velostream_interval_aggregate(Aggref* aggref, int column,
                                                                           const char* describe) {
  const char* name = get_func_name(aggref->aggfnoid);
  IntervalAggregate::Func f = strcmp(name, "min") == 0   ? IntervalAggregate::kMin
                              : strcmp(name, "max") == 0 ? IntervalAggregate::kMax
                              : strcmp(name, "sum") == 0 ? IntervalAggregate::kSum
                                                         : IntervalAggregate::kAvg;
  return std::make_shared<IntervalAggregate>(f, column, velostream_pg_aggregate(aggref, describe));
}

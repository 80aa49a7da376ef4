#include "pg/translate.h"

#include <clocale>

#include "engine/window.h"
#include "pg/native_expr.h"
#include "pg/pg_aggregate.h"
#include "pg/types.h"
#include "pg/velostream.h"

namespace eng = velostream::engine;

namespace {

// The view being translated: describe() shows its computed columns as the
// expressions they hold.
ViewDesc* describing = nullptr;

Node* uncompute_mutator(Node* n, void* arg) {
  if (n == nullptr) return nullptr;
  ViewDesc* d = static_cast<ViewDesc*>(arg);
  if (IsA(n, Var) && ((Var*)n)->varno == 1 && ((Var*)n)->varattno > d->stream_columns &&
      ((Var*)n)->varattno <= d->stream_columns + d->ncomputed)
    return (Node*)copyObjectImpl(d->computed[((Var*)n)->varattno - d->stream_columns - 1]);
  return expression_tree_mutator(n, reinterpret_cast<Node* (*)()>(reinterpret_cast<void (*)(void)>(uncompute_mutator)),
                                 arg);
}

// Names a construct in an error message the way the user wrote it.
char* describe(Node* expr, Query* query) {
  if (describing != nullptr && describing->ncomputed > 0) expr = uncompute_mutator(expr, describing);
  RangeTblEntry* rte = static_cast<RangeTblEntry*>(linitial(query->rtable));
  List* ctx = deparse_context_for(get_rel_name(rte->relid), rte->relid);
  return deparse_expression(expr, ctx, false, false);
}

[[noreturn]] void unsupported(const char* what, Node* expr, Query* query, const char* hint) {
  ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                  expr ? errmsg("%s is not supported in a continuous view: %s", what, describe(expr, query))
                       : errmsg("%s is not supported in a continuous view", what),
                  hint ? errhint("%s", hint) : 0));
  pg_unreachable();
}

void delete_plan(void* arg) { delete static_cast<eng::ViewPlan*>(arg); }

bool is_int_type(Oid t) {
  const SqlType* st = velostream_sql_type(t);
  return st != nullptr && st->integer;
}

// Comparison domain of an operator's input type; false if unsupported.
bool domain_of(Oid t, eng::CmpDomain* d) {
  const SqlType* st = velostream_sql_type(t);
  if (st == nullptr || st->kind == eng::SqlKind::kInterval) return false;  // (PostgreSQL compares intervals)
  *d = st->domain;
  return true;
}

// Strips binary-compatible relabelling and the implicit numeric widening
// casts PostgreSQL inserts (int4 -> int8 / numeric / float8, float4 ->
// float8, numeric -> float8), which the engine applies by itself.
Node* strip_implicit_casts(Node* n) {
  for (;;) {
    if (IsA(n, RelabelType)) {
      n = (Node*)((RelabelType*)n)->arg;
    } else if (IsA(n, CollateExpr)) {  // the operator's inputcollid carries it
      n = (Node*)((CollateExpr*)n)->arg;
    } else if (IsA(n, FuncExpr) && ((FuncExpr*)n)->funcformat == COERCE_IMPLICIT_CAST &&
               list_length(((FuncExpr*)n)->args) == 1) {
      Node* arg = (Node*)linitial(((FuncExpr*)n)->args);
      Oid from = exprType(arg), to = exprType(n);
      bool widening = (is_int_type(from) && (is_int_type(to) || to == NUMERICOID || to == FLOAT8OID ||
                                             to == FLOAT4OID)) ||
                      (from == FLOAT4OID && to == FLOAT8OID) || (from == NUMERICOID && to == FLOAT8OID);
      if (!widening) return n;
      n = arg;
    } else {
      return n;
    }
  }
}

// The stream column a Var reads (0-based), checking it is a plain column.
int column_of(Var* var, Query* query) {
  if (var->varno != 1 || var->varlevelsup != 0 || var->varattno <= 0)
    unsupported("a reference to a system column or an outer query", (Node*)var, query, nullptr);
  return var->varattno - 1;
}

void set_const(Const* c, eng::CmpDomain domain, eng::Scalar* out, Query* query) {
  if (!velostream_const_scalar(c, out))
    unsupported(c->consttype == NUMERICOID ? "a numeric constant of more than 38 digits" : "a constant of this type",
                (Node*)c, query, nullptr);
  if (c->constisnull) return;
  // Widen the constant into the comparison domain, as the engine does for columns.
  if (domain == eng::CmpDomain::kFloat && (is_int_type(c->consttype)))
    out->f = static_cast<double>(out->i);
  else if (domain == eng::CmpDomain::kFloat && c->consttype == NUMERICOID)
    out->f = out->d.to_double();
  else if (domain == eng::CmpDomain::kNumeric && is_int_type(c->consttype))
    out->d = eng::Decimal::from_int(out->i);
}

// Translates one side of a comparison: a column or a constant.
void set_operand(Node* n, eng::CmpDomain domain, int* col, eng::Scalar* constant, Query* query) {
  n = strip_implicit_casts(n);
  if (IsA(n, Var)) {
    eng::Type t;
    if (!velostream_engine_type(exprType(n), &t))
      unsupported("a column of this type in WHERE", n, query, nullptr);
    *col = column_of((Var*)n, query);
  } else if (IsA(n, Const)) {
    set_const((Const*)n, domain, constant, query);
  } else {
    unsupported("this expression in WHERE", n, query,
                "WHERE may compare columns and constants with =, <>, <, <=, >, >=, IN, IS NULL, AND, OR, NOT.");
  }
}

// Translates `lhs op rhs` into *p (owned by the plan, so an error leaks nothing).
void translate_compare(Oid opno, Oid inputcollid, Node* lhs, Node* rhs, Node* whole, Query* query,
                       eng::Predicate* p) {
  HeapTuple tup = SearchSysCache1(OPEROID, ObjectIdGetDatum(opno));
  if (!HeapTupleIsValid(tup)) elog(ERROR, "cache lookup failed for operator %u", opno);
  Form_pg_operator op = (Form_pg_operator)GETSTRUCT(tup);
  char* name = pstrdup(NameStr(op->oprname));
  Oid left = op->oprleft, right = op->oprright, nsp = op->oprnamespace;
  ReleaseSysCache(tup);

  p->kind = eng::Predicate::Kind::kCompare;
  if (strcmp(name, "=") == 0) p->op = eng::CmpOp::kEq;
  else if (strcmp(name, "<>") == 0) p->op = eng::CmpOp::kNe;
  else if (strcmp(name, "<") == 0) p->op = eng::CmpOp::kLt;
  else if (strcmp(name, "<=") == 0) p->op = eng::CmpOp::kLe;
  else if (strcmp(name, ">") == 0) p->op = eng::CmpOp::kGt;
  else if (strcmp(name, ">=") == 0) p->op = eng::CmpOp::kGe;
  else unsupported("this operator", whole, query, nullptr);

  eng::CmpDomain dl, dr;
  if (nsp != PG_CATALOG_NAMESPACE || !domain_of(left, &dl) || !domain_of(right, &dr) || dl != dr)
    unsupported("a comparison of these types", whole, query, nullptr);
  // Dates and timestamps compare as integers only against their own type
  // (cross-type comparisons depend on the time zone).
  if (dl == eng::CmpDomain::kInt && !(is_int_type(left) && is_int_type(right)) && left != right)
    unsupported("a comparison between different date/time types", whole, query, nullptr);
  if (dl == eng::CmpDomain::kText) {
    if (!OidIsValid(inputcollid) || !get_collation_isdeterministic(inputcollid))
      unsupported("a text comparison under a nondeterministic collation", whole, query, nullptr);
    if (p->op != eng::CmpOp::kEq && p->op != eng::CmpOp::kNe && !lc_collate_is_c(inputcollid))
      unsupported("an ordering comparison of text outside the \"C\" collation", whole, query,
                  "Compare with COLLATE \"C\", or use = or <>.");
  }
  p->domain = dl;
  set_operand(lhs, dl, &p->lhs_col, &p->lhs_const, query);
  set_operand(rhs, dl, &p->rhs_col, &p->rhs_const, query);
}

// Translates a WHERE clause into *p, a node owned by the plan.
void translate_predicate(Node* n, Query* query, eng::Predicate* p) {
  if (IsA(n, BoolExpr)) {
    BoolExpr* b = (BoolExpr*)n;
    p->kind = b->boolop == AND_EXPR ? eng::Predicate::Kind::kAnd
            : b->boolop == OR_EXPR ? eng::Predicate::Kind::kOr : eng::Predicate::Kind::kNot;
    ListCell* lc;
    foreach (lc, b->args) {
      p->children.emplace_back();
      translate_predicate((Node*)lfirst(lc), query, &p->children.back());
    }
    return;
  }
  if (IsA(n, OpExpr)) {
    OpExpr* o = (OpExpr*)n;
    if (list_length(o->args) != 2) unsupported("this operator", n, query, nullptr);
    translate_compare(o->opno, o->inputcollid, (Node*)linitial(o->args), (Node*)lsecond(o->args), n, query, p);
    return;
  }
  if (IsA(n, ScalarArrayOpExpr)) {
    // x IN (c1, c2, ...) / x = ANY ('{...}'): an OR (AND for ALL) of comparisons.
    ScalarArrayOpExpr* s = (ScalarArrayOpExpr*)n;
    // The list is an ARRAY[...] of constants (x IN (...)) or an array constant.
    List* elems = velostream_array_constants(s);
    Node* arr = (Node*)lsecond(s->args);
    bool empty_array = IsA(arr, Const) && !((Const*)arr)->constisnull &&
                       ArrayGetNItems(ARR_NDIM(DatumGetArrayTypeP(((Const*)arr)->constvalue)),
                                      ARR_DIMS(DatumGetArrayTypeP(((Const*)arr)->constvalue))) == 0;
    if (elems == NIL && !empty_array) unsupported("IN / ANY over anything but constants", n, query, nullptr);
    int count = list_length(elems);
    p->kind = s->useOr ? eng::Predicate::Kind::kOr : eng::Predicate::Kind::kAnd;
    ListCell* lc;
    foreach (lc, elems) {
      p->children.emplace_back();
      translate_compare(s->opno, s->inputcollid, (Node*)linitial(s->args), (Node*)lfirst(lc), n, query,
                        &p->children.back());
    }
    if (count == 0) {
      p->kind = eng::Predicate::Kind::kConst;
      p->value.i = s->useOr ? 0 : 1;
    }
    return;
  }
  if (IsA(n, NullTest)) {
    NullTest* t = (NullTest*)n;
    Node* arg = strip_implicit_casts((Node*)t->arg);
    if (t->argisrow || !IsA(arg, Var)) unsupported("this IS NULL test", n, query, nullptr);
    eng::Type ty;
    if (!velostream_engine_type(exprType(arg), &ty)) unsupported("a column of this type in WHERE", arg, query, nullptr);
    p->kind = t->nulltesttype == IS_NULL ? eng::Predicate::Kind::kIsNull : eng::Predicate::Kind::kIsNotNull;
    p->lhs_col = column_of((Var*)arg, query);
    return;
  }
  if (IsA(n, Var) && exprType(n) == BOOLOID) {  // WHERE flag
    p->kind = eng::Predicate::Kind::kCompare;
    p->op = eng::CmpOp::kEq;
    p->domain = eng::CmpDomain::kInt;
    p->lhs_col = column_of((Var*)n, query);
    p->rhs_const.i = 1;
    return;
  }
  if (IsA(n, Const) && exprType(n) == BOOLOID) {
    p->kind = eng::Predicate::Kind::kConst;
    p->value.is_null = ((Const*)n)->constisnull;
    p->value.i = p->value.is_null ? 0 : DatumGetBool(((Const*)n)->constvalue);
    return;
  }
  unsupported("this expression in WHERE", n, query,
              "WHERE may compare columns and constants with =, <>, <, <=, >, >=, IN, IS NULL, AND, OR, NOT.");
}

// True if `funcid` is velostream's function `name` (tumble, hop, session).
bool is_window_function(Oid funcid, const char* name) {
  Oid ext = get_extension_oid("velostream", true);
  if (!OidIsValid(ext) || getExtensionOfObject(ProcedureRelationId, funcid) != ext) return false;
  char* fname = get_func_name(funcid);
  return fname != nullptr && strcmp(fname, name) == 0;
}

// True if `funcid` is velostream's tumble(timestamptz, interval).
bool is_tumble(Oid funcid) { return is_window_function(funcid, "tumble"); }

// Finds a call of velostream's session() (which raises outside a view, so it
// must not reach the executor's per-row path).
bool calls_session(Node* node, void* context);
// The walker as nodeFuncs.h's untyped callback (through void (*)(), the
// cast GCC accepts between function types).
bool (*const calls_session_walker)() = reinterpret_cast<bool (*)()>(reinterpret_cast<void (*)()>(calls_session));
bool calls_session(Node* node, void* context) {
  if (node == nullptr) return false;
  if (IsA(node, FuncExpr) && is_window_function(((FuncExpr*)node)->funcid, "session")) return true;
  if (IsA(node, Query)) return query_tree_walker((Query*)node, calls_session_walker, context, 0);
  return expression_tree_walker(node, calls_session_walker, context);
}

// A GROUP BY expression: a column, or tumble(column, constant interval).
eng::KeySpec translate_key(Node* expr, Query* query) {
  eng::KeySpec k;
  Node* n = expr;
  while (IsA(n, RelabelType)) n = (Node*)((RelabelType*)n)->arg;
  if (IsA(n, Var)) {
    Oid t = exprType(n);
    if (t == INTERVALOID)  // equal intervals ('1 day', '24 hours') differ in their fields
      unsupported("GROUP BY on an interval", expr, query, "Group by extract(epoch FROM ...) of it.");
    if (!velostream_engine_type(t, &k.type) || t == BPCHAROID)
      unsupported("GROUP BY on a column of this type", expr, query, nullptr);
    if (k.type == eng::Type::kText && !get_collation_isdeterministic(exprCollation(n)))
      unsupported("GROUP BY on text with a nondeterministic collation", expr, query, nullptr);
    k.column = column_of((Var*)n, query);
    return k;
  }
  if (IsA(n, FuncExpr) && is_tumble(((FuncExpr*)n)->funcid)) {
    FuncExpr* f = (FuncExpr*)n;
    Node* ts = (Node*)linitial(f->args);
    Node* size = (Node*)lsecond(f->args);
    if (!IsA(ts, Var) || exprType(ts) != TIMESTAMPTZOID)
      unsupported("tumble() over anything but a timestamptz column", expr, query, nullptr);
    if (!IsA(size, Const) || ((Const*)size)->constisnull)
      unsupported("tumble() with a size that is not a constant interval", expr, query, nullptr);
    Interval* iv = DatumGetIntervalP(((Const*)size)->constvalue);
    if (iv->month != 0)
      ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                      errmsg("tumble() size must not contain months or years: %s", describe(expr, query)),
                      errhint("Use a size in days, hours, minutes or seconds.")));
    int64 usecs = iv->day * USECS_PER_DAY + iv->time;
    if (usecs <= 0)
      ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                      errmsg("tumble() size must be greater than zero: %s", describe(expr, query))));
    k.column = column_of((Var*)ts, query);
    k.type = eng::Type::kInt64;
    k.tumble_size = usecs;
    k.tumble_origin = eng::kUnixEpochInPgMicros;
    return k;
  }
  unsupported("this GROUP BY expression", expr, query, "GROUP BY columns and tumble(column, interval).");
}

// Refuses `expr` (as the user wrote `shown`) if it calls a function that is
// not IMMUTABLE: a worker evaluates it, with its own TimeZone and DateStyle.
void refuse_mutable(Node* expr, Node* shown, Query* query) {
  if (!contain_mutable_functions(expr)) return;
  ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                  errmsg("functions that are not IMMUTABLE are not supported in a continuous view: %s",
                         describe(shown, query)),
                  errdetail("A continuous view must give the same result whenever its rows are counted, "
                            "whatever the settings (TimeZone, DateStyle) of the worker evaluating it."),
                  errhint("Date/time functions of timestamptz depend on TimeZone: apply them to ts AT TIME ZONE "
                          "'UTC' (or another zone). Concatenate text with ::text casts of other types.")));
}

// A Var reading a computed column (pg/computed.h) holding `expr`, an
// expression over the stream's columns the engine has no native code for:
// an equal one already added, or a new one. `what` names the construct in
// errors. The expression must be IMMUTABLE and of a type the engine stores.
Var* computed_var(ViewDesc* d, Node* expr, Query* query, const char* what, int guard) {
  Oid t = exprType(expr);
  eng::Type storage;
  if (!velostream_engine_type(t, &storage) || t == BPCHAROID)
    unsupported(psprintf("%s of type %s", what, format_type_be(t)), expr, query, nullptr);
  refuse_mutable(expr, expr, query);
  Node* planned = (Node*)expression_planner((Expr*)copyObjectImpl(expr));
  int i = 0;
  for (; i < d->ncomputed; ++i)
    if (equal(planned, d->computed[i])) break;
  if (i == d->ncomputed) {
    d->computed = d->computed == nullptr ? (Node**)palloc(sizeof(Node*) * 8)
                                         : (Node**)repalloc(d->computed, sizeof(Node*) * (d->ncomputed + 8));
    d->computed_guard = d->computed_guard == nullptr ? (int*)palloc(sizeof(int) * 8)
                                                     : (int*)repalloc(d->computed_guard, sizeof(int) * (d->ncomputed + 8));
    d->computed_aggs = d->computed_aggs == nullptr
                           ? (uint64*)palloc(sizeof(uint64) * 8)
                           : (uint64*)repalloc(d->computed_aggs, sizeof(uint64) * (d->ncomputed + 8));
    d->computed[d->ncomputed] = planned;
    d->computed_guard[d->ncomputed] = guard >= 64 ? kGuardWhere : Min(guard, kGuardFilters);
    d->computed_aggs[d->ncomputed++] = guard >= 0 && guard < 64 ? UINT64CONST(1) << guard : 0;
  } else {
    // Used in two roles: evaluated for the rows of either.
    int g = d->computed_guard[i];
    if (g == kGuardFilters && guard >= 0 && guard < 64)
      d->computed_aggs[i] |= UINT64CONST(1) << guard;
    else
      d->computed_guard[i] = Min(g, guard >= 0 ? kGuardWhere : guard);
  }
  return makeVar(1, (AttrNumber)(d->stream_columns + i + 1), t, exprTypmod(expr), exprCollation(expr), 0);
}

// Translates `n` (WHERE or FILTER) into *p with the engine's own predicate
// if it can, else into a test of a computed boolean column.
void translate_condition(ViewDesc* d, Node* n, Query* query, eng::Predicate* p, const char* what, int guard) {
  bool native = false;
  MemoryContext cxt = CurrentMemoryContext;
  PG_TRY();
  {
    translate_predicate(n, query, p);
    native = true;
  }
  PG_CATCH();
  {
    MemoryContextSwitchTo(cxt);
    FlushErrorState();
  }
  PG_END_TRY();
  if (native) return;
  *p = eng::Predicate();
  translate_predicate((Node*)computed_var(d, n, query, what, guard), query, p);
}

// Replaces the arguments of aggregate `a` that are expressions of a type the
// engine stores by computed columns (so native aggregates and PostgreSQL's
// read them as columns, and a row whose argument raises an error becomes a
// dead letter); other arguments stay for PostgreSQL's executor.
Aggref* computed_args(ViewDesc* d, Aggref* a, Query* query, int guard) {
  Aggref* copy = (Aggref*)copyObjectImpl(a);
  ListCell* lc;
  foreach (lc, copy->args) {
    TargetEntry* tle = (TargetEntry*)lfirst(lc);
    Node* e = (Node*)tle->expr;
    while (IsA(e, RelabelType)) e = (Node*)((RelabelType*)e)->arg;
    eng::Type storage;
    if (IsA(e, Var) || IsA(e, Const) || !velostream_engine_type(exprType(e), &storage) ||
        exprType(e) == BPCHAROID || contain_mutable_functions(e))
      continue;
    tle->expr = (Expr*)computed_var(d, (Node*)tle->expr, query, "an aggregate argument", guard);
  }
  return copy;
}

// The native implementation of aggregate `a`, if the engine has one: count,
// sum, avg, min and max of pg_catalog over one plain column of a type they
// handle natively. Sets col->agg and *spec; false otherwise.
bool translate_native_agg(Aggref* a, ViewColumn* col, eng::AggSpec* spec, Query* query) {
  const char* name = velostream_catalog_function(a->aggfnoid);
  if (name == nullptr) return false;
  if (a->aggstar) {
    if (strcmp(name, "count") != 0) return false;
    col->agg = SqlAgg::kCountStar;
    spec->func = eng::AggFunc::kCountStar;
    return true;
  }
  if (list_length(a->args) != 1) return false;
  Node* arg = (Node*)((TargetEntry*)linitial(a->args))->expr;
  while (IsA(arg, RelabelType)) arg = (Node*)((RelabelType*)arg)->arg;
  if (!IsA(arg, Var)) return false;
  Oid t = exprType(arg);
  const SqlType* st = velostream_sql_type(t);
  if (st == nullptr || !velostream_engine_type(t, &spec->input)) return false;
  const bool number = st->number;
  if (strcmp(name, "count") == 0) {
    col->agg = SqlAgg::kCount;
    spec->func = eng::AggFunc::kCount;
  } else if (t == INTERVALOID && (strcmp(name, "min") == 0 || strcmp(name, "max") == 0 || strcmp(name, "sum") == 0 ||
                                  strcmp(name, "avg") == 0)) {
    col->agg = SqlAgg::kOther;
    col->input_type = t;
    spec->func = eng::AggFunc::kExternal;
    spec->external = velostream_interval_aggregate(a, column_of((Var*)arg, query), describe((Node*)a, query));
    return true;
  } else if (strcmp(name, "sum") == 0 && number && t != FLOAT4OID) {
    col->agg = SqlAgg::kSum;
    spec->func = eng::AggFunc::kSum;
  } else if (strcmp(name, "avg") == 0 && number) {
    col->agg = SqlAgg::kAvg;
    spec->func = eng::AggFunc::kAvg;
  } else if ((strcmp(name, "min") == 0 || strcmp(name, "max") == 0) && (t == TEXTOID || t == VARCHAROID)) {
    // text under the "C" collation (byte order) or the database's libc one
    std::shared_ptr<void> locale;
    if (!OidIsValid(a->inputcollid) || !lc_collate_is_c(a->inputcollid)) {
      if (a->inputcollid != DEFAULT_COLLATION_OID || default_locale.provider != COLLPROVIDER_LIBC) return false;
      locale = eng::make_collate_locale(setlocale(LC_COLLATE, nullptr));
      if (locale == nullptr) return false;
    }
    col->agg = SqlAgg::kOther;
    col->input_type = t;
    spec->func = eng::AggFunc::kExternal;
    spec->external = eng::make_text_extreme_aggregate(column_of((Var*)arg, query), name[1] == 'a', locale);
    return true;
  } else if ((strcmp(name, "min") == 0 || strcmp(name, "max") == 0) && st->ordered) {
    col->agg = strcmp(name, "min") == 0 ? SqlAgg::kMin : SqlAgg::kMax;
    spec->func = strcmp(name, "min") == 0 ? eng::AggFunc::kMin : eng::AggFunc::kMax;
  } else if (t == BOOLOID && (strcmp(name, "bool_and") == 0 || strcmp(name, "every") == 0 ||
                              strcmp(name, "bool_or") == 0)) {
    col->agg = SqlAgg::kOther;
    spec->func = strcmp(name, "bool_or") == 0 ? eng::AggFunc::kBoolOr : eng::AggFunc::kBoolAnd;
  } else if ((t == FLOAT8OID || t == FLOAT4OID) &&
             (strcmp(name, "var_samp") == 0 || strcmp(name, "variance") == 0 || strcmp(name, "var_pop") == 0 ||
              strcmp(name, "stddev_samp") == 0 || strcmp(name, "stddev") == 0 ||
              strcmp(name, "stddev_pop") == 0)) {
    // (over integers and numeric their results are numeric: PostgreSQL runs those)
    col->agg = SqlAgg::kOther;
    spec->func = strcmp(name, "var_pop") == 0        ? eng::AggFunc::kVarPop
                 : strcmp(name, "stddev_pop") == 0   ? eng::AggFunc::kStddevPop
                 : strncmp(name, "stddev", 6) == 0   ? eng::AggFunc::kStddevSamp
                                                     : eng::AggFunc::kVarSamp;
  } else if ((t == INT2OID || t == INT4OID) &&
             (strcmp(name, "var_samp") == 0 || strcmp(name, "variance") == 0 || strcmp(name, "var_pop") == 0 ||
              strcmp(name, "stddev_samp") == 0 || strcmp(name, "stddev") == 0 ||
              strcmp(name, "stddev_pop") == 0)) {
    // numeric results: native moments, PostgreSQL's numeric_poly_* final function
    col->agg = SqlAgg::kOther;
    col->input_type = t;
    spec->func = eng::AggFunc::kExternal;
    spec->external = velostream_int_variance_aggregate(a, column_of((Var*)arg, query), describe((Node*)a, query));
    return true;
  } else {
    return false;
  }
  col->input_type = t;
  spec->column = column_of((Var*)arg, query);
  return true;
}

eng::AggSpec translate_agg(ViewDesc* d, Aggref* a, ViewColumn* col, Query* query);

// agg(DISTINCT column): a set of the group's values as the partial state
// (engine/aggregate.h make_distinct_aggregate), finalised by the aggregate
// without DISTINCT.
eng::AggSpec translate_distinct_agg(ViewDesc* d, Aggref* a, ViewColumn* col, Query* query) {
  Node* arg = list_length(a->args) == 1 ? (Node*)((TargetEntry*)linitial(a->args))->expr : nullptr;
  while (arg != nullptr && IsA(arg, RelabelType)) arg = (Node*)((RelabelType*)arg)->arg;
  eng::Type type;
  if (arg == nullptr || !IsA(arg, Var) || !velostream_engine_type(exprType(arg), &type) ||
      exprType(arg) == BPCHAROID)
    unsupported("DISTINCT inside an aggregate over this argument", (Node*)a, query,
                "DISTINCT takes one argument of a type such as integer, numeric, text, date or timestamp.");
  if (type == eng::Type::kText && !get_collation_isdeterministic(exprCollation(arg)))
    unsupported("DISTINCT over text with a nondeterministic collation", (Node*)a, query, nullptr);
  if (type == eng::Type::kInterval)  // equal intervals ('1 day', '24 hours') differ in their fields
    unsupported("DISTINCT inside an aggregate over an interval", (Node*)a, query, nullptr);
  Aggref* inner = (Aggref*)copyObjectImpl(a);
  inner->aggdistinct = NIL;
  inner->aggorder = NIL;
  inner->aggfilter = NULL;
  eng::AggSpec in = translate_agg(d, inner, col, query);
  std::shared_ptr<const eng::AggregateFunction> proto =
      in.func == eng::AggFunc::kExternal ? in.external : std::shared_ptr<const eng::AggregateFunction>(eng::make_native_aggregate(in));
  eng::AggSpec spec;
  spec.func = eng::AggFunc::kExternal;
  spec.external = eng::make_distinct_aggregate(proto, column_of((Var*)arg, query), type);
  if (a->aggfilter != NULL) {
    auto filter = std::make_shared<eng::Predicate>();
    translate_condition(d, (Node*)a->aggfilter, query, filter.get(), "a FILTER clause", kGuardWhere);
    spec.filter = filter;
  }
  col->agg = SqlAgg::kOther;
  return spec;
}

// An aggregate of the select list: native if the engine has it, otherwise
// PostgreSQL's own aggregate (pg_aggregate.h), which needs a combine function.
eng::AggSpec translate_agg(ViewDesc* d, Aggref* a, ViewColumn* col, Query* query) {
  eng::AggSpec spec;
  if (a->aggkind != AGGKIND_NORMAL)
    ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                    errmsg("ordered-set aggregates are not supported in a continuous view: %s",
                           describe((Node*)a, query)),
                    errdetail("An ordered-set aggregate needs all of a group's rows at once; a continuous view keeps "
                              "mergeable partial states."),
                    errhint("For percentiles use tdigest_percentile() of the tdigest extension.")));
  if (a->aggorder != NIL && a->aggdistinct == NIL)
    unsupported("ORDER BY inside an aggregate", (Node*)a, query, nullptr);
  refuse_mutable((Node*)a->args, (Node*)a, query);
  refuse_mutable((Node*)a->aggfilter, (Node*)a, query);
  Aggref* original = a;  // errors describe what the user wrote
  // (an argument is evaluated only for the rows FILTER lets through, as in nodeAgg)
  a = computed_args(d, a, query, a->aggfilter != NULL ? d->naggs : kGuardWhere);
  if (a->aggdistinct != NIL) return translate_distinct_agg(d, a, col, query);
  // FILTER (WHERE ...): the engine's predicate (over a computed column when
  // it cannot evaluate the clause itself), applied before the aggregate.
  if (a->aggfilter != NULL) {
    auto filter = std::make_shared<eng::Predicate>();
    translate_condition(d, (Node*)a->aggfilter, query, filter.get(), "a FILTER clause", kGuardWhere);
    spec.filter = filter;
    a->aggfilter = NULL;  // (a is computed_args's copy)
  }
  if (translate_native_agg(a, col, &spec, query)) return spec;
  col->agg = SqlAgg::kOther;
  spec.func = eng::AggFunc::kExternal;
  spec.external = velostream_pg_aggregate(a, describe((Node*)original, query));
  return spec;
}

// Collects a view's keys and aggregates while its select-list expressions
// and HAVING are rewritten over the group row.
struct GroupRow {
  ViewDesc* d;
  Query* query;
  List* keys;     // GROUP BY expressions, in key order
  List* aggrefs;  // Aggref of each engine aggregate
};

// The engine aggregate for `a`: an equal one already added, or a new one
// (col: the result column, or NULL for one only expressions use).
int add_agg(GroupRow* row, Aggref* a, ViewColumn* col) {
  ViewDesc* d = row->d;
  if (col == nullptr) {
    int i = 0;
    ListCell* lc;
    foreach (lc, row->aggrefs) {
      if (equal(lfirst(lc), a)) return i;
      ++i;
    }
  }
  ViewColumn hidden = {};
  hidden.name = pstrdup("?aggregate?");
  hidden.type = a->aggtype;
  d->plan->aggs.push_back(translate_agg(d, a, col ? col : &hidden, row->query));
  d->agg_type[d->naggs] = a->aggtype;
  d->agg_column[d->naggs] = -1;
  row->aggrefs = lappend(row->aggrefs, a);
  return d->naggs++;
}

Node* group_row_mutator(Node* n, void* arg) {
  GroupRow* row = static_cast<GroupRow*>(arg);
  if (n == nullptr) return nullptr;
  int k = 0;
  ListCell* lc;
  foreach (lc, row->keys) {
    if (equal(n, lfirst(lc))) return (Node*)makeVar(1, (AttrNumber)(k + 1), exprType(n), exprTypmod(n), exprCollation(n), 0);
    ++k;
  }
  if (IsA(n, Aggref)) {
    int a = add_agg(row, (Aggref*)n, nullptr);
    return (Node*)makeVar(1, (AttrNumber)(row->d->nkeys + a + 1), exprType(n), -1, exprCollation(n), 0);
  }
  if (IsA(n, Var))
    unsupported("a column outside aggregates and GROUP BY expressions", n, row->query, nullptr);
  // PostgreSQL declares the callback without parameters (C); cast through void (*)(void)
  return expression_tree_mutator(n, reinterpret_cast<Node* (*)()>(reinterpret_cast<void (*)(void)>(group_row_mutator)),
                                 row);
}

// A constant interval argument `arg` of window function `fn` in
// microseconds (a day is 24 hours): ERROR unless it is a constant interval
// of days and time only, greater than zero.
int64 window_interval(Node* arg, const char* fn, const char* what, Node* call, Query* query) {
  if (!IsA(arg, Const) || ((Const*)arg)->constisnull || exprType(arg) != INTERVALOID)
    unsupported(psprintf("%s() with a %s that is not a constant interval", fn, what), call, query, nullptr);
  Interval* iv = DatumGetIntervalP(((Const*)arg)->constvalue);
  int64 us;
  if (iv->month != 0 || pg_mul_s64_overflow((int64)iv->day, USECS_PER_DAY, &us) ||
      pg_add_s64_overflow(us, iv->time, &us))
    ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                    errmsg("%s() %s must not contain months or years: %s", fn, what, describe(call, query)),
                    errhint("Give it in days, hours, minutes or seconds.")));
  if (us <= 0)
    ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                    errmsg("%s() %s must be greater than zero: %s", fn, what, describe(call, query))));
  return us;
}

// The hop() or cumulate() call of FROM stream s, hop(s.ts, slide, size) w
// as the plan's window expansion (engine/view_aggregator.h).
eng::WindowExpansion translate_window_call(FuncExpr* call, Query* query) {
  eng::WindowExpansion w;
  const bool hop = is_window_function(call->funcid, "hop");
  const char* fn = hop ? "hop" : "cumulate";
  Node* ts = (Node*)linitial(call->args);
  while (IsA(ts, RelabelType)) ts = (Node*)((RelabelType*)ts)->arg;
  if (!IsA(ts, Var) || ((Var*)ts)->varno != 1 || exprType(ts) != TIMESTAMPTZOID)
    unsupported(psprintf("%s() over anything but a timestamptz column of the stream", fn), (Node*)call, query,
                nullptr);
  w.kind = hop ? eng::WindowExpansion::Kind::kHop : eng::WindowExpansion::Kind::kCumulate;
  w.column = column_of((Var*)ts, query);
  w.step = window_interval((Node*)lsecond(call->args), fn, hop ? "slide" : "step", (Node*)call, query);
  w.size = window_interval((Node*)lthird(call->args), fn, "size", (Node*)call, query);
  w.origin = eng::kUnixEpochInPgMicros;
  if (!hop && w.size % w.step != 0)
    ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                    errmsg("cumulate() step must divide its size: %s", describe((Node*)call, query))));
  if (w.size / w.step > 1000)
    ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                    errmsg("%s() puts each event in %lld windows, more than 1000: %s", fn,
                           (long long)(w.size / w.step), describe((Node*)call, query)),
                    errhint("Use a larger %s.", hop ? "slide" : "step")));
  return w;
}

// Finds a Var of range table entry `varno` (the window function's
// window_start and window_end) inside an aggregate's arguments or FILTER,
// or anywhere in a WHERE clause (`in_agg` set).
struct WindowVarSearch {
  int varno;
  bool in_agg;
};
bool finds_window_var(Node* node, void* context);
bool (*const finds_window_var_walker)() =
    reinterpret_cast<bool (*)()>(reinterpret_cast<void (*)()>(finds_window_var));
bool finds_window_var(Node* node, void* context) {
  if (node == nullptr) return false;
  WindowVarSearch* c = (WindowVarSearch*)context;
  if (IsA(node, Var)) return c->in_agg && ((Var*)node)->varno == c->varno && ((Var*)node)->varlevelsup == 0;
  if (IsA(node, Aggref) && !c->in_agg) {
    c->in_agg = true;
    bool found = expression_tree_walker(node, finds_window_var_walker, context);
    c->in_agg = false;
    return found;
  }
  return expression_tree_walker(node, finds_window_var_walker, context);
}

// `expr` (a select-list expression or HAVING) over the group row.
Node* group_row_expr(Node* expr, GroupRow* row) { return group_row_mutator(expr, row); }

}  // namespace

char* velostream_key_index_expr(const char* quoted_name, Oid type) {
  if (type == TEXTOID || type == VARCHAROID) return psprintf("%s COLLATE \"C\"", quoted_name);
  return pstrdup(quoted_name);
}

ViewDesc* velostream_translate_query(Query* query) {
  describing = nullptr;
  if (query->commandType != CMD_SELECT || query->utilityStmt != NULL)
    unsupported("a statement other than SELECT", nullptr, query, nullptr);
  // session() only as a GROUP BY key (and select-list expressions of it):
  // not in WHERE, nor in an aggregate's arguments or FILTER.
  if (calls_session(query->jointree->quals, nullptr))
    unsupported("session() in WHERE", nullptr, query, "Group by session(ts, gap).");
  {
    List* aggs = pull_var_clause((Node*)query->targetList, PVC_INCLUDE_AGGREGATES | PVC_RECURSE_WINDOWFUNCS |
                                                               PVC_RECURSE_PLACEHOLDERS);
    aggs = list_concat(aggs, pull_var_clause(query->havingQual, PVC_INCLUDE_AGGREGATES));
    ListCell* lc;
    foreach (lc, aggs)
      if (IsA(lfirst(lc), Aggref) && calls_session((Node*)lfirst(lc), nullptr))
        unsupported("session() in an aggregate", (Node*)lfirst(lc), query, "Group by session(ts, gap).");
  }
  // FROM stream s, hop(s.ts, slide, size) w (or cumulate): the window
  // function is range table entry 2, its columns window_start and
  // window_end GROUP BY keys.
  FuncExpr* window_call = nullptr;
  if (list_length(query->rtable) == 2 && list_length(query->jointree->fromlist) == 2 &&
      IsA(linitial(query->jointree->fromlist), RangeTblRef) && IsA(lsecond(query->jointree->fromlist), RangeTblRef) &&
      ((RangeTblRef*)linitial(query->jointree->fromlist))->rtindex == 1 &&
      ((RangeTblRef*)lsecond(query->jointree->fromlist))->rtindex == 2) {
    RangeTblEntry* r = (RangeTblEntry*)lsecond(query->rtable);
    if (r->rtekind == RTE_FUNCTION && list_length(r->functions) == 1 && !r->funcordinality) {
      Node* call = ((RangeTblFunction*)linitial(r->functions))->funcexpr;
      if (IsA(call, FuncExpr) && (is_window_function(((FuncExpr*)call)->funcid, "hop") ||
                                  is_window_function(((FuncExpr*)call)->funcid, "cumulate")))
        window_call = (FuncExpr*)call;
    }
  }
  if (window_call == nullptr && (list_length(query->rtable) != 1 || list_length(query->jointree->fromlist) != 1 ||
                                 !IsA(linitial(query->jointree->fromlist), RangeTblRef)))
    ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                    errmsg("a continuous view must read exactly one stream"),
                    errhint("Joins, subqueries and set-returning functions in FROM are not supported, but for "
                            "hop() and cumulate() windows: FROM stream s, hop(s.ts, slide, size) w.")));
  RangeTblEntry* rte = static_cast<RangeTblEntry*>(linitial(query->rtable));
  if (rte->rtekind != RTE_RELATION || !velostream_is_stream(rte->relid))
    ereport(ERROR, (errcode(ERRCODE_WRONG_OBJECT_TYPE),
                    errmsg("a continuous view must read from a stream"),
                    rte->rtekind == RTE_RELATION
                        ? errdetail("\"%s\" is not a foreign table on a velostream server.", get_rel_name(rte->relid))
                        : 0,
                    errhint("Create the stream with CREATE FOREIGN TABLE ... SERVER velostream.")));
  if (query->hasWindowFuncs) unsupported("a window function", nullptr, query, nullptr);
  if (query->hasSubLinks) unsupported("a subquery", nullptr, query, nullptr);
  if (query->hasTargetSRFs) unsupported("a set-returning function", nullptr, query, nullptr);
  if (query->cteList != NIL) unsupported("WITH", nullptr, query, nullptr);
  if (query->setOperations != NULL) unsupported("UNION, INTERSECT or EXCEPT", nullptr, query, nullptr);
  if (query->distinctClause != NIL) unsupported("DISTINCT", nullptr, query, nullptr);
  if (query->sortClause != NIL)
    unsupported("ORDER BY", nullptr, query, "Order the rows when you read the view's table.");
  if (query->limitCount != NULL || query->limitOffset != NULL) unsupported("LIMIT or OFFSET", nullptr, query, nullptr);
  if (query->groupingSets != NIL) unsupported("GROUPING SETS, ROLLUP or CUBE", nullptr, query, nullptr);
  if (query->rowMarks != NIL) unsupported("FOR UPDATE/SHARE", nullptr, query, nullptr);
  if (!query->hasAggs && query->groupClause == NIL)
    ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                    errmsg("a continuous view must aggregate"),
                    errhint("Add GROUP BY and aggregates such as count(*) to the SELECT.")));

  ViewDesc* d = (ViewDesc*)palloc0(sizeof(ViewDesc));
  d->stream = rte->relid;
  {
    HeapTuple tup = SearchSysCache1(RELOID, ObjectIdGetDatum(rte->relid));
    if (!HeapTupleIsValid(tup)) elog(ERROR, "cache lookup failed for relation %u", rte->relid);
    d->stream_columns = ((Form_pg_class)GETSTRUCT(tup))->relnatts;
    ReleaseSysCache(tup);
  }
  describing = d;
  d->plan = new eng::ViewPlan();
  velostream_on_context_reset(CurrentMemoryContext, delete_plan, d->plan);
  if (window_call != nullptr) {
    d->plan->expand = translate_window_call(window_call, query);
    WindowVarSearch search{2, false};
    if (finds_window_var((Node*)query->targetList, &search) || finds_window_var(query->havingQual, &search))
      unsupported(psprintf("%s()'s window_start or window_end in an aggregate", get_func_name(window_call->funcid)),
                  nullptr, query, "Group by them.");
    search.in_agg = true;
    if (finds_window_var(query->jointree->quals, &search))
      unsupported(psprintf("%s()'s window_start or window_end in WHERE", get_func_name(window_call->funcid)), nullptr,
                  query, "Filter the rows by their event time column.");
  }

  int ntle = list_length(query->targetList);
  d->columns = (ViewColumn*)palloc0(sizeof(ViewColumn) * ntle);
  d->key_column = (int*)palloc0(sizeof(int) * (ntle + 1));
  // aggregates: the select list's and those only expressions use
  int maxaggs = ntle + list_length(pull_var_clause((Node*)query->targetList, PVC_INCLUDE_AGGREGATES)) +
                list_length(pull_var_clause(query->havingQual, PVC_INCLUDE_AGGREGATES)) + 1;
  d->agg_column = (int*)palloc0(sizeof(int) * maxaggs);
  d->agg_type = (Oid*)palloc0(sizeof(Oid) * maxaggs);
  GroupRow row{d, query, NIL, NIL};

  // 1. Keys first, in select-list order, so expressions can refer to them.
  ListCell* lc;
  foreach (lc, query->targetList) {
    TargetEntry* tle = (TargetEntry*)lfirst(lc);
    if (tle->resjunk) {
      ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                      errmsg("every GROUP BY expression of a continuous view must be in its select list: %s",
                             describe((Node*)tle->expr, query)),
                      errhint("The view's table is unique on its GROUP BY columns.")));
    }
    ViewColumn* col = &d->columns[d->ncolumns];
    col->name = pstrdup(tle->resname);
    col->type = exprType((Node*)tle->expr);
    col->typmod = exprTypmod((Node*)tle->expr);
    col->collation = exprCollation((Node*)tle->expr);
    col->index = -1;
    if (tle->ressortgroupref != 0 && get_sortgroupref_clause_noerr(tle->ressortgroupref, query->groupClause)) {
      col->is_key = true;
      col->index = d->nkeys;
      Node* key = (Node*)tle->expr;
      while (IsA(key, RelabelType)) key = (Node*)((RelabelType*)key)->arg;
      if (exprType(key) == INTERVALOID)  // equal intervals ('1 day', '24 hours') differ in their fields
        unsupported("GROUP BY on an interval", (Node*)tle->expr, query, "Group by extract(epoch FROM ...) of it.");
      if (IsA(key, Var) && ((Var*)key)->varno == 2 && window_call != nullptr) {
        // window_start (1) or window_end (2) of the hop() / cumulate() window
        eng::KeySpec ks;
        ks.column = d->plan->expand.column;
        ks.type = eng::Type::kInt64;
        ks.window_part = (uint8_t)((Var*)key)->varattno;
        if (ks.window_part != 1 && ks.window_part != 2)
          unsupported("this column of a window function", (Node*)tle->expr, query, nullptr);
        d->plan->keys.push_back(ks);
        d->key_column[d->nkeys++] = d->ncolumns;
        row.keys = lappend(row.keys, tle->expr);
        d->ncolumns++;
        continue;
      }
      if (IsA(key, FuncExpr) && is_window_function(((FuncExpr*)key)->funcid, "session")) {
        // session(ts, gap): the start of the row's session (engine SessionSpec)
        FuncExpr* f = (FuncExpr*)key;
        Node* ts = (Node*)linitial(f->args);
        while (IsA(ts, RelabelType)) ts = (Node*)((RelabelType*)ts)->arg;
        if (!IsA(ts, Var) || exprType(ts) != TIMESTAMPTZOID)
          unsupported("session() over anything but a timestamptz column", (Node*)tle->expr, query, nullptr);
        if (d->plan->session.key_part >= 0)
          unsupported("a second session() key", (Node*)tle->expr, query, nullptr);
        eng::KeySpec ks;
        ks.column = column_of((Var*)ts, query);
        ks.type = eng::Type::kInt64;
        ks.window_part = 3;
        d->plan->session.key_part = d->nkeys;
        d->plan->session.column = ks.column;
        d->plan->session.gap = window_interval((Node*)lsecond(f->args), "session", "gap", (Node*)f, query);
        d->plan->keys.push_back(ks);
        d->key_column[d->nkeys++] = d->ncolumns;
        row.keys = lappend(row.keys, tle->expr);
        d->ncolumns++;
        continue;
      }
      if (!IsA(key, Var) && !(IsA(key, FuncExpr) && is_tumble(((FuncExpr*)key)->funcid))) {
        // A computed key is evaluated per stream row: it may not read a
        // window's bounds or a session (group by them as they are).
        WindowVarSearch in_key{2, true};
        if (window_call != nullptr && finds_window_var(key, &in_key))
          unsupported(psprintf("an expression of %s()'s window_start or window_end in GROUP BY (\"%s\")",
                               get_func_name(window_call->funcid), tle->resname ? tle->resname : "?"),
                      nullptr, query, "Group by w.window_start and w.window_end themselves.");
        if (calls_session(key, nullptr))
          unsupported("an expression of session() in GROUP BY", (Node*)tle->expr, query,
                      "Group by session(ts, gap) itself.");
        key = (Node*)computed_var(d, (Node*)tle->expr, query, "a GROUP BY expression", kGuardWhere);
      }
      d->plan->keys.push_back(translate_key(key, query));
      if (d->plan->keys.back().tumble_size > 0 && d->plan->window.end_part < 0 && window_call == nullptr) {
        // the view's window: its first tumble() key (start + size)
        d->plan->window.end_part = d->nkeys;
        d->plan->window.end_offset = d->plan->keys.back().tumble_size;
      }
      d->key_column[d->nkeys++] = d->ncolumns;
      row.keys = lappend(row.keys, tle->expr);
    }
    d->ncolumns++;
  }
  // The view's window, for closing (emit final, retention): a hop() or
  // cumulate() window's end, else its start plus its size (the last of a
  // start's cumulative windows).
  if (window_call != nullptr) {
    for (int k = 0; k < d->nkeys; ++k) {
      const eng::KeySpec& ks = d->plan->keys[k];
      if (ks.window_part == 2 || (ks.window_part == 1 && d->plan->window.end_part < 0)) {
        d->plan->window.end_part = k;
        d->plan->window.end_offset = ks.window_part == 2 ? 0 : d->plan->expand.size;
        if (ks.window_part == 2) break;
      }
    }
    if (d->plan->window.end_part < 0)
      ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                      errmsg("a continuous view over %s() must group by its window_start or window_end",
                             get_func_name(window_call->funcid)),
                      errhint("GROUP BY w.window_start, w.window_end.")));
  }
  // 2. Aggregates and expressions over them.
  int c = 0;
  foreach (lc, query->targetList) {
    TargetEntry* tle = (TargetEntry*)lfirst(lc);
    ViewColumn* col = &d->columns[c++];
    if (col->is_key) continue;
    if (IsA(tle->expr, Aggref)) {
      col->index = add_agg(&row, (Aggref*)tle->expr, col);
      d->agg_column[col->index] = c - 1;
      continue;
    }
    refuse_mutable((Node*)tle->expr, (Node*)tle->expr, query);
    col->expr = group_row_expr((Node*)tle->expr, &row);
    d->has_exprs = true;
  }
  if (query->havingQual != NULL) {
    refuse_mutable(query->havingQual, query->havingQual, query);
    d->having = group_row_expr(query->havingQual, &row);
  }
  if (query->jointree->quals != NULL) {
    d->plan->filter.emplace();
    translate_condition(d, query->jointree->quals, query, &*d->plan->filter, "a WHERE clause", kGuardAll);
  }
  if (d->ncomputed > 0) {
    // Rows whose computed columns could not be evaluated (validity column 0)
    // are not the view's: they went to velostream.errors.
    eng::Predicate valid;
    valid.kind = eng::Predicate::Kind::kCompare;
    valid.op = eng::CmpOp::kEq;
    valid.domain = eng::CmpDomain::kInt;
    valid.lhs_col = d->stream_columns + d->ncomputed;
    valid.rhs_const.i = 1;
    if (d->plan->filter) {
      eng::Predicate both;
      both.kind = eng::Predicate::Kind::kAnd;
      both.children.push_back(valid);
      both.children.push_back(std::move(*d->plan->filter));
      d->plan->filter = std::move(both);
      d->where = &d->plan->filter->children[1];
    } else {
      d->plan->filter = std::move(valid);
    }
  }
  if (d->plan->session.key_part >= 0) {
    // One window per view: a session is not combined with another window.
    if (window_call != nullptr || d->plan->window.end_part >= 0)
      unsupported("session() beside another window", nullptr, query, "Group by one window: session(ts, gap).");
    // The session's end (its last event): a hidden max(ts), which the
    // changelog carries with the other states.
    d->agg_type = (Oid*)repalloc(d->agg_type, sizeof(Oid) * (d->naggs + 1));
    d->agg_column = (int*)repalloc(d->agg_column, sizeof(int) * (d->naggs + 1));
    eng::AggSpec end;
    end.func = eng::AggFunc::kMax;
    end.column = d->plan->session.column;
    end.input = eng::Type::kInt64;
    d->plan->aggs.push_back(end);
    d->agg_type[d->naggs] = TIMESTAMPTZOID;
    d->agg_column[d->naggs] = -1;
    d->plan->session.end_agg = d->naggs++;
  }
  describing = nullptr;
  return d;
}

#include "pg/native_expr.h"

#include <climits>
#include <clocale>
#include <cstring>

#include "pg/types.h"
#include "pg/velostream.h"

namespace eng = velostream::engine;
using Op = eng::ExprNode::Op;
using eng::SqlKind;

namespace {

// The expression kind of SQL type t (pg/types.h's table); false if not native.
bool kind_of(Oid t, SqlKind* k) {
  const SqlType* st = velostream_sql_type(t);
  if (st == nullptr || st->kind == SqlKind::kInterval) return false;  // (stored, not operated on)
  *k = st->kind;
  return true;
}

using eng::is_float;
using eng::is_int;

// Text ordering is native only under the "C" collation (byte order);
// equality under any deterministic one.
bool text_order_ok(Oid collid) { return OidIsValid(collid) && lc_collate_is_c(collid); }
bool text_equality_ok(Oid collid) { return OidIsValid(collid) && get_collation_isdeterministic(collid); }

// Constant text argument (NULL: not a non-NULL text constant).
char* const_text(Node* n) {
  while (IsA(n, RelabelType)) n = (Node*)((RelabelType*)n)->arg;
  if (!IsA(n, Const) || ((Const*)n)->constisnull) return nullptr;
  Oid t = ((Const*)n)->consttype;
  if (t != TEXTOID && t != VARCHAROID) return nullptr;
  return TextDatumGetCString(((Const*)n)->constvalue);
}

// The field a constant unit names, as date_trunc / extract decode it:
// UNITS or RESERV with the DTK_ code in *val; UNKNOWN_FIELD otherwise.
int const_units(Node* n, int* val) {
  char* unit = const_text(n);
  if (unit == nullptr) return UNKNOWN_FIELD;
  char* low = downcase_truncate_identifier(unit, strlen(unit), false);
  int type = DecodeUnits(0, low, val);
  return type == UNKNOWN_FIELD ? DecodeSpecial(0, low, val) : type;
}

// An interval constant without months, in microseconds (> 0); false otherwise.
bool const_stride(Node* n, int64* usecs) {
  if (!IsA(n, Const) || ((Const*)n)->constisnull || ((Const*)n)->consttype != INTERVALOID) return false;
  Interval* iv = DatumGetIntervalP(((Const*)n)->constvalue);
  if (iv->month != 0) return false;
  if (pg_mul_s64_overflow(iv->day, USECS_PER_DAY, usecs) || pg_add_s64_overflow(*usecs, iv->time, usecs)) return false;
  return *usecs > 0;
}

// The UTC offsets of a time zone named `zone`, as timestamptz_zone resolves
// it: a fixed-offset abbreviation first, then a full zone name. NULL for a
// dynamic abbreviation or an unknown name (the executor then raises what
// PostgreSQL raises).
int32_t resolve_offset(int64_t unix_seconds, const void* arg) {
  pg_time_t t = (pg_time_t)unix_seconds;
  struct pg_tm* tm = pg_localtime(&t, (const pg_tz*)arg);
  return tm != nullptr ? (int32_t)tm->tm_gmtoff : 0;
}

std::shared_ptr<eng::ZoneOffsets> zone_offsets(const char* zone) {
  char tzname[TZ_STRLEN_MAX + 1];
  strlcpy(tzname, zone, sizeof(tzname));
  char* lowzone = downcase_truncate_identifier(tzname, strlen(tzname), false);
  int val;
  pg_tz* tzp;
  int type = DecodeTimezoneAbbrev(0, lowzone, &val, &tzp);
  auto z = std::make_shared<eng::ZoneOffsets>();
  if (type == TZ || type == DTZ) {
    z->before = val;
    return z;
  }
  if (type == DYNTZ) return nullptr;
  tzp = pg_tzset(tzname);
  if (tzp == nullptr) return nullptr;
  // Transitions from 1900 to 2100 in a table; other times through pg_localtime.
  const pg_time_t from = -2208988800LL, to = 4102444800LL;
  pg_time_t t = from;
  z->covered_from = from;
  z->covered_to = INT64_MAX;
  bool first = true;
  for (;;) {
    long before_off, after_off;
    int before_dst, after_dst;
    pg_time_t boundary;
    int r = pg_next_dst_boundary(&t, &before_off, &before_dst, &boundary, &after_off, &after_dst, tzp);
    if (r < 0) return nullptr;
    if (first) z->before = (int32_t)before_off;
    first = false;
    if (r == 0) break;  // no more transitions: the last offset holds forever
    if (boundary >= to) {
      z->covered_to = boundary;
      break;
    }
    z->at.push_back(boundary);
    z->offset.push_back((int32_t)after_off);
    t = boundary;
  }
  z->resolve = resolve_offset;
  z->resolve_arg = tzp;
  return z;
}

// An upper bound of the scale (digits after the point) of the values of
// numeric expression `n`, or INT_MAX if there is none (a stream column: a
// numeric may carry up to 16383 digits after the point).
int max_scale(Node* n) {
  constexpr int kNone = INT_MAX;
  switch (nodeTag(n)) {
    case T_Const: {
      eng::Scalar v;
      if (((Const*)n)->consttype != NUMERICOID || !velostream_const_scalar((Const*)n, &v)) return kNone;
      return v.is_null || v.d.kind != eng::Decimal::kFinite ? 0 : v.d.scale;
    }
    case T_RelabelType: return max_scale((Node*)((RelabelType*)n)->arg);
    case T_CollateExpr: return max_scale((Node*)((CollateExpr*)n)->arg);
    case T_OpExpr:
    case T_FuncExpr: {
      Oid funcid = IsA(n, OpExpr) ? ((OpExpr*)n)->opfuncid : ((FuncExpr*)n)->funcid;
      List* fargs = IsA(n, OpExpr) ? ((OpExpr*)n)->args : ((FuncExpr*)n)->args;
      const char* name = velostream_catalog_function(funcid);
      if (name == nullptr) return kNone;
      if (strcmp(name, "numeric_uminus") == 0) return max_scale((Node*)linitial(fargs));
      if (strcmp(name, "numeric_add") == 0 || strcmp(name, "numeric_sub") == 0)
        return Max(max_scale((Node*)linitial(fargs)), max_scale((Node*)lsecond(fargs)));
      if (strcmp(name, "numeric_mul") == 0) {
        int a = max_scale((Node*)linitial(fargs)), b = max_scale((Node*)lsecond(fargs));
        return a == kNone || b == kNone ? kNone : a + b;
      }
      if (strcmp(name, "extract") == 0) return 6;
      if (strcmp(name, "numeric") == 0 && list_length(fargs) == 1) {
        switch (exprType((Node*)linitial(fargs))) {
          case INT2OID: case INT4OID: case INT8OID: return 0;
          case FLOAT4OID: return 51;   // "%.6g": 1.4013e-45
          case FLOAT8OID: return 338;  // "%.15g": 4.94065645841247e-324
          default: return kNone;
        }
      }
      return kNone;
    }
    case T_CaseExpr: {
      CaseExpr* c = (CaseExpr*)n;
      int m = c->defresult != nullptr ? max_scale((Node*)c->defresult) : 0;
      ListCell* lc;
      foreach (lc, c->args) m = Max(m, max_scale((Node*)((CaseWhen*)lfirst(lc))->result));
      return m;
    }
    case T_CoalesceExpr:
    case T_MinMaxExpr: {
      List* l = IsA(n, CoalesceExpr) ? ((CoalesceExpr*)n)->args : ((MinMaxExpr*)n)->args;
      int m = 0;
      ListCell* lc;
      foreach (lc, l) m = Max(m, max_scale((Node*)lfirst(lc)));
      return m;
    }
    case T_NullIfExpr: return max_scale((Node*)linitial(((NullIfExpr*)n)->args));
    default: return kNone;
  }
}

struct Translator {
  const Oid* stream_types;

  bool tr(Node* n, eng::ExprNode* out, Node* case_arg);
  bool args(List* l, eng::ExprNode* out, Node* case_arg) {
    ListCell* lc;
    foreach (lc, l) {
      out->args.emplace_back();
      if (!tr((Node*)lfirst(lc), &out->args.back(), case_arg)) return false;
    }
    return true;
  }
  bool compare(Oid opno, Oid collid, Node* l, Node* r, eng::ExprNode* out, Node* case_arg);
  bool func(Oid funcid, List* fargs, Oid result, Oid collid, Node* whole, eng::ExprNode* out, Node* case_arg);
};

bool Translator::compare(Oid opno, Oid collid, Node* l, Node* r, eng::ExprNode* out, Node* case_arg) {
  HeapTuple tup = SearchSysCache1(OPEROID, ObjectIdGetDatum(opno));
  if (!HeapTupleIsValid(tup)) elog(ERROR, "cache lookup failed for operator %u", opno);
  Form_pg_operator op = (Form_pg_operator)GETSTRUCT(tup);
  char name[NAMEDATALEN];
  strlcpy(name, NameStr(op->oprname), sizeof(name));
  Oid left = op->oprleft, right = op->oprright, nsp = op->oprnamespace;
  ReleaseSysCache(tup);
  SqlKind lk, rk;
  if (nsp != PG_CATALOG_NAMESPACE || !kind_of(left, &lk) || !kind_of(right, &rk)) return false;
  eng::CmpDomain d = velostream_sql_type(left)->domain;
  if (d != velostream_sql_type(right)->domain) return false;
  if (d == eng::CmpDomain::kInt && lk != rk && !(is_int(lk) && is_int(rk))) return false;  // date vs timestamp
  if (strcmp(name, "=") == 0) out->cmp = eng::CmpOp::kEq;
  else if (strcmp(name, "<>") == 0) out->cmp = eng::CmpOp::kNe;
  else if (strcmp(name, "<") == 0) out->cmp = eng::CmpOp::kLt;
  else if (strcmp(name, "<=") == 0) out->cmp = eng::CmpOp::kLe;
  else if (strcmp(name, ">") == 0) out->cmp = eng::CmpOp::kGt;
  else if (strcmp(name, ">=") == 0) out->cmp = eng::CmpOp::kGe;
  else return false;
  if (d == eng::CmpDomain::kText &&
      !((out->cmp == eng::CmpOp::kEq || out->cmp == eng::CmpOp::kNe) ? text_equality_ok(collid) : text_order_ok(collid)))
    return false;
  out->op = Op::kCompare;
  out->type = SqlKind::kBool;
  out->domain = d;
  out->args.resize(2);
  return tr(l, &out->args[0], case_arg) && tr(r, &out->args[1], case_arg);
}

bool Translator::func(Oid funcid, List* fargs, Oid result, Oid collid, Node* whole, eng::ExprNode* out,
                      Node* case_arg) {
  const char* name = velostream_catalog_function(funcid);
  if (name == nullptr || !kind_of(result, &out->type)) return false;
  int nargs = list_length(fargs);
  Oid a0 = nargs > 0 ? exprType((Node*)linitial(fargs)) : InvalidOid;
  Oid a1 = nargs > 1 ? exprType((Node*)lsecond(fargs)) : InvalidOid;
  SqlKind k0 = SqlKind::kBool;
  bool k0ok = nargs > 0 && kind_of(a0, &k0);
  size_t len = strlen(name);

  // Arithmetic: int2/int4/int8/float4/float8 operators and numeric's.
  static const char* const kPrefixes[] = {"int24", "int42", "int28", "int82", "int48", "int84", "int2", "int4",
                                          "int8", "float48", "float84", "float4", "float8"};
  for (const char* prefix : kPrefixes) {
    size_t pl = strlen(prefix);
    if (len <= pl || strncmp(name, prefix, pl) != 0) continue;
    const char* suffix = name + pl;
    Op op;
    if (strcmp(suffix, "pl") == 0) op = Op::kAdd;
    else if (strcmp(suffix, "mi") == 0) op = Op::kSub;
    else if (strcmp(suffix, "mul") == 0) op = Op::kMul;
    else if (strcmp(suffix, "div") == 0) op = Op::kDiv;
    else if (strcmp(suffix, "mod") == 0 && prefix[0] == 'i') op = Op::kMod;
    else if (strcmp(suffix, "um") == 0 && nargs == 1) op = Op::kNeg;
    else return false;
    if (op != Op::kNeg && nargs != 2) return false;
    out->op = op;
    return args(fargs, out, case_arg);
  }
  if (strcmp(name, "numeric_add") == 0 || strcmp(name, "numeric_sub") == 0 || strcmp(name, "numeric_mul") == 0 ||
      strcmp(name, "numeric_uminus") == 0) {
    out->op = name[8] == 'a' ? Op::kAdd : name[8] == 's' ? Op::kSub : name[8] == 'm' ? Op::kMul : Op::kNeg;
    return args(fargs, out, case_arg);
  }
  // Casts: a one-argument function named after its result type.
  if (nargs == 1 && k0ok && strcmp(name, velostream_sql_type(result)->name) == 0) {
    SqlKind to = out->type;
    bool ok = (is_int(to) && (is_int(k0) || is_float(k0) || k0 == SqlKind::kNumeric)) ||
              (to == SqlKind::kInt4 && k0 == SqlKind::kBool) || (to == SqlKind::kBool && k0 == SqlKind::kInt4) ||
              (to == SqlKind::kFloat8 && (is_int(k0) || k0 == SqlKind::kFloat4 || k0 == SqlKind::kNumeric)) ||
              (to == SqlKind::kFloat4 && (is_int(k0) || k0 == SqlKind::kFloat8)) ||
              (to == SqlKind::kNumeric && (is_int(k0) || is_float(k0))) ||
              (to == SqlKind::kTimestamp && k0 == SqlKind::kDate) || (to == SqlKind::kDate && k0 == SqlKind::kTimestamp);
    // numeric_float8 goes through float8in, which raises for a nonzero
    // numeric that rounds to 0 ("... is out of range for type double
    // precision", naming the value: no native error carries it). Such a
    // numeric has at least 324 digits after the point; a numeric whose scale
    // cannot be bounded below that (a stream column's) is left to the executor.
    if (to == SqlKind::kFloat8 && k0 == SqlKind::kNumeric && max_scale((Node*)linitial(fargs)) > 323) return false;
    if (!ok) return false;
    out->op = Op::kCast;
    out->from = k0;
    return args(fargs, out, case_arg);
  }
  if (strcmp(name, "textcat") == 0) {
    out->op = Op::kConcat;
    return args(fargs, out, case_arg);
  }
  if (strcmp(name, "textlike") == 0 || strcmp(name, "textnlike") == 0) {
    char* pattern = const_text((Node*)lsecond(fargs));
    if (pattern == nullptr || !text_equality_ok(collid)) return false;
    size_t pl = strlen(pattern), backslashes = 0;
    while (backslashes < pl && pattern[pl - 1 - backslashes] == '\\') ++backslashes;
    if (backslashes % 2 == 1) return false;  // ends with the escape: PostgreSQL raises
    if (GetDatabaseEncoding() != PG_UTF8 && GetDatabaseEncoding() != PG_SQL_ASCII) return false;
    out->op = Op::kLike;
    out->negate = name[4] == 'n';
    out->pattern = pattern;
    out->args.resize(1);
    return tr((Node*)linitial(fargs), &out->args[0], case_arg);
  }
  if ((strcmp(name, "lower") == 0 || strcmp(name, "upper") == 0) && nargs == 1 && k0 == SqlKind::kText) {
    out->op = name[0] == 'l' ? Op::kLower : Op::kUpper;
    if (OidIsValid(collid) && lc_ctype_is_c(collid)) {
      out->ascii_case = true;
    } else if (collid == DEFAULT_COLLATION_OID && default_locale.provider == COLLPROVIDER_LIBC &&
               GetDatabaseEncoding() == PG_UTF8) {
      out->ascii_case = false;
      out->locale = eng::make_ctype_locale(setlocale(LC_CTYPE, nullptr));
      if (out->locale == nullptr) return false;
    } else {
      return false;
    }
    return args(fargs, out, case_arg);
  }
  if (strcmp(name, "date_trunc") == 0 && nargs == 2 && a1 == TIMESTAMPOID) {
    int val;
    if (const_units((Node*)linitial(fargs), &val) != UNITS) return false;
    switch (val) {
      case DTK_MICROSEC: out->unit = eng::TruncUnit::kMicroseconds; break;
      case DTK_MILLISEC: out->unit = eng::TruncUnit::kMilliseconds; break;
      case DTK_SECOND: out->unit = eng::TruncUnit::kSecond; break;
      case DTK_MINUTE: out->unit = eng::TruncUnit::kMinute; break;
      case DTK_HOUR: out->unit = eng::TruncUnit::kHour; break;
      case DTK_DAY: out->unit = eng::TruncUnit::kDay; break;
      case DTK_WEEK: out->unit = eng::TruncUnit::kWeek; break;
      case DTK_MONTH: out->unit = eng::TruncUnit::kMonth; break;
      case DTK_QUARTER: out->unit = eng::TruncUnit::kQuarter; break;
      case DTK_YEAR: out->unit = eng::TruncUnit::kYear; break;
      default: return false;
    }
    out->op = Op::kDateTrunc;
    out->args.resize(1);
    return tr((Node*)lsecond(fargs), &out->args[0], case_arg);
  }
  if (strcmp(name, "extract") == 0 && nargs == 2 && (a1 == TIMESTAMPOID || a1 == DATEOID)) {
    int val, type = const_units((Node*)linitial(fargs), &val);
    const bool date = a1 == DATEOID;
    if (type == UNITS) {
      switch (val) {
        case DTK_MICROSEC: out->field = eng::ExtractField::kMicroseconds; break;
        case DTK_MILLISEC: out->field = eng::ExtractField::kMilliseconds; break;
        case DTK_SECOND: out->field = eng::ExtractField::kSecond; break;
        case DTK_MINUTE: out->field = eng::ExtractField::kMinute; break;
        case DTK_HOUR: out->field = eng::ExtractField::kHour; break;
        case DTK_DAY: out->field = eng::ExtractField::kDay; break;
        case DTK_MONTH: out->field = eng::ExtractField::kMonth; break;
        case DTK_QUARTER: out->field = eng::ExtractField::kQuarter; break;
        case DTK_YEAR: out->field = eng::ExtractField::kYear; break;
        case DTK_DOW: out->field = eng::ExtractField::kDow; break;
        case DTK_ISODOW: out->field = eng::ExtractField::kIsodow; break;
        case DTK_DOY: out->field = eng::ExtractField::kDoy; break;
        case DTK_WEEK: out->field = eng::ExtractField::kWeek; break;
        default: return false;
      }
      // Time-of-day fields of a date raise in PostgreSQL: leave them to it.
      if (date && (val == DTK_MICROSEC || val == DTK_MILLISEC || val == DTK_SECOND || val == DTK_MINUTE ||
                   val == DTK_HOUR))
        return false;
    } else if (type == RESERV && val == DTK_EPOCH) {
      out->field = eng::ExtractField::kEpoch;
    } else {
      return false;
    }
    out->op = Op::kExtract;
    out->args.resize(1);
    return tr((Node*)lsecond(fargs), &out->args[0], case_arg);
  }
  if (strcmp(name, "timezone") == 0 && nargs == 2 && a1 == TIMESTAMPTZOID && result == TIMESTAMPOID) {
    char* zone = const_text((Node*)linitial(fargs));
    if (zone == nullptr) return false;
    out->zone = zone_offsets(zone);
    if (out->zone == nullptr) return false;
    out->op = Op::kAtTimeZone;
    out->args.resize(1);
    return tr((Node*)lsecond(fargs), &out->args[0], case_arg);
  }
  if (strcmp(name, "date_bin") == 0 && nargs == 3 && (a1 == TIMESTAMPOID || a1 == TIMESTAMPTZOID)) {
    Node* origin = (Node*)lthird(fargs);
    if (!const_stride((Node*)linitial(fargs), &out->i1) || !IsA(origin, Const) || ((Const*)origin)->constisnull)
      return false;
    out->i2 = DatumGetTimestamp(((Const*)origin)->constvalue);
    if (TIMESTAMP_NOT_FINITE(out->i2)) return false;
    out->op = Op::kDateBin;
    out->args.resize(1);
    return tr((Node*)lsecond(fargs), &out->args[0], case_arg);
  }
  (void)whole;
  return false;
}

bool Translator::tr(Node* n, eng::ExprNode* out, Node* case_arg) {
  Oid type = exprType(n);
  if (!kind_of(type, &out->type)) return false;
  switch (nodeTag(n)) {
    case T_Var: {
      Var* v = (Var*)n;
      if (v->varno != 1 || v->varlevelsup != 0 || v->varattno <= 0) return false;
      out->op = Op::kColumn;
      out->column = v->varattno - 1;
      SqlKind stored;
      // The column's own type (a Var of a binary-compatible type reads it as is).
      return kind_of(stream_types[out->column], &stored) && eng::storage_of(stored) == eng::storage_of(out->type);
    }
    case T_Const:
      out->op = Op::kConst;
      return velostream_const_scalar((Const*)n, &out->value);
    case T_RelabelType: {  // binary-compatible: varchar as text
      SqlKind k = out->type;
      if (!tr((Node*)((RelabelType*)n)->arg, out, case_arg) || eng::storage_of(out->type) != eng::storage_of(k))
        return false;
      out->type = k;
      return true;
    }
    case T_CollateExpr:
      return tr((Node*)((CollateExpr*)n)->arg, out, case_arg);
    case T_CaseTestExpr:
      return case_arg != nullptr && tr(case_arg, out, nullptr);
    case T_OpExpr: {
      OpExpr* o = (OpExpr*)n;
      if (o->opresulttype == BOOLOID && list_length(o->args) == 2) {
        SqlKind k;
        if (kind_of(exprType((Node*)linitial(o->args)), &k) &&
            compare(o->opno, o->inputcollid, (Node*)linitial(o->args), (Node*)lsecond(o->args), out, case_arg))
          return true;
        out->args.clear();
        out->type = SqlKind::kBool;
      }
      return func(o->opfuncid, o->args, o->opresulttype, o->inputcollid, n, out, case_arg);
    }
    case T_FuncExpr: {
      FuncExpr* f = (FuncExpr*)n;
      return func(f->funcid, f->args, f->funcresulttype, f->inputcollid, n, out, case_arg);
    }
    case T_BoolExpr: {
      BoolExpr* b = (BoolExpr*)n;
      out->op = b->boolop == AND_EXPR ? Op::kAnd : b->boolop == OR_EXPR ? Op::kOr : Op::kNot;
      return args(b->args, out, case_arg);
    }
    case T_NullTest: {
      NullTest* t = (NullTest*)n;
      if (t->argisrow) return false;
      out->op = t->nulltesttype == IS_NULL ? Op::kIsNull : Op::kIsNotNull;
      out->args.resize(1);
      return tr((Node*)t->arg, &out->args[0], case_arg);
    }
    case T_BooleanTest: {
      BooleanTest* t = (BooleanTest*)n;
      switch (t->booltesttype) {
        case IS_TRUE: out->op = Op::kIsTrue; break;
        case IS_NOT_TRUE: out->op = Op::kIsNotTrue; break;
        case IS_FALSE: out->op = Op::kIsFalse; break;
        case IS_NOT_FALSE: out->op = Op::kIsNotFalse; break;
        case IS_UNKNOWN: out->op = Op::kIsNull; break;
        case IS_NOT_UNKNOWN: out->op = Op::kIsNotNull; break;
      }
      out->args.resize(1);
      return tr((Node*)t->arg, &out->args[0], case_arg);
    }
    case T_CaseExpr: {
      CaseExpr* c = (CaseExpr*)n;
      out->op = Op::kCase;
      ListCell* lc;
      foreach (lc, c->args) {
        CaseWhen* w = (CaseWhen*)lfirst(lc);
        out->args.emplace_back();
        if (!tr((Node*)w->expr, &out->args.back(), (Node*)c->arg)) return false;
        out->args.emplace_back();
        if (!tr((Node*)w->result, &out->args.back(), case_arg)) return false;
      }
      out->args.emplace_back();
      if (c->defresult != nullptr) return tr((Node*)c->defresult, &out->args.back(), case_arg);
      out->args.back().op = Op::kConst;
      out->args.back().type = out->type;
      out->args.back().value.is_null = true;
      return true;
    }
    case T_CoalesceExpr:
      out->op = Op::kCoalesce;
      return args(((CoalesceExpr*)n)->args, out, case_arg);
    case T_MinMaxExpr: {
      MinMaxExpr* m = (MinMaxExpr*)n;
      out->op = m->op == IS_GREATEST ? Op::kGreatest : Op::kLeast;
      out->domain = velostream_sql_type(exprType(n))->domain;
      if (out->domain == eng::CmpDomain::kText && !text_order_ok(m->inputcollid)) return false;
      return args(m->args, out, case_arg);
    }
    case T_NullIfExpr: {
      NullIfExpr* x = (NullIfExpr*)n;
      eng::ExprNode eq;
      if (!compare(x->opno, x->inputcollid, (Node*)linitial(x->args), (Node*)lsecond(x->args), &eq, case_arg) ||
          eq.cmp != eng::CmpOp::kEq)
        return false;
      // NULLIF's result is its first argument, of that argument's type.
      out->op = Op::kNullIf;
      out->domain = eq.domain;
      out->args = std::move(eq.args);
      return out->args[0].type == out->type || eng::storage_of(out->args[0].type) == eng::storage_of(out->type);
    }
    case T_ScalarArrayOpExpr: {
      // x IN (c1, c2, ...): an OR (AND for ALL) of comparisons with constants.
      ScalarArrayOpExpr* s = (ScalarArrayOpExpr*)n;
      List* elems = velostream_array_constants(s);
      if (elems == NIL) return false;
      out->op = s->useOr ? Op::kOr : Op::kAnd;
      ListCell* lc;
      foreach (lc, elems) {
        out->args.emplace_back();
        if (!compare(s->opno, s->inputcollid, (Node*)linitial(s->args), (Node*)lfirst(lc), &out->args.back(),
                     case_arg))
          return false;
      }
      return true;
    }
    case T_CoerceViaIO: {
      CoerceViaIO* c = (CoerceViaIO*)n;
      SqlKind from;
      if (out->type != SqlKind::kText || !kind_of(exprType((Node*)c->arg), &from) || !is_int(from)) return false;
      out->op = Op::kIntToText;
      out->args.resize(1);
      return tr((Node*)c->arg, &out->args[0], case_arg);
    }
    default:
      return false;
  }
}

void delete_node(void* arg) { delete static_cast<eng::ExprNode*>(arg); }

}  // namespace

const char* velostream_catalog_function(Oid funcid) {
  HeapTuple tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcid));
  if (!HeapTupleIsValid(tup)) elog(ERROR, "cache lookup failed for function %u", funcid);
  Form_pg_proc proc = (Form_pg_proc)GETSTRUCT(tup);
  const char* name = proc->pronamespace == PG_CATALOG_NAMESPACE ? pstrdup(NameStr(proc->proname)) : nullptr;
  ReleaseSysCache(tup);
  return name;
}

List* velostream_array_constants(ScalarArrayOpExpr* s) {
  Node* arr = (Node*)lsecond(s->args);
  List* elems = NIL;
  if (IsA(arr, ArrayExpr)) {
    ListCell* lc;
    foreach (lc, ((ArrayExpr*)arr)->elements) {
      Node* e = (Node*)lfirst(lc);
      for (;;) {  // a constant under relabelling or implicit casts (not folded before planning)
        if (IsA(e, RelabelType)) e = (Node*)((RelabelType*)e)->arg;
        else if (IsA(e, FuncExpr) && ((FuncExpr*)e)->funcformat == COERCE_IMPLICIT_CAST &&
                 list_length(((FuncExpr*)e)->args) == 1)
          e = (Node*)linitial(((FuncExpr*)e)->args);
        else break;
      }
      if (!IsA(e, Const)) return NIL;
      elems = lappend(elems, lfirst(lc));
    }
    return elems;
  }
  if (!IsA(arr, Const) || ((Const*)arr)->constisnull) return NIL;
  Const* ac = (Const*)arr;
  ArrayType* a = DatumGetArrayTypeP(ac->constvalue);
  Oid elem = ARR_ELEMTYPE(a);
  int16 typlen;
  bool typbyval;
  char typalign;
  get_typlenbyvalalign(elem, &typlen, &typbyval, &typalign);
  Datum* values;
  bool* nulls;
  int count;
  deconstruct_array(a, elem, typlen, typbyval, typalign, &values, &nulls, &count);
  for (int i = 0; i < count; ++i)
    elems = lappend(elems, makeConst(elem, -1, ac->constcollid, typlen, values[i], nulls[i], typbyval));
  return elems;
}

const eng::ExprNode* velostream_native_expr(Node* expr, const Oid* stream_types) {
  eng::ExprNode* root = new eng::ExprNode();
  velostream_on_context_reset(CurrentMemoryContext, delete_node, root);
  Translator t{stream_types};
  if (!t.tr(expr, root, nullptr)) return nullptr;
  return root;
}

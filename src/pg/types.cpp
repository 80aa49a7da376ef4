#include "pg/types.h"

namespace eng = velostream::engine;

namespace {

using T = eng::Type;
using D = eng::CmpDomain;
using F = eng::FieldKind;
using K = eng::SqlKind;

// oid, storage, WHERE domain, parser, integer, number, ordered, expression kind, name
const SqlType kTypes[] = {
    {INT2OID, T::kInt64, D::kInt, F::kInt16, true, true, true, K::kInt2, "int2"},
    {INT4OID, T::kInt64, D::kInt, F::kInt32, true, true, true, K::kInt4, "int4"},
    {INT8OID, T::kInt64, D::kInt, F::kInt64, true, true, true, K::kInt8, "int8"},
    {FLOAT4OID, T::kFloat64, D::kFloat, F::kFloat32, false, true, true, K::kFloat4, "float4"},
    {FLOAT8OID, T::kFloat64, D::kFloat, F::kFloat64, false, true, true, K::kFloat8, "float8"},
    {NUMERICOID, T::kNumeric, D::kNumeric, F::kNumeric, false, true, true, K::kNumeric, "numeric"},
    {TEXTOID, T::kText, D::kText, F::kText, false, false, false, K::kText, "text"},
    {VARCHAROID, T::kText, D::kText, F::kText, false, false, false, K::kText, "varchar"},
    {BOOLOID, T::kInt64, D::kInt, F::kBool, false, false, false, K::kBool, "bool"},
    {DATEOID, T::kInt64, D::kInt, F::kDate, false, false, true, K::kDate, "date"},
    {TIMESTAMPOID, T::kInt64, D::kInt, F::kTimestamp, false, false, true, K::kTimestamp, "timestamp"},
    {TIMESTAMPTZOID, T::kInt64, D::kInt, F::kTimestampTz, false, false, true, K::kTimestampTz, "timestamptz"},
    // Stored and aggregated (min, max, sum, avg) natively; its comparisons and
    // arithmetic are PostgreSQL's executor's (native_expr.cpp, translate.cpp
    // refuse K::kInterval), and its text is parsed by interval_in.
    {INTERVALOID, T::kInterval, D::kInt, F::kInterval, false, false, false, K::kInterval, "interval"},
};

static_assert(sizeof(Interval) == sizeof(eng::Interval) && offsetof(Interval, time) == offsetof(eng::Interval, time) &&
                  offsetof(Interval, day) == offsetof(eng::Interval, day) &&
                  offsetof(Interval, month) == offsetof(eng::Interval, month),
              "engine/batch.h Interval must have PostgreSQL's layout");

// The engine's interval parser (engine/fields.h): PostgreSQL's interval_in,
// under the worker's IntervalStyle, with its error message.
bool parse_interval(std::string_view text, eng::Interval* out, std::string* error) {
  MemoryContext cxt = CurrentMemoryContext;
  char* s = pnstrdup(text.data(), text.size());
  volatile bool ok = false;
  PG_TRY();
  {
    Interval* v = DatumGetIntervalP(
        DirectFunctionCall3(interval_in, CStringGetDatum(s), ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
    memcpy(out, v, sizeof(eng::Interval));
    pfree(v);
    ok = true;
  }
  PG_CATCH();
  {
    MemoryContextSwitchTo(cxt);
    ErrorData* e = CopyErrorData();
    FlushErrorState();
    error->assign(e->message);
    FreeErrorData(e);
  }
  PG_END_TRY();
  pfree(s);
  return ok;
}

}  // namespace

void velostream_types_init() { eng::set_interval_parser(parse_interval); }

const SqlType* velostream_sql_type(Oid oid) {
  for (const SqlType& t : kTypes)
    if (t.oid == oid) return &t;
  return nullptr;
}

bool velostream_engine_type(Oid type, eng::Type* out) {
  const SqlType* t = velostream_sql_type(type);
  if (t == nullptr) return false;
  *out = t->storage;
  return true;
}

Datum velostream_value_datum(Oid type, int64_t i, double f, const eng::Decimal& d, const char* s, size_t len) {
  switch (type) {
    case INT2OID: return Int16GetDatum((int16)i);
    case INT4OID: return Int32GetDatum((int32)i);
    case INT8OID: return Int64GetDatum(i);
    case BOOLOID: return BoolGetDatum(i != 0);
    case DATEOID: return DateADTGetDatum((DateADT)i);
    case TIMESTAMPOID:
    case TIMESTAMPTZOID: return TimestampGetDatum(i);
    case FLOAT4OID: return Float4GetDatum((float4)f);
    case FLOAT8OID: return Float8GetDatum(f);
    case NUMERICOID: {
      char* text = pstrdup(d.to_string().c_str());  // no C++ object alive if numeric_in raises
      return DirectFunctionCall3(numeric_in, CStringGetDatum(text), ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
    }
    case TEXTOID:
    case VARCHAROID: return PointerGetDatum(cstring_to_text_with_len(s, (int)len));
    default: elog(ERROR, "velostream: type %s is not handled natively", format_type_be(type));
  }
  return (Datum)0;
}

bool velostream_const_scalar(const Const* c, eng::Scalar* out) {
  out->is_null = c->constisnull;
  if (c->constisnull) return true;
  if (velostream_datum_fixed(c->consttype, c->constvalue, &out->i, &out->f)) return true;
  switch (c->consttype) {
    case NUMERICOID: {
      char* text = DatumGetCString(DirectFunctionCall1(numeric_out, c->constvalue));
      bool ok = eng::Decimal::parse(text, &out->d);
      pfree(text);
      return ok;
    }
    case TEXTOID:
    case VARCHAROID: out->s = TextDatumGetCString(c->constvalue); return true;
    default: return false;
  }
}

bool velostream_datum_fixed(Oid type, Datum v, int64_t* i, double* f) {
  switch (type) {
    case INT2OID: *i = DatumGetInt16(v); return true;
    case INT4OID: *i = DatumGetInt32(v); return true;
    case INT8OID:
    case TIMESTAMPOID:
    case TIMESTAMPTZOID: *i = DatumGetInt64(v); return true;
    case BOOLOID: *i = DatumGetBool(v) ? 1 : 0; return true;
    case DATEOID: *i = DatumGetDateADT(v); return true;
    case FLOAT4OID: *f = DatumGetFloat4(v); return true;
    case FLOAT8OID: *f = DatumGetFloat8(v); return true;
    default: return false;
  }
}

namespace {

Datum int128_numeric(__int128 v) {
  if (v >= INT64_MIN && v <= INT64_MAX) return NumericGetDatum(int64_to_numeric((int64)v));  // no text round trip
  eng::Decimal d;
  d.coef = v;
  return velostream_value_datum(NUMERICOID, 0, 0, d, nullptr, 0);
}

}  // namespace

Datum velostream_final_datum(const eng::Value& v, Oid type, bool* isnull) {
  using K = eng::Value::Kind;
  *isnull = v.kind == K::kNull;
  switch (v.kind) {
    case K::kNull: return (Datum)0;
    case K::kDatum: return (Datum)v.datum;
    case K::kText: return PointerGetDatum(cstring_to_text_with_len(v.s.data(), (int)v.s.size()));
    case K::kInt:
      if (type == NUMERICOID) return int128_numeric(v.i);
      if (v.i > INT64_MAX || v.i < INT64_MIN || (type == INT4OID && (v.i > INT32_MAX || v.i < INT32_MIN)) ||
          (type == INT2OID && (v.i > INT16_MAX || v.i < INT16_MIN)))
        ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                        errmsg("%s out of range", type == INT2OID ? "smallint" : type == INT4OID ? "integer" : "bigint")));
      return velostream_value_datum(type, (int64_t)v.i, 0, v.d, nullptr, 0);
    case K::kFloat:
    case K::kNumeric: return velostream_value_datum(type, 0, v.f, v.d, nullptr, 0);
    case K::kIntRatio:
    case K::kNumericRatio: {
      Datum num = v.kind == K::kIntRatio ? int128_numeric(v.i) : velostream_value_datum(NUMERICOID, 0, 0, v.d, nullptr, 0);
      return DirectFunctionCall2(numeric_div, num, NumericGetDatum(int64_to_numeric(v.n)));
    }
  }
  return (Datum)0;
}

Datum velostream_column_datum(const eng::Column& c, size_t row, Oid type, bool* isnull) {
  *isnull = c.null[row] != 0;
  if (*isnull) return (Datum)0;
  switch (c.type) {
    case eng::Type::kInt64: return velostream_value_datum(type, c.i64[row], 0, eng::Decimal(), nullptr, 0);
    case eng::Type::kFloat64: return velostream_value_datum(type, 0, c.f64[row], eng::Decimal(), nullptr, 0);
    case eng::Type::kNumeric: return velostream_value_datum(type, 0, 0, c.dec[row], nullptr, 0);
    case eng::Type::kText:
      return velostream_value_datum(type, 0, 0, eng::Decimal(), c.str[row].data(), c.str[row].size());
    case eng::Type::kInterval: {
      Interval* v = (Interval*)palloc(sizeof(Interval));
      memcpy(v, &c.iv[row], sizeof(Interval));
      return IntervalPGetDatum(v);
    }
  }
  return (Datum)0;
}

bool velostream_datum_to_column(Datum v, bool isnull, Oid type, eng::Column* c, size_t row, eng::Arena* arena) {
  c->null[row] = isnull ? 1 : 0;
  if (isnull) return true;
  switch (c->type) {
    case eng::Type::kInt64:
    case eng::Type::kFloat64: {
      int64_t i = 0;
      double f = 0;
      velostream_datum_fixed(type, v, &i, &f);
      if (c->type == eng::Type::kInt64) c->i64[row] = i;
      else c->f64[row] = f;
      return true;
    }
    case eng::Type::kNumeric: {
      char* text = DatumGetCString(DirectFunctionCall1(numeric_out, v));
      bool ok = eng::Decimal::parse(text, &c->dec[row]);
      pfree(text);
      return ok;
    }
    case eng::Type::kText: {
      text* t = DatumGetTextPP(v);
      c->str[row] = arena->copy(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
      return true;
    }
    case eng::Type::kInterval: memcpy(&c->iv[row], DatumGetIntervalP(v), sizeof(eng::Interval)); return true;
  }
  return false;
}

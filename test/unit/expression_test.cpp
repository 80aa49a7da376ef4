// Native expressions (engine/expression.h): values, NULLs, PostgreSQL's
// errors, and evaluation only where the executor would evaluate.
#include "engine/expression.h"

#include <gtest/gtest.h>

#include <limits>
#include <string>

#include "engine/fields.h"

namespace velostream::engine {
namespace {

using Op = ExprNode::Op;

ExprNode col(int c, SqlKind k) {
  ExprNode e;
  e.op = Op::kColumn;
  e.column = c;
  e.type = k;
  return e;
}
ExprNode int_const(int64_t v, SqlKind k = SqlKind::kInt4) {
  ExprNode e;
  e.op = Op::kConst;
  e.type = k;
  e.value.i = v;
  return e;
}
ExprNode node(Op op, SqlKind k, std::vector<ExprNode> args) {
  ExprNode e;
  e.op = op;
  e.type = k;
  e.args = std::move(args);
  return e;
}
ExprNode cmp(CmpOp op, ExprNode a, ExprNode b, CmpDomain d = CmpDomain::kInt) {
  ExprNode e = node(Op::kCompare, SqlKind::kBool, {std::move(a), std::move(b)});
  e.cmp = op;
  e.domain = d;
  return e;
}

// A batch with one int4 column (NULL where `nulls` says) and one text column.
struct Fixture {
  RecordBatch b;
  explicit Fixture(std::vector<int64_t> ints, std::vector<uint8_t> nulls = {}, std::vector<std::string> texts = {}) {
    b.columns.resize(3);
    b.columns[0].type = Type::kInt64;
    b.columns[0].used = true;
    b.columns[1].type = Type::kText;
    b.columns[1].used = true;
    b.columns[2].type = Type::kInt64;
    b.columns[2].used = true;
    b.reset(ints.size());
    for (size_t i = 0; i < ints.size(); ++i) {
      b.columns[0].i64[i] = ints[i];
      b.columns[0].null[i] = nulls.empty() ? 0 : nulls[i];
      std::string t = i < texts.size() ? texts[i] : "";
      b.columns[1].str[i] = b.arena.copy(t.data(), t.size());
      b.columns[1].null[i] = 0;
      b.columns[2].null[i] = 0;
    }
  }
  Column out;
  std::vector<ExprError> errors;
  ExprEvaluator ev;
  void run(const ExprNode& e, const uint8_t* active = nullptr) {
    errors.assign(b.rows, ExprError::kNone);
    ev.evaluate(e, &b, b.rows, active, &out, &errors);
  }
};

TEST(Expression, IntegerArithmeticRaisesOnOverflowAndDivisionByZero) {
  Fixture f({10, 0, 2147483647, -2147483648LL, 7}, {0, 0, 0, 0, 1});
  f.run(node(Op::kDiv, SqlKind::kInt4, {int_const(100), col(0, SqlKind::kInt4)}));
  EXPECT_EQ(f.out.i64[0], 10);
  EXPECT_EQ(f.errors[1], ExprError::kDivisionByZero);
  EXPECT_EQ(f.out.i64[2], 0);
  EXPECT_TRUE(f.out.null[4]);  // NULL divisor: NULL, no error
  EXPECT_EQ(f.errors[4], ExprError::kNone);
  f.run(node(Op::kAdd, SqlKind::kInt4, {col(0, SqlKind::kInt4), int_const(1)}));
  EXPECT_EQ(f.errors[2], ExprError::kIntegerOutOfRange);
  EXPECT_EQ(f.out.i64[3], -2147483647);
  f.run(node(Op::kDiv, SqlKind::kInt4, {col(0, SqlKind::kInt4), int_const(-1)}));
  EXPECT_EQ(f.errors[3], ExprError::kIntegerOutOfRange);  // INT_MIN / -1
  f.run(node(Op::kMod, SqlKind::kInt4, {col(0, SqlKind::kInt4), int_const(-1)}));
  EXPECT_EQ(f.out.i64[3], 0);
  EXPECT_EQ(f.errors[3], ExprError::kNone);
  EXPECT_STREQ(expr_error_message(ExprError::kDivisionByZero), "division by zero");
}

TEST(Expression, CaseEvaluatesABranchOnlyWhereItIsTaken) {
  Fixture f({0, 4, 5});
  // CASE WHEN x = 0 THEN 0 ELSE 100 / x END
  ExprNode e = node(Op::kCase, SqlKind::kInt4,
                    {cmp(CmpOp::kEq, col(0, SqlKind::kInt4), int_const(0)), int_const(0),
                     node(Op::kDiv, SqlKind::kInt4, {int_const(100), col(0, SqlKind::kInt4)})});
  f.run(e);
  EXPECT_EQ(f.errors[0], ExprError::kNone);
  EXPECT_EQ(f.out.i64[0], 0);
  EXPECT_EQ(f.out.i64[1], 25);
  EXPECT_EQ(f.out.i64[2], 20);
  // x <> 0 AND 100 / x > 21: no division for x = 0.
  ExprNode a = node(Op::kAnd, SqlKind::kBool,
                    {cmp(CmpOp::kNe, col(0, SqlKind::kInt4), int_const(0)),
                     cmp(CmpOp::kGt, node(Op::kDiv, SqlKind::kInt4, {int_const(100), col(0, SqlKind::kInt4)}),
                         int_const(21))});
  f.run(a);
  EXPECT_EQ(f.errors[0], ExprError::kNone);
  EXPECT_EQ(f.out.i64[0], 0);
  EXPECT_EQ(f.out.i64[1], 1);
  EXPECT_EQ(f.out.i64[2], 0);
  // Inactive rows are not evaluated at all.
  uint8_t active[3] = {0, 1, 1};
  f.run(node(Op::kDiv, SqlKind::kInt4, {int_const(100), col(0, SqlKind::kInt4)}), active);
  EXPECT_EQ(f.errors[0], ExprError::kNone);
  EXPECT_TRUE(f.out.null[0]);
}

TEST(Expression, ThreeValuedLogicAndCoalesceAndGreatest) {
  Fixture f({1, 0, 0}, {0, 0, 1});
  ExprNode x = col(0, SqlKind::kInt4);
  ExprNode nullc = int_const(0);
  nullc.value.is_null = true;
  // (x = 1) OR NULL: true, NULL, NULL
  f.run(node(Op::kOr, SqlKind::kBool, {cmp(CmpOp::kEq, x, int_const(1)), cmp(CmpOp::kEq, x, nullc)}));
  EXPECT_FALSE(f.out.null[0]);
  EXPECT_EQ(f.out.i64[0], 1);
  EXPECT_TRUE(f.out.null[1]);
  EXPECT_TRUE(f.out.null[2]);
  f.run(node(Op::kCoalesce, SqlKind::kInt4, {x, int_const(42)}));
  EXPECT_EQ(f.out.i64[2], 42);
  EXPECT_EQ(f.out.i64[0], 1);
  ExprNode g = node(Op::kGreatest, SqlKind::kInt4, {x, nullc, int_const(0)});
  f.run(g);
  EXPECT_EQ(f.out.i64[0], 1);
  EXPECT_EQ(f.out.i64[2], 0);  // NULLs ignored
}

TEST(Expression, LikeConcatLower) {
  Fixture f({0, 0, 0, 0}, {}, {"ORD-ATL", "été", "xORD", "Ab_c"});
  ExprNode like = node(Op::kLike, SqlKind::kBool, {col(1, SqlKind::kText)});
  like.pattern = "ORD%";
  f.run(like);
  EXPECT_EQ(f.out.i64[0], 1);
  EXPECT_EQ(f.out.i64[2], 0);
  like.pattern = "_t_";  // one character each, not one byte
  f.run(like);
  EXPECT_EQ(f.out.i64[1], 1);
  like.pattern = "Ab\\_%";
  f.run(like);
  EXPECT_EQ(f.out.i64[3], 1);
  EXPECT_EQ(f.out.i64[0], 0);
  ExprNode sep;
  sep.op = Op::kConst;
  sep.type = SqlKind::kText;
  sep.value.s = "/";
  f.run(node(Op::kConcat, SqlKind::kText, {col(1, SqlKind::kText), sep}));
  EXPECT_EQ(f.out.str[0], "ORD-ATL/");
  ExprNode low = node(Op::kLower, SqlKind::kText, {col(1, SqlKind::kText)});
  f.run(low);
  EXPECT_EQ(f.out.str[0], "ord-atl");
  EXPECT_EQ(f.out.str[1], "été");
  ExprNode up = node(Op::kUpper, SqlKind::kText, {col(1, SqlKind::kText)});
  up.ascii_case = false;
  up.locale = make_ctype_locale("C.UTF-8");
  ASSERT_NE(up.locale, nullptr);
  f.run(up);
  EXPECT_EQ(f.out.str[1], "ÉTÉ");
}

TEST(Expression, DateTruncExtractDateBin) {
  int64_t ts;
  ASSERT_TRUE(parse_pg_timestamp("2024-02-29 13:45:12.345678", false, &ts));
  Fixture f({0});
  f.b.columns[2].i64[0] = ts;
  ExprNode t = col(2, SqlKind::kTimestamp);
  auto trunc = [&](TruncUnit u) {
    ExprNode e = node(Op::kDateTrunc, SqlKind::kTimestamp, {t});
    e.unit = u;
    f.run(e);
    return f.out.i64[0];
  };
  int64_t want;
  ASSERT_TRUE(parse_pg_timestamp("2024-02-29 00:00", false, &want));
  EXPECT_EQ(trunc(TruncUnit::kDay), want);
  ASSERT_TRUE(parse_pg_timestamp("2024-02-26 00:00", false, &want));  // Monday
  EXPECT_EQ(trunc(TruncUnit::kWeek), want);
  ASSERT_TRUE(parse_pg_timestamp("2024-01-01 00:00", false, &want));
  EXPECT_EQ(trunc(TruncUnit::kQuarter), want);
  ASSERT_TRUE(parse_pg_timestamp("2024-02-29 13:45:12.345", false, &want));
  EXPECT_EQ(trunc(TruncUnit::kMilliseconds), want);
  auto extract = [&](ExtractField fld) {
    ExprNode e = node(Op::kExtract, SqlKind::kNumeric, {t});
    e.field = fld;
    f.run(e);
    return f.out.dec[0].to_string();
  };
  EXPECT_EQ(extract(ExtractField::kSecond), "12.345678");
  EXPECT_EQ(extract(ExtractField::kMilliseconds), "12345.678");
  EXPECT_EQ(extract(ExtractField::kDoy), "60");
  EXPECT_EQ(extract(ExtractField::kDow), "4");
  EXPECT_EQ(extract(ExtractField::kWeek), "9");
  EXPECT_EQ(extract(ExtractField::kEpoch), "1709214312.345678");
  ExprNode bin = node(Op::kDateBin, SqlKind::kTimestamp, {t});
  bin.i1 = 15LL * 60 * 1000000;
  ASSERT_TRUE(parse_pg_timestamp("2001-01-01 00:05", false, &bin.i2));
  f.run(bin);
  ASSERT_TRUE(parse_pg_timestamp("2024-02-29 13:35", false, &want));
  EXPECT_EQ(f.out.i64[0], want);
}

TEST(Expression, AtTimeZoneUsesTheOffsetTable) {
  int64_t ts;
  ASSERT_TRUE(parse_pg_timestamp("2024-03-10 07:30:00Z", true, &ts));  // 1 h after the US DST switch
  Fixture f({0});
  f.b.columns[2].i64[0] = ts;
  auto z = std::make_shared<ZoneOffsets>();
  z->before = -5 * 3600;
  z->at = {1710054000};  // 2024-03-10 07:00 UTC
  z->offset = {-4 * 3600};
  ExprNode e = node(Op::kAtTimeZone, SqlKind::kTimestamp, {col(2, SqlKind::kTimestampTz)});
  e.zone = z;
  f.run(e);
  int64_t want;
  ASSERT_TRUE(parse_pg_timestamp("2024-03-10 03:30", false, &want));
  EXPECT_EQ(f.out.i64[0], want);
}

TEST(Expression, CastsFollowPostgreSQL) {
  Fixture f({0});
  ExprNode half;
  half.op = Op::kConst;
  half.type = SqlKind::kFloat8;
  half.value.f = 2.5;
  ExprNode c = node(Op::kCast, SqlKind::kInt4, {half});
  c.from = SqlKind::kFloat8;
  f.run(c);
  EXPECT_EQ(f.out.i64[0], 2);  // rint: half to even
  ExprNode num;
  num.op = Op::kConst;
  num.type = SqlKind::kNumeric;
  ASSERT_TRUE(Decimal::parse("-2.5", &num.value.d));
  ExprNode n2i = node(Op::kCast, SqlKind::kInt4, {num});
  n2i.from = SqlKind::kNumeric;
  f.run(n2i);
  EXPECT_EQ(f.out.i64[0], -3);  // numeric rounds half away from zero
  ExprNode big = int_const(40000, SqlKind::kInt4);
  ExprNode i2 = node(Op::kCast, SqlKind::kInt2, {big});
  i2.from = SqlKind::kInt4;
  f.run(i2);
  EXPECT_EQ(f.errors[0], ExprError::kSmallintOutOfRange);
  ExprNode mul = node(Op::kMul, SqlKind::kNumeric, {num, num});
  f.run(mul);
  EXPECT_EQ(f.out.dec[0].to_string(), "6.25");
}

// Found by sql/native_expressions.sql, which compares every native operation
// family with PostgreSQL's executor on edge values.
ExprNode num_const(const char* text) {
  ExprNode e;
  e.op = Op::kConst;
  e.type = SqlKind::kNumeric;
  EXPECT_TRUE(Decimal::parse(text, &e.value.d)) << text;
  return e;
}
ExprNode small_num(int64_t coef, int scale) {  // coef * 10^-scale, beyond what parse takes in exponent form
  ExprNode e;
  e.op = Op::kConst;
  e.type = SqlKind::kNumeric;
  e.value.d.coef = coef;
  e.value.d.scale = static_cast<int16_t>(scale);
  return e;
}

TEST(Expression, NumericComparisonIsExactWhereScalesDoNotAlign) {
  // numeric_cmp: 1e-400 > 1e-9000, though both are 0 as doubles and their
  // coefficients cannot be aligned in 128 bits.
  Fixture f({0});
  ExprNode gt = cmp(CmpOp::kGt, small_num(1, 400), small_num(1, 9000), CmpDomain::kNumeric);
  f.run(gt);
  EXPECT_EQ(f.out.i64[0], 1);
  f.run(cmp(CmpOp::kLt, small_num(-1, 400), small_num(-1, 9000), CmpDomain::kNumeric));
  EXPECT_EQ(f.out.i64[0], 1);
  f.run(cmp(CmpOp::kEq, small_num(10, 401), small_num(1, 400), CmpDomain::kNumeric));
  EXPECT_EQ(f.out.i64[0], 1);
  f.run(cmp(CmpOp::kGt, num_const("99999999999999999999999999999999999999"), num_const("0.5"), CmpDomain::kNumeric));
  EXPECT_EQ(f.out.i64[0], 1);
  ExprNode g = node(Op::kGreatest, SqlKind::kNumeric, {small_num(2, 9000), small_num(1, 400), num_const("0")});
  g.domain = CmpDomain::kNumeric;
  f.run(g);
  EXPECT_EQ(f.out.dec[0].scale, 400);
}

TEST(Expression, FloatToNumericKeepsSmallValues) {
  // float8_numeric reads "%.15g" as numeric_in does: 1e-46 is
  // 0.000...1 with scale 46 (Decimal::parse takes no such exponent).
  Fixture f({0});
  ExprNode v;
  v.op = Op::kConst;
  v.type = SqlKind::kFloat8;
  v.value.f = 1e-46;
  ExprNode c = node(Op::kCast, SqlKind::kNumeric, {v});
  c.from = SqlKind::kFloat8;
  f.run(c);
  ASSERT_EQ(f.errors[0], ExprError::kNone);
  EXPECT_EQ(f.out.dec[0].to_string(), "0." + std::string(45, '0') + "1");
  c.args[0].value.f = 4.9e-324;
  f.run(c);
  ASSERT_EQ(f.errors[0], ExprError::kNone);
  EXPECT_EQ(f.out.dec[0].scale, 338);  // 4.94065645841247e-324
  c.args[0].value.f = -123456789.125;
  f.run(c);
  EXPECT_EQ(f.out.dec[0].to_string(), "-123456789.125");
  c.args[0].value.f = 1e20;
  f.run(c);
  EXPECT_EQ(f.out.dec[0].to_string(), "100000000000000000000");
  c.args[0].value.f = 1e300;  // beyond 38 digits: the engine's limit
  f.run(c);
  EXPECT_EQ(f.errors[0], ExprError::kNumericTooLong);
  c.from = SqlKind::kFloat4;
  c.args[0].type = SqlKind::kFloat4;
  c.args[0].value.f = static_cast<double>(1.4e-45f);
  f.run(c);
  ASSERT_EQ(f.errors[0], ExprError::kNone);
  EXPECT_EQ(f.out.dec[0].to_string(), "0." + std::string(44, '0') + "14013");
}

TEST(Expression, NumericProductRoundsBeyondTheLargestScale) {
  // numeric_mul rounds a product with more than 16383 digits after the point.
  Fixture f({0});
  f.run(node(Op::kMul, SqlKind::kNumeric, {small_num(1, 9000), small_num(1, 9000)}));
  ASSERT_EQ(f.errors[0], ExprError::kNone);
  EXPECT_EQ(f.out.dec[0].coef, 0);
  EXPECT_EQ(f.out.dec[0].scale, Decimal::kMaxScale);
  f.run(node(Op::kMul, SqlKind::kNumeric, {small_num(5, 8192), small_num(-1, 8192)}));  // -5e-16384
  ASSERT_EQ(f.errors[0], ExprError::kNone);
  EXPECT_EQ(f.out.dec[0].coef, -1);  // half away from zero
  EXPECT_EQ(f.out.dec[0].scale, Decimal::kMaxScale);
  f.run(node(Op::kMul, SqlKind::kNumeric, {small_num(4, 8192), small_num(1, 8192)}));
  EXPECT_EQ(f.out.dec[0].coef, 0);
}

TEST(Expression, ExtractEpochNearTheEndOfTimestamps) {
  // From PG_INT64_MAX + epoch on, timestamp_part_common divides as numerics
  // (4 decimals at that size) and rounds to 6.
  Fixture f({0, 0, 0, 0});
  const int64_t edge = std::numeric_limits<int64_t>::max() + (-946684800LL * 1000000);
  f.b.columns[2].i64[0] = edge - 1;             // 294247-01-10 04:00:54.775806: exact
  f.b.columns[2].i64[1] = edge;                 // .775807
  f.b.columns[2].i64[2] = edge + 43;            // .775850
  f.b.columns[2].i64[3] = 9223371331199999999;  // 294276-12-31 23:59:59.999999
  ExprNode e = node(Op::kExtract, SqlKind::kNumeric, {col(2, SqlKind::kTimestamp)});
  e.field = ExtractField::kEpoch;
  f.run(e);
  EXPECT_EQ(f.out.dec[0].to_string(), "9223372036854.775806");
  EXPECT_EQ(f.out.dec[1].to_string(), "9223372036854.775800");
  EXPECT_EQ(f.out.dec[2].to_string(), "9223372036854.775900");
  EXPECT_EQ(f.out.dec[3].to_string(), "9224318016000.000000");
}

}  // namespace
}  // namespace velostream::engine

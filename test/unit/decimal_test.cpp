#include "engine/decimal.h"

#include <gtest/gtest.h>

using velostream::engine::Decimal;
using velostream::engine::decimal_add;
using velostream::engine::decimal_cmp;

namespace {
Decimal D(const char* s) {
  Decimal d;
  EXPECT_TRUE(Decimal::parse(s, &d)) << s;
  return d;
}
}  // namespace

TEST(Decimal, ParsesAndPrintsKeepingScale) {
  EXPECT_EQ(D("1.50").to_string(), "1.50");
  EXPECT_EQ(D("-0.05").to_string(), "-0.05");
  EXPECT_EQ(D("42").to_string(), "42");
  EXPECT_EQ(D("1.5e3").to_string(), "1500");
  EXPECT_EQ(D("12e-3").to_string(), "0.012");
  EXPECT_EQ(D("NaN").to_string(), "NaN");
  EXPECT_EQ(D("-Infinity").to_string(), "-Infinity");
}

TEST(Decimal, RejectsMalformedAndTooLong) {
  Decimal d;
  EXPECT_FALSE(Decimal::parse("abc", &d));
  EXPECT_FALSE(Decimal::parse("1.2.3", &d));
  EXPECT_FALSE(Decimal::parse("", &d));
  EXPECT_FALSE(Decimal::parse("123456789012345678901234567890123456789", &d));  // 39 digits
  EXPECT_TRUE(Decimal::parse("12345678901234567890123456789012345678", &d));    // 38 digits
}

TEST(Decimal, AddsWithWidestScale) {
  Decimal r;
  ASSERT_TRUE(decimal_add(D("1.5"), D("2.25"), &r));
  EXPECT_EQ(r.to_string(), "3.75");
  ASSERT_TRUE(decimal_add(D("-1.50"), D("1"), &r));
  EXPECT_EQ(r.to_string(), "-0.50");
}

TEST(Decimal, SpecialValuesFollowPostgres) {
  Decimal r;
  ASSERT_TRUE(decimal_add(D("Infinity"), D("-Infinity"), &r));
  EXPECT_EQ(r.kind, Decimal::kNaN);
  ASSERT_TRUE(decimal_add(D("Infinity"), D("5"), &r));
  EXPECT_EQ(r.kind, Decimal::kPosInf);
  ASSERT_TRUE(decimal_add(D("NaN"), D("5"), &r));
  EXPECT_EQ(r.kind, Decimal::kNaN);
  EXPECT_GT(decimal_cmp(D("NaN"), D("Infinity")), 0);
  EXPECT_LT(decimal_cmp(D("-Infinity"), D("-1e30")), 0);
  EXPECT_EQ(decimal_cmp(D("1.50"), D("1.5")), 0);
  EXPECT_LT(decimal_cmp(D("1.49"), D("1.5")), 0);
}

TEST(Decimal, DetectsOverflow) {
  Decimal r;
  EXPECT_FALSE(decimal_add(D("99999999999999999999999999999999999999"), D("1"), &r));
}

TEST(Decimal, NormalizesTrailingZeros) {
  EXPECT_EQ(D("1.500").normalized().to_string(), "1.5");
  EXPECT_EQ(D("100").normalized().to_string(), "100");
}

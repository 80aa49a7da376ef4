// The COPY fast paths: values must equal PostgreSQL's own input functions
// (expected figures computed by PostgreSQL 15: extract(epoch ...)), and any
// form outside the strict subset must be refused so PostgreSQL parses it.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

#include "engine/fields.h"

namespace eng = velostream::engine;

TEST(PgInput, TimestampsWithZoneEqualPostgres) {
  struct Case {
    const char* text;
    int64_t usec;
  } cases[] = {
      {"2001-01-01T00:01:00Z", 31622460000000},
      {"2001-01-01T00:01:00z", 31622460000000},
      {"2001-01-01 00:05+00", 31622700000000},
      {"1999-12-31 23:59:59.123456-08", 28799123456},
      {"2024-02-29T12:30:15.5+05:30", 762505215500000},
      {"2000-01-01T00:00:00+0130", -5400000000},
      {"1000-03-01T00:00-15:59", -31551753660000000},
  };
  for (const Case& c : cases) {
    int64_t v = 0;
    ASSERT_TRUE(eng::parse_pg_timestamp(c.text, true, &v)) << c.text;
    EXPECT_EQ(v, c.usec) << c.text;
  }
}

TEST(PgInput, TimestampWithoutZone) {
  int64_t v = 0;
  ASSERT_TRUE(eng::parse_pg_timestamp("2001-07-04 10:11:12.25", false, &v));
  EXPECT_EQ(v, 47556672250000);
  // A zone on a timestamp (PostgreSQL ignores it) goes to PostgreSQL.
  EXPECT_FALSE(eng::parse_pg_timestamp("2001-07-04 10:11:12Z", false, &v));
}

TEST(PgInput, TimestampsLeftToPostgres) {
  const char* refused[] = {
      "2001-01-01T00:01:00",          // no zone: the session's TimeZone decides
      "2001-01-01T00:01:00.1234567Z",  // PostgreSQL rounds the 7th digit
      "2001-01-01T24:00:00Z",          // valid in PostgreSQL, not a fast path
      "2001-01-01T23:59:60Z",          // leap second
      "2001-02-29T00:00:00Z",          // not a leap year
      "0999-01-01T00:00:00Z",          // year below 1000
      "2001-01-01T00:00:00+16",        // offset beyond 15:59
      "2001-01-01T00:00:00 UTC",       // named zone
      "Jan 1 2001 00:00 UTC",          // other formats
      "2001-01-01",                    // date only
      " 2001-01-01T00:00:00Z",         // spaces
      "2001-01-01T00:00:00Z ",
      "2001-01-01T00:00:00.Z",
      "",
  };
  for (const char* t : refused) {
    int64_t v = 0;
    EXPECT_FALSE(eng::parse_pg_timestamp(t, true, &v)) << t;
  }
}

TEST(PgInput, Integers) {
  int64_t v = 0;
  ASSERT_TRUE(eng::parse_pg_integer("-2147483648", INT32_MIN, INT32_MAX, &v));
  EXPECT_EQ(v, INT32_MIN);
  ASSERT_TRUE(eng::parse_pg_integer("+42", INT32_MIN, INT32_MAX, &v));
  EXPECT_EQ(v, 42);
  ASSERT_TRUE(eng::parse_pg_integer("007", INT16_MIN, INT16_MAX, &v));
  EXPECT_EQ(v, 7);
  ASSERT_TRUE(eng::parse_pg_integer("-999999999999999999", INT64_MIN, INT64_MAX, &v));
  EXPECT_EQ(v, -999999999999999999LL);
  // Out of range, 19+ digits, spaces, other forms: PostgreSQL decides.
  const char* refused[] = {"2147483648", "9223372036854775807", " 1", "1 ", "1.0", "0x10", "1_000", "", "-", "+"};
  for (const char* t : refused) EXPECT_FALSE(eng::parse_pg_integer(t, INT32_MIN, INT32_MAX, &v)) << t;
  EXPECT_FALSE(eng::parse_pg_integer("40000", INT16_MIN, INT16_MAX, &v));
}

// More than 18 fraction digits overflowed the fraction before the "more than
// 6 digits" check refused it (signed overflow, reported by UBSan; found by
// the csv_decoder fuzz target, which feeds COPY's fast-path parsers too).
TEST(PgInput, LongFractionsAreLeftToPostgres) {
  int64_t v = 0;
  EXPECT_FALSE(eng::parse_pg_timestamp("2001-01-02 23:59:59.99988888888888888888888888Z", true, &v));
  EXPECT_FALSE(eng::parse_pg_timestamp("2001-01-02 23:59:59.1234567", false, &v));
  ASSERT_TRUE(eng::parse_pg_timestamp("2001-01-02 23:59:59.123456", false, &v));
  EXPECT_EQ(v % 1000000, 123456);
}

#include "engine/batch_codec.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

namespace eng = velostream::engine;

namespace {

void make_batch(eng::RecordBatch& b) {
  b.columns.resize(5);
  eng::Type types[5] = {eng::Type::kInt64, eng::Type::kFloat64, eng::Type::kNumeric, eng::Type::kText,
                        eng::Type::kInt64};
  for (int c = 0; c < 5; ++c) {
    b.columns[c].type = types[c];
    b.columns[c].used = true;
  }
  b.reset(3);
  b.columns[0].i64 = {1, -2, 3};
  b.columns[0].null = {0, 0, 1};
  b.columns[1].f64 = {1.5, -0.0, 1e300};
  b.columns[1].null = {0, 0, 0};
  eng::Decimal::parse("-12.340", &b.columns[2].dec[0]);
  eng::Decimal::parse("NaN", &b.columns[2].dec[1]);
  b.columns[2].null = {0, 0, 1};
  b.columns[3].str[0] = b.arena.copy("ATL", 3);
  b.columns[3].str[1] = b.arena.copy("", 0);
  b.columns[3].null = {0, 0, 1};
  b.columns[4].used = false;  // no view reads it
}

void empty_like(eng::RecordBatch& b, bool used4) {
  b.columns.resize(5);
  eng::Type types[5] = {eng::Type::kInt64, eng::Type::kFloat64, eng::Type::kNumeric, eng::Type::kText,
                        eng::Type::kInt64};
  for (int c = 0; c < 5; ++c) {
    b.columns[c].type = types[c];
    b.columns[c].used = c < 4 || used4;
  }
}

}  // namespace

TEST(BatchCodec, RoundTripsEveryTypeAndNull) {
  eng::RecordBatch in;
  make_batch(in);
  std::string bytes;
  eng::encode_batch(in, &bytes);
  eng::RecordBatch out;
  empty_like(out, false);
  std::string error;
  ASSERT_TRUE(eng::decode_batch(bytes.data(), bytes.size(), &out, &error)) << error;
  ASSERT_EQ(out.rows, 3u);
  EXPECT_EQ(out.xid.size(), 3u);
  EXPECT_EQ(out.columns[0].i64[0], 1);
  EXPECT_EQ(out.columns[0].i64[1], -2);
  EXPECT_EQ(out.columns[0].null[2], 1);
  EXPECT_EQ(out.columns[1].f64[2], 1e300);
  EXPECT_TRUE(std::signbit(out.columns[1].f64[1]));
  EXPECT_EQ(out.columns[2].dec[0].to_string(), "-12.340");
  EXPECT_EQ(out.columns[2].dec[1].kind, eng::Decimal::kNaN);
  EXPECT_EQ(out.columns[2].null[2], 1);
  EXPECT_EQ(out.columns[3].str[0], "ATL");
  EXPECT_EQ(out.columns[3].str[1], "");
  EXPECT_EQ(out.columns[3].null[1], 0);
  EXPECT_EQ(out.columns[3].null[2], 1);
  // text values point into the serialised bytes, not into a copy
  EXPECT_GE(out.columns[3].str[0].data(), bytes.data());
  EXPECT_LT(out.columns[3].str[0].data(), bytes.data() + bytes.size());
}

TEST(BatchCodec, SkipsColumnsNoViewReads) {
  eng::RecordBatch in;
  make_batch(in);
  in.columns[4].used = true;
  in.columns[4].resize(3);
  in.columns[4].i64 = {7, 8, 9};
  in.columns[4].null = {0, 0, 0};
  std::string bytes;
  eng::encode_batch(in, &bytes);
  eng::RecordBatch out;
  empty_like(out, false);
  out.columns[0].used = false;
  std::string error;
  ASSERT_TRUE(eng::decode_batch(bytes.data(), bytes.size(), &out, &error)) << error;
  EXPECT_TRUE(out.columns[0].i64.empty());
  EXPECT_EQ(out.columns[3].str[0], "ATL");
}

TEST(BatchCodec, RejectsWrongShapeAndTruncation) {
  eng::RecordBatch in;
  make_batch(in);
  std::string bytes;
  eng::encode_batch(in, &bytes);
  std::string error;
  eng::RecordBatch needs4;
  empty_like(needs4, true);  // column 4 was not stored
  EXPECT_FALSE(eng::decode_batch(bytes.data(), bytes.size(), &needs4, &error));
  EXPECT_NE(error.find("not stored"), std::string::npos);
  eng::RecordBatch other;
  empty_like(other, false);
  other.columns[1].type = eng::Type::kInt64;
  EXPECT_FALSE(eng::decode_batch(bytes.data(), bytes.size(), &other, &error));
  for (size_t cut = 0; cut < bytes.size(); cut += 7) {
    eng::RecordBatch out;
  empty_like(out, false);
    EXPECT_FALSE(eng::decode_batch(bytes.data(), cut, &out, &error)) << "cut at " << cut;
  }
  eng::RecordBatch fewer;
  fewer.columns.resize(2);
  EXPECT_FALSE(eng::decode_batch(bytes.data(), bytes.size(), &fewer, &error));
}

// A batch of no rows has columns with no storage (data() == nullptr): the
// codec must not hand those to memchr / memcpy / memset (undefined behaviour,
// reported by UBSan; found by the batch_codec fuzz target).
TEST(BatchCodec, RoundTripsABatchOfNoRows) {
  eng::RecordBatch in;
  empty_like(in, true);
  in.reset(0);
  std::string bytes;
  eng::encode_batch(in, &bytes);
  EXPECT_EQ(bytes.size(), 12u + 5 * 2 + 4);  // header, type + has_nulls per column, text's one offset
  eng::RecordBatch out;
  empty_like(out, true);
  std::string error;
  ASSERT_TRUE(eng::decode_batch(bytes.data(), bytes.size(), &out, &error)) << error;
  EXPECT_EQ(out.rows, 0u);
  EXPECT_TRUE(out.xid.empty());
  std::string again;
  eng::encode_batch(out, &again);
  EXPECT_EQ(again, bytes);
}

namespace {

// A one-column stream of `type`, with that column read by a view.
void one_column(eng::RecordBatch& b, eng::Type type) {
  b.columns.resize(1);
  b.columns[0].type = type;
  b.columns[0].used = true;
}

}  // namespace

// A corrupt row count made decode_batch size the batch for it before finding
// the bytes missing: 2^31 rows allocated 17 GB (libFuzzer's out-of-memory
// report in the batch_codec target). Now nothing is sized before the bytes
// are known to be there, and more than kMaxBatchRows rows are refused.
TEST(BatchCodec, CorruptRowCountsAllocateNothing) {
  eng::RecordBatch in;
  one_column(in, eng::Type::kInt64);
  in.reset(2);
  in.columns[0].i64 = {1, 2};
  in.columns[0].null = {0, 0};
  std::string bytes;
  eng::encode_batch(in, &bytes);
  const uint32_t claimed = 1u << 20;
  std::memcpy(&bytes[4], &claimed, 4);  // u32 rows after the magic
  eng::RecordBatch out;
  one_column(out, eng::Type::kInt64);
  std::string error;
  EXPECT_FALSE(eng::decode_batch(bytes.data(), bytes.size(), &out, &error));
  EXPECT_EQ(out.rows, 0u);
  EXPECT_LT(out.columns[0].i64.capacity(), claimed);
  EXPECT_LT(out.columns[0].null.capacity(), claimed);
  EXPECT_LT(out.xid.capacity(), claimed);

  // No column stored: the row count is all there is, and it has a limit.
  eng::RecordBatch unread;
  one_column(unread, eng::Type::kInt64);
  unread.columns[0].used = false;
  bytes.clear();
  eng::encode_batch(unread, &bytes);
  uint32_t rows = eng::kMaxBatchRows;
  std::memcpy(&bytes[4], &rows, 4);
  ASSERT_TRUE(eng::decode_batch(bytes.data(), bytes.size(), &unread, &error)) << error;
  EXPECT_EQ(unread.rows, eng::kMaxBatchRows);
  rows = eng::kMaxBatchRows + 1;
  std::memcpy(&bytes[4], &rows, 4);
  EXPECT_FALSE(eng::decode_batch(bytes.data(), bytes.size(), &unread, &error));
  EXPECT_EQ(unread.rows, 0u);
}

// decode_batch accepted NULL flags other than 0 and 1 (readers took 2 as
// NULL, encode_batch did not, so a round trip lost it) and numerics
// encode_batch cannot write (an unknown kind, over 38 digits); found by the
// batch_codec fuzz target's round trip.
TEST(BatchCodec, RejectsValuesEncodeCannotWrite) {
  eng::RecordBatch in;
  one_column(in, eng::Type::kNumeric);
  in.reset(2);
  eng::Decimal::parse("-1.5", &in.columns[0].dec[0]);
  in.columns[0].null = {0, 1};
  std::string good;
  eng::encode_batch(in, &good);
  // magic, rows, columns; type, has_nulls; 2 null flags; 2 x (coef, scale, kind)
  ASSERT_EQ(good.size(), 12u + 2 + 2 + 2 * 19);
  const size_t flags = 14, coef0 = 16, kind0 = 16 + 18, coef1 = 16 + 19;
  eng::RecordBatch out;
  one_column(out, eng::Type::kNumeric);
  std::string error;
  ASSERT_TRUE(eng::decode_batch(good.data(), good.size(), &out, &error)) << error;
  EXPECT_EQ(out.columns[0].dec[0].to_string(), "-1.5");

  std::string bad = good;
  bad[flags + 1] = 2;
  EXPECT_FALSE(eng::decode_batch(bad.data(), bad.size(), &out, &error));
  EXPECT_EQ(out.rows, 0u);
  bad = good;
  bad[kind0] = 7;
  EXPECT_FALSE(eng::decode_batch(bad.data(), bad.size(), &out, &error));
  bad = good;
  const __int128 huge = static_cast<__int128>(static_cast<unsigned __int128>(1) << 127);
  std::memcpy(&bad[coef0], &huge, sizeof huge);
  EXPECT_FALSE(eng::decode_batch(bad.data(), bad.size(), &out, &error));
  // The value slot of a NULL is unspecified: anything goes there.
  bad = good;
  std::memcpy(&bad[coef1], &huge, sizeof huge);
  EXPECT_TRUE(eng::decode_batch(bad.data(), bad.size(), &out, &error)) << error;
  EXPECT_EQ(out.columns[0].null[1], 1);
}

// Interval columns travel as PostgreSQL's 16-byte Interval, fields intact.
TEST(BatchCodec, RoundTripsIntervals) {
  eng::RecordBatch in;
  in.columns.resize(1);
  in.columns[0].type = eng::Type::kInterval;
  in.columns[0].used = true;
  in.reset(3);
  in.columns[0].iv[0] = {86400000000LL, 0, 0};  // '24 hours'
  in.columns[0].iv[1] = {-1, 1, -14};           // '-1 years -2 mons +1 day -00:00:00.000001'
  in.columns[0].null = {0, 0, 1};
  std::string bytes;
  eng::encode_batch(in, &bytes);
  eng::RecordBatch out;
  out.columns.resize(1);
  out.columns[0].type = eng::Type::kInterval;
  out.columns[0].used = true;
  std::string error;
  ASSERT_TRUE(eng::decode_batch(bytes.data(), bytes.size(), &out, &error)) << error;
  ASSERT_EQ(out.rows, 3u);
  EXPECT_EQ(out.columns[0].iv[0].time, 86400000000LL);
  EXPECT_EQ(out.columns[0].iv[0].day, 0);
  EXPECT_EQ(out.columns[0].iv[1].time, -1);
  EXPECT_EQ(out.columns[0].iv[1].day, 1);
  EXPECT_EQ(out.columns[0].iv[1].month, -14);
  EXPECT_EQ(out.columns[0].null[2], 1);
  // a column of another type in the log is refused, as for every type
  out.columns[0].type = eng::Type::kInt64;
  EXPECT_FALSE(eng::decode_batch(bytes.data(), bytes.size(), &out, &error));
  // truncated values
  out.columns[0].type = eng::Type::kInterval;
  EXPECT_FALSE(eng::decode_batch(bytes.data(), bytes.size() - 1, &out, &error));
}

// Intervals order as interval_cmp_value: months as 30 days, days as 24 hours.
TEST(Interval, SpanOrdersAsPostgreSQL) {
  const eng::Interval day{0, 1, 0}, hours24{86400000000LL, 0, 0}, month{0, 0, 1}, days30{0, 30, 0},
      days31{0, 31, 0}, neg{-1, 0, 0};
  EXPECT_EQ(day.span(), hours24.span());
  EXPECT_EQ(month.span(), days30.span());
  EXPECT_LT(month.span(), days31.span());
  EXPECT_LT(neg.span(), eng::Interval{}.span());
  // the extremes of every field do not overflow the 128-bit span
  const eng::Interval max{INT64_MAX, INT32_MAX, INT32_MAX}, min{INT64_MIN, INT32_MIN, INT32_MIN};
  EXPECT_GT(max.span(), static_cast<__int128>(INT64_MAX));
  EXPECT_LT(min.span(), static_cast<__int128>(INT64_MIN));
}

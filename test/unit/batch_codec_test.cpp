#include "engine/batch_codec.h"

#include <gtest/gtest.h>

#include <cmath>

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

#include "engine/view_aggregator.h"
#include "engine/window.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <tuple>
#include <set>
#include <string>

using namespace velostream::engine;

namespace {

constexpr int kOrigin = 0, kDelay = 1, kTs = 2, kMiles = 3;

// A batch of (origin text, delay int, ts timestamp, miles float8) rows;
// std::nullopt-like NULLs are given by the is_null vectors.
struct Rows {
  std::vector<std::string> origin;
  std::vector<int64_t> delay;
  std::vector<int64_t> ts;
  std::vector<double> miles;
  std::vector<bool> origin_null, delay_null;
  std::vector<int64_t> xid;
};

void fill(const Rows& r, RecordBatch* b) {
  b->columns.resize(4);
  b->columns[kOrigin].type = Type::kText;
  b->columns[kDelay].type = Type::kInt64;
  b->columns[kTs].type = Type::kInt64;
  b->columns[kMiles].type = Type::kFloat64;
  for (auto& c : b->columns) c.used = true;
  b->reset(r.origin.size());
  for (size_t i = 0; i < r.origin.size(); ++i) {
    b->columns[kOrigin].str[i] = b->arena.copy(r.origin[i].data(), r.origin[i].size());
    b->columns[kOrigin].null[i] = r.origin_null.empty() ? 0 : r.origin_null[i];
    b->columns[kDelay].i64[i] = r.delay[i];
    b->columns[kDelay].null[i] = r.delay_null.empty() ? 0 : r.delay_null[i];
    b->columns[kTs].i64[i] = r.ts[i];
    b->columns[kTs].null[i] = 0;
    b->columns[kMiles].f64[i] = r.miles.empty() ? 0 : r.miles[i];
    b->columns[kMiles].null[i] = 0;
    b->xid[i] = r.xid.empty() ? 100 : r.xid[i];
  }
}

ViewPlan by_origin_plan() {
  ViewPlan p;
  p.keys.push_back({kOrigin, Type::kText, 0, 0});
  p.aggs.push_back({AggFunc::kCountStar, -1, Type::kInt64});
  p.aggs.push_back({AggFunc::kCount, kDelay, Type::kInt64});
  p.aggs.push_back({AggFunc::kSum, kDelay, Type::kInt64});
  p.aggs.push_back({AggFunc::kMin, kDelay, Type::kInt64});
  p.aggs.push_back({AggFunc::kMax, kDelay, Type::kInt64});
  return p;
}

std::map<std::string, std::vector<int64_t>> collect(const ViewAggregator& v) {
  std::map<std::string, std::vector<int64_t>> out;
  for (uint32_t g : v.groups_in_key_order()) {
    KeyValue k = v.key(g, 0);
    std::string name = k.is_null ? "<null>" : std::string(k.s);
    std::vector<int64_t> vals;
    for (size_t a = 0; a < v.plan().aggs.size(); ++a) {
      const AggState& s = v.state(g, a);
      AggFunc f = v.plan().aggs[a].func;
      if (f == AggFunc::kCountStar || f == AggFunc::kCount) vals.push_back(s.n);
      else vals.push_back(s.n == 0 ? -999 : static_cast<int64_t>(s.i));
    }
    out[name] = vals;
  }
  return out;
}

}  // namespace

TEST(ViewAggregator, GroupsCountsSumsMinMaxWithNulls) {
  Rows r;
  r.origin = {"SFO", "LAX", "SFO", "", "SFO", "LAX"};
  r.origin_null = {0, 0, 0, 1, 0, 0};
  r.delay = {10, -5, 30, 7, 0, 0};
  r.delay_null = {0, 0, 0, 0, 1, 1};
  r.ts = {1, 2, 3, 4, 5, 6};
  RecordBatch b;
  fill(r, &b);
  ViewAggregator v(by_origin_plan());
  ASSERT_TRUE(v.consume(b));
  auto got = collect(v);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got["SFO"], (std::vector<int64_t>{3, 2, 40, 10, 30}));
  EXPECT_EQ(got["LAX"], (std::vector<int64_t>{2, 1, -5, -5, -5}));
  EXPECT_EQ(got["<null>"], (std::vector<int64_t>{1, 1, 7, 7, 7}));
  EXPECT_EQ(v.rows_in(), 6u);

  // A group whose inputs are all NULL has n == 0: SQL's NULL sum.
  Rows only_null;
  only_null.origin = {"JFK"};
  only_null.delay = {0};
  only_null.delay_null = {1};
  only_null.ts = {1};
  fill(only_null, &b);
  v.clear();
  ASSERT_TRUE(v.consume(b));
  EXPECT_EQ(collect(v)["JFK"], (std::vector<int64_t>{1, 0, -999, -999, -999}));
}

TEST(ViewAggregator, DeltaAccumulatesAcrossBatchesUntilCleared) {
  Rows r;
  r.origin = {"A", "B"};
  r.delay = {1, 2};
  r.ts = {0, 0};
  RecordBatch b;
  fill(r, &b);
  ViewAggregator v(by_origin_plan());
  ASSERT_TRUE(v.consume(b));
  ASSERT_TRUE(v.consume(b));
  EXPECT_EQ(collect(v)["A"][0], 2);
  EXPECT_EQ(collect(v)["B"][2], 4);
  v.clear();
  EXPECT_EQ(v.group_count(), 0u);
}

TEST(ViewAggregator, FilterUsesThreeValuedLogic) {
  Rows r;
  r.origin = {"A", "A", "A", "A"};
  r.delay = {20, 10, 0, 16};
  r.delay_null = {0, 0, 1, 0};
  r.ts = {0, 0, 0, 0};
  RecordBatch b;
  fill(r, &b);
  ViewPlan p = by_origin_plan();
  Predicate gt;
  gt.kind = Predicate::Kind::kCompare;
  gt.op = CmpOp::kGt;
  gt.domain = CmpDomain::kInt;
  gt.lhs_col = kDelay;
  gt.rhs_const.i = 15;
  // NOT (delay > 15) keeps only 10: the NULL row is unknown either way.
  Predicate neg;
  neg.kind = Predicate::Kind::kNot;
  neg.children.push_back(gt);
  p.filter = gt;
  ViewAggregator v(p);
  ASSERT_TRUE(v.consume(b));
  EXPECT_EQ(collect(v)["A"], (std::vector<int64_t>{2, 2, 36, 16, 20}));
  p.filter = neg;
  ViewAggregator w(p);
  ASSERT_TRUE(w.consume(b));
  EXPECT_EQ(collect(w)["A"], (std::vector<int64_t>{1, 1, 10, 10, 10}));
  EXPECT_EQ(w.rows_selected(), 1u);
}

TEST(ViewAggregator, OrAndIsNull) {
  Rows r;
  r.origin = {"A", "A", "A"};
  r.delay = {1, 2, 3};
  r.delay_null = {0, 1, 0};
  r.ts = {0, 0, 0};
  RecordBatch b;
  fill(r, &b);
  ViewPlan p = by_origin_plan();
  Predicate isnull;
  isnull.kind = Predicate::Kind::kIsNull;
  isnull.lhs_col = kDelay;
  Predicate eq3;
  eq3.kind = Predicate::Kind::kCompare;
  eq3.op = CmpOp::kEq;
  eq3.lhs_col = kDelay;
  eq3.rhs_const.i = 3;
  Predicate any;
  any.kind = Predicate::Kind::kOr;
  any.children = {isnull, eq3};
  p.filter = any;
  ViewAggregator v(p);
  ASSERT_TRUE(v.consume(b));
  EXPECT_EQ(collect(v)["A"][0], 2);
}

TEST(ViewAggregator, TumbleKeysAndStartSnapshot) {
  const int64_t hour = 3600LL * 1000000;
  Rows r;
  r.origin = {"A", "A", "A", "A"};
  r.delay = {1, 2, 3, 4};
  r.ts = {10, hour - 1, hour, 2 * hour + 5};
  r.xid = {50, 120, 130, 200};  // 50 and 120 committed before the view
  RecordBatch b;
  fill(r, &b);
  ViewPlan p;
  p.keys.push_back({kTs, Type::kInt64, hour, kUnixEpochInPgMicros});
  p.aggs.push_back({AggFunc::kSum, kDelay, Type::kInt64});
  p.start.xmin = 100;
  p.start.xmax = 150;
  p.start.xip = {130};  // 130 was running when the view was created: counted
  ViewAggregator v(p);
  ASSERT_TRUE(v.consume(b));
  std::map<int64_t, int64_t> sums;
  for (uint32_t g : v.groups_in_key_order()) sums[v.key(g, 0).i] = static_cast<int64_t>(v.state(g, 0).i);
  EXPECT_EQ(sums, (std::map<int64_t, int64_t>{{hour, 3}, {2 * hour, 4}}));
}

TEST(ViewAggregator, FloatKeysTreatNegativeZeroAndNaNAsPostgresDoes) {
  Rows r;
  r.origin = {"A", "A", "A", "A"};
  r.delay = {1, 1, 1, 1};
  r.ts = {0, 0, 0, 0};
  r.miles = {0.0, -0.0, std::nan(""), -std::nan("")};
  RecordBatch b;
  fill(r, &b);
  ViewPlan p;
  p.keys.push_back({kMiles, Type::kFloat64, 0, 0});
  p.aggs.push_back({AggFunc::kCountStar, -1, Type::kInt64});
  p.aggs.push_back({AggFunc::kMax, kMiles, Type::kFloat64});
  ViewAggregator v(p);
  ASSERT_TRUE(v.consume(b));
  EXPECT_EQ(v.group_count(), 2u);
}

TEST(ViewAggregator, FloatMaxPrefersNaNAndSumsInfinity) {
  Rows r;
  r.origin = {"A", "A", "A"};
  r.delay = {0, 0, 0};
  r.ts = {0, 0, 0};
  r.miles = {1.0, std::nan(""), HUGE_VAL};
  RecordBatch b;
  fill(r, &b);
  ViewPlan p;
  p.aggs.push_back({AggFunc::kMax, kMiles, Type::kFloat64});
  p.aggs.push_back({AggFunc::kMin, kMiles, Type::kFloat64});
  p.aggs.push_back({AggFunc::kSum, kMiles, Type::kFloat64});
  ViewAggregator v(p);
  ASSERT_TRUE(v.consume(b));
  ASSERT_EQ(v.group_count(), 1u);  // no GROUP BY: one group
  EXPECT_TRUE(std::isnan(v.state(0, 0).f));
  EXPECT_EQ(v.state(0, 1).f, 1.0);
  EXPECT_TRUE(std::isnan(v.state(0, 2).f));
}

TEST(ViewAggregator, KeyOrderIsIndependentOfArrival) {
  Rows r1, r2;
  r1.origin = {"C", "A", "B"};
  r2.origin = {"B", "C", "A"};
  r1.delay = r2.delay = {0, 0, 0};
  r1.ts = r2.ts = {0, 0, 0};
  RecordBatch b1, b2;
  fill(r1, &b1);
  fill(r2, &b2);
  ViewAggregator v1(by_origin_plan()), v2(by_origin_plan());
  ASSERT_TRUE(v1.consume(b1));
  ASSERT_TRUE(v2.consume(b2));
  std::vector<std::string> k1, k2;
  for (uint32_t g : v1.groups_in_key_order()) k1.emplace_back(v1.key(g, 0).s);
  for (uint32_t g : v2.groups_in_key_order()) k2.emplace_back(v2.key(g, 0).s);
  EXPECT_EQ(k1, k2);
}

// The partition-owned state: merging deltas equals consuming everything at
// once, reports new groups, and survives an encode / load round trip.
TEST(ViewAggregator, MergedDeltasEqualOneAggregation) {
  Rows r1, r2;
  r1.origin = {"SFO", "LAX", "SFO", ""};
  r1.origin_null = {0, 0, 0, 1};
  r1.delay = {10, -5, 30, 7};
  r1.delay_null = {0, 0, 0, 0};
  r1.ts = {1, 2, 3, 4};
  r2.origin = {"SFO", "JFK", "", "LAX"};
  r2.origin_null = {0, 0, 1, 0};
  r2.delay = {-40, 0, 8, 0};
  r2.delay_null = {0, 1, 0, 1};
  r2.ts = {5, 6, 7, 8};
  RecordBatch b1, b2;
  fill(r1, &b1);
  fill(r2, &b2);
  ViewAggregator whole(by_origin_plan()), store(by_origin_plan()), delta(by_origin_plan());
  ASSERT_TRUE(whole.consume(b1));
  ASSERT_TRUE(whole.consume(b2));

  std::vector<uint32_t> groups;
  std::vector<uint8_t> created;
  ASSERT_TRUE(delta.consume(b1));
  ASSERT_TRUE(store.merge(delta, &groups, &created));
  EXPECT_EQ(groups.size(), 3u);
  EXPECT_EQ(created, (std::vector<uint8_t>{1, 1, 1}));
  delta.clear();
  ASSERT_TRUE(delta.consume(b2));
  ASSERT_TRUE(store.merge(delta, &groups, &created));
  ASSERT_EQ(groups.size(), 4u);
  int new_groups = 0;
  for (size_t i = 0; i < groups.size(); ++i) {
    KeyValue k = store.key(groups[i], 0);
    bool is_jfk = !k.is_null && k.s == "JFK";
    EXPECT_EQ(created[i], is_jfk ? 1 : 0);
    new_groups += created[i];
  }
  EXPECT_EQ(new_groups, 1);
  EXPECT_EQ(collect(store), collect(whole));
  EXPECT_EQ(collect(store)["SFO"], (std::vector<int64_t>{3, 3, 0, -40, 30}));
  EXPECT_EQ(collect(store)["JFK"], (std::vector<int64_t>{1, 0, -999, -999, -999}));

  // Snapshot + a later change, loaded into a fresh aggregator: last write wins.
  std::string snapshot, change;
  store.encode_all(&snapshot);
  delta.clear();
  ASSERT_TRUE(delta.consume(b1));
  ASSERT_TRUE(store.merge(delta, &groups, &created));
  store.encode_groups(groups.data(), groups.size(), &change);
  ViewAggregator restored(by_origin_plan());
  std::string error;
  ASSERT_TRUE(restored.load_groups(snapshot.data(), snapshot.size(), &error)) << error;
  ASSERT_TRUE(restored.load_groups(change.data(), change.size(), &error)) << error;
  EXPECT_EQ(collect(restored), collect(store));
  EXPECT_FALSE(restored.load_groups(change.data(), change.size() - 3, &error));
}

TEST(ViewAggregator, MergeKeepsSqlSemanticsOfFloatAndNumeric) {
  ViewPlan p;
  p.keys.push_back({kOrigin, Type::kText, 0, 0});
  p.aggs.push_back({AggFunc::kSum, kMiles, Type::kFloat64});
  p.aggs.push_back({AggFunc::kMax, kMiles, Type::kFloat64});
  p.aggs.push_back({AggFunc::kMin, kMiles, Type::kFloat64});
  Rows a, b;
  a.origin = {"X"};
  a.delay = {0};
  a.ts = {0};
  a.miles = {1.5};
  b.origin = {"X"};
  b.delay = {0};
  b.ts = {0};
  b.miles = {std::nan("")};
  RecordBatch ba, bb;
  fill(a, &ba);
  fill(b, &bb);
  ViewAggregator store(p), delta(p);
  std::vector<uint32_t> groups;
  std::vector<uint8_t> created;
  ASSERT_TRUE(delta.consume(ba));
  ASSERT_TRUE(store.merge(delta, &groups, &created));
  delta.clear();
  ASSERT_TRUE(delta.consume(bb));
  ASSERT_TRUE(store.merge(delta, &groups, &created));
  EXPECT_TRUE(std::isnan(store.state(groups[0], 0).f));  // 1.5 + NaN
  EXPECT_TRUE(std::isnan(store.state(groups[0], 1).f));  // NaN is the largest float8
  EXPECT_EQ(store.state(groups[0], 2).f, 1.5);
  EXPECT_EQ(store.state(groups[0], 0).n, 2);
}

TEST(ViewAggregator, StateEncodingKeepsExtremeIntegers) {
  ViewPlan p;
  p.keys.push_back({kOrigin, Type::kText, 0, 0});
  p.aggs.push_back({AggFunc::kSum, kDelay, Type::kInt64});
  p.aggs.push_back({AggFunc::kMin, kDelay, Type::kInt64});
  Rows r;
  r.origin = {"A", "A", "B"};
  r.delay = {INT64_MAX, INT64_MAX, INT64_MIN};
  r.ts = {0, 0, 0};
  RecordBatch b;
  fill(r, &b);
  ViewAggregator v(p), restored(p);
  ASSERT_TRUE(v.consume(b));
  std::string bytes, error;
  v.encode_all(&bytes);
  ASSERT_TRUE(restored.load_groups(bytes.data(), bytes.size(), &error)) << error;
  for (uint32_t g : restored.groups_in_key_order()) {
    bool a = restored.key(g, 0).s == "A";
    EXPECT_TRUE(restored.state(g, 0).i == (a ? (__int128)INT64_MAX * 2 : (__int128)INT64_MIN));
    EXPECT_EQ(restored.state(g, 1).i, a ? INT64_MAX : INT64_MIN);
    EXPECT_EQ(restored.state(g, 0).n, a ? 2 : 1);
  }
}

namespace {

// Bytes of an owned-view state ("VSG2") with one group per (key, varints):
// the raw key bytes, then the raw zigzag LEB128 varints of its aggregates.
std::string state_bytes(uint32_t naggs, const std::vector<std::pair<std::string, std::vector<__int128>>>& groups) {
  std::string out;
  auto u32 = [&](uint32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); };
  u32(0x32475356);
  u32(static_cast<uint32_t>(groups.size()));
  u32(naggs);
  for (const auto& [key, varints] : groups) {
    u32(static_cast<uint32_t>(key.size()));
    out += key;
    for (__int128 v : varints) {
      unsigned __int128 z = (static_cast<unsigned __int128>(v) << 1) ^ static_cast<unsigned __int128>(v >> 127);
      for (; z >= 0x80; z >>= 7) out.push_back(static_cast<char>(static_cast<uint8_t>(z) | 0x80));
      out.push_back(static_cast<char>(z));
    }
  }
  return out;
}

// The encoded key of a text part: not NULL, u32 length, bytes.
std::string text_key(const std::string& s) {
  uint32_t len = static_cast<uint32_t>(s.size());
  return std::string(1, '\0') + std::string(reinterpret_cast<const char*>(&len), 4) + s;
}

}  // namespace

// load_groups took any key bytes, and key() then read past a key whose text
// length pointed beyond it (heap-buffer-overflow in AddressSanitizer, found
// by the state_loader fuzz target). Keys must now be what encode_key writes.
TEST(ViewAggregator, LoadRefusesKeysEncodeKeyCannotWrite) {
  // count(*), count(delay), sum, min, max of one row with delay 10
  const std::vector<__int128> states = {1, 1, 1, 10, 1, 10, 1, 10};
  std::string good = state_bytes(5, {{text_key("SFO"), states}});
  Rows r;
  r.origin = {"SFO"};
  r.delay = {10};
  r.ts = {0};
  RecordBatch b;
  fill(r, &b);
  ViewAggregator real(by_origin_plan());
  ASSERT_TRUE(real.consume(b));
  std::string encoded;
  real.encode_all(&encoded);
  ASSERT_EQ(good, encoded);  // the helper writes what encode_all writes
  std::string error;
  ViewAggregator loaded(by_origin_plan());
  ASSERT_TRUE(loaded.load_groups(good.data(), good.size(), &error)) << error;
  EXPECT_EQ(loaded.key(0, 0).s, "SFO");

  std::string overlong = text_key("SFO");
  overlong[1] = 100;  // text length 100 in a key of 8 bytes
  for (const std::string& key : {overlong, std::string("\2", 1), std::string("\1x", 2), std::string(),
                                 text_key("SFO").substr(0, 4), text_key("SFO") + "!"}) {
    ViewAggregator v(by_origin_plan());
    std::string bytes = state_bytes(5, {{key, states}});
    EXPECT_FALSE(v.load_groups(bytes.data(), bytes.size(), &error)) << "key of " << key.size() << " bytes";
    EXPECT_EQ(error, "state batch is truncated or corrupt");
  }

  // A numeric key part must be a valid numeric.
  ViewPlan p;
  p.keys.push_back({kDelay, Type::kNumeric, 0, 0});
  p.aggs.push_back({AggFunc::kCountStar, -1, Type::kInt64});
  Decimal d = Decimal::from_int(5);
  std::string key(1, '\0');
  key.push_back(static_cast<char>(d.kind));
  key.append(reinterpret_cast<const char*>(&d.scale), 2);
  key.append(reinterpret_cast<const char*>(&d.coef), 16);
  std::string bytes = state_bytes(1, {{key, {1}}});
  ViewAggregator ok(p);
  ASSERT_TRUE(ok.load_groups(bytes.data(), bytes.size(), &error)) << error;
  EXPECT_EQ(ok.key(0, 0).d.to_string(), "5");
  key[1] = 9;  // no such kind
  bytes = state_bytes(1, {{key, {1}}});
  ViewAggregator bad(p);
  EXPECT_FALSE(bad.load_groups(bytes.data(), bytes.size(), &error));
}

// load_groups took any counts and int8 states: a negative count (found by
// the state_loader fuzz target's checks), or sums and extremes no rows can
// produce, which the flush casts to int8 and a merge adds to (a sum near
// 2^127 overflows). Now refused.
TEST(ViewAggregator, LoadRefusesStatesNoRowsProduce) {
  const __int128 two63 = static_cast<__int128>(1) << 63;
  auto loads = [](const std::vector<__int128>& states) {
    ViewAggregator v(by_origin_plan());
    std::string bytes = state_bytes(5, {{text_key("A"), states}}), error;
    return v.load_groups(bytes.data(), bytes.size(), &error);
  };
  // count(*), count(delay), sum (n, i), min (n, i), max (n, i)
  EXPECT_TRUE(loads({2, 2, 2, -2 * two63, 2, INT64_MIN, 2, INT64_MAX}));
  EXPECT_TRUE(loads({0, 0, 0, 0, 0, 0, 0, 0}));
  EXPECT_FALSE(loads({-1, 0, 0, 0, 0, 0, 0, 0}));
  EXPECT_FALSE(loads({1, 1, -1, 0, 1, 0, 1, 0}));
  EXPECT_FALSE(loads({two63, 0, 0, 0, 0, 0, 0, 0}));        // count beyond bigint
  EXPECT_FALSE(loads({2, 2, 2, 2 * two63 + 1, 2, 0, 2, 0}));  // sum of 2 int8s beyond 2^64
  EXPECT_FALSE(loads({1, 1, 0, 1, 1, 0, 1, 0}));            // a sum of no rows is 0
  EXPECT_FALSE(loads({1, 1, 1, 0, 1, two63, 1, 0}));        // min beyond int8
  EXPECT_FALSE(loads({1, 1, 1, 0, 1, 0, 1, -two63 - 1}));   // max beyond int8
}

// A tumble key of a timestamp whose window PostgreSQL's date_bin cannot
// compute (its distance from 1970 overflows 64 bits: after 294247 AD, which
// INSERT accepts) overflowed in tumble_start (UBSan; found by the batch_codec
// fuzz target). consume() skips such a row and reports it with date_bin's
// error (the worker makes it a dead letter), the other rows count.
TEST(ViewAggregator, TumbleOutOfRangeFailsLikeDateBin) {
  ViewPlan p;
  p.keys.push_back({kTs, Type::kInt64, 3600LL * 1000000, kUnixEpochInPgMicros});
  p.aggs.push_back({AggFunc::kCountStar, -1, Type::kInt64});
  Rows r;
  r.origin = {"A", "B"};
  r.delay = {0, 0};
  r.ts = {0, INT64_MAX - 1};
  RecordBatch b;
  fill(r, &b);
  ViewAggregator v(p);
  ASSERT_TRUE(v.consume(b)) << v.error();
  ASSERT_EQ(v.row_errors().size(), 1u);
  EXPECT_EQ(v.row_errors()[0].row, 1u);
  EXPECT_EQ(v.row_errors()[0].message, "interval out of range");  // timestamp_bin's, for this distance
  EXPECT_EQ(v.group_count(), 1u);
  EXPECT_EQ(v.rows_selected(), 1u);
  r.ts = {0, INT64_MAX};  // infinity has an infinite window
  fill(r, &b);
  ViewAggregator w(p);
  ASSERT_TRUE(w.consume(b)) << w.error();
  EXPECT_EQ(w.group_count(), 2u);
}

// A loaded count at the bigint limit plus a delta overflowed int64 in merge
// (UBSan; found by the state_loader fuzz target). merge now fails as
// PostgreSQL's count does ("bigint out of range").
TEST(ViewAggregator, MergeRefusesACountBeyondBigint) {
  ViewAggregator store(by_origin_plan());
  std::string bytes = state_bytes(5, {{text_key("SFO"), {INT64_MAX, 1, 1, 10, 1, 10, 1, 10}}}), error;
  ASSERT_TRUE(store.load_groups(bytes.data(), bytes.size(), &error)) << error;
  Rows r;
  r.origin = {"SFO"};
  r.delay = {5};
  r.ts = {0};
  RecordBatch b;
  fill(r, &b);
  ViewAggregator delta(by_origin_plan());
  ASSERT_TRUE(delta.consume(b));
  std::vector<uint32_t> groups;
  std::vector<uint8_t> created;
  EXPECT_FALSE(store.merge(delta, &groups, &created));
  EXPECT_NE(store.error().find("bigint out of range"), std::string::npos) << store.error();
}

namespace {

// An external aggregate as the glue layer supplies one: sum of squares of a
// column in a 16-byte state, with instance-owned memory counted so the test
// sees the aggregator clone, reset and use it.
struct SumSquares final : AggregateFunction {
  explicit SumSquares(int column, int* clones, int* resets) : column(column), clones(clones), resets(resets) {}
  struct State {
    int64_t sum;
    int64_t n;
  };
  std::unique_ptr<AggregateFunction> clone() const override {
    ++*clones;
    auto copy = std::make_unique<SumSquares>(column, clones, resets);
    copy->in_prepare = in_prepare;
    return copy;
  }
  size_t state_size() const override { return sizeof(State); }
  void init(void* s) override { *static_cast<State*>(s) = State{0, 0}; }
  bool update(const AggRows& in, char* states, size_t stride, std::string* error) override {
    const Column& c = in.batch->columns[column];
    for (size_t k = 0; k < in.count; ++k) {
      if (c.null[in.rows[k]]) continue;
      State& s = *reinterpret_cast<State*>(states + in.groups[k] * stride);
      int64_t v = c.i64[in.rows[k]];
      if (v == 999) {
        *error = "value 999 refused";
        return false;
      }
      s.sum += v * v;
      s.n++;
    }
    return true;
  }
  bool combine(const void* src, void* dst, std::string*) override {
    auto& d = *static_cast<State*>(dst);
    auto& s = *static_cast<const State*>(src);
    d.sum += s.sum;
    d.n += s.n;
    return true;
  }
  bool serialize(const void* state, std::string* out, std::string*) override {
    out->append(static_cast<const char*>(state), sizeof(State));
    return true;
  }
  bool deserialize(const char*& p, const char* end, void* state, std::string* error) override {
    if (static_cast<size_t>(end - p) < sizeof(State)) {
      *error = "short";
      return false;
    }
    std::memcpy(state, p, sizeof(State));
    p += sizeof(State);
    return true;
  }
  bool finalize(const void* state, Value* out, std::string*) override {
    auto& s = *static_cast<const State*>(state);
    *out = Value();
    if (s.n == 0) return true;
    out->kind = Value::Kind::kInt;
    out->i = s.sum;
    return true;
  }
  void reset() override { ++*resets; }
  void mark_used(std::vector<uint8_t>* used) const override { (*used)[column] = 1; }
  // With `in_prepare`, 999 is refused by prepare() (a row alone), not update().
  bool has_prepare() const override { return in_prepare; }
  void prepare(const AggRows& in, std::vector<RowError>* failed) override {
    const Column& c = in.batch->columns[column];
    for (size_t k = 0; k < in.count; ++k)
      if (!c.null[in.rows[k]] && c.i64[in.rows[k]] == 999) failed->push_back(RowError{in.rows[k], "value 999 refused"});
  }
  int column;
  int* clones;
  int* resets;
  bool in_prepare = false;
};

}  // namespace

TEST(ViewAggregator, ExternalAggregateBesideNativeOnes) {
  int clones = 0, resets = 0;
  ViewPlan p;
  p.keys.push_back({kOrigin, Type::kText, 0, 0});
  p.aggs.push_back({AggFunc::kCountStar, -1, Type::kInt64});
  AggSpec ext;
  ext.func = AggFunc::kExternal;
  ext.external = std::make_shared<SumSquares>(kDelay, &clones, &resets);
  p.aggs.push_back(ext);
  p.aggs.push_back({AggFunc::kAvg, kDelay, Type::kInt64});
  std::vector<uint8_t> used(4, 0);
  mark_used_columns(p, &used);
  EXPECT_EQ(used, (std::vector<uint8_t>{1, 1, 0, 0}));

  ViewAggregator delta(p), store(p);
  EXPECT_EQ(clones, 2);  // one instance per aggregator
  Rows r;
  r.origin = {"SFO", "LAX", "SFO", "SFO"};
  r.delay = {3, 4, 0, 5};
  r.delay_null = {false, false, true, false};
  r.ts = {0, 0, 0, 0};
  RecordBatch b;
  fill(r, &b);
  ASSERT_TRUE(delta.consume(b));
  std::vector<uint32_t> groups;
  std::vector<uint8_t> created;
  ASSERT_TRUE(store.merge(delta, &groups, &created));
  delta.clear();
  EXPECT_EQ(resets, 1);
  ASSERT_TRUE(delta.consume(b));
  ASSERT_TRUE(store.merge(delta, &groups, &created));

  std::map<std::string, std::pair<int64_t, int64_t>> got;  // count(*), sum of squares
  for (uint32_t g : store.groups_in_key_order()) {
    Value n, sq, avg;
    ASSERT_TRUE(store.finalize(g, 0, &n));
    ASSERT_TRUE(store.finalize(g, 1, &sq));
    ASSERT_TRUE(store.finalize(g, 2, &avg));
    EXPECT_EQ(avg.kind, Value::Kind::kIntRatio);
    got[std::string(store.key(g, 0).s)] = {static_cast<int64_t>(n.i), static_cast<int64_t>(sq.i)};
  }
  EXPECT_EQ(got["SFO"], std::make_pair(int64_t{6}, int64_t{2 * (9 + 25)}));
  EXPECT_EQ(got["LAX"], std::make_pair(int64_t{2}, int64_t{2 * 16}));

  // The external state goes through the changelog bytes like the native ones.
  std::string bytes;
  ASSERT_TRUE(store.encode_all(&bytes));
  ViewAggregator reloaded(p);
  std::string error;
  ASSERT_TRUE(reloaded.load_groups(bytes.data(), bytes.size(), &error)) << error;
  std::string again;
  ASSERT_TRUE(reloaded.encode_all(&again));
  EXPECT_EQ(bytes, again);

  // Its errors stop the batch with the message.
  r.delay = {999, 1, 1, 1};
  fill(r, &b);
  EXPECT_FALSE(delta.consume(b));
  EXPECT_EQ(delta.error(), "value 999 refused");
}

TEST(ViewAggregator, DistinctAggregateIsASetOfValues) {
  // count(DISTINCT delay) and sum(DISTINCT delay) FILTER (WHERE delay > 3)
  ViewPlan p;
  p.keys.push_back({kOrigin, Type::kText, 0, 0});
  AggSpec count_distinct;
  count_distinct.func = AggFunc::kExternal;
  count_distinct.external =
      make_distinct_aggregate(make_native_aggregate({AggFunc::kCount, kDelay, Type::kInt64}), kDelay, Type::kInt64);
  p.aggs.push_back(count_distinct);
  AggSpec sum_distinct;
  sum_distinct.func = AggFunc::kExternal;
  sum_distinct.external =
      make_distinct_aggregate(make_native_aggregate({AggFunc::kSum, kDelay, Type::kInt64}), kDelay, Type::kInt64);
  auto filter = std::make_shared<Predicate>();
  filter->kind = Predicate::Kind::kCompare;
  filter->op = CmpOp::kGt;
  filter->lhs_col = kDelay;
  filter->rhs_const.i = 3;
  sum_distinct.filter = filter;
  p.aggs.push_back(sum_distinct);

  ViewAggregator delta(p), store(p);
  Rows r;
  r.origin = {"SFO", "SFO", "SFO", "LAX", "SFO"};
  r.delay = {5, 5, 2, 7, 0};
  r.delay_null = {false, false, false, false, true};
  r.ts = {0, 0, 0, 0, 0};
  RecordBatch b;
  fill(r, &b);
  std::vector<uint32_t> groups;
  std::vector<uint8_t> created;
  ASSERT_TRUE(delta.consume(b));
  ASSERT_TRUE(store.merge(delta, &groups, &created));
  delta.clear();
  r.delay = {9, 5, 2, 7, 1};
  fill(r, &b);
  ASSERT_TRUE(delta.consume(b));
  ASSERT_TRUE(store.merge(delta, &groups, &created));

  std::string bytes;
  ASSERT_TRUE(store.encode_all(&bytes));
  ViewAggregator reloaded(p);
  std::string error;
  ASSERT_TRUE(reloaded.load_groups(bytes.data(), bytes.size(), &error)) << error;
  for (ViewAggregator* v : {&store, &reloaded}) {
    std::map<std::string, std::pair<int64_t, int64_t>> got;
    for (uint32_t g : v->groups_in_key_order()) {
      Value n, sum;
      ASSERT_TRUE(v->finalize(g, 0, &n));
      ASSERT_TRUE(v->finalize(g, 1, &sum));
      got[std::string(v->key(g, 0).s)] = {static_cast<int64_t>(n.i), static_cast<int64_t>(sum.i)};
    }
    EXPECT_EQ(got["SFO"], std::make_pair(int64_t{3}, int64_t{5 + 9}));  // {5, 2, 9} (NULLs skipped); > 3: {5, 9}
    EXPECT_EQ(got["LAX"], std::make_pair(int64_t{1}, int64_t{7}));
  }
  std::string again;
  ASSERT_TRUE(reloaded.encode_all(&again));
  EXPECT_EQ(bytes, again);  // sets serialise sorted
}

TEST(ViewAggregator, NativeVarianceAndBoolAggregates) {
  // var_samp, stddev_pop over miles (float8), bool_or(miles > 2) over a bool column made from it
  ViewPlan p;
  p.keys.push_back({kOrigin, Type::kText, 0, 0});
  p.aggs.push_back({AggFunc::kVarSamp, kMiles, Type::kFloat64});
  p.aggs.push_back({AggFunc::kStddevPop, kMiles, Type::kFloat64});
  p.aggs.push_back({AggFunc::kBoolOr, kDelay, Type::kInt64});
  p.aggs.push_back({AggFunc::kBoolAnd, kDelay, Type::kInt64});
  const std::vector<double> xs = {1.5, 2.5, 10.0, -3.25, 7.0, 0.5};
  ViewAggregator a(p), b(p), store(p);
  Rows r1, r2;
  r1.origin = {"SFO", "SFO", "SFO"};
  r1.miles = {xs[0], xs[1], xs[2]};
  r1.delay = {1, 1, 1};
  r1.ts = {0, 0, 0};
  r2.origin = {"SFO", "SFO", "SFO"};
  r2.miles = {xs[3], xs[4], xs[5]};
  r2.delay = {0, 1, 0};
  r2.ts = {0, 0, 0};
  RecordBatch b1, b2;
  fill(r1, &b1);
  fill(r2, &b2);
  ASSERT_TRUE(a.consume(b1));
  ASSERT_TRUE(b.consume(b2));
  std::vector<uint32_t> groups;
  std::vector<uint8_t> created;
  ASSERT_TRUE(store.merge(a, &groups, &created));
  ASSERT_TRUE(store.merge(b, &groups, &created));
  double mean = 0;
  for (double x : xs) mean += x;
  mean /= xs.size();
  double ss = 0;
  for (double x : xs) ss += (x - mean) * (x - mean);
  Value v;
  ASSERT_TRUE(store.finalize(0, 0, &v));
  EXPECT_NEAR(v.f, ss / (xs.size() - 1), 1e-12);
  ASSERT_TRUE(store.finalize(0, 1, &v));
  EXPECT_NEAR(v.f, std::sqrt(ss / xs.size()), 1e-12);
  ASSERT_TRUE(store.finalize(0, 2, &v));
  EXPECT_EQ(v.kind, Value::Kind::kInt);
  EXPECT_EQ(v.i, 1);
  ASSERT_TRUE(store.finalize(0, 3, &v));
  EXPECT_EQ(v.i, 0);
  // one input: var_samp is NULL, stddev_pop 0
  ViewAggregator one(p);
  Rows r3;
  r3.origin = {"LAX"};
  r3.miles = {4.0};
  r3.delay = {1};
  r3.ts = {0};
  RecordBatch b3;
  fill(r3, &b3);
  ASSERT_TRUE(one.consume(b3));
  ASSERT_TRUE(one.finalize(0, 0, &v));
  EXPECT_EQ(v.kind, Value::Kind::kNull);
  ASSERT_TRUE(one.finalize(0, 1, &v));
  EXPECT_EQ(v.f, 0.0);
  // the changelog bytes round-trip
  std::string bytes, again;
  ASSERT_TRUE(store.encode_all(&bytes));
  ViewAggregator reloaded(p);
  std::string error;
  ASSERT_TRUE(reloaded.load_groups(bytes.data(), bytes.size(), &error)) << error;
  ASSERT_TRUE(reloaded.encode_all(&again));
  EXPECT_EQ(bytes, again);
}

TEST(ViewAggregator, NumericKeysShowTheFirstValuesScale) {
  // GROUP BY a numeric column: 5.00 and 5.0 are one group shown as 5.00 (first seen)
  ViewPlan p;
  p.keys.push_back({0, Type::kNumeric, 0, 0});
  p.aggs.push_back({AggFunc::kCountStar, -1, Type::kInt64});
  RecordBatch b;
  b.columns.resize(1);
  b.columns[0].type = Type::kNumeric;
  b.columns[0].used = true;
  b.reset(3);
  const char* texts[3] = {"5.00", "5.0", "1.250"};
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(Decimal::parse(texts[i], &b.columns[0].dec[i]));
    b.columns[0].null[i] = 0;
    b.xid[i] = 100;
  }
  ViewAggregator delta(p), store(p);
  ASSERT_TRUE(delta.consume(b));
  ASSERT_EQ(delta.group_count(), 2u);
  std::vector<uint32_t> groups;
  std::vector<uint8_t> created;
  ASSERT_TRUE(store.merge(delta, &groups, &created));
  std::string bytes, again;
  ASSERT_TRUE(store.encode_all(&bytes));
  ViewAggregator reloaded(p);
  std::string error;
  ASSERT_TRUE(reloaded.load_groups(bytes.data(), bytes.size(), &error)) << error;
  ASSERT_TRUE(reloaded.encode_all(&again));
  EXPECT_EQ(bytes, again);
  for (ViewAggregator* v : {&delta, &store, &reloaded}) {
    std::map<std::string, int64_t> got;
    for (uint32_t g : v->groups_in_key_order()) got[v->key(g, 0).d.to_string()] = v->state(g, 0).n;
    EXPECT_EQ(got, (std::map<std::string, int64_t>{{"5.00", 2}, {"1.250", 1}}));
  }
}

// A row an aggregate's prepare() refuses is dropped for every aggregate of
// the view (a group only it would create is not created) and reported.
TEST(ViewAggregator, PrepareDropsARowForEveryAggregate) {
  int clones = 0, resets = 0;
  ViewPlan p;
  p.keys.push_back({kOrigin, Type::kText, 0, 0});
  p.aggs.push_back({AggFunc::kCountStar, -1, Type::kInt64});
  auto ext = std::make_shared<SumSquares>(kDelay, &clones, &resets);
  ext->in_prepare = true;
  AggSpec spec;
  spec.func = AggFunc::kExternal;
  spec.external = ext;
  p.aggs.push_back(spec);
  ViewAggregator v(p);
  Rows r;
  r.origin = {"SFO", "LAX", "SFO"};
  r.delay = {3, 999, 5};
  r.delay_null = {false, false, false};
  r.ts = {0, 0, 0};
  RecordBatch b;
  fill(r, &b);
  ASSERT_TRUE(v.consume(b)) << v.error();
  ASSERT_EQ(v.row_errors().size(), 1u);
  EXPECT_EQ(v.row_errors()[0].row, 1u);
  EXPECT_EQ(v.row_errors()[0].message, "value 999 refused");
  ASSERT_EQ(v.group_count(), 1u);  // no LAX group
  Value n, sq;
  ASSERT_TRUE(v.finalize(0, 0, &n));
  ASSERT_TRUE(v.finalize(0, 1, &sq));
  EXPECT_EQ(static_cast<int64_t>(n.i), 2);
  EXPECT_EQ(static_cast<int64_t>(sq.i), 9 + 25);
  EXPECT_EQ(v.rows_selected(), 2u);
}

TEST(ViewAggregator, LateEventsAreSkippedAfterTheFilterAndListed) {
  Rows r;
  r.origin = {"A", "A", "B", "B", "A"};
  r.delay = {1, 20, 30, 40, 50};
  r.ts = {100, 99, 200, 98, 101};
  RecordBatch b;
  fill(r, &b);
  ViewPlan p = by_origin_plan();
  Predicate gt;  // delay > 5: row 0 fails the filter
  gt.kind = Predicate::Kind::kCompare;
  gt.op = CmpOp::kGt;
  gt.domain = CmpDomain::kInt;
  gt.lhs_col = kDelay;
  gt.rhs_const.i = 5;
  p.filter = gt;
  ViewAggregator v(p);
  v.set_late_before(kTs, 100);  // ts < 100 is late: rows 1 and 3 (row 0 is filtered out first)
  ASSERT_TRUE(v.consume(b));
  EXPECT_EQ(v.late_rows(), (std::vector<uint32_t>{1, 3}));
  EXPECT_EQ(v.rows_selected(), 2u);
  auto got = collect(v);
  EXPECT_EQ(got["A"][0], 1);  // row 4
  EXPECT_EQ(got["B"][0], 1);  // row 2
  // NULL event times are never late; column -1 turns the check off.
  b.columns[kTs].null[1] = 1;
  v.clear();
  ASSERT_TRUE(v.consume(b));
  EXPECT_EQ(v.late_rows(), (std::vector<uint32_t>{3}));
  v.set_late_before(-1, 0);
  v.clear();
  ASSERT_TRUE(v.consume(b));
  EXPECT_TRUE(v.late_rows().empty());
  EXPECT_EQ(v.rows_selected(), 4u);
}

TEST(ViewAggregator, RowsWithoutAWriterAreNeverBeforeTheStartSnapshot) {
  Rows r;
  r.origin = {"A", "A", "A"};
  r.delay = {1, 2, 4};
  r.ts = {0, 0, 0};
  r.xid = {0, 50, 200};  // 0: a Kafka row fed straight from its topic; 50: committed before the view
  RecordBatch b;
  fill(r, &b);
  ViewPlan p = by_origin_plan();
  p.start.xmin = 100;
  p.start.xmax = 150;
  ViewAggregator v(p);
  ASSERT_TRUE(v.consume(b));
  EXPECT_EQ(collect(v)["A"], (std::vector<int64_t>{2, 2, 5, 1, 4}));
}

// Closed windows leave a store: groups_ending_by finds the groups whose
// tumble window (start + size) ends by a limit, remove_groups forgets them,
// and past kCompactMin removed groups the store compacts without losing or
// changing a live group's state, and keeps finding and merging by key.
TEST(ViewAggregator, ClosedWindowsLeaveTheStoreAndItCompacts) {
  const int64_t hour = 3600LL * 1000000;
  ViewPlan p;
  p.keys.push_back({kOrigin, Type::kText, 0, 0});
  p.keys.push_back({kTs, Type::kInt64, hour, kUnixEpochInPgMicros});
  p.aggs.push_back({AggFunc::kCountStar, -1, Type::kInt64});
  p.aggs.push_back({AggFunc::kSum, kDelay, Type::kInt64});
  p.window.end_part = 1;
  p.window.end_offset = hour;
  ViewAggregator store(p);
  const int hours = 10000;  // 10,000 hourly windows of two origins
  auto batch_of = [&](int from, int to, RecordBatch* b) {
    Rows r;
    for (int h = from; h < to; ++h)
      for (const char* o : {"A", "B"}) {
        r.origin.push_back(o);
        r.delay.push_back(h);
        r.ts.push_back(h * hour + 17);
      }
    fill(r, b);
  };
  RecordBatch b;
  batch_of(0, hours, &b);
  ViewAggregator delta(p);
  ASSERT_TRUE(delta.consume(b));
  std::vector<uint32_t> ids;
  std::vector<uint8_t> created;
  ASSERT_TRUE(store.merge(delta, &ids, &created));
  ASSERT_EQ(store.live_group_count(), 2u * hours);
  int64_t end;
  ASSERT_TRUE(store.window_end(ids[0], &end));
  EXPECT_EQ(end % hour, 0);
  // Windows ending by 100 hours: hours 0..99 of both origins, in key order
  // (bytes of the encoded keys: origin first).
  std::vector<uint32_t> closed;
  store.groups_ending_by(100 * hour, &closed);
  ASSERT_EQ(closed.size(), 200u);
  std::set<int64_t> hours_closed;
  for (size_t i = 0; i < closed.size(); ++i) {
    EXPECT_EQ(store.key(closed[i], 0).s, i < 100 ? "A" : "B");
    hours_closed.insert(store.key(closed[i], 1).i / hour);
  }
  EXPECT_EQ(hours_closed.size(), 100u);
  EXPECT_EQ(*hours_closed.rbegin(), 99);
  ASSERT_TRUE(store.remove_groups(closed.data(), closed.size()));
  EXPECT_EQ(store.live_group_count(), 2u * hours - 200);
  closed.clear();
  store.groups_ending_by(100 * hour, &closed);
  EXPECT_TRUE(closed.empty());
  // Remove all but the last 100 hours: the store compacts.
  store.groups_ending_by((hours - 100) * hour, &closed);
  ASSERT_TRUE(store.remove_groups(closed.data(), closed.size()));
  EXPECT_EQ(store.live_group_count(), 200u);
  EXPECT_EQ(store.group_count(), 200u);  // compacted: ids renumbered
  // A later batch merges into the surviving groups by key.
  batch_of(hours - 1, hours, &b);
  delta.clear();
  ASSERT_TRUE(delta.consume(b));
  ASSERT_TRUE(store.merge(delta, &ids, &created));
  EXPECT_EQ(created, (std::vector<uint8_t>{0, 0}));
  std::map<std::pair<std::string, int64_t>, std::pair<int64_t, int64_t>> got;
  for (uint32_t g : store.groups_in_key_order())
    got[{std::string(store.key(g, 0).s), store.key(g, 1).i / hour}] = {store.state(g, 0).n,
                                                                      static_cast<int64_t>(store.state(g, 1).i)};
  ASSERT_EQ(got.size(), 200u);
  EXPECT_EQ(got[std::make_pair(std::string("A"), int64_t{hours - 100})], std::make_pair(int64_t{1}, int64_t{hours - 100}));
  EXPECT_EQ(got[std::make_pair(std::string("B"), int64_t{hours - 1})], std::make_pair(int64_t{2}, int64_t{2 * (hours - 1)}));
  // A snapshot holds only the live groups.
  std::string bytes;
  ASSERT_TRUE(store.encode_all(&bytes));
  ViewAggregator loaded(p);
  std::string why;
  ASSERT_TRUE(loaded.load_groups(bytes.data(), bytes.size(), &why)) << why;
  EXPECT_EQ(loaded.live_group_count(), 200u);
  // ... also in chunks of about 1 KB, each a loadable batch.
  ViewAggregator chunked(p);
  uint32_t next = 0;
  int chunks = 0;
  do {
    bytes.clear();
    ASSERT_TRUE(store.encode_chunk(&next, 1024, &bytes));
    ASSERT_TRUE(chunked.load_groups(bytes.data(), bytes.size(), &why)) << why;
    ++chunks;
  } while (next < store.group_count());
  EXPECT_GE(chunks, 5);  // 200 groups of ~29 bytes in chunks of 1 KB
  EXPECT_EQ(chunked.live_group_count(), 200u);
  std::string a, b2;
  ASSERT_TRUE(loaded.encode_all(&a));
  ASSERT_TRUE(chunked.encode_all(&b2));
  EXPECT_EQ(a, b2);
  // A view without a window never closes a group.
  ViewAggregator plain(by_origin_plan());
  plain.add_empty_group();
  closed.clear();
  plain.groups_ending_by(std::numeric_limits<int64_t>::max(), &closed);
  EXPECT_TRUE(closed.empty());
}

// hop() and cumulate() windows: every row is counted once in each of its
// windows, as the set-returning functions list them (brute force below,
// from their SQL definitions); NULL and infinite event times belong to no
// window.
TEST(ViewAggregator, HopAndCumulateCountARowInEachOfItsWindows) {
  const int64_t minute = 60LL * 1000000;
  Rows r;
  // minutes from the Unix epoch (as PostgreSQL microseconds), some on boundaries
  for (int64_t m : {0, 1, 14, 15, 16, 29, 30, 44, 45, 59, 60, 61, 119, 120, -1, -15, -16}) {
    r.origin.push_back("A");
    r.delay.push_back(m);
    r.ts.push_back(kUnixEpochInPgMicros + m * minute);
  }
  r.origin.push_back("A");  // +infinity: no window
  r.delay.push_back(0);
  r.ts.push_back(std::numeric_limits<int64_t>::max());
  RecordBatch b;
  fill(r, &b);
  for (auto kind : {WindowExpansion::Kind::kHop, WindowExpansion::Kind::kCumulate}) {
    const int64_t step = 15 * minute, size = 60 * minute;
    ViewPlan p;
    p.expand.kind = kind;
    p.expand.column = kTs;
    p.expand.step = step;
    p.expand.size = size;
    p.expand.origin = kUnixEpochInPgMicros;
    KeySpec start{kTs, Type::kInt64, 0, 0, 1}, end{kTs, Type::kInt64, 0, 0, 2};
    p.keys = {start, end};
    p.aggs.push_back({AggFunc::kCountStar, -1, Type::kInt64});
    p.aggs.push_back({AggFunc::kSum, kDelay, Type::kInt64});
    ViewAggregator v(p);
    ASSERT_TRUE(v.consume(b));
    std::map<std::pair<int64_t, int64_t>, std::pair<int64_t, int64_t>> got, want;
    for (uint32_t g : v.groups_in_key_order())
      got[{v.key(g, 0).i, v.key(g, 1).i}] = {v.state(g, 0).n, static_cast<int64_t>(v.state(g, 1).i)};
    for (size_t i = 0; i + 1 < r.ts.size(); ++i) {
      const int64_t ts = r.ts[i];
      auto floor_to = [&](int64_t x, int64_t unit) {
        int64_t d = x - kUnixEpochInPgMicros, m = d % unit;
        return kUnixEpochInPgMicros + d - m - (m < 0 ? unit : 0);
      };
      if (kind == WindowExpansion::Kind::kHop) {
        for (int64_t s = floor_to(ts, step); s > ts - size; s -= step) {
          auto& w = want[{s, s + size}];
          w.first++;
          w.second += r.delay[i];
        }
      } else {
        const int64_t s = floor_to(ts, size);
        for (int64_t e = s + step; e <= s + size; e += step)
          if (ts < e) {
            auto& w = want[{s, e}];
            w.first++;
            w.second += r.delay[i];
          }
      }
    }
    EXPECT_EQ(got, want) << (kind == WindowExpansion::Kind::kHop ? "hop" : "cumulate");
    EXPECT_EQ(v.rows_selected(), r.ts.size() - 1);  // the infinite one has no window
    // hop: 4 windows per row; cumulate: between 1 and 4
    int64_t total = 0;
    for (const auto& [k, w] : got) total += w.first;
    if (kind == WindowExpansion::Kind::kHop) EXPECT_EQ(total, 4 * static_cast<int64_t>(r.ts.size() - 1));
  }
}

namespace {
// Sessions of each origin as batch SQL computes them (gaps and islands:
// sorted by time, a new session where the gap to the previous event
// exceeds `gap`): (origin, start) -> (events, sum of delay, last event).
std::map<std::pair<std::string, int64_t>, std::tuple<int64_t, int64_t, int64_t>> session_oracle(
    const Rows& r, int64_t gap) {
  std::map<std::string, std::vector<std::pair<int64_t, int64_t>>> by;
  for (size_t i = 0; i < r.ts.size(); ++i) by[r.origin[i]].push_back({r.ts[i], r.delay[i]});
  std::map<std::pair<std::string, int64_t>, std::tuple<int64_t, int64_t, int64_t>> out;
  for (auto& [o, ev] : by) {
    std::sort(ev.begin(), ev.end());
    int64_t start = ev[0].first, prev = ev[0].first;
    for (const auto& [t, d] : ev) {
      if (t - prev > gap) start = t;
      prev = t;
      auto& s = out[{o, start}];
      std::get<0>(s)++;
      std::get<1>(s) += d;
      std::get<2>(s) = t;
    }
  }
  return out;
}

ViewPlan session_plan(int64_t gap) {
  ViewPlan p;
  p.keys.push_back({kOrigin, Type::kText, 0, 0});
  p.keys.push_back({kTs, Type::kInt64, 0, 0, 3});
  p.aggs.push_back({AggFunc::kCountStar, -1, Type::kInt64});
  p.aggs.push_back({AggFunc::kSum, kDelay, Type::kInt64});
  p.aggs.push_back({AggFunc::kMax, kTs, Type::kInt64});  // the session's end
  p.session.key_part = 1;
  p.session.column = kTs;
  p.session.gap = gap;
  p.session.end_agg = 2;
  return p;
}

std::map<std::pair<std::string, int64_t>, std::tuple<int64_t, int64_t, int64_t>> sessions_of(
    const ViewAggregator& v) {
  std::map<std::pair<std::string, int64_t>, std::tuple<int64_t, int64_t, int64_t>> out;
  for (uint32_t g : v.groups_in_key_order())
    out[{std::string(v.key(g, 0).s), v.key(g, 1).i}] = {v.state(g, 0).n, static_cast<int64_t>(v.state(g, 1).i),
                                                        static_cast<int64_t>(v.state(g, 2).i)};
  return out;
}
}  // namespace

// Session windows: events in random order, fed in batches, each batch's
// delta merged into a store (as a worker does), equal the gaps-and-islands
// oracle: sessions merge and re-key as out-of-order events bridge them,
// events exactly `gap` apart share a session, and the store's changelog
// (deltas' groups with tombstones for the sessions that left) replays to the
// same sessions.
TEST(ViewAggregator, SessionsMergeOutOfOrderAndReplayWithTombstones) {
  const int64_t gap = 30;
  std::mt19937 rng(7);
  Rows all;
  for (int i = 0; i < 3000; ++i) {
    all.origin.push_back(std::string(1, static_cast<char>('A' + rng() % 5)));
    all.delay.push_back(static_cast<int64_t>(rng() % 100));
    // clustered times with holes, some exactly `gap` apart
    all.ts.push_back(static_cast<int64_t>((rng() % 400) * 10 + (rng() % 3 == 0 ? 0 : rng() % 4) * 1000));
  }
  ViewPlan p = session_plan(gap);
  ViewAggregator store(p), replayed(p);
  std::string changelog_error;
  for (size_t from = 0; from < all.ts.size(); from += 250) {
    Rows part;
    for (size_t i = from; i < std::min(all.ts.size(), from + 250); ++i) {
      part.origin.push_back(all.origin[i]);
      part.delay.push_back(all.delay[i]);
      part.ts.push_back(all.ts[i]);
    }
    RecordBatch b;
    fill(part, &b);
    ViewAggregator delta(p);
    ASSERT_TRUE(delta.consume(b)) << delta.error();
    std::vector<uint32_t> ids;
    std::vector<uint8_t> created;
    ASSERT_TRUE(store.merge(delta, &ids, &created)) << store.error();
    // the changelog entry of this flush: the merged groups and the keys that left
    std::string entry;
    ASSERT_TRUE(store.encode_groups(ids.data(), ids.size(), &entry, &store.gone_keys()));
    ASSERT_TRUE(replayed.load_groups(entry.data(), entry.size(), &changelog_error)) << changelog_error;
    // every gone key is a session no longer in the store
    for (const std::string& k : store.gone_keys()) {
      const int64_t start = store.key_of(k, 1).i;
      const std::string origin(store.key_of(k, 0).s);
      EXPECT_EQ(sessions_of(store).count({origin, start}), 0u) << origin << " " << start;
    }
  }
  const auto want = session_oracle(all, gap);
  EXPECT_EQ(sessions_of(store), want);
  EXPECT_EQ(sessions_of(replayed), want);
  EXPECT_GT(want.size(), 20u);
  // window_end: the last event + gap + 1; closing removes whole sessions.
  std::vector<uint32_t> closing;
  store.groups_ending_by(1000 + gap, &closing);  // sessions whose last event is before 1000
  for (uint32_t g : closing) {
    int64_t end;
    ASSERT_TRUE(store.window_end(g, &end));
    EXPECT_EQ(end, static_cast<int64_t>(store.state(g, 2).i) + gap + 1);
    EXPECT_LE(end, 1000 + gap);
  }
  ASSERT_TRUE(store.remove_groups(closing.data(), closing.size()));
  size_t left = 0;
  for (const auto& [k, s] : want) left += std::get<2>(s) + gap + 1 > 1000 + gap;
  EXPECT_EQ(store.live_group_count(), left);
  // an event after the closed ones starts or joins only open sessions
  Rows more;
  more.origin = {"A"};
  more.delay = {1};
  more.ts = {100000};
  RecordBatch b;
  fill(more, &b);
  ViewAggregator delta(p);
  ASSERT_TRUE(delta.consume(b));
  std::vector<uint32_t> ids;
  std::vector<uint8_t> created;
  ASSERT_TRUE(store.merge(delta, &ids, &created));
  EXPECT_EQ(created, (std::vector<uint8_t>{1}));
}

// Exchanged groups: rows spread at random over three partitions, each
// worker aggregating its rows into a delta per batch, sending the groups
// another partition owns there (encode_groups) and merging what it receives
// into its delta (load_groups into a scratch aggregator, then merge) before
// its store takes the delta. Every group ends in the store of its
// owner_partition only, and the stores together equal one aggregation: the
// gaps-and-islands oracle for sessions (a key's sessions all in one
// partition, merging across what every partition saw), the plain totals for
// groups by key.
TEST(ViewAggregator, ExchangedGroupsEndInTheirOwnersStore) {
  const int64_t gap = 30;
  const uint32_t nparts = 3;
  std::mt19937 rng(11);
  Rows all;
  for (int i = 0; i < 6000; ++i) {
    all.origin.push_back(std::string(1, static_cast<char>('A' + rng() % 7)));
    all.delay.push_back(static_cast<int64_t>(rng() % 100));
    all.ts.push_back(static_cast<int64_t>((rng() % 400) * 10 + (rng() % 3 == 0 ? 0 : rng() % 4) * 1000));
  }
  for (ViewPlan p : {session_plan(gap), by_origin_plan()}) {
    std::vector<std::unique_ptr<ViewAggregator>> store, delta, scratch;
    for (uint32_t q = 0; q < nparts; ++q) {
      store.emplace_back(new ViewAggregator(p));
      delta.emplace_back(new ViewAggregator(p));
      scratch.emplace_back(new ViewAggregator(p));
    }
    for (size_t from = 0; from < all.ts.size(); from += 500) {
      // this cycle's rows of each partition
      std::vector<Rows> part(nparts);
      for (size_t i = from; i < std::min(all.ts.size(), from + 500); ++i) {
        Rows& r = part[rng() % nparts];
        r.origin.push_back(all.origin[i]);
        r.delay.push_back(all.delay[i]);
        r.ts.push_back(all.ts[i]);
      }
      std::vector<std::vector<std::string>> inbox(nparts);
      for (uint32_t q = 0; q < nparts; ++q) {
        RecordBatch b;
        fill(part[q], &b);
        ASSERT_TRUE(delta[q]->consume(b)) << delta[q]->error();
        std::vector<std::vector<uint32_t>> remote(nparts);
        for (uint32_t g : delta[q]->groups_in_key_order()) {
          const uint32_t owner = delta[q]->owner_partition(g, nparts);
          ASSERT_LT(owner, nparts);
          if (owner != q) remote[owner].push_back(g);
        }
        for (uint32_t r = 0; r < nparts; ++r) {
          if (remote[r].empty()) continue;
          inbox[r].emplace_back();
          ASSERT_TRUE(delta[q]->encode_groups(remote[r].data(), remote[r].size(), &inbox[r].back()));
          ASSERT_TRUE(delta[q]->remove_groups(remote[r].data(), remote[r].size()));
        }
      }
      for (uint32_t q = 0; q < nparts; ++q) {
        std::vector<uint32_t> ids;
        std::vector<uint8_t> created;
        for (const std::string& bytes : inbox[q]) {
          std::string why;
          ASSERT_TRUE(scratch[q]->load_groups(bytes.data(), bytes.size(), &why)) << why;
          ASSERT_TRUE(delta[q]->merge(*scratch[q], &ids, &created)) << delta[q]->error();
          scratch[q]->clear();
        }
        ASSERT_TRUE(store[q]->merge(*delta[q], &ids, &created)) << store[q]->error();
        delta[q]->clear();
      }
    }
    ViewAggregator one(p);
    RecordBatch b;
    fill(all, &b);
    ASSERT_TRUE(one.consume(b));
    size_t total = 0;
    for (uint32_t q = 0; q < nparts; ++q) {
      for (uint32_t g : store[q]->groups_in_key_order()) EXPECT_EQ(store[q]->owner_partition(g, nparts), q);
      total += store[q]->live_group_count();
      EXPECT_GT(store[q]->live_group_count(), 0u);
    }
    EXPECT_EQ(total, one.live_group_count());
    if (p.session.key_part >= 0) {
      std::map<std::pair<std::string, int64_t>, std::tuple<int64_t, int64_t, int64_t>> merged;
      for (uint32_t q = 0; q < nparts; ++q)
        for (const auto& kv : sessions_of(*store[q])) merged.insert(kv);
      EXPECT_EQ(merged, session_oracle(all, gap));
      EXPECT_GT(merged.size(), 20u);
    } else {
      std::map<std::string, std::vector<int64_t>> merged;
      for (uint32_t q = 0; q < nparts; ++q)
        for (const auto& kv : collect(*store[q])) merged.insert(kv);
      EXPECT_EQ(merged, collect(one));
    }
  }
}

// Bounded state: the coldest groups are evicted (encoded one by one, as a
// worker stores them by key), the store compacts and shrinks, and a group
// whose key comes back is loaded from its evicted bytes before the delta is
// merged: the totals equal a store that never evicted.
TEST(ViewAggregator, EvictedGroupsComeBackWithTheirStates) {
  ViewPlan p = by_origin_plan();
  ViewAggregator store(p), reference(p);
  std::map<std::string, std::string> spilled;  // key -> encoded group
  auto feed = [&](int from, int to) {
    Rows r;
    for (int i = from; i < to; ++i) {
      r.origin.push_back("k" + std::to_string(i % 20000));
      r.delay.push_back(i % 13);
      r.ts.push_back(i);
    }
    RecordBatch b;
    fill(r, &b);
    ViewAggregator delta(p);
    ASSERT_TRUE(delta.consume(b));
    // bring back the evicted groups the delta touches
    std::vector<uint32_t> missing;
    store.missing_keys(delta, &missing);
    for (uint32_t g : missing) {
      auto it = spilled.find(std::string(delta.group_key(g)));
      if (it == spilled.end()) continue;
      std::string why;
      ASSERT_TRUE(store.load_groups(it->second.data(), it->second.size(), &why)) << why;
      spilled.erase(it);
    }
    std::vector<uint32_t> ids;
    std::vector<uint8_t> created;
    ASSERT_TRUE(store.merge(delta, &ids, &created));
    ASSERT_TRUE(reference.merge(delta, &ids, &created));
    // evict down to half of 256 KB
    if (store.memory_bytes() > (256 << 10)) {
      std::vector<uint32_t> cold;
      store.coldest_groups(128 << 10, &cold);
      ASSERT_FALSE(cold.empty());
      for (uint32_t g : cold) {
        std::string bytes;
        ASSERT_TRUE(store.encode_groups(&g, 1, &bytes));
        spilled[std::string(store.group_key(g))] = bytes;
      }
      ASSERT_TRUE(store.remove_groups(cold.data(), cold.size()));
      ASSERT_TRUE(store.compact());
      EXPECT_LE(store.memory_bytes(), static_cast<size_t>(256 << 10));
    }
  };
  for (int i = 0; i < 200000; i += 5000) feed(i, i + 5000);
  EXPECT_GT(spilled.size(), 1000u);
  // everything: the store's groups plus the evicted ones equal the reference
  ViewAggregator all(p);
  std::string bytes, why;
  ASSERT_TRUE(store.encode_all(&bytes));
  ASSERT_TRUE(all.load_groups(bytes.data(), bytes.size(), &why)) << why;
  for (const auto& [k, b] : spilled) ASSERT_TRUE(all.load_groups(b.data(), b.size(), &why)) << why;
  EXPECT_EQ(collect(all), collect(reference));
  EXPECT_EQ(all.live_group_count(), 20000u);
}

// min(text) / max(text): engine/aggregate.h make_text_extreme_aggregate.
#include <gtest/gtest.h>

#include <cstring>

#include "engine/aggregate.h"

namespace velostream::engine {
namespace {

// min/max(text): byte order without a collation, strcoll_l with one.
TEST(TextExtreme, ByteOrderAndCollation) {
  RecordBatch b;
  b.columns.resize(1);
  b.columns[0].type = Type::kText;
  b.columns[0].used = true;
  const char* values[] = {"b", "B", "a", "é", "A"};
  b.reset(5);
  std::vector<uint32_t> rows, groups;
  for (uint32_t i = 0; i < 5; ++i) {
    b.columns[0].str[i] = b.arena.copy(values[i], std::strlen(values[i]));
    b.columns[0].null[i] = 0;
    rows.push_back(i);
    groups.push_back(0);
  }
  AggRows in{&b, rows.data(), groups.data(), rows.size()};
  auto run = [&](bool max, std::shared_ptr<void> coll) {
    auto f = make_text_extreme_aggregate(0, max, coll);
    alignas(16) char state[16];
    f->init(state);
    std::string error;
    EXPECT_TRUE(f->update(in, state, sizeof(state), &error));
    // through serialize / deserialize / combine, as a changelog and a merge would
    std::string bytes;
    EXPECT_TRUE(f->serialize(state, &bytes, &error));
    alignas(16) char copy[16];
    f->init(copy);
    const char* p = bytes.data();
    EXPECT_TRUE(f->deserialize(p, bytes.data() + bytes.size(), copy, &error));
    alignas(16) char merged[16];
    f->init(merged);
    EXPECT_TRUE(f->combine(copy, merged, &error));
    Value v;
    EXPECT_TRUE(f->finalize(merged, &v, &error));
    EXPECT_EQ(v.kind, Value::Kind::kText);
    return std::string(v.s);
  };
  EXPECT_EQ(run(false, nullptr), "A");
  EXPECT_EQ(run(true, nullptr), "é");
  std::shared_ptr<void> utf8 = make_collate_locale("C.UTF-8");
  ASSERT_NE(utf8, nullptr);
  EXPECT_EQ(run(false, utf8), "A");  // code point order
  EXPECT_EQ(run(true, utf8), "é");
}

}  // namespace
}  // namespace velostream::engine

namespace velostream::engine {
namespace {

// min(DISTINCT text) of values beyond std::string's inline buffer: the result
// must outlive the scratch state DISTINCT finalises in (it once did not).
TEST(TextExtreme, DistinctLongValues) {
  RecordBatch b;
  b.columns.resize(1);
  b.columns[0].type = Type::kText;
  b.columns[0].used = true;
  std::string values[] = {std::string(40, 'm'), std::string(30, 'z'), std::string(40, 'm')};
  b.reset(3);
  std::vector<uint32_t> rows = {0, 1, 2}, groups = {0, 0, 0};
  for (int i = 0; i < 3; ++i) {
    b.columns[0].str[i] = b.arena.copy(values[i].data(), values[i].size());
    b.columns[0].null[i] = 0;
  }
  std::shared_ptr<const AggregateFunction> inner = make_text_extreme_aggregate(0, false, nullptr);
  auto f = make_distinct_aggregate(inner, 0, Type::kText);
  alignas(16) char state[64];
  f->init(state);
  std::string error;
  AggRows in{&b, rows.data(), groups.data(), rows.size()};
  ASSERT_TRUE(f->update(in, state, sizeof(state), &error));
  Value v;
  ASSERT_TRUE(f->finalize(state, &v, &error));
  ASSERT_EQ(v.kind, Value::Kind::kText);
  EXPECT_EQ(std::string(v.s), std::string(40, 'm'));
}

}  // namespace
}  // namespace velostream::engine

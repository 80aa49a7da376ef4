// Engine throughput on a flights-shaped batch: records per second through
// filter + GROUP BY + aggregates, without a database. Run:
//   build/engine_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <random>
#include <string>

#include "engine/view_aggregator.h"
#include "engine/window.h"

using namespace velostream::engine;

namespace {

constexpr size_t kBatch = 8192;

void make_batch(RecordBatch* b, int airports) {
  b->columns.resize(4);
  b->columns[0].type = Type::kInt64;  // ts
  b->columns[1].type = Type::kInt64;  // delay
  b->columns[2].type = Type::kText;   // origin
  b->columns[3].type = Type::kInt64;  // distance
  for (auto& c : b->columns) c.used = true;
  b->reset(kBatch);
  std::mt19937 rng(42);
  std::vector<std::string> codes;
  for (int i = 0; i < airports; ++i) codes.push_back("A" + std::to_string(100 + i));
  for (size_t i = 0; i < kBatch; ++i) {
    b->columns[0].i64[i] = 31622400000000LL + static_cast<int64_t>(i) * 60000000LL;
    b->columns[1].i64[i] = static_cast<int64_t>(rng() % 120) - 20;
    const std::string& o = codes[rng() % codes.size()];
    b->columns[2].str[i] = b->arena.copy(o.data(), o.size());
    b->columns[3].i64[i] = rng() % 3000;
    for (auto& c : b->columns) c.null[i] = 0;
    b->xid[i] = 1000;
  }
}

// Baseline: the least work per record, summing one int column of the same
// batch (SELECT sum(delay) without the engine). Ratios in RESULTS.md are
// against this, measured in the same run.
void BM_Baseline_SumColumn(benchmark::State& state) {
  RecordBatch b;
  make_batch(&b, 229);
  int64_t batches = 0;
  for (auto _ : state) {
    int64_t sum = 0;
    const int64_t* v = b.columns[1].i64.data();
    const uint8_t* n = b.columns[1].null.data();
    for (size_t i = 0; i < kBatch; ++i) sum += n[i] ? 0 : v[i];
    benchmark::DoNotOptimize(sum);
    ++batches;
  }
  state.counters["records/s"] = benchmark::Counter(static_cast<double>(batches * kBatch), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Baseline_SumColumn);

// SELECT origin, tumble(ts, '1 hour'), count(*), sum(delay), avg(delay),
//        min(delay), max(delay) FROM flights GROUP BY 1, 2
void BM_DelayByOriginHourly(benchmark::State& state) {
  RecordBatch b;
  make_batch(&b, 229);
  ViewPlan p;
  p.keys.push_back({2, Type::kText, 0, 0});
  p.keys.push_back({0, Type::kInt64, 3600LL * 1000000, kUnixEpochInPgMicros});
  p.aggs = {{AggFunc::kCountStar, -1, Type::kInt64}, {AggFunc::kSum, 1, Type::kInt64},
            {AggFunc::kAvg, 1, Type::kInt64},        {AggFunc::kMin, 1, Type::kInt64},
            {AggFunc::kMax, 1, Type::kInt64}};
  ViewAggregator v(p);
  int64_t batches = 0;
  for (auto _ : state) {
    v.consume(b);
    if (++batches % 16 == 0) v.clear();  // a flush every 16 batches
  }
  state.counters["records/s"] = benchmark::Counter(static_cast<double>(batches * kBatch), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_DelayByOriginHourly);

// SELECT origin, count(*), sum(distance) FROM flights WHERE delay > 15 GROUP BY 1
void BM_LongDelaysFiltered(benchmark::State& state) {
  RecordBatch b;
  make_batch(&b, 229);
  ViewPlan p;
  Predicate gt;
  gt.kind = Predicate::Kind::kCompare;
  gt.op = CmpOp::kGt;
  gt.lhs_col = 1;
  gt.rhs_const.i = 15;
  p.filter = gt;
  p.keys.push_back({2, Type::kText, 0, 0});
  p.aggs = {{AggFunc::kCountStar, -1, Type::kInt64}, {AggFunc::kSum, 3, Type::kInt64}};
  ViewAggregator v(p);
  int64_t batches = 0;
  for (auto _ : state) {
    v.consume(b);
    if (++batches % 16 == 0) v.clear();
  }
  state.counters["records/s"] = benchmark::Counter(static_cast<double>(batches * kBatch), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_LongDelaysFiltered);

}  // namespace

BENCHMARK_MAIN();

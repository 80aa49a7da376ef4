// Engine throughput without a database, in records per second per core:
//  - on a generated flights-shaped batch (BM_Baseline_SumColumn, BM_DelayByOriginHourly,
//    BM_LongDelaysFiltered): filter + GROUP BY + aggregates from columns;
//  - from CSV bytes to aggregated state (BM_Csv_*), on real flights: the file
//    named by VELOSTREAM_BENCH_CSV (no header; ts,delay,distance,origin,destination
//    lines, e.g. `zcat ../shared/data/flights-3m.csv.gz | tail -n +2`), read into
//    memory once; each iteration splits the next 8,192 lines, decodes them into a
//    batch (engine/decoder.h, as a Kafka CSV stream does) and runs the view.
//    BM_Csv_Baseline_SplitLines (finding the lines, nothing else) is their
//    baseline, measured in the same run.
// Run: build/engine_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include "engine/decoder.h"
#include "engine/predicate.h"
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

// ---- From CSV bytes ------------------------------------------------------

// The CSV file's bytes (VELOSTREAM_BENCH_CSV), read once; empty if unset.
const std::string& csv_bytes() {
  static const std::string bytes = [] {
    const char* path = std::getenv("VELOSTREAM_BENCH_CSV");
    if (path == nullptr) return std::string();
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }();
  return bytes;
}

// Splits the next kBatch lines of the file (wrapping around at its end) into
// `lines`; the caller decodes them.
struct LineCursor {
  size_t at = 0;
  void next(const std::string& bytes, std::vector<std::string_view>* lines) {
    lines->clear();
    while (lines->size() < kBatch) {
      if (at >= bytes.size()) at = 0;
      const char* start = bytes.data() + at;
      const void* nl = std::memchr(start, '\n', bytes.size() - at);
      const size_t len = nl ? static_cast<const char*>(nl) - start : bytes.size() - at;
      lines->emplace_back(start, len);
      at += len + 1;
    }
  }
};

// The flights stream's columns as a Kafka CSV stream declares them:
// ts timestamptz, delay int, distance int, origin text, destination text.
std::vector<FieldSpec> flight_fields() {
  return {{"ts", FieldKind::kTimestampTz, 0}, {"delay", FieldKind::kInt32, 1}, {"distance", FieldKind::kInt32, 2},
          {"origin", FieldKind::kText, 3},     {"destination", FieldKind::kText, 4}};
}

void flight_batch(RecordBatch* b) {
  b->columns.resize(5);
  const Type types[5] = {Type::kInt64, Type::kInt64, Type::kInt64, Type::kText, Type::kText};
  for (int c = 0; c < 5; ++c) {
    b->columns[c].type = types[c];
    b->columns[c].used = true;
  }
}

// Decodes `lines` into `b` (malformed lines are skipped, as dead letters are).
size_t decode_lines(MessageDecoder* d, const std::vector<std::string_view>& lines, RecordBatch* b,
                    std::string* error) {
  b->reset(lines.size());
  size_t row = 0;
  for (std::string_view line : lines)
    if (d->decode(line, b, row, error)) ++row;
  b->rows = row;
  b->xid.assign(row, 0);
  return row;
}

bool skip_without_csv(benchmark::State& state) {
  if (!csv_bytes().empty()) return false;
  state.SkipWithError("VELOSTREAM_BENCH_CSV is not set");
  return true;
}

// Baseline: finding the lines of the CSV bytes, nothing else.
void BM_Csv_Baseline_SplitLines(benchmark::State& state) {
  if (skip_without_csv(state)) return;
  LineCursor cursor;
  std::vector<std::string_view> lines;
  int64_t records = 0;
  for (auto _ : state) {
    cursor.next(csv_bytes(), &lines);
    benchmark::DoNotOptimize(lines.data());
    records += static_cast<int64_t>(lines.size());
  }
  state.counters["records/s"] = benchmark::Counter(static_cast<double>(records), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Csv_Baseline_SplitLines);

// SELECT origin, destination, delay FROM flights WHERE delay > 15: decode,
// filter, and the selected rows' values read (the projection).
void BM_Csv_FilterProject(benchmark::State& state) {
  if (skip_without_csv(state)) return;
  MessageDecoder d(MessageFormat::kCsv, flight_fields());
  RecordBatch b;
  flight_batch(&b);
  Predicate gt;
  gt.kind = Predicate::Kind::kCompare;
  gt.op = CmpOp::kGt;
  gt.lhs_col = 1;
  gt.rhs_const.i = 15;
  LineCursor cursor;
  std::vector<std::string_view> lines;
  std::vector<uint8_t> truth;
  std::deque<std::vector<uint8_t>> scratch;
  std::string error;
  int64_t records = 0, selected = 0;
  for (auto _ : state) {
    cursor.next(csv_bytes(), &lines);
    const size_t n = decode_lines(&d, lines, &b, &error);
    evaluate(gt, b, &truth, &scratch);
    size_t bytes = 0;
    for (size_t r = 0; r < n; ++r)
      if (truth[r] == kTrue) {
        bytes += b.columns[3].str[r].size() + b.columns[4].str[r].size() + static_cast<size_t>(b.columns[1].i64[r]);
        ++selected;
      }
    benchmark::DoNotOptimize(bytes);
    records += static_cast<int64_t>(lines.size());
  }
  state.counters["records/s"] = benchmark::Counter(static_cast<double>(records), benchmark::Counter::kIsRate);
  state.counters["selected"] = static_cast<double>(selected) / static_cast<double>(records ? records : 1);
}
BENCHMARK(BM_Csv_FilterProject);

// Runs `p` over the CSV lines, a flush (delta cleared) every 16 batches.
void run_csv_view(benchmark::State& state, const ViewPlan& p) {
  if (skip_without_csv(state)) return;
  MessageDecoder d(MessageFormat::kCsv, flight_fields());
  RecordBatch b;
  flight_batch(&b);
  ViewAggregator v(p);
  LineCursor cursor;
  std::vector<std::string_view> lines;
  std::string error;
  int64_t records = 0, batches = 0;
  for (auto _ : state) {
    cursor.next(csv_bytes(), &lines);
    decode_lines(&d, lines, &b, &error);
    v.consume(b);
    if (++batches % 16 == 0) v.clear();
    records += static_cast<int64_t>(lines.size());
  }
  state.counters["records/s"] = benchmark::Counter(static_cast<double>(records), benchmark::Counter::kIsRate);
}

// SELECT origin, count(*), sum(delay), avg(delay), min(delay), max(delay)
// FROM flights GROUP BY origin
void BM_Csv_GroupBy(benchmark::State& state) {
  ViewPlan p;
  p.keys.push_back({3, Type::kText, 0, 0});
  p.aggs = {{AggFunc::kCountStar, -1, Type::kInt64}, {AggFunc::kSum, 1, Type::kInt64},
            {AggFunc::kAvg, 1, Type::kInt64},        {AggFunc::kMin, 1, Type::kInt64},
            {AggFunc::kMax, 1, Type::kInt64}};
  run_csv_view(state, p);
}
BENCHMARK(BM_Csv_GroupBy);

// SELECT origin, tumble(ts, interval '1 hour'), count(*), sum(delay),
// avg(delay), max(distance) FROM flights GROUP BY 1, 2
void BM_Csv_GroupByTwoKeysTumble(benchmark::State& state) {
  ViewPlan p;
  p.keys.push_back({3, Type::kText, 0, 0});
  p.keys.push_back({0, Type::kInt64, 3600LL * 1000000, kUnixEpochInPgMicros});
  p.aggs = {{AggFunc::kCountStar, -1, Type::kInt64}, {AggFunc::kSum, 1, Type::kInt64},
            {AggFunc::kAvg, 1, Type::kInt64},        {AggFunc::kMax, 2, Type::kInt64}};
  run_csv_view(state, p);
}
BENCHMARK(BM_Csv_GroupByTwoKeysTumble);

}  // namespace

BENCHMARK_MAIN();

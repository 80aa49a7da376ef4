// libFuzzer target: the stream log's batch codec (decode_batch), as a
// partition worker runs it on every log row, then the views' aggregation
// over the decoded batch.
//
// Each input is one log row for a stream of (int8, float8, numeric, text,
// int8). It is decoded with every column read, and with only the text column
// read (the others skipped). A batch that decodes must:
//  - hold only values encode_batch can write (NULL flags 0 or 1);
//  - encode back to bytes that decode to the same values, and re-encode to
//    the same bytes (the codec's round trip);
//  - aggregate like any batch: GROUP BY every column with count / sum / min /
//    max of each, its groups read as the flush reads them.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "engine/batch_codec.h"
#include "fuzz_common.h"

namespace eng = velostream::engine;
namespace vf = velostream::fuzz;

namespace {

bool same_value(const eng::Column& a, size_t i, const eng::Column& b, size_t j) {
  if (a.null[i] != b.null[j]) return false;
  if (a.null[i]) return true;
  switch (a.type) {
    case eng::Type::kInt64: return a.i64[i] == b.i64[j];
    case eng::Type::kFloat64: return std::memcmp(&a.f64[i], &b.f64[j], sizeof(double)) == 0;
    case eng::Type::kNumeric:
      return a.dec[i].kind == b.dec[j].kind && a.dec[i].coef == b.dec[j].coef && a.dec[i].scale == b.dec[j].scale;
    case eng::Type::kText: return a.str[i] == b.str[j];
  }
  return false;
}

void check_round_trip(const eng::RecordBatch& b) {
  std::string bytes, again, error;
  eng::encode_batch(b, &bytes);
  eng::RecordBatch back;
  vf::codec_columns(&back, true);
  vf::check(eng::decode_batch(bytes.data(), bytes.size(), &back, &error), "an encoded batch decodes");
  vf::check(back.rows == b.rows, "same row count after a round trip");
  for (size_t c = 0; c < b.columns.size(); ++c)
    for (size_t r = 0; r < b.rows; ++r)
      vf::check(same_value(b.columns[c], r, back.columns[c], r), "same value after a round trip");
  eng::encode_batch(back, &again);
  vf::check(again == bytes, "re-encoding gives the same bytes");
}

void aggregate(const eng::RecordBatch& b) {
  eng::ViewPlan plan = vf::state_plan();
  eng::ViewAggregator agg(plan), store(plan);
  if (!agg.consume(b)) return;  // a numeric sum over 38 digits: the view reports it
  std::vector<uint32_t> groups;
  std::vector<uint8_t> created;
  if (!store.merge(agg, &groups, &created)) return;
  vf::finalize_all(store);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const char* bytes = reinterpret_cast<const char*>(data);
  std::string error;

  eng::RecordBatch text_only;
  vf::codec_columns(&text_only, false);
  if (eng::decode_batch(bytes, size, &text_only, &error)) {
    vf::check(text_only.xid.size() == text_only.rows, "one xid per row");
  } else {
    vf::check(!error.empty(), "a rejected batch has a reason");
  }

  eng::RecordBatch b;
  vf::codec_columns(&b, true);
  if (!eng::decode_batch(bytes, size, &b, &error)) {
    vf::check(!error.empty(), "a rejected batch has a reason");
    return 0;
  }
  vf::check(b.xid.size() == b.rows, "one xid per row");
  for (const eng::Column& c : b.columns)
    for (size_t r = 0; r < b.rows; ++r) vf::check(c.null[r] <= 1, "NULL flag is 0 or 1");
  std::fill(b.xid.begin(), b.xid.end(), 0);
  check_round_trip(b);
  aggregate(b);
  return 0;
}

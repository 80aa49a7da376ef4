// Writes the binary seed corpora of the batch_codec and state_loader fuzz
// targets from handwritten batches, so the committed seeds can be rebuilt
// when a format changes:  make_seeds test/fuzz/corpus
// (writes corpus/batch_codec/* and corpus/state_loader/*).
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <string>

#include "engine/batch_codec.h"
#include "fuzz_common.h"

namespace eng = velostream::engine;
namespace vf = velostream::fuzz;

namespace {

struct Row {
  bool null[5];
  int64_t ts;
  double f;
  const char* num;
  const char* text;
  int64_t n;
};

// A batch of the codec stream (int8, float8, numeric, text, int8).
void fill(eng::RecordBatch* b, const std::vector<Row>& rows) {
  vf::codec_columns(b, true);
  b->reset(rows.size());
  for (size_t r = 0; r < rows.size(); ++r) {
    const Row& x = rows[r];
    for (int c = 0; c < 5; ++c) b->columns[c].null[r] = x.null[c] ? 1 : 0;
    b->columns[0].i64[r] = x.ts;
    b->columns[1].f64[r] = x.f;
    if (!eng::Decimal::parse(x.num, &b->columns[2].dec[r])) std::abort();
    b->columns[3].str[r] = b->arena.copy(x.text, std::strlen(x.text));
    b->columns[4].i64[r] = x.n;
    b->xid[r] = 0;
  }
}

void write(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
  if (!out) {
    std::perror(path.c_str());
    std::exit(1);
  }
}

const int64_t kHour = 3600LL * 1000000;
const double kInf = std::numeric_limits<double>::infinity();

const std::vector<Row> kFlights = {
    {{0, 0, 0, 0, 0}, 31622460000000, 1.5, "-12.340", "ATL", 33},
    {{0, 0, 0, 0, 1}, 31622460000000 + kHour, -0.0, "NaN", "", 0},
    {{1, 1, 1, 1, 1}, 0, 0, "0", "", 0},
    {{0, 0, 0, 0, 0}, 31622460000000 + 2 * kHour, 1e300, "Infinity", "SFO", -7},
    {{0, 0, 0, 0, 0}, 31622460000000 + 2 * kHour, 1e300, "99999999999999999999999999999999999999", "SFO", 8},
};
const std::vector<Row> kExtremes = {
    {{0, 0, 0, 0, 0}, INT64_MAX, kInf, "-Infinity", "caf\xc3\xa9 \xf0\x9f\x9b\xab", INT64_MAX},
    {{0, 0, 0, 0, 0}, INT64_MIN, -kInf, "0.000000000000000000000000000000000001", "\"quoted, text\"", INT64_MIN},
    {{0, 0, 0, 0, 0}, -1, std::nan(""), "-99999999999999999999999999999999999999", "x", -1},
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds CORPUS_DIR\n");
    return 2;
  }
  const std::string dir = argv[1];

  // Log batches.
  eng::RecordBatch flights, extremes, empty, skipped;
  fill(&flights, kFlights);
  fill(&extremes, kExtremes);
  fill(&empty, {});
  fill(&skipped, kFlights);
  skipped.columns[0].used = false;  // a column no view read when it was written
  std::string bytes;
  eng::encode_batch(flights, &bytes);
  write(dir + "/batch_codec/flights", bytes);
  bytes.clear();
  eng::encode_batch(extremes, &bytes);
  write(dir + "/batch_codec/extremes", bytes);
  bytes.clear();
  eng::encode_batch(empty, &bytes);
  write(dir + "/batch_codec/empty", bytes);
  bytes.clear();
  eng::encode_batch(skipped, &bytes);
  write(dir + "/batch_codec/column_not_stored", bytes);

  // Owned-view states: a snapshot, a changelog entry of some groups, none.
  eng::ViewAggregator store(vf::state_plan());
  if (!store.consume(flights) || !store.consume(extremes)) std::abort();
  bytes.clear();
  store.encode_all(&bytes);
  write(dir + "/state_loader/snapshot", bytes);
  std::vector<uint32_t> order = store.groups_in_key_order();
  bytes.clear();
  store.encode_groups(order.data(), 2, &bytes);
  write(dir + "/state_loader/changes", bytes);
  eng::ViewAggregator none(vf::state_plan());
  bytes.clear();
  none.encode_all(&bytes);
  write(dir + "/state_loader/empty", bytes);
  return 0;
}

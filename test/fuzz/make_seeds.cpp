// Writes the binary seed corpora of the batch_codec and state_loader fuzz
// targets from handwritten batches, so the committed seeds can be rebuilt
// when a format changes:  make_seeds test/fuzz/corpus
// (writes corpus/batch_codec/* and corpus/state_loader/*).
#include <cstdio>
#include <fstream>
#include <string>

#include "engine/batch_codec.h"
#include "fuzz_common.h"

namespace eng = velostream::engine;
namespace vf = velostream::fuzz;

namespace {

void write(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
  if (!out) {
    std::perror(path.c_str());
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds CORPUS_DIR\n");
    return 2;
  }
  const std::string dir = argv[1];

  // Log batches.
  eng::RecordBatch flights, extremes, empty, skipped;
  vf::fill_codec_batch(&flights, vf::flight_rows());
  vf::fill_codec_batch(&extremes, vf::extreme_rows());
  vf::fill_codec_batch(&empty, {});
  vf::fill_codec_batch(&skipped, vf::flight_rows());
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

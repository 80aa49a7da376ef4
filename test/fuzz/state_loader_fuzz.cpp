// libFuzzer target: the owned-view state loader (ViewAggregator::load_groups),
// as a restarted worker runs it on every changelog entry of its view.
//
// Each input is one changelog entry of the view state_plan() describes
// (GROUP BY a tumble window, a float8, a numeric and a text; count / sum /
// avg / min / max). If it loads:
//  - the groups read back the way the flush reads them (keys, numeric text);
//  - encode_all -> load_groups -> encode_all gives the same bytes twice;
//  - a delta of real rows (those of the seeds) merges into the loaded state
//    and reads back.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_common.h"

namespace eng = velostream::engine;
namespace vf = velostream::fuzz;

namespace {

// The rows the seed states were made of (make_seeds): merging them into a
// loaded state adds to the loaded groups.
const eng::RecordBatch& delta_rows() {
  static eng::RecordBatch* b = [] {
    auto* batch = new eng::RecordBatch();
    vf::fill_codec_batch(batch, vf::flight_rows());
    return batch;
  }();
  return *b;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const eng::ViewPlan plan = vf::state_plan();
  eng::ViewAggregator store(plan);
  std::string error;
  if (!store.load_groups(reinterpret_cast<const char*>(data), size, &error)) {
    vf::check(!error.empty(), "a rejected state has a reason");
    return 0;
  }
  vf::finalize_all(store);

  std::string once, twice;
  store.encode_all(&once);
  eng::ViewAggregator reloaded(plan);
  vf::check(reloaded.load_groups(once.data(), once.size(), &error), "an encoded state loads");
  vf::check(reloaded.group_count() == store.group_count(), "same groups after a round trip");
  reloaded.encode_all(&twice);
  vf::check(once == twice, "encode -> load -> encode gives the same bytes");

  eng::ViewAggregator delta(plan);
  std::vector<uint32_t> groups;
  std::vector<uint8_t> created;
  if (delta.consume(delta_rows()) && store.merge(delta, &groups, &created)) vf::finalize_all(store);
  return 0;
}

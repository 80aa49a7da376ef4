#include "kafka/assignment.h"

namespace velostream::kafka {

std::vector<std::pair<int32_t, int64_t>> plan_assignment(int worker, int nworkers, int count,
                                                         const std::vector<int64_t>& next,
                                                         const std::vector<int64_t>& stored, int64_t policy) {
  std::vector<std::pair<int32_t, int64_t>> out;
  for (int32_t p = 0; p < count; ++p) {
    if (p % nworkers != worker) continue;
    int64_t at = policy;
    if (p < static_cast<int32_t>(next.size()) && next[p] >= 0) at = next[p];
    else if (p < static_cast<int32_t>(stored.size()) && stored[p] >= 0) at = stored[p];
    out.emplace_back(p, at);
  }
  return out;
}

}  // namespace velostream::kafka

// Which topic partitions a partition worker consumes, and from where.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace velostream::kafka {

/// The assignment of worker `worker` of `nworkers` for a topic with `count`
/// partitions: every partition p < count with p % nworkers == worker, paired
/// with its start offset: the in-memory next offset `next[p]` if >= 0 (a
/// partition already being consumed keeps its position when the topic
/// grows), else the stored next offset `stored[p]` if >= 0, else `policy`
/// (kOffsetEarliest / kOffsetLatest). `next` and `stored` may be shorter
/// than `count` (missing entries count as -1).
std::vector<std::pair<int32_t, int64_t>> plan_assignment(int worker, int nworkers, int count,
                                                         const std::vector<int64_t>& next,
                                                         const std::vector<int64_t>& stored, int64_t policy);

}  // namespace velostream::kafka

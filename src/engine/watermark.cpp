#include "engine/watermark.h"

#include <algorithm>
#include <limits>

namespace velostream::engine {

namespace {

int64_t minus(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_sub_overflow(a, b, &r)) return b > 0 ? std::numeric_limits<int64_t>::min() : std::numeric_limits<int64_t>::max();
  return r;
}

}  // namespace

bool view_watermark(const PartitionEventTime* parts, int n, int64_t delay, int64_t idle_timeout, int64_t now,
                    int64_t* watermark) {
  bool any = false, any_active = false;
  int64_t min_active = std::numeric_limits<int64_t>::max(), max_all = std::numeric_limits<int64_t>::min();
  for (int i = 0; i < n; ++i) {
    const PartitionEventTime& p = parts[i];
    const bool idle = !p.has_input || minus(now, p.last_input) > idle_timeout;
    if (!p.has_event) {
      if (!idle) return false;  // it may still bring anything: no watermark yet
      continue;
    }
    const int64_t wm = minus(p.max_event_time, delay);
    any = true;
    max_all = std::max(max_all, wm);
    if (idle) continue;
    any_active = true;
    min_active = std::min(min_active, wm);
  }
  if (!any) return false;
  *watermark = any_active ? min_active : max_all;
  return true;
}

}  // namespace velostream::engine

// Session windows of ViewAggregator (SessionSpec): events of a key at most
// `gap` apart form one session; sessions merge as events arrive in any
// order. The interval merging follows Flink's MergingWindowAssigner /
// MergingWindowSet: a new event (or a delta's session, when a store merges a
// delta) is a session of its own that absorbs every session within gap of
// it; the survivor keeps the earliest start.
#include <algorithm>
#include <cstring>
#include <limits>

#include "engine/bytes.h"
#include "engine/view_aggregator.h"

namespace velostream::engine {

using bytes::get;
using bytes::put;

size_t ViewAggregator::part_offset(std::string_view key, size_t part) const {
  const char* p = key.data();
  for (size_t k = 0; k < part; ++k) {
    if (*p++ == 1) continue;  // NULL
    switch (plan_.keys[k].type) {
      case Type::kInt64:
      case Type::kFloat64: p += 8; break;
      case Type::kNumeric: p += 1 + sizeof(int16_t) + sizeof(__int128); break;
      case Type::kText: {
        const uint32_t len = get<uint32_t>(p);
        p += len;
        break;
      }
      case Type::kInterval: break;
    }
  }
  return static_cast<size_t>(p - key.data()) + 1;  // after the part's NULL flag
}

std::string ViewAggregator::session_pk(std::string_view key) const {
  std::string pk(key);
  std::memset(&pk[part_offset(pk, static_cast<size_t>(plan_.session.key_part))], 0, sizeof(int64_t));
  return pk;
}

bool ViewAggregator::session_start(uint32_t g, int64_t* start) const {
  const std::string_view key = keys_[g];
  const size_t off = part_offset(key, static_cast<size_t>(plan_.session.key_part));
  if (key[off - 1] == 1) return false;
  std::memcpy(start, key.data() + off, sizeof(int64_t));
  return true;
}

uint32_t ViewAggregator::place_session(std::string_view pk, size_t off, int64_t s, int64_t e, bool track) {
  const int64_t gap = plan_.session.gap;
  // The key's sessions, by start: disjoint and more than gap apart, so their
  // ends ascend too. Those within gap of [s, e] (start - gap <= e and
  // s <= end + gap) are a contiguous run, found by binary search.
  std::vector<uint32_t>& list = sessions_[std::string(pk)];
  auto first = std::partition_point(list.begin(), list.end(), [&](uint32_t g) {
    int64_t hi;
    if (__builtin_add_overflow(session_end_[g], gap, &hi)) hi = std::numeric_limits<int64_t>::max();
    return hi < s;
  });
  auto last = first;
  while (last != list.end()) {
    int64_t gs = 0, lo;
    session_start(*last, &gs);
    if (__builtin_sub_overflow(gs, gap, &lo)) lo = std::numeric_limits<int64_t>::min();
    if (lo > e) break;
    ++last;
  }
  // The session's key: the plain key with its start.
  uint32_t survivor = UINT32_MAX;
  int64_t start = s, end = e, survivor_start = 0;
  if (first != last) {
    survivor = *first;  // the earliest: the others are combined into it
    session_start(survivor, &survivor_start);
    start = std::min(start, survivor_start);
    end = std::max(end, session_end_[*(last - 1)]);
  }
  std::string key(pk);
  std::memcpy(&key[off], &start, sizeof(int64_t));
  if (survivor == UINT32_MAX) {
    survivor = add_group(key, row_scales_.data());
    if (track) fresh_[survivor] = 1;
    list.insert(first, survivor);
  } else {
    for (auto it = first + 1; it != last; ++it) {  // combined into the survivor, then gone
      const uint32_t g = *it;
      for (size_t a = 0; a < fns_.size(); ++a)
        if (!fns_[a]->combine(row(g) + offsets_[a], row(survivor) + offsets_[a], &error_)) return UINT32_MAX;
      if (track && !fresh_[g]) gone_keys_.emplace_back(keys_[g]);
      redirect_[g] = survivor;
      if (removed_.empty()) removed_.assign(keys_.size(), 0);
      removed_[g] = 1;
      ++removed_count_;
      index_.erase(g);
    }
    list.erase(first + 1, last);
    if (start != survivor_start) {  // re-keyed: its start moved
      if (track && !fresh_[survivor]) gone_keys_.emplace_back(keys_[survivor]);
      index_.erase(survivor);
      keys_[survivor] = key_bytes_.copy(key.data(), key.size());
      index_.insert(survivor);
      if (track) fresh_[survivor] = 1;
    }
  }
  session_end_[survivor] = end;
  return survivor;
}

bool ViewAggregator::consume_sessions(const RecordBatch& b) {
  // Group ids, row by row in batch order: an event joins, extends, merges
  // or starts a session of its plain key. Rows of sessions merged away later
  // in the batch follow redirect_ to their survivor.
  const SessionSpec& ss = plan_.session;
  const Column& ts = b.columns[ss.column];
  group_of_.resize(sel_.size());
  for (size_t k = 0; k < sel_.size(); ++k) {
    const uint32_t r = sel_[k];
    encode_key(b, r, k, &key_buf_);  // session part: 0 (or NULL)
    if (ts.null[r]) {
      auto it = index_.find(std::string_view(key_buf_));
      group_of_[k] = it != index_.end() ? *it : add_group(key_buf_, row_scales_.data());
      continue;
    }
    const uint32_t g =
        place_session(key_buf_, part_offset(key_buf_, static_cast<size_t>(ss.key_part)), ts.i64[r], ts.i64[r], false);
    if (g == UINT32_MAX) return false;
    group_of_[k] = g;
  }
  for (uint32_t& g : group_of_)
    while (redirect_[g] != g) g = redirect_[g];
  return true;
}

bool ViewAggregator::merge_sessions(const ViewAggregator& delta, std::vector<uint32_t>* groups,
                                    std::vector<uint8_t>* created) {
  const size_t part = static_cast<size_t>(plan_.session.key_part);
  gone_keys_.clear();
  std::vector<uint32_t> touched;
  for (uint32_t dg : delta.groups_in_key_order()) {
    const std::string_view dkey = delta.keys_[dg];
    const int16_t* scales = nnumeric_ ? &delta.key_scales_[static_cast<size_t>(dg) * nnumeric_] : nullptr;
    uint32_t g;
    int64_t s;
    if (!delta.session_start(dg, &s)) {  // the NULL session: by key
      bool added;
      g = find_or_add(dkey, &added, scales);
      if (added) fresh_[g] = 1;
    } else {
      pk_buf_.assign(dkey.data(), dkey.size());
      const size_t off = part_offset(pk_buf_, part);
      std::memset(&pk_buf_[off], 0, sizeof(int64_t));
      if (scales != nullptr) std::copy(scales, scales + nnumeric_, row_scales_.begin());
      g = place_session(pk_buf_, off, s, delta.session_end_[dg], true);
      if (g == UINT32_MAX) return false;
    }
    for (size_t a = 0; a < fns_.size(); ++a)
      if (!fns_[a]->combine(delta.state_ptr(dg, a), row(g) + offsets_[a], &error_)) return false;
    touched.push_back(g);
  }
  // The merged groups: survivors only, each once, in key order.
  for (uint32_t& g : touched)
    while (redirect_[g] != g) g = redirect_[g];
  std::sort(touched.begin(), touched.end());
  touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
  std::sort(touched.begin(), touched.end(), [this](uint32_t a, uint32_t b) { return keys_[a] < keys_[b]; });
  groups->assign(touched.begin(), touched.end());
  created->resize(touched.size());
  for (size_t i = 0; i < touched.size(); ++i) {
    (*created)[i] = fresh_[touched[i]];
    fresh_[touched[i]] = 0;
  }
  // (A key could leave and come back only if a session's start moved later,
  // which merging never does; if it did, its row is deleted before the
  // fresh group is inserted, and its tombstone loads before it: both right.)
  // Removed (merged-away) groups were fresh or not: forget their marks.
  for (uint32_t g = 0; g < fresh_.size(); ++g)
    if (!is_live(g)) fresh_[g] = 0;
  return true;
}

void ViewAggregator::index_session(uint32_t g, bool added) {
  int64_t s;
  if (!session_start(g, &s)) return;
  session_end_[g] = static_cast<int64_t>(state(g, static_cast<size_t>(plan_.session.end_agg)).i);
  if (!added) return;  // already in its key's list
  std::vector<uint32_t>& list = sessions_[session_pk(keys_[g])];
  list.insert(std::upper_bound(list.begin(), list.end(), s,
                               [this](int64_t v, uint32_t h) {
                                 int64_t hs = 0;
                                 session_start(h, &hs);
                                 return v < hs;
                               }),
              g);
}

}  // namespace velostream::engine

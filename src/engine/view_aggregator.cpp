#include "engine/view_aggregator.h"

#include "engine/bytes.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "engine/window.h"

namespace velostream::engine {
namespace {

using bytes::get;
using bytes::get_varint;
using bytes::put;
using bytes::put_varint;

}  // namespace

bool StartSnapshot::visible(int64_t xid) const {
  if (xid == 0) return false;  // no writer: a Kafka row fed straight from its topic
  if (xid < xmin) return true;
  if (xid >= xmax) return false;
  return !std::binary_search(xip.begin(), xip.end(), xid);
}

namespace {
void mark_predicate(const Predicate& p, std::vector<uint8_t>* used) {
  if (p.lhs_col >= 0) (*used)[p.lhs_col] = 1;
  if (p.rhs_col >= 0) (*used)[p.rhs_col] = 1;
  for (const Predicate& c : p.children) mark_predicate(c, used);
}
}  // namespace

void mark_used_columns(const ViewPlan& plan, std::vector<uint8_t>* used) {
  if (plan.filter) mark_predicate(*plan.filter, used);
  for (const KeySpec& k : plan.keys) (*used)[k.column] = 1;
  if (plan.expand.column >= 0) (*used)[plan.expand.column] = 1;
  for (const AggSpec& a : plan.aggs) {
    if (a.func == AggFunc::kExternal) a.external->mark_used(used);
    else if (a.column >= 0) (*used)[a.column] = 1;
    if (a.filter) mark_predicate(*a.filter, used);
  }
}

ViewAggregator::ViewAggregator(ViewPlan plan) : plan_(std::move(plan)) {
  for (const KeySpec& k : plan_.keys) numeric_part_.push_back(k.type == Type::kNumeric ? nnumeric_++ : -1);
  row_scales_.resize(nnumeric_);
  for (const AggSpec& a : plan_.aggs) {
    fns_.push_back(a.func == AggFunc::kExternal ? a.external->clone() : make_native_aggregate(a));
    offsets_.push_back(stride_);
    stride_ += (fns_.back()->state_size() + 15) / 16 * 16;
  }
}

void ViewAggregator::clear() { clear(false); }

void ViewAggregator::clear(bool release) {
  // A delta that held many groups gives its memory back (the next cycle
  // grows it again), so that a worker does not keep a second copy's worth of
  // a large view's groups between flushes; a small one keeps it for reuse.
  if (release ||
      states_.capacity() * sizeof(Unit) + keys_.capacity() * sizeof(std::string_view) + key_bytes_.capacity() >
          kKeepBytes) {
    index_ = decltype(index_)(0, GroupHash{&keys_}, GroupEq{&keys_});
    std::vector<std::string_view>().swap(keys_);
    key_bytes_.release();
    std::vector<Unit>().swap(states_);
    std::vector<uint32_t>().swap(touched_);
    std::vector<int16_t>().swap(key_scales_);
    std::vector<uint8_t>().swap(removed_);
  }
  index_.clear();
  keys_.clear();
  removed_.clear();
  removed_count_ = 0;
  touched_.clear();
  sessions_.clear();
  session_end_.clear();
  redirect_.clear();
  fresh_.clear();
  gone_keys_.clear();
  key_bytes_.reset();
  states_.clear();
  key_scales_.clear();
  for (auto& f : fns_) f->reset();
  rows_in_ = rows_selected_ = 0;
  error_.clear();
}

uint32_t ViewAggregator::add_group(std::string_view key, const int16_t* scales) {
  const uint32_t g = static_cast<uint32_t>(keys_.size());
  keys_.push_back(key_bytes_.copy(key.data(), key.size()));
  touched_.push_back(epoch_);
  if (!removed_.empty()) removed_.push_back(0);
  if (plan_.session.key_part >= 0) {
    session_end_.push_back(0);
    redirect_.push_back(g);
    fresh_.push_back(0);
  }
  for (int j = 0; j < nnumeric_; ++j) key_scales_.push_back(scales ? scales[j] : -1);
  index_.insert(g);
  states_.resize(states_.size() + stride_ / 16);
  char* r = row(g);
  for (size_t a = 0; a < fns_.size(); ++a) fns_[a]->init(r + offsets_[a]);
  return g;
}

bool ViewAggregator::finalize(uint32_t g, size_t a, Value* out) {
  return fns_[a]->finalize(state_ptr(g, a), out, &error_);
}

// Key encoding: per part a NULL flag byte, then the value: 8 raw bytes for
// int64 and float8 (with -0 and NaN canonicalised, as PostgreSQL treats them
// as equal), kind/scale/coefficient of the normalised decimal, or a 4-byte
// length and the bytes of a text. Equal SQL keys give equal bytes. Returns
// false for a timestamp whose tumble window date_bin cannot compute.
bool ViewAggregator::encode_key(const RecordBatch& b, size_t row, size_t idx, std::string* out) const {
  out->clear();
  for (const KeySpec& k : plan_.keys) {
    if (k.window_part == 3) {  // the row's session: placed later (0), NULL without an event time
      const bool null = b.columns[k.column].null[row];
      out->push_back(null ? 1 : 0);
      if (!null) put(out, int64_t{0});
      continue;
    }
    if (k.window_part != 0) {  // the row's window (expand_windows): never NULL
      out->push_back(0);
      put(out, k.window_part == 1 ? win_start_[idx] : win_end_[idx]);
      continue;
    }
    const Column& c = b.columns[k.column];
    if (c.null[row]) {
      out->push_back(1);
      continue;
    }
    out->push_back(0);
    switch (k.type) {
      case Type::kInt64: {
        int64_t v = c.i64[row];
        if (k.tumble_size > 0 && !tumble_start(v, k.tumble_size, k.tumble_origin, &v)) return false;
        put(out, v);
        break;
      }
      case Type::kFloat64: {
        double v = c.f64[row];
        if (v == 0) v = 0;  // -0 -> 0
        if (std::isnan(v)) v = std::numeric_limits<double>::quiet_NaN();
        put(out, v);
        break;
      }
      case Type::kNumeric: {
        row_scales_[numeric_part_[&k - plan_.keys.data()]] = c.dec[row].scale;  // shown as first seen
        Decimal d = c.dec[row].normalized();
        out->push_back(static_cast<char>(d.kind));
        put(out, d.scale);
        put(out, d.coef);
        break;
      }
      case Type::kText: {
        std::string_view s = c.str[row];
        put(out, static_cast<uint32_t>(s.size()));
        out->append(s.data(), s.size());
        break;
      }
      case Type::kInterval: return false;  // not a key type: intervals group by value, not by bytes
    }
  }
  return true;
}

namespace {
// d (normalized) shown with `scale` digits after the point, as the group's
// first value had; false if that does not fit 128 bits.
bool rescale(Decimal* d, int scale) {
  if (d->kind != Decimal::kFinite || scale <= d->scale) return true;
  Decimal r = *d;
  for (int i = r.scale; i < scale; ++i)
    if (__builtin_mul_overflow(r.coef, 10, &r.coef)) return false;
  r.scale = static_cast<int16_t>(scale);
  if (!r.valid()) return false;  // more than 38 digits
  *d = r;
  return true;
}
}  // namespace

KeyValue ViewAggregator::key_of(std::string_view enc, size_t part) const {
  const char* p = enc.data();
  KeyValue v;
  for (size_t k = 0; k <= part; ++k) {
    v = KeyValue();
    if (*p++ == 1) {
      v.is_null = true;
      continue;
    }
    switch (plan_.keys[k].type) {
      case Type::kInt64: v.i = get<int64_t>(p); break;
      case Type::kFloat64: v.f = get<double>(p); break;
      case Type::kNumeric:
        v.d.kind = static_cast<Decimal::Kind>(*p++);
        v.d.scale = get<int16_t>(p);
        v.d.coef = get<__int128>(p);
        break;
      case Type::kText: {
        uint32_t len = get<uint32_t>(p);
        v.s = std::string_view(p, len);
        p += len;
        break;
      }
      case Type::kInterval: break;  // (never a key)
    }
  }
  return v;
}

KeyValue ViewAggregator::key(uint32_t g, size_t part) const {
  KeyValue v = key_of(keys_[g], part);
  if (!v.is_null && numeric_part_[part] >= 0) rescale(&v.d, key_scales_[g * nnumeric_ + numeric_part_[part]]);
  return v;
}

std::vector<uint32_t> ViewAggregator::live_groups() const {
  std::vector<uint32_t> live;
  live.reserve(live_group_count());
  for (uint32_t g = 0; g < keys_.size(); ++g)
    if (is_live(g)) live.push_back(g);
  return live;
}

std::vector<uint32_t> ViewAggregator::groups_in_key_order() const {
  std::vector<uint32_t> order = live_groups();
  std::sort(order.begin(), order.end(), [this](uint32_t a, uint32_t b) { return keys_[a] < keys_[b]; });
  return order;
}

bool ViewAggregator::consume(const RecordBatch& b) {
  const size_t n = b.rows;
  rows_in_ += n;
  if (n == 0) return true;

  // 1. Selection: rows after the view's start that pass the filter.
  sel_.clear();
  if (plan_.filter) {
    evaluate(*plan_.filter, b, &truth_, &scratch_);
  } else {
    truth_.assign(n, kTrue);
  }
  bool check_start = plan_.start.xmax > 0;
  late_rows_.clear();
  const Column* late = late_column_ >= 0 && static_cast<size_t>(late_column_) < b.columns.size() &&
                               b.columns[late_column_].used && b.columns[late_column_].type == Type::kInt64
                           ? &b.columns[late_column_]
                           : nullptr;
  for (size_t r = 0; r < n; ++r) {
    if (truth_[r] != kTrue) continue;
    if (check_start && plan_.start.visible(b.xid[r])) continue;
    if (late != nullptr && !late->null[r] && late->i64[r] < late_before_) {
      late_rows_.push_back(static_cast<uint32_t>(r));
      continue;
    }
    sel_.push_back(static_cast<uint32_t>(r));
  }
  row_errors_.clear();

  // 1b. Per-row work of the aggregates that can fail for one row (their
  //     argument expressions), for the rows each one sees: a row refused by
  //     one is dropped for all.
  bool any_dropped = false;
  for (size_t a = 0; a < fns_.size(); ++a) {
    if (!fns_[a]->has_prepare() || sel_.empty()) continue;
    const size_t before = row_errors_.size();
    if (plan_.aggs[a].filter) {
      evaluate(*plan_.aggs[a].filter, b, &filter_truth_, &scratch_);
      filter_sel_.clear();
      for (uint32_t r : sel_)
        if (filter_truth_[r] == kTrue) filter_sel_.push_back(r);
      fns_[a]->prepare(AggRows{&b, filter_sel_.data(), nullptr, filter_sel_.size()}, &row_errors_);
    } else {
      fns_[a]->prepare(AggRows{&b, sel_.data(), nullptr, sel_.size()}, &row_errors_);
    }
    if (row_errors_.size() == before) continue;
    if (!any_dropped) dropped_.assign(n, 0);
    any_dropped = true;
    for (size_t i = before; i < row_errors_.size(); ++i) dropped_[row_errors_[i].row] = 1;
    size_t kept = 0;  // later aggregates see the remaining rows only
    for (uint32_t r : sel_)
      if (!dropped_[r]) sel_[kept++] = r;
    sel_.resize(kept);
  }
  rows_selected_ += sel_.size();
  if (plan_.expand.kind != WindowExpansion::Kind::kNone) rows_selected_ -= expand_windows(b);

  if (plan_.session.key_part >= 0) {
    if (!consume_sessions(b)) return false;
    goto aggregate;
  }
  {
  // 2. Group ids: one hash probe per row; a new group copies its key once.
  //    A row whose key cannot be computed (a tumble window out of range,
  //    where date_bin raises) is skipped and reported in row_errors_.
  group_of_.resize(sel_.size());
  size_t kept = 0, tumble_errors = 0;
  for (size_t k = 0; k < sel_.size(); ++k) {
    if (!encode_key(b, sel_[k], k, &key_buf_)) {
      const char* message = "timestamp out of range";
      for (const KeySpec& ks : plan_.keys) {
        const Column& c = b.columns[ks.column];
        if (ks.tumble_size > 0 && !c.null[sel_[k]])
          if (const char* m = tumble_error(c.i64[sel_[k]], ks.tumble_size, ks.tumble_origin)) {
            message = m;
            break;
          }
      }
      row_errors_.push_back(RowError{sel_[k], message});
      ++tumble_errors;
      continue;
    }
    sel_[kept] = sel_[k];
    auto it = index_.find(std::string_view(key_buf_));
    group_of_[kept++] = it != index_.end() ? *it : add_group(key_buf_, row_scales_.data());
  }
  sel_.resize(kept);
  group_of_.resize(kept);
  rows_selected_ -= tumble_errors;
  }

aggregate:
  if (sel_.empty()) return true;  // (no group rows yet, maybe: states_ may be empty)

  // 3. Aggregates, one column-at-a-time loop each; an aggregate with a
  //    FILTER clause sees the selected rows for which it is true.
  AggRows rows{&b, sel_.data(), group_of_.data(), sel_.size()};
  char* base = reinterpret_cast<char*>(states_.data());
  for (size_t a = 0; a < fns_.size(); ++a) {
    AggRows in = rows;
    if (plan_.aggs[a].filter) {
      evaluate(*plan_.aggs[a].filter, b, &filter_truth_, &scratch_);
      filter_sel_.clear();
      filter_groups_.clear();
      for (size_t k = 0; k < sel_.size(); ++k) {
        if (filter_truth_[sel_[k]] != kTrue) continue;
        filter_sel_.push_back(sel_[k]);
        filter_groups_.push_back(group_of_[k]);
      }
      in = AggRows{&b, filter_sel_.data(), filter_groups_.data(), filter_sel_.size()};
    }
    if (!fns_[a]->update(in, base + offsets_[a], stride_, &error_)) return false;
  }
  return true;
}

size_t ViewAggregator::expand_windows(const RecordBatch& b) {
  const WindowExpansion& w = plan_.expand;
  const Column& c = b.columns[w.column];
  expanded_.clear();
  win_start_.clear();
  win_end_.clear();
  size_t gone = 0;
  for (uint32_t r : sel_) {
    const int64_t ts = c.i64[r];
    if (c.null[r] || ts == std::numeric_limits<int64_t>::min() || ts == std::numeric_limits<int64_t>::max()) {
      ++gone;  // no window
      continue;
    }
    const size_t before = expanded_.size();
    bool ok = true;
    if (w.kind == WindowExpansion::Kind::kHop) {
      int64_t s, lower;
      ok = tumble_start(ts, w.step, w.origin, &s);
      if (__builtin_sub_overflow(ts, w.size, &lower)) lower = std::numeric_limits<int64_t>::min();
      while (ok && s > lower) {
        int64_t e;
        if (__builtin_add_overflow(s, w.size, &e) || e > kEndPgTimestamp || s < kMinPgTimestamp) {
          ok = false;
          break;
        }
        expanded_.push_back(r);
        win_start_.push_back(s);
        win_end_.push_back(e);
        if (__builtin_sub_overflow(s, w.step, &s)) break;
      }
    } else {
      int64_t s;
      ok = tumble_start(ts, w.size, w.origin, &s);
      const int64_t n = w.size / w.step;
      for (int64_t i = ok ? (ts - s) / w.step + 1 : n + 1; ok && i <= n; ++i) {
        int64_t e;
        if (__builtin_add_overflow(s, i * w.step, &e) || e > kEndPgTimestamp) {
          ok = false;
          break;
        }
        expanded_.push_back(r);
        win_start_.push_back(s);
        win_end_.push_back(e);
      }
    }
    if (!ok) {
      expanded_.resize(before);
      win_start_.resize(before);
      win_end_.resize(before);
      row_errors_.push_back(RowError{r, "timestamp out of range"});
      ++gone;
    }
  }
  sel_.swap(expanded_);
  return gone;
}

uint32_t ViewAggregator::find_or_add(std::string_view key, bool* added, const int16_t* scales) {
  auto it = index_.find(key);
  if (it != index_.end()) {
    *added = false;
    return *it;
  }
  *added = true;
  return add_group(key, scales);
}

bool ViewAggregator::merge(const ViewAggregator& delta, std::vector<uint32_t>* groups,
                           std::vector<uint8_t>* created) {
  if (plan_.session.key_part >= 0) return merge_sessions(delta, groups, created);
  ++epoch_;
  std::vector<uint32_t> order = delta.groups_in_key_order();
  groups->resize(order.size());
  created->resize(order.size());
  for (size_t j = 0; j < order.size(); ++j) {
    const uint32_t dg = order[j];
    bool added;
    const uint32_t g = find_or_add(delta.keys_[dg], &added,
                                   nnumeric_ ? &delta.key_scales_[static_cast<size_t>(dg) * nnumeric_] : nullptr);
    (*groups)[j] = g;
    (*created)[j] = added ? 1 : 0;
    touched_[g] = epoch_;
    for (size_t a = 0; a < fns_.size(); ++a) {
      if (!fns_[a]->combine(delta.state_ptr(dg, a), row(g) + offsets_[a], &error_)) return false;
    }
  }
  return true;
}

namespace {
constexpr uint32_t kGroupsMagic = 0x32475356;  // "VSG2"
// "VSG3": as VSG2, with each group's numeric key parts' display scales
// (int16 each) after its key; written when the plan has numeric keys.
constexpr uint32_t kGroupsScalesMagic = 0x33475356;
// "VSS2" / "VSS3": a session plan's VSG2 / VSG3, with its tombstones first.
constexpr uint32_t kSessionsMagic = 0x32535356;
constexpr uint32_t kSessionsScalesMagic = 0x33535356;

}  // namespace

bool ViewAggregator::encode_all(std::string* out) const {
  const std::vector<uint32_t> all = live_groups();
  return encode_groups(all.data(), all.size(), out);
}

bool ViewAggregator::encode_chunk(uint32_t* next, size_t max_bytes, std::string* out) const {
  // The header with no groups, then groups until the encoding (states as
  // they serialise, external ones included) reaches max_bytes; then the
  // header's count is set.
  const size_t start = out->size();
  if (!encode_groups(nullptr, 0, out)) return false;
  uint32_t count = 0;
  uint32_t g = *next;
  for (; g < keys_.size() && (count == 0 || out->size() - start < max_bytes); ++g) {
    if (!is_live(g)) continue;
    if (!encode_group(g, out)) return false;
    ++count;
  }
  *next = g;
  std::memcpy(&(*out)[start + sizeof(uint32_t)], &count, sizeof(count));
  return true;
}

bool ViewAggregator::window_end(uint32_t g, int64_t* end) const {
  if (plan_.session.key_part >= 0) {  // a session ends gap after its last event
    int64_t s;
    if (!session_start(g, &s)) return false;
    if (__builtin_add_overflow(session_end_[g], plan_.session.gap, end) || *end == std::numeric_limits<int64_t>::max())
      *end = std::numeric_limits<int64_t>::max();
    else
      *end += 1;
    return true;
  }
  if (plan_.window.end_part < 0) return false;
  const KeyValue v = key(g, static_cast<size_t>(plan_.window.end_part));
  if (v.is_null) return false;
  if (__builtin_add_overflow(v.i, plan_.window.end_offset, end))
    *end = plan_.window.end_offset > 0 ? std::numeric_limits<int64_t>::max() : std::numeric_limits<int64_t>::min();
  return true;
}

void ViewAggregator::groups_ending_by(int64_t limit, std::vector<uint32_t>* out) const {
  if (plan_.window.end_part < 0 && plan_.session.key_part < 0) return;
  const size_t first = out->size();
  for (uint32_t g = 0; g < keys_.size(); ++g) {
    if (!is_live(g)) continue;
    int64_t end;
    if (window_end(g, &end) && end <= limit) out->push_back(g);
  }
  std::sort(out->begin() + first, out->end(), [this](uint32_t a, uint32_t b) { return keys_[a] < keys_[b]; });
}

uint32_t ViewAggregator::owner_partition(uint32_t g, uint32_t nparts) const {
  if (nparts <= 1) return 0;
  std::string_view key = keys_[g];
  uint64_t h;
  int64_t start;
  if (plan_.session.key_part >= 0 && session_start(g, &start)) {
    const std::string pk = session_pk(key);  // a NULL session is a group of its own: its whole key
    h = XXH3_64bits(pk.data(), pk.size());
  } else {
    h = XXH3_64bits(key.data(), key.size());
  }
  return static_cast<uint32_t>(h % nparts);
}

bool ViewAggregator::remove_groups(const uint32_t* groups, size_t n, bool may_compact) {
  if (n == 0) return true;
  if (removed_.empty()) removed_.assign(keys_.size(), 0);
  removed_.resize(keys_.size(), 0);
  for (size_t i = 0; i < n; ++i) {
    const uint32_t g = groups[i];
    if (removed_[g]) continue;
    removed_[g] = 1;
    ++removed_count_;
    index_.erase(g);
    int64_t s;
    if (plan_.session.key_part >= 0 && session_start(g, &s)) {  // out of its key's session list
      auto it = sessions_.find(session_pk(keys_[g]));
      if (it != sessions_.end()) {
        auto& list = it->second;  // by start (place_session)
        auto at = std::lower_bound(list.begin(), list.end(), s, [this](uint32_t h, int64_t v) {
          int64_t hs = 0;
          session_start(h, &hs);
          return hs < v;
        });
        if (at != list.end() && *at == g) list.erase(at);
        else list.erase(std::remove(list.begin(), list.end(), g), list.end());
        if (list.empty()) sessions_.erase(it);
      }
    }
  }
  if (!may_compact || removed_count_ < kCompactMin || removed_count_ < live_group_count()) return true;
  return compact();
}

bool ViewAggregator::compact() {
  // The live groups, re-encoded and loaded into a cleared aggregator
  // (encode skips removed groups); their recency is kept.
  const std::vector<uint32_t> live = live_groups();
  std::vector<uint32_t> marks(live.size());
  for (size_t i = 0; i < live.size(); ++i) marks[i] = touched_[live[i]];
  const uint32_t epoch = epoch_;
  const uint64_t rows_in = rows_in_, rows_selected = rows_selected_;  // a delta's counts stay
  std::string bytes;
  if (!encode_groups(live.data(), live.size(), &bytes)) return false;
  clear(true);
  rows_in_ = rows_in;
  rows_selected_ = rows_selected;
  std::string why;
  if (!load_groups(bytes.data(), bytes.size(), &why)) {
    error_ = why;
    return false;
  }
  epoch_ = epoch;
  for (size_t i = 0; i < marks.size() && i < touched_.size(); ++i) touched_[i] = marks[i];  // loaded in order
  return true;
}

size_t ViewAggregator::memory_bytes() const {
  return states_.capacity() * sizeof(Unit) + keys_.capacity() * sizeof(std::string_view) + key_bytes_.capacity() +
         index_.capacity() * (sizeof(uint32_t) + 1) + touched_.capacity() * sizeof(uint32_t) +
         key_scales_.capacity() * sizeof(int16_t) + removed_.capacity();
}

void ViewAggregator::coldest_groups(size_t keep_bytes, std::vector<uint32_t>* out) const {
  const size_t live = live_group_count();
  const size_t total = memory_bytes();
  if (live == 0 || total <= keep_bytes) return;
  const size_t per_group = std::max<size_t>(1, total / std::max<size_t>(1, keys_.size()));
  size_t evict = std::min(live, (total - keep_bytes + per_group - 1) / per_group);
  std::vector<uint32_t> order = live_groups();
  std::nth_element(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(evict - 1), order.end(),
                   [this](uint32_t a, uint32_t b) { return touched_[a] < touched_[b]; });
  out->insert(out->end(), order.begin(), order.begin() + static_cast<std::ptrdiff_t>(evict));
}

void ViewAggregator::missing_keys(const ViewAggregator& delta, std::vector<uint32_t>* out) const {
  for (uint32_t g = 0; g < delta.keys_.size(); ++g) {
    if (!delta.is_live(g)) continue;
    if (index_.find(delta.keys_[g]) == index_.end()) out->push_back(g);
  }
}

bool ViewAggregator::encode_groups(const uint32_t* groups, size_t n, std::string* out,
                                   const std::vector<std::string>* tombstones) const {
  const bool sessions = plan_.session.key_part >= 0;
  put<uint32_t>(out, sessions ? (nnumeric_ ? kSessionsScalesMagic : kSessionsMagic)
                              : (nnumeric_ ? kGroupsScalesMagic : kGroupsMagic));
  put<uint32_t>(out, static_cast<uint32_t>(n));
  put<uint32_t>(out, static_cast<uint32_t>(fns_.size()));
  if (sessions) {
    put<uint32_t>(out, static_cast<uint32_t>(tombstones ? tombstones->size() : 0));
    if (tombstones != nullptr)
      for (const std::string& k : *tombstones) {
        put<uint32_t>(out, static_cast<uint32_t>(k.size()));
        out->append(k);
      }
  }
  for (size_t j = 0; j < n; ++j)
    if (!encode_group(groups[j], out)) return false;
  return true;
}

bool ViewAggregator::encode_group(uint32_t g, std::string* out) const {
  const std::string_view key = keys_[g];
  put<uint32_t>(out, static_cast<uint32_t>(key.size()));
  out->append(key.data(), key.size());
  for (int j = 0; j < nnumeric_; ++j) put<int16_t>(out, key_scales_[static_cast<size_t>(g) * nnumeric_ + j]);
  for (size_t a = 0; a < fns_.size(); ++a)
    if (!fns_[a]->serialize(state_ptr(g, a), out, &error_)) return false;
  return true;
}

bool ViewAggregator::valid_key(std::string_view key) const {
  const char* p = key.data();
  const char* end = p + key.size();
  auto need = [&](size_t n) { return static_cast<size_t>(end - p) >= n; };
  for (const KeySpec& k : plan_.keys) {
    if (!need(1)) return false;
    const uint8_t is_null = static_cast<uint8_t>(*p++);
    if (is_null > 1) return false;
    if (is_null) continue;
    switch (k.type) {
      case Type::kInt64:
      case Type::kFloat64:
        if (!need(8)) return false;
        p += 8;
        break;
      case Type::kNumeric: {
        if (!need(1 + sizeof(int16_t) + sizeof(__int128))) return false;
        Decimal d;
        d.kind = static_cast<Decimal::Kind>(*p++);
        d.scale = get<int16_t>(p);
        d.coef = get<__int128>(p);
        if (!d.valid()) return false;
        break;
      }
      case Type::kText: {
        if (!need(4)) return false;
        const uint32_t len = get<uint32_t>(p);
        if (!need(len)) return false;
        p += len;
        break;
      }
      case Type::kInterval: return false;  // (never a key)
    }
  }
  return p == end;
}

bool ViewAggregator::load_groups(const char* data, size_t len, std::string* error) {
  const size_t naggs = plan_.aggs.size();
  const char* p = data;
  const char* end = data + len;
  auto need = [&](size_t n) { return static_cast<size_t>(end - p) >= n; };
  uint32_t magic = need(12) ? get<uint32_t>(p) : 0;
  const bool sessions = plan_.session.key_part >= 0;
  const bool scales = magic == (sessions ? kSessionsScalesMagic : kGroupsScalesMagic);
  if (magic != (sessions ? kSessionsMagic : kGroupsMagic) && !(scales && nnumeric_ > 0)) {
    *error = "not a velostream state batch";
    return false;
  }
  uint32_t count = get<uint32_t>(p);
  if (get<uint32_t>(p) != naggs) {
    *error = "state batch has another number of aggregates";
    return false;
  }
  if (sessions) {  // tombstones: sessions merged into others or re-keyed
    if (!need(4)) goto corrupt;
    const uint32_t ntomb = get<uint32_t>(p);
    std::vector<uint32_t> gone;
    for (uint32_t i = 0; i < ntomb; ++i) {
      if (!need(4)) goto corrupt;
      const uint32_t klen = get<uint32_t>(p);
      if (!need(klen) || !valid_key(std::string_view(p, klen))) goto corrupt;
      auto it = index_.find(std::string_view(p, klen));
      if (it != index_.end()) gone.push_back(*it);
      p += klen;
    }
    if (!gone.empty() && !remove_groups(gone.data(), gone.size())) {
      *error = error_;
      return false;
    }
  }
  for (uint32_t i = 0; i < count; ++i) {
    if (!need(4)) goto corrupt;
    {
      uint32_t klen = get<uint32_t>(p);
      if (!need(klen) || !valid_key(std::string_view(p, klen))) goto corrupt;
      std::string_view key(p, klen);
      p += klen;
      int16_t sc[64];
      if (nnumeric_ > 64) goto corrupt;
      for (int j = 0; j < nnumeric_; ++j) {
        sc[j] = -1;  // VSG2: as stored
        if (!scales) continue;
        if (!need(2)) goto corrupt;
        sc[j] = get<int16_t>(p);
        if (sc[j] < -1 || sc[j] > Decimal::kMaxScale) goto corrupt;
      }
      bool added;
      uint32_t g = find_or_add(key, &added, sc);
      if (!added)  // a later write replaces the scales too
        for (int j = 0; j < nnumeric_; ++j) key_scales_[static_cast<size_t>(g) * nnumeric_ + j] = sc[j];
      for (size_t part = 0; part < plan_.keys.size(); ++part) {
        if (numeric_part_[part] < 0) continue;
        KeyValue v = this->key(g, part);
        Decimal shown = v.d;
        if (!v.is_null && sc[numeric_part_[part]] > shown.scale && !rescale(&shown, sc[numeric_part_[part]]))
          goto corrupt;  // a scale the value cannot be shown with
      }
      for (size_t a = 0; a < naggs; ++a) {
        void* state = row(g) + offsets_[a];
        if (!added) {  // a later write replaces the state
          std::memset(state, 0, fns_[a]->state_size());
          fns_[a]->init(state);
        }
        if (!fns_[a]->deserialize(p, end, state, error)) return false;
      }
      if (sessions) index_session(g, added);
    }
  }
  if (p != end) goto corrupt;
  return true;
corrupt:
  *error = "state batch is truncated or corrupt";
  return false;
}

bool ViewAggregator::group_state_bytes(uint32_t g, std::string* out) const {
  for (size_t a = 0; a < fns_.size(); ++a)
    if (!fns_[a]->serialize(state_ptr(g, a), out, &error_)) return false;
  return true;
}

namespace {
// Zeroed rows of `stride` bytes, 16-byte aligned.
struct alignas(16) ScratchUnit {
  char bytes[16];
};
}  // namespace

bool ViewAggregator::merge_state_bytes(std::string_view a, std::string_view b, std::string* out) {
  std::vector<ScratchUnit> rows(2 * stride_ / 16 + 1);
  char* ra = reinterpret_cast<char*>(rows.data());
  char* rb = ra + stride_;
  const char* pa = a.data();
  const char* pb = b.data();
  for (size_t i = 0; i < fns_.size(); ++i) {
    fns_[i]->init(ra + offsets_[i]);
    fns_[i]->init(rb + offsets_[i]);
    if (!fns_[i]->deserialize(pa, a.data() + a.size(), ra + offsets_[i], &error_) ||
        !fns_[i]->deserialize(pb, b.data() + b.size(), rb + offsets_[i], &error_) ||
        !fns_[i]->combine(rb + offsets_[i], ra + offsets_[i], &error_) ||
        !fns_[i]->serialize(ra + offsets_[i], out, &error_))
      return false;
  }
  if (pa != a.data() + a.size() || pb != b.data() + b.size()) {
    error_ = "state is truncated or corrupt";
    return false;
  }
  return true;
}

bool ViewAggregator::finalize_state_bytes(std::string_view s, Value* out) {
  std::vector<ScratchUnit> rows(stride_ / 16 + 1);
  char* r = reinterpret_cast<char*>(rows.data());
  const char* p = s.data();
  for (size_t i = 0; i < fns_.size(); ++i) {
    fns_[i]->init(r + offsets_[i]);
    if (!fns_[i]->deserialize(p, s.data() + s.size(), r + offsets_[i], &error_) ||
        !fns_[i]->finalize(r + offsets_[i], &out[i], &error_))
      return false;
  }
  if (p != s.data() + s.size()) {
    error_ = "state is truncated or corrupt";
    return false;
  }
  return true;
}

void ViewAggregator::reset_scratch() {
  for (auto& f : fns_) f->reset();
}

}  // namespace velostream::engine

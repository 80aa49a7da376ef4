#include "engine/view_aggregator.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "engine/window.h"

namespace velostream::engine {
namespace {

// PostgreSQL's float8 order: NaN above everything, equal to itself.
inline bool float_greater(double a, double b) {
  if (std::isnan(a)) return !std::isnan(b);
  if (std::isnan(b)) return false;
  return a > b;
}

template <typename T>
inline void put(std::string* out, const T& v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof(T));
}

template <typename T>
inline T get(const char*& p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  p += sizeof(T);
  return v;
}

}  // namespace

bool StartSnapshot::visible(int64_t xid) const {
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
  for (const AggSpec& a : plan.aggs)
    if (a.column >= 0) (*used)[a.column] = 1;
}

ViewAggregator::ViewAggregator(ViewPlan plan) : plan_(std::move(plan)) {}

void ViewAggregator::clear() {
  index_.clear();
  keys_.clear();
  states_.clear();
  rows_in_ = rows_selected_ = 0;
  error_.clear();
}

// Key encoding: per part a NULL flag byte, then the value: 8 raw bytes for
// int64 and float8 (with -0 and NaN canonicalised, as PostgreSQL treats them
// as equal), kind/scale/coefficient of the normalised decimal, or a 4-byte
// length and the bytes of a text. Equal SQL keys give equal bytes. Returns
// false for a timestamp whose tumble window date_bin cannot compute.
bool ViewAggregator::encode_key(const RecordBatch& b, size_t row, std::string* out) const {
  out->clear();
  for (const KeySpec& k : plan_.keys) {
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
    }
  }
  return true;
}

KeyValue ViewAggregator::key(uint32_t g, size_t part) const {
  const std::string& enc = keys_[g];
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
    }
  }
  return v;
}

std::vector<uint32_t> ViewAggregator::groups_in_key_order() const {
  std::vector<uint32_t> order(keys_.size());
  for (uint32_t g = 0; g < order.size(); ++g) order[g] = g;
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
  for (size_t r = 0; r < n; ++r) {
    if (truth_[r] != kTrue) continue;
    if (check_start && plan_.start.visible(b.xid[r])) continue;
    sel_.push_back(static_cast<uint32_t>(r));
  }
  rows_selected_ += sel_.size();

  // 2. Group ids: one hash probe per row; a new group copies its key once.
  const size_t naggs = plan_.aggs.size();
  group_of_.resize(sel_.size());
  for (size_t k = 0; k < sel_.size(); ++k) {
    if (!encode_key(b, sel_[k], &key_buf_)) {
      error_ = "tumble(): timestamp out of range (date_bin raises an error for it)";
      return false;
    }
    auto it = index_.find(std::string_view(key_buf_));
    if (it != index_.end()) {
      group_of_[k] = it->second;
      continue;
    }
    uint32_t g = static_cast<uint32_t>(keys_.size());
    keys_.push_back(key_buf_);
    index_.emplace(std::string_view(keys_.back()), g);
    states_.resize(states_.size() + naggs);
    group_of_[k] = g;
  }

  // 3. Aggregates, one column-at-a-time loop each.
  for (size_t a = 0; a < naggs; ++a) {
    if (!update(plan_.aggs[a], a, b)) return false;
  }
  return true;
}

bool ViewAggregator::update(const AggSpec& spec, size_t a, const RecordBatch& b) {
  const size_t naggs = plan_.aggs.size();
  const size_t m = sel_.size();
  AggState* states = states_.data();
  if (spec.func == AggFunc::kCountStar) {
    for (size_t k = 0; k < m; ++k) states[group_of_[k] * naggs + a].n++;
    return true;
  }
  const Column& c = b.columns[spec.column];
  const uint8_t* nulls = c.null.data();
  switch (spec.func) {
    case AggFunc::kCountStar:
      break;
    case AggFunc::kCount:
      for (size_t k = 0; k < m; ++k)
        if (!nulls[sel_[k]]) states[group_of_[k] * naggs + a].n++;
      break;
    case AggFunc::kSum:
    case AggFunc::kAvg:
      for (size_t k = 0; k < m; ++k) {
        uint32_t r = sel_[k];
        if (nulls[r]) continue;
        AggState& s = states[group_of_[k] * naggs + a];
        switch (spec.input) {
          case Type::kInt64: s.i += c.i64[r]; break;
          case Type::kFloat64: s.f += c.f64[r]; break;
          case Type::kNumeric:
            if (s.n == 0) {
              s.d = c.dec[r];
            } else if (!decimal_add(s.d, c.dec[r], &s.d)) {
              error_ = "numeric sum exceeds 38 significant digits";
              return false;
            }
            break;
          case Type::kText: break;
        }
        s.n++;
      }
      break;
    case AggFunc::kMin:
    case AggFunc::kMax: {
      const bool is_max = spec.func == AggFunc::kMax;
      for (size_t k = 0; k < m; ++k) {
        uint32_t r = sel_[k];
        if (nulls[r]) continue;
        AggState& s = states[group_of_[k] * naggs + a];
        bool take = s.n == 0;
        switch (spec.input) {
          case Type::kInt64:
            take = take || (is_max ? c.i64[r] > s.i : c.i64[r] < s.i);
            if (take) s.i = c.i64[r];
            break;
          case Type::kFloat64:
            take = take || (is_max ? float_greater(c.f64[r], s.f) : float_greater(s.f, c.f64[r]));
            if (take) s.f = c.f64[r];
            break;
          case Type::kNumeric: {
            int cmp = take ? 0 : decimal_cmp(c.dec[r], s.d);
            take = take || (is_max ? cmp > 0 : cmp < 0);
            if (take) s.d = c.dec[r];
            break;
          }
          case Type::kText: break;
        }
        s.n++;
      }
      break;
    }
  }
  return true;
}

uint32_t ViewAggregator::find_or_add(std::string_view key, bool* added) {
  auto it = index_.find(key);
  if (it != index_.end()) {
    *added = false;
    return it->second;
  }
  uint32_t g = static_cast<uint32_t>(keys_.size());
  keys_.emplace_back(key);
  index_.emplace(std::string_view(keys_.back()), g);
  states_.resize(states_.size() + plan_.aggs.size());
  *added = true;
  return g;
}

bool ViewAggregator::merge(const ViewAggregator& delta, std::vector<uint32_t>* groups,
                           std::vector<uint8_t>* created) {
  const size_t naggs = plan_.aggs.size();
  std::vector<uint32_t> order = delta.groups_in_key_order();
  groups->resize(order.size());
  created->resize(order.size());
  for (size_t j = 0; j < order.size(); ++j) {
    const uint32_t dg = order[j];
    bool added;
    const uint32_t g = find_or_add(delta.keys_[dg], &added);
    (*groups)[j] = g;
    (*created)[j] = added ? 1 : 0;
    for (size_t a = 0; a < naggs; ++a) {
      const AggSpec& spec = plan_.aggs[a];
      const AggState& d = delta.states_[dg * naggs + a];
      AggState& s = states_[g * naggs + a];
      if (d.n == 0) continue;
      switch (spec.func) {
        case AggFunc::kCountStar:
        case AggFunc::kCount:
          break;
        case AggFunc::kSum:
        case AggFunc::kAvg:
          switch (spec.input) {
            case Type::kInt64: s.i += d.i; break;
            case Type::kFloat64: s.f += d.f; break;
            case Type::kNumeric:
              if (s.n == 0) {
                s.d = d.d;
              } else if (!decimal_add(s.d, d.d, &s.d)) {
                error_ = "numeric sum exceeds 38 significant digits";
                return false;
              }
              break;
            case Type::kText: break;
          }
          break;
        case AggFunc::kMin:
        case AggFunc::kMax: {
          const bool is_max = spec.func == AggFunc::kMax;
          bool take = s.n == 0;
          switch (spec.input) {
            case Type::kInt64:
              take = take || (is_max ? d.i > s.i : d.i < s.i);
              if (take) s.i = d.i;
              break;
            case Type::kFloat64:
              take = take || (is_max ? float_greater(d.f, s.f) : float_greater(s.f, d.f));
              if (take) s.f = d.f;
              break;
            case Type::kNumeric: {
              int cmp = take ? 0 : decimal_cmp(d.d, s.d);
              take = take || (is_max ? cmp > 0 : cmp < 0);
              if (take) s.d = d.d;
              break;
            }
            case Type::kText: break;
          }
          break;
        }
      }
      if (__builtin_add_overflow(s.n, d.n, &s.n)) {
        error_ = "a count exceeds bigint (bigint out of range)";
        return false;
      }
    }
  }
  return true;
}

namespace {
constexpr uint32_t kGroupsMagic = 0x32475356;  // "VSG2"

// Counts and integer sums as zigzag LEB128 varints: most are small, and the
// changelog is written at every flush.
void put_varint(std::string* out, __int128 v) {
  unsigned __int128 z = (static_cast<unsigned __int128>(v) << 1) ^ static_cast<unsigned __int128>(v >> 127);
  while (z >= 0x80) {
    out->push_back(static_cast<char>(static_cast<uint8_t>(z) | 0x80));
    z >>= 7;
  }
  out->push_back(static_cast<char>(z));
}

bool get_varint(const char*& p, const char* end, __int128* v) {
  unsigned __int128 z = 0;
  for (int shift = 0; shift < 133; shift += 7) {
    if (p == end) return false;
    uint8_t b = static_cast<uint8_t>(*p++);
    z |= static_cast<unsigned __int128>(b & 0x7F) << shift;
    if (!(b & 0x80)) {
      *v = static_cast<__int128>(z >> 1) ^ -static_cast<__int128>(z & 1);
      return true;
    }
  }
  return false;
}
}  // namespace

void ViewAggregator::encode_all(std::string* out) const {
  std::vector<uint32_t> all(keys_.size());
  for (uint32_t g = 0; g < all.size(); ++g) all[g] = g;
  encode_groups(all.data(), all.size(), out);
}

void ViewAggregator::encode_groups(const uint32_t* groups, size_t n, std::string* out) const {
  const size_t naggs = plan_.aggs.size();
  put<uint32_t>(out, kGroupsMagic);
  put<uint32_t>(out, static_cast<uint32_t>(n));
  put<uint32_t>(out, static_cast<uint32_t>(naggs));
  for (size_t j = 0; j < n; ++j) {
    const uint32_t g = groups[j];
    const std::string& key = keys_[g];
    put<uint32_t>(out, static_cast<uint32_t>(key.size()));
    out->append(key);
    for (size_t a = 0; a < naggs; ++a) {
      const AggSpec& spec = plan_.aggs[a];
      const AggState& s = states_[g * naggs + a];
      put_varint(out, s.n);
      if (spec.func == AggFunc::kCountStar || spec.func == AggFunc::kCount) continue;
      switch (spec.input) {
        case Type::kInt64: put_varint(out, s.i); break;
        case Type::kFloat64: put(out, s.f); break;
        case Type::kNumeric:
          put(out, s.d.coef);
          put(out, s.d.scale);
          out->push_back(static_cast<char>(s.d.kind));
          break;
        case Type::kText: break;
      }
    }
  }
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
    }
  }
  return p == end;
}

bool ViewAggregator::load_groups(const char* data, size_t len, std::string* error) {
  const size_t naggs = plan_.aggs.size();
  const char* p = data;
  const char* end = data + len;
  auto need = [&](size_t n) { return static_cast<size_t>(end - p) >= n; };
  if (!need(12) || get<uint32_t>(p) != kGroupsMagic) {
    *error = "not a velostream state batch";
    return false;
  }
  uint32_t count = get<uint32_t>(p);
  if (get<uint32_t>(p) != naggs) {
    *error = "state batch has another number of aggregates";
    return false;
  }
  for (uint32_t i = 0; i < count; ++i) {
    if (!need(4)) goto corrupt;
    {
      uint32_t klen = get<uint32_t>(p);
      if (!need(klen) || !valid_key(std::string_view(p, klen))) goto corrupt;
      bool added;
      uint32_t g = find_or_add(std::string_view(p, klen), &added);
      p += klen;
      for (size_t a = 0; a < naggs; ++a) {
        const AggSpec& spec = plan_.aggs[a];
        AggState& s = states_[g * naggs + a];
        s = AggState();
        __int128 n;
        if (!get_varint(p, end, &n) || n < 0 || n > std::numeric_limits<int64_t>::max()) goto corrupt;
        s.n = static_cast<int64_t>(n);
        if (spec.func == AggFunc::kCountStar || spec.func == AggFunc::kCount) continue;
        switch (spec.input) {
          case Type::kInt64: {
            if (!get_varint(p, end, &s.i)) goto corrupt;
            // A sum of n int8 values is within n * 2^63 (so two sums added
            // never overflow 128 bits); a min or max is an int8.
            const bool is_sum = spec.func == AggFunc::kSum || spec.func == AggFunc::kAvg;
            const __int128 bound = is_sum ? static_cast<__int128>(s.n) << 63 : std::numeric_limits<int64_t>::max();
            if (s.i > bound || s.i < (is_sum ? -bound : std::numeric_limits<int64_t>::min())) goto corrupt;
            break;
          }
          case Type::kFloat64:
            if (!need(8)) goto corrupt;
            s.f = get<double>(p);
            break;
          case Type::kNumeric:
            if (!need(19)) goto corrupt;
            s.d.coef = get<__int128>(p);
            s.d.scale = get<int16_t>(p);
            s.d.kind = static_cast<Decimal::Kind>(*p++);
            if (!s.d.valid()) goto corrupt;
            break;
          case Type::kText: break;
        }
      }
    }
  }
  if (p != end) goto corrupt;
  return true;
corrupt:
  *error = "state batch is truncated or corrupt";
  return false;
}

}  // namespace velostream::engine

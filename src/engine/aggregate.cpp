#include "engine/aggregate.h"

#include "engine/bytes.h"

#include <algorithm>
#include <cstddef>
#include <cmath>
#include <cstring>
#include <deque>
#include <limits>

#include <locale.h>

#include "absl/container/flat_hash_set.h"

namespace velostream::engine {
namespace {

using bytes::get;
using bytes::get_varint;
using bytes::put;
using bytes::put_varint;

// PostgreSQL's float8 order: NaN above everything, equal to itself.
inline bool float_greater(double a, double b) {
  if (std::isnan(a)) return !std::isnan(b);
  if (std::isnan(b)) return false;
  return a > b;
}

constexpr const char* kNumericOverflow = "numeric sum exceeds 38 significant digits";

// count(*), count(x), sum, avg, min and max over one column, with the state
// AggState. Serialised form ("VSG2" changelogs): the count n as a varint,
// then for sum / avg / min / max the value: integers as a varint, float8 and
// numeric (coefficient, scale, kind) raw.
class NativeAggregate final : public AggregateFunction {
 public:
  explicit NativeAggregate(const AggSpec& spec)
      : func_(spec.func), column_(spec.column), input_(spec.input), size_(prefix(spec.func, spec.input)) {}

  std::unique_ptr<AggregateFunction> clone() const override { return std::make_unique<NativeAggregate>(*this); }
  size_t state_size() const override { return size_; }
  void init(void* state) override { std::memset(state, 0, size_); }  // all-zero bytes are AggState's defaults
  void mark_used(std::vector<uint8_t>* used) const override {
    if (column_ >= 0) (*used)[column_] = 1;
  }

  bool update(const AggRows& in, char* states, size_t stride, std::string* error) override {
    const size_t m = in.count;
    const uint32_t* sel = in.rows;
    const uint32_t* group_of = in.groups;
    auto at = [&](size_t k) -> AggState& { return *reinterpret_cast<AggState*>(states + group_of[k] * stride); };
    if (func_ == AggFunc::kCountStar) {
      for (size_t k = 0; k < m; ++k) at(k).n++;
      return true;
    }
    const Column& c = in.batch->columns[column_];
    const uint8_t* nulls = c.null.data();
    switch (func_) {
      default:  // count(*) above; the others are other classes
        break;
      case AggFunc::kCount:
        for (size_t k = 0; k < m; ++k)
          if (!nulls[sel[k]]) at(k).n++;
        break;
      case AggFunc::kSum:
      case AggFunc::kAvg:
        switch (input_) {
          case Type::kInt64:
            for (size_t k = 0; k < m; ++k) {
              uint32_t r = sel[k];
              if (nulls[r]) continue;
              AggState& s = at(k);
              s.i += c.i64[r];
              s.n++;
            }
            break;
          case Type::kFloat64:
            for (size_t k = 0; k < m; ++k) {
              uint32_t r = sel[k];
              if (nulls[r]) continue;
              AggState& s = at(k);
              s.f += c.f64[r];
              s.n++;
            }
            break;
          case Type::kNumeric:
            for (size_t k = 0; k < m; ++k) {
              uint32_t r = sel[k];
              if (nulls[r]) continue;
              AggState& s = at(k);
              if (s.n == 0) {
                s.d = c.dec[r];
              } else if (!decimal_add(s.d, c.dec[r], &s.d)) {
                *error = kNumericOverflow;
                return false;
              }
              s.n++;
            }
            break;
          case Type::kText:
          case Type::kInterval: break;  // (not native inputs: see make_native_aggregate)
        }
        break;
      case AggFunc::kMin:
      case AggFunc::kMax: {
        const bool is_max = func_ == AggFunc::kMax;
        for (size_t k = 0; k < m; ++k) {
          uint32_t r = sel[k];
          if (nulls[r]) continue;
          AggState& s = at(k);
          bool take = s.n == 0;
          switch (input_) {
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
            case Type::kText:
            case Type::kInterval: break;
          }
          s.n++;
        }
        break;
      }
    }
    return true;
  }

  bool combine(const void* src_state, void* dst_state, std::string* error) override {
    const AggState& d = *static_cast<const AggState*>(src_state);
    AggState& s = *static_cast<AggState*>(dst_state);
    if (d.n == 0) return true;
    switch (func_) {
      default:  // count(*), count: only n
        break;
      case AggFunc::kSum:
      case AggFunc::kAvg:
        switch (input_) {
          case Type::kInt64: s.i += d.i; break;
          case Type::kFloat64: s.f += d.f; break;
          case Type::kNumeric:
            if (s.n == 0) {
              s.d = d.d;
            } else if (!decimal_add(s.d, d.d, &s.d)) {
              *error = kNumericOverflow;
              return false;
            }
            break;
          case Type::kText:
          case Type::kInterval: break;
        }
        break;
      case AggFunc::kMin:
      case AggFunc::kMax: {
        const bool is_max = func_ == AggFunc::kMax;
        bool take = s.n == 0;
        switch (input_) {
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
          case Type::kText:
          case Type::kInterval: break;
        }
        break;
      }
    }
    if (__builtin_add_overflow(s.n, d.n, &s.n)) {
      *error = "a count exceeds bigint (bigint out of range)";
      return false;
    }
    return true;
  }

  bool serialize(const void* state, std::string* out, std::string*) override {
    const AggState& s = *static_cast<const AggState*>(state);
    put_varint(out, s.n);
    if (func_ == AggFunc::kCountStar || func_ == AggFunc::kCount) return true;
    switch (input_) {
      case Type::kInt64: put_varint(out, s.i); break;
      case Type::kFloat64: put(out, s.f); break;
      case Type::kNumeric:
        put(out, s.d.coef);
        put(out, s.d.scale);
        out->push_back(static_cast<char>(s.d.kind));
        break;
      case Type::kText:
      case Type::kInterval: break;
    }
    return true;
  }

  bool deserialize(const char*& p, const char* end, void* state, std::string* error) override {
    AggState& s = *static_cast<AggState*>(state);
    init(state);
    auto need = [&](size_t n) { return static_cast<size_t>(end - p) >= n; };
    __int128 n;
    if (!get_varint(p, end, &n) || n < 0 || n > std::numeric_limits<int64_t>::max()) goto corrupt;
    s.n = static_cast<int64_t>(n);
    if (func_ == AggFunc::kCountStar || func_ == AggFunc::kCount) return true;
    switch (input_) {
      case Type::kInt64: {
        if (!get_varint(p, end, &s.i)) goto corrupt;
        // A sum of n int8 values is within n * 2^63 (so two sums added
        // never overflow 128 bits); a min or max is an int8.
        const bool is_sum = func_ == AggFunc::kSum || func_ == AggFunc::kAvg;
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
      case Type::kText:
      case Type::kInterval: break;
    }
    return true;
  corrupt:
    *error = "state batch is truncated or corrupt";
    return false;
  }

  bool finalize(const void* state, Value* out, std::string*) override {
    const AggState& s = *static_cast<const AggState*>(state);
    *out = Value();
    if (func_ == AggFunc::kCountStar || func_ == AggFunc::kCount) {
      out->kind = Value::Kind::kInt;
      out->i = s.n;
      return true;
    }
    if (s.n == 0) return true;  // NULL
    const bool avg = func_ == AggFunc::kAvg;
    switch (input_) {
      case Type::kInt64:
        out->kind = avg ? Value::Kind::kIntRatio : Value::Kind::kInt;
        out->i = s.i;
        break;
      case Type::kFloat64:
        out->kind = Value::Kind::kFloat;
        out->f = avg ? s.f / static_cast<double>(s.n) : s.f;
        break;
      case Type::kNumeric:
        out->kind = avg ? Value::Kind::kNumericRatio : Value::Kind::kNumeric;
        out->d = s.d;
        break;
      case Type::kText:
      case Type::kInterval: break;
    }
    out->n = s.n;
    return true;
  }

 private:
  // The bytes of AggState that `func` over `input` uses (see AggState).
  static size_t prefix(AggFunc func, Type input) {
    if (func == AggFunc::kCountStar || func == AggFunc::kCount) return offsetof(AggState, f);
    switch (input) {
      case Type::kFloat64: return offsetof(AggState, i);
      case Type::kInt64: return offsetof(AggState, d);
      default: return sizeof(AggState);
    }
  }

  AggFunc func_;
  int column_;
  Type input_;
  size_t size_;
};

// bool_and / every and bool_or over a boolean column (stored 0 / 1): state
// n (non-NULL inputs) and the running value; NULL without input. Serialised
// as a varint n and one byte.
class BoolAggregate final : public AggregateFunction {
 public:
  explicit BoolAggregate(const AggSpec& spec) : is_and_(spec.func == AggFunc::kBoolAnd), column_(spec.column) {}
  struct State {
    int64_t n;
    int64_t value;
  };
  std::unique_ptr<AggregateFunction> clone() const override { return std::make_unique<BoolAggregate>(*this); }
  size_t state_size() const override { return sizeof(State); }
  void init(void* state) override { *static_cast<State*>(state) = State{0, is_and_ ? 1 : 0}; }
  void mark_used(std::vector<uint8_t>* used) const override { (*used)[column_] = 1; }
  bool update(const AggRows& in, char* states, size_t stride, std::string*) override {
    const Column& c = in.batch->columns[column_];
    for (size_t k = 0; k < in.count; ++k) {
      const uint32_t r = in.rows[k];
      if (c.null[r]) continue;
      State& s = *reinterpret_cast<State*>(states + in.groups[k] * stride);
      s.value = is_and_ ? (s.value & (c.i64[r] != 0)) : (s.value | (c.i64[r] != 0));
      s.n++;
    }
    return true;
  }
  bool combine(const void* src, void* dst, std::string* error) override {
    const State& a = *static_cast<const State*>(src);
    State& s = *static_cast<State*>(dst);
    if (a.n == 0) return true;
    s.value = is_and_ ? (s.value & a.value) : (s.value | a.value);
    if (__builtin_add_overflow(s.n, a.n, &s.n)) {
      *error = "a count exceeds bigint (bigint out of range)";
      return false;
    }
    return true;
  }
  bool serialize(const void* state, std::string* out, std::string*) override {
    const State& s = *static_cast<const State*>(state);
    put_varint(out, s.n);
    out->push_back(static_cast<char>(s.value));
    return true;
  }
  bool deserialize(const char*& p, const char* end, void* state, std::string* error) override {
    State& s = *static_cast<State*>(state);
    __int128 n;
    if (!get_varint(p, end, &n) || n < 0 || n > std::numeric_limits<int64_t>::max() || p == end ||
        static_cast<uint8_t>(*p) > 1) {
      *error = "state batch is truncated or corrupt";
      return false;
    }
    s.n = static_cast<int64_t>(n);
    s.value = *p++;
    return true;
  }
  bool finalize(const void* state, Value* out, std::string*) override {
    const State& s = *static_cast<const State*>(state);
    *out = Value();
    if (s.n == 0) return true;
    out->kind = Value::Kind::kInt;
    out->i = s.value;
    return true;
  }

 private:
  bool is_and_;
  int column_;
};

// var_samp / var_pop / stddev_samp / stddev_pop (variance, stddev) over a
// float4 or float8 column, with PostgreSQL's float8_accum / float8_combine /
// float8_var_* arithmetic (Youngs and Cramer's method, as float.c cites it):
// state N, Sx (sum), Sxx (sum of squared differences from the mean), all
// float8; overflow raises "value out of range: overflow" like float.c.
// Serialised as the three doubles.
class FloatVarianceAggregate final : public AggregateFunction {
 public:
  explicit FloatVarianceAggregate(const AggSpec& spec) : func_(spec.func), column_(spec.column) {}
  struct State {
    double n, sx, sxx;
  };
  std::unique_ptr<AggregateFunction> clone() const override {
    return std::make_unique<FloatVarianceAggregate>(*this);
  }
  size_t state_size() const override { return sizeof(State); }
  void init(void* state) override { *static_cast<State*>(state) = State{0, 0, 0}; }
  void mark_used(std::vector<uint8_t>* used) const override { (*used)[column_] = 1; }
  bool update(const AggRows& in, char* states, size_t stride, std::string* error) override {
    const Column& c = in.batch->columns[column_];
    for (size_t k = 0; k < in.count; ++k) {
      const uint32_t r = in.rows[k];
      if (c.null[r]) continue;
      State& s = *reinterpret_cast<State*>(states + in.groups[k] * stride);
      const double x = c.f64[r];
      const double old_n = s.n, old_sx = s.sx;
      s.n += 1.0;
      s.sx += x;
      if (old_n > 0.0) {
        const double tmp = x * s.n - s.sx;
        s.sxx += tmp * tmp / (s.n * old_n);
        if (std::isinf(s.sx) || std::isinf(s.sxx)) {
          if (!std::isinf(old_sx) && !std::isinf(x)) return overflow(error);
          s.sxx = std::numeric_limits<double>::quiet_NaN();
        }
      } else if (std::isnan(x) || std::isinf(x)) {
        s.sxx = std::numeric_limits<double>::quiet_NaN();
      }
    }
    return true;
  }
  bool combine(const void* src, void* dst, std::string* error) override {
    const State& b = *static_cast<const State*>(src);
    State& a = *static_cast<State*>(dst);
    if (b.n == 0.0) return true;
    if (a.n == 0.0) {
      a = b;
      return true;
    }
    const double n = a.n + b.n;
    const double sx = a.sx + b.sx;
    if (std::isinf(sx) && !std::isinf(a.sx) && !std::isinf(b.sx)) return overflow(error);
    const double tmp = a.sx / a.n - b.sx / b.n;
    const double sxx = a.sxx + b.sxx + a.n * b.n * tmp * tmp / n;
    if (std::isinf(sxx) && !std::isinf(a.sxx) && !std::isinf(b.sxx)) return overflow(error);
    a = State{n, sx, sxx};
    return true;
  }
  bool serialize(const void* state, std::string* out, std::string*) override {
    put(out, *static_cast<const State*>(state));
    return true;
  }
  bool deserialize(const char*& p, const char* end, void* state, std::string* error) override {
    if (static_cast<size_t>(end - p) < sizeof(State)) {
      *error = "state batch is truncated or corrupt";
      return false;
    }
    *static_cast<State*>(state) = get<State>(p);
    return true;
  }
  bool finalize(const void* state, Value* out, std::string*) override {
    const State& s = *static_cast<const State*>(state);
    *out = Value();
    const bool samp = func_ == AggFunc::kVarSamp || func_ == AggFunc::kStddevSamp;
    if (s.n == 0.0 || (samp && s.n <= 1.0)) return true;  // NULL, as float8_var_samp / _pop
    double v = s.sxx <= 0.0 ? 0.0 : s.sxx / (samp ? s.n - 1.0 : s.n);  // roundoff never makes it negative
    if (std::isnan(s.sxx)) v = s.sxx;
    if (func_ == AggFunc::kStddevSamp || func_ == AggFunc::kStddevPop) v = std::sqrt(v);
    out->kind = Value::Kind::kFloat;
    out->f = v;
    return true;
  }

 private:
  static bool overflow(std::string* error) {
    *error = "value out of range: overflow";
    return false;
  }
  AggFunc func_;
  int column_;
};

}  // namespace

std::unique_ptr<AggregateFunction> make_native_aggregate(const AggSpec& spec) {
  switch (spec.func) {
    case AggFunc::kBoolAnd:
    case AggFunc::kBoolOr: return std::make_unique<BoolAggregate>(spec);
    case AggFunc::kVarSamp:
    case AggFunc::kVarPop:
    case AggFunc::kStddevSamp:
    case AggFunc::kStddevPop: return std::make_unique<FloatVarianceAggregate>(spec);
    default: return std::make_unique<NativeAggregate>(spec);
  }
}

namespace {

// A group's distinct values, each in a canonical byte form: equal SQL values
// give equal bytes.
using ValueSet = absl::flat_hash_set<std::string>;

class DistinctAggregate final : public AggregateFunction {
 public:
  DistinctAggregate(std::shared_ptr<const AggregateFunction> inner, int column, Type type)
      : inner_proto_(std::move(inner)), column_(column), type_(type) {}

  std::unique_ptr<AggregateFunction> clone() const override {
    return std::make_unique<DistinctAggregate>(inner_proto_, column_, type_);
  }
  // The state is a pointer to a set this instance owns (moving the bytes
  // moves the pointer); NULL until the group's first value.
  size_t state_size() const override { return sizeof(ValueSet*); }
  void init(void* state) override { *static_cast<ValueSet**>(state) = nullptr; }
  void mark_used(std::vector<uint8_t>* used) const override { (*used)[column_] = 1; }
  void reset() override {
    sets_.clear();
    if (inner_) inner_->reset();
  }

  bool update(const AggRows& in, char* states, size_t stride, std::string*) override {
    const Column& c = in.batch->columns[column_];
    for (size_t k = 0; k < in.count; ++k) {
      const uint32_t r = in.rows[k];
      if (c.null[r]) continue;
      encode(c, r, &buf_);
      set_of(states + in.groups[k] * stride)->insert(buf_);
    }
    return true;
  }

  bool combine(const void* src, void* dst, std::string*) override {
    const ValueSet* s = *static_cast<ValueSet* const*>(src);
    if (s == nullptr || s->empty()) return true;
    ValueSet* d = set_of(dst);
    for (const std::string& v : *s) d->insert(v);
    return true;
  }

  bool serialize(const void* state, std::string* out, std::string*) override {
    const ValueSet* s = *static_cast<ValueSet* const*>(state);
    std::vector<const std::string*> sorted;
    if (s != nullptr)
      for (const std::string& v : *s) sorted.push_back(&v);
    std::sort(sorted.begin(), sorted.end(), [](const std::string* a, const std::string* b) { return *a < *b; });
    put_varint(out, static_cast<__int128>(sorted.size()));
    for (const std::string* v : sorted) {
      put(out, static_cast<uint32_t>(v->size()));
      out->append(*v);
    }
    return true;
  }

  bool deserialize(const char*& p, const char* end, void* state, std::string* error) override {
    __int128 n;
    if (!get_varint(p, end, &n) || n < 0 || n > (end - p)) goto corrupt;
    *static_cast<ValueSet**>(state) = nullptr;
    for (__int128 i = 0; i < n; ++i) {
      if (end - p < 4) goto corrupt;
      {
        const uint32_t len = get<uint32_t>(p);
        if (static_cast<size_t>(end - p) < len || !valid(p, len)) goto corrupt;
        set_of(state)->emplace(p, len);
        p += len;
      }
    }
    return true;
  corrupt:
    *error = "state batch is truncated or corrupt";
    return false;
  }

  bool finalize(const void* state, Value* out, std::string* error) override {
    // The distinct values as a one-column batch, through the inner aggregate.
    const ValueSet* s = *static_cast<ValueSet* const*>(state);
    if (!inner_) inner_ = inner_proto_->clone();
    const size_t n = s == nullptr ? 0 : s->size();
    batch_.columns.resize(column_ + 1);
    Column& c = batch_.columns[column_];
    c.type = type_;
    c.used = true;
    batch_.reset(n);
    rows_.resize(n);
    groups_.assign(n, 0);
    size_t i = 0;
    if (s != nullptr)
      for (const std::string& v : *s) {
        decode(v, &c, i);
        rows_[i] = static_cast<uint32_t>(i);
        ++i;
      }
    scratch_.assign((inner_->state_size() + 15) / 16, Unit16{});
    void* st = scratch_.data();
    inner_->init(st);
    AggRows rows{&batch_, rows_.data(), groups_.data(), n};
    const bool ok = inner_->update(rows, static_cast<char*>(st), 0, error) && inner_->finalize(st, out, error);
    if (ok && out->kind == Value::Kind::kText) {  // it points into the inner state, which reset() frees
      text_result_.assign(out->s.data(), out->s.size());
      out->s = text_result_;
    }
    inner_->reset();  // the result is the caller's (an external one's Datum is copied out)
    return ok;
  }

 private:
  struct alignas(16) Unit16 {
    char b[16];
  };

  ValueSet* set_of(void* state) {
    ValueSet*& s = *static_cast<ValueSet**>(state);
    if (s == nullptr) {
      sets_.push_back(std::make_unique<ValueSet>());
      s = sets_.back().get();
    }
    return s;
  }

  void encode(const Column& c, uint32_t r, std::string* out) const {
    out->clear();
    switch (type_) {
      case Type::kInt64: put(out, c.i64[r]); break;
      case Type::kFloat64: {
        double v = c.f64[r];
        if (v == 0) v = 0;
        if (std::isnan(v)) v = std::numeric_limits<double>::quiet_NaN();
        put(out, v);
        break;
      }
      case Type::kNumeric: {
        Decimal d = c.dec[r].normalized();
        out->push_back(static_cast<char>(d.kind));
        put(out, d.scale);
        put(out, d.coef);
        break;
      }
      case Type::kText: out->assign(c.str[r].data(), c.str[r].size()); break;
      case Type::kInterval: put(out, c.iv[r]); break;  // (byte-wise: the glue does not use it)
    }
  }

  bool valid(const char* p, size_t len) const {
    switch (type_) {
      case Type::kInt64:
      case Type::kFloat64: return len == 8;
      case Type::kNumeric: {
        if (len != 1 + sizeof(int16_t) + sizeof(__int128)) return false;
        Decimal d;
        d.kind = static_cast<Decimal::Kind>(*p++);
        d.scale = get<int16_t>(p);
        d.coef = get<__int128>(p);
        return d.valid();
      }
      case Type::kText: return true;
      case Type::kInterval: return len == sizeof(Interval);
    }
    return false;
  }

  void decode(const std::string& v, Column* c, size_t i) {
    const char* p = v.data();
    c->null[i] = 0;
    switch (type_) {
      case Type::kInt64: c->i64[i] = get<int64_t>(p); break;
      case Type::kFloat64: c->f64[i] = get<double>(p); break;
      case Type::kNumeric:
        c->dec[i].kind = static_cast<Decimal::Kind>(*p++);
        c->dec[i].scale = get<int16_t>(p);
        c->dec[i].coef = get<__int128>(p);
        break;
      case Type::kText: c->str[i] = std::string_view(v); break;
      case Type::kInterval: c->iv[i] = get<Interval>(p); break;
    }
  }

  std::shared_ptr<const AggregateFunction> inner_proto_;
  int column_;
  Type type_;
  std::vector<std::unique_ptr<ValueSet>> sets_;  // every group's set
  std::unique_ptr<AggregateFunction> inner_;     // finalises a set (its memory reset with this one)
  std::string buf_;
  RecordBatch batch_;
  std::vector<uint32_t> rows_, groups_;
  std::vector<Unit16> scratch_;
  std::string text_result_;  // finalize's text result (Value::s points here)
};

}  // namespace

namespace {

// min(text) / max(text) (make_text_extreme_aggregate).
class TextExtremeAggregate final : public AggregateFunction {
 public:
  TextExtremeAggregate(int column, bool max, std::shared_ptr<void> collation)
      : column_(column), max_(max), collation_(std::move(collation)) {}

  std::unique_ptr<AggregateFunction> clone() const override {
    return std::make_unique<TextExtremeAggregate>(column_, max_, collation_);
  }
  // The state points to a string this instance owns; NULL: no input yet.
  size_t state_size() const override { return sizeof(std::string*); }
  void init(void* state) override { *static_cast<std::string**>(state) = nullptr; }
  void mark_used(std::vector<uint8_t>* used) const override { (*used)[column_] = 1; }
  void reset() override { pool_.clear(); }

  bool update(const AggRows& in, char* states, size_t stride, std::string*) override {
    const Column& c = in.batch->columns[column_];
    for (size_t k = 0; k < in.count; ++k) {
      const uint32_t r = in.rows[k];
      if (!c.null[r]) offer(states + in.groups[k] * stride, c.str[r]);
    }
    return true;
  }
  bool combine(const void* src, void* dst, std::string*) override {
    const std::string* s = *static_cast<std::string* const*>(src);
    if (s != nullptr) offer(dst, *s);
    return true;
  }
  // Bytes as pg/pg_aggregate.cpp writes a text state (which is what catalog
  // 0.4 first stored for min/max(text)): a flag byte (1: a value), u32
  // length, and the value as a PostgreSQL varlena (little-endian 4-byte
  // header holding the total size << 2; a 1-byte header, size << 1 | 1, is
  // read too).
  bool serialize(const void* state, std::string* out, std::string*) override {
    const std::string* s = *static_cast<std::string* const*>(state);
    out->push_back(s != nullptr ? 1 : 0);
    if (s != nullptr) {
      const uint32_t total = static_cast<uint32_t>(s->size() + 4);
      put(out, total);
      put(out, total << 2);
      out->append(*s);
    }
    return true;
  }
  bool deserialize(const char*& p, const char* end, void* state, std::string* error) override {
    if (p == end || static_cast<uint8_t>(*p) > 1) return corrupt(error);
    const bool present = *p++ == 1;
    *static_cast<std::string**>(state) = nullptr;
    if (!present) return true;
    if (end - p < 4) return corrupt(error);
    const uint32_t len = get<uint32_t>(p);
    if (static_cast<size_t>(end - p) < len || len < 1) return corrupt(error);
    const uint8_t first = static_cast<uint8_t>(*p);
    size_t header;
    if ((first & 0x01) == 1 && first != 0x01) {  // 1-byte header
      header = 1;
      if ((first >> 1) != len) return corrupt(error);
    } else if ((first & 0x03) == 0 && len >= 4) {  // 4-byte header
      header = 4;
      uint32_t word;
      std::memcpy(&word, p, 4);
      if ((word >> 2) != len) return corrupt(error);
    } else {
      return corrupt(error);
    }
    if (std::memchr(p + header, 0, len - header) != nullptr) return corrupt(error);
    *static_cast<std::string**>(state) = &pool_.emplace_back(p + header, len - header);
    p += len;
    return true;
  }
  bool finalize(const void* state, Value* out, std::string*) override {
    const std::string* s = *static_cast<std::string* const*>(state);
    *out = Value();
    if (s != nullptr) {
      out->kind = Value::Kind::kText;
      out->s = *s;
    }
    return true;
  }

 private:
  static bool corrupt(std::string* error) {
    *error = "corrupt min/max(text) state";
    return false;
  }
  // Three-way comparison as PostgreSQL's varstr_cmp: byte order (then
  // length) under "C"; else strcoll_l, equal strings ordered by bytes.
  int compare(std::string_view a, const std::string& b) {
    if (collation_ == nullptr) {
      int c = std::memcmp(a.data(), b.data(), std::min(a.size(), b.size()));
      return c != 0 ? c : (a.size() < b.size() ? -1 : a.size() > b.size() ? 1 : 0);
    }
    if (a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size()) == 0) return 0;
    buf_.assign(a.data(), a.size());
    int c = strcoll_l(buf_.c_str(), b.c_str(), static_cast<locale_t>(collation_.get()));
    return c != 0 ? c : std::strcmp(buf_.c_str(), b.c_str());
  }
  void offer(void* state, std::string_view v) {
    std::string*& s = *static_cast<std::string**>(state);
    if (s == nullptr) {
      s = &pool_.emplace_back(v);
      return;
    }
    const int c = compare(v, *s);
    if (max_ ? c > 0 : c < 0) s->assign(v.data(), v.size());
  }

  int column_;
  bool max_;
  std::shared_ptr<void> collation_;
  std::deque<std::string> pool_;  // every state's string; a deque so they never move
  std::string buf_;
};

}  // namespace

std::unique_ptr<AggregateFunction> make_text_extreme_aggregate(int column, bool max, std::shared_ptr<void> collation) {
  return std::make_unique<TextExtremeAggregate>(column, max, std::move(collation));
}

std::shared_ptr<void> make_collate_locale(const char* name) {
  locale_t loc = newlocale(LC_COLLATE_MASK, name, static_cast<locale_t>(0));
  if (loc == static_cast<locale_t>(0)) return nullptr;
  return std::shared_ptr<void>(static_cast<void*>(loc), [](void* l) { freelocale(static_cast<locale_t>(l)); });
}

std::unique_ptr<AggregateFunction> make_distinct_aggregate(std::shared_ptr<const AggregateFunction> inner,
                                                          int column, Type type) {
  return std::make_unique<DistinctAggregate>(std::move(inner), column, type);
}

}  // namespace velostream::engine

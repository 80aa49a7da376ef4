#include "engine/predicate.h"

#include <cmath>

namespace velostream::engine {
namespace {

template <typename T>
inline int three_way(const T& a, const T& b) {
  return a < b ? -1 : (b < a ? 1 : 0);
}

// Reads operand values converted into the comparison domain.
struct Operand {
  const Column* col = nullptr;
  const Scalar* constant = nullptr;

  bool is_null(size_t r) const { return col ? col->null[r] != 0 : constant->is_null; }
  int64_t as_int(size_t r) const { return col ? col->i64[r] : constant->i; }
  double as_float(size_t r) const {
    if (!col) return constant->f;
    switch (col->type) {
      case Type::kInt64: return static_cast<double>(col->i64[r]);
      case Type::kNumeric: return col->dec[r].to_double();
      default: return col->f64[r];
    }
  }
  Decimal as_numeric(size_t r) const {
    if (!col) return constant->d;
    return col->type == Type::kInt64 ? Decimal::from_int(col->i64[r]) : col->dec[r];
  }
  std::string_view as_text(size_t r) const { return col ? col->str[r] : std::string_view(constant->s); }
};

template <typename Cmp>
void compare_rows(const Operand& l, const Operand& r, CmpOp op, size_t n, uint8_t* out, Cmp cmp) {
  for (size_t i = 0; i < n; ++i) {
    if (l.is_null(i) || r.is_null(i)) {
      out[i] = kUnknown;
    } else {
      out[i] = cmp_holds(op, cmp(i)) ? kTrue : kFalse;
    }
  }
}

void compare(const Predicate& p, const RecordBatch& b, uint8_t* out) {
  Operand l, r;
  if (p.lhs_col >= 0) l.col = &b.columns[p.lhs_col]; else l.constant = &p.lhs_const;
  if (p.rhs_col >= 0) r.col = &b.columns[p.rhs_col]; else r.constant = &p.rhs_const;
  size_t n = b.rows;
  switch (p.domain) {
    case CmpDomain::kInt:
      compare_rows(l, r, p.op, n, out, [&](size_t i) { return three_way(l.as_int(i), r.as_int(i)); });
      break;
    case CmpDomain::kFloat:
      compare_rows(l, r, p.op, n, out, [&](size_t i) { return float_cmp(l.as_float(i), r.as_float(i)); });
      break;
    case CmpDomain::kNumeric:
      compare_rows(l, r, p.op, n, out,
                   [&](size_t i) { return decimal_cmp(l.as_numeric(i), r.as_numeric(i)); });
      break;
    case CmpDomain::kText:
      compare_rows(l, r, p.op, n, out, [&](size_t i) {
        int c = l.as_text(i).compare(r.as_text(i));
        return c < 0 ? -1 : (c > 0 ? 1 : 0);
      });
      break;
  }
}

}  // namespace

void evaluate(const Predicate& p, const RecordBatch& b, std::vector<uint8_t>* out_vec,
              std::deque<std::vector<uint8_t>>* scratch, size_t depth) {
  size_t n = b.rows;
  out_vec->resize(n);
  uint8_t* out = out_vec->data();
  switch (p.kind) {
    case Predicate::Kind::kConst: {
      uint8_t v = p.value.is_null ? kUnknown : (p.value.i != 0 ? kTrue : kFalse);
      for (size_t i = 0; i < n; ++i) out[i] = v;
      return;
    }
    case Predicate::Kind::kIsNull:
    case Predicate::Kind::kIsNotNull: {
      const uint8_t* nulls = b.columns[p.lhs_col].null.data();
      uint8_t when_null = p.kind == Predicate::Kind::kIsNull ? kTrue : kFalse;
      for (size_t i = 0; i < n; ++i) out[i] = nulls[i] ? when_null : static_cast<uint8_t>(kTrue - when_null);
      return;
    }
    case Predicate::Kind::kCompare:
      compare(p, b, out);
      return;
    case Predicate::Kind::kNot:
      evaluate(p.children[0], b, out_vec, scratch, depth);
      for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(out[i] == kUnknown ? kUnknown : 1 - out[i]);
      return;
    case Predicate::Kind::kAnd:
    case Predicate::Kind::kOr: {
      if (scratch->size() <= depth) scratch->resize(depth + 1);
      bool is_and = p.kind == Predicate::Kind::kAnd;
      for (size_t c = 0; c < p.children.size(); ++c) {
        if (c == 0) {
          evaluate(p.children[0], b, out_vec, scratch, depth + 1);
          out = out_vec->data();
          continue;
        }
        std::vector<uint8_t>& tmp = (*scratch)[depth];
        evaluate(p.children[c], b, &tmp, scratch, depth + 1);
        const uint8_t* t = tmp.data();
        for (size_t i = 0; i < n; ++i) {
          uint8_t a = out[i], v = t[i];
          if (is_and) {
            out[i] = (a == kFalse || v == kFalse) ? kFalse : ((a == kUnknown || v == kUnknown) ? kUnknown : kTrue);
          } else {
            out[i] = (a == kTrue || v == kTrue) ? kTrue : ((a == kUnknown || v == kUnknown) ? kUnknown : kFalse);
          }
        }
      }
      return;
    }
  }
}

}  // namespace velostream::engine

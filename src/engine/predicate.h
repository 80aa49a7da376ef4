// WHERE clauses, evaluated a batch at a time with SQL's three-valued logic.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "engine/batch.h"

namespace velostream::engine {

enum class CmpOp : uint8_t { kEq, kNe, kLt, kLe, kGt, kGe };

/// The domain a comparison is done in, chosen from the SQL operator's input
/// types: integers compare as int64, float4/float8 as double, numeric as
/// Decimal, text byte-wise (only for collations that compare bytes).
enum class CmpDomain : uint8_t { kInt, kFloat, kNumeric, kText };

/// A constant operand, already in the comparison's domain.
struct Scalar {
  bool is_null = false;
  int64_t i = 0;
  double f = 0;
  Decimal d;
  std::string s;
};

/// One node of a filter expression tree.
struct Predicate {
  enum class Kind : uint8_t {
    kCompare,    ///< lhs op rhs; each side a column or a constant
    kAnd,
    kOr,
    kNot,
    kIsNull,     ///< column IS NULL
    kIsNotNull,  ///< column IS NOT NULL
    kConst,      ///< constant true / false / NULL
  };
  Kind kind = Kind::kConst;
  CmpOp op = CmpOp::kEq;
  CmpDomain domain = CmpDomain::kInt;
  int lhs_col = -1, rhs_col = -1;  ///< column numbers; -1: use the constant
  Scalar lhs_const, rhs_const;
  std::vector<Predicate> children;  ///< operands of AND / OR / NOT
  Scalar value;                     ///< kConst: is_null, or i != 0 for true
};

/// PostgreSQL's float8 order: -1, 0 or 1, NaN above every other value and
/// equal to itself (float8_cmp_internal).
inline int float_cmp(double a, double b) {
  const bool na = a != a, nb = b != b;
  if (na || nb) return na == nb ? 0 : (na ? 1 : -1);
  return a < b ? -1 : (a > b ? 1 : 0);
}

/// Whether three-way comparison result `c` satisfies `op`.
inline bool cmp_holds(CmpOp op, int c) {
  switch (op) {
    case CmpOp::kEq: return c == 0;
    case CmpOp::kNe: return c != 0;
    case CmpOp::kLt: return c < 0;
    case CmpOp::kLe: return c <= 0;
    case CmpOp::kGt: return c > 0;
    case CmpOp::kGe: return c >= 0;
  }
  return false;
}

/// Tri-state truth values: one per row.
enum : uint8_t { kFalse = 0, kTrue = 1, kUnknown = 2 };

/// Evaluates `p` over every row of `batch` into `out` (kFalse / kTrue /
/// kUnknown per row). `scratch` is reused storage for nested nodes (a deque,
/// so growing it never moves the vectors a caller still holds).
void evaluate(const Predicate& p, const RecordBatch& batch, std::vector<uint8_t>* out,
              std::deque<std::vector<uint8_t>>* scratch, size_t depth = 0);

}  // namespace velostream::engine

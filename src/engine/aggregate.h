// Aggregate functions with mergeable partial states.
//
// A partial state covers the records of one group seen since the last flush;
// the database merges it into the stored total (count + count, sum + sum,
// least / greatest, and sum and count for avg), so states are never
// finalised in the engine.
#pragma once

#include <cstdint>

#include "engine/batch.h"

namespace velostream::engine {

enum class AggFunc : uint8_t { kCountStar, kCount, kSum, kAvg, kMin, kMax };

/// One aggregate of a view: the function, the column it reads (-1 for
/// count(*)), and how that column is stored.
struct AggSpec {
  AggFunc func = AggFunc::kCountStar;
  int column = -1;
  Type input = Type::kInt64;
};

/// The partial state of one aggregate for one group.
///  - count / count(*): n.
///  - sum, avg: the sum in i (integers, 128-bit so sum(bigint) never
///    overflows), f (float8) or d (numeric); n counts the non-NULL inputs,
///    so n == 0 means the SQL result is NULL.
///  - min, max: the extreme in i, f or d; n == 0 means no non-NULL input.
struct AggState {
  __int128 i = 0;
  double f = 0;
  Decimal d;
  int64_t n = 0;
};

}  // namespace velostream::engine

// Columnar record batches: the unit every engine stage works on.
//
// A batch is filled once per read from the stream and then shared, by
// reference, by every continuous view on that stream (one decode, many views).
// Its vectors keep their capacity across clear(), and text bytes live in an
// arena that is reset, not freed, so steady-state processing allocates nothing
// per record.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <string_view>
#include <vector>

#include "engine/decimal.h"

namespace velostream::engine {

/// How the engine stores a column's values. PostgreSQL's integer, boolean,
/// date and timestamp types are all Int64 (timestamps as microseconds since
/// 2000-01-01, PostgreSQL's epoch); intervals are Interval; the glue layer
/// knows the SQL type.
enum class Type : uint8_t { kInt64, kFloat64, kNumeric, kText, kInterval };

/// An interval as PostgreSQL stores it (datatype/timestamp.h): microseconds,
/// days and months, kept apart (a day is not always 24 hours, nor a month 30
/// days), in the same layout, so its 16 bytes are a PostgreSQL Interval.
struct Interval {
  int64_t time;  ///< microseconds
  int32_t day;
  int32_t month;

  /// The value PostgreSQL orders and compares intervals by (timestamp.c
  /// interval_cmp_value): months as 30 days, days as 24 hours, in
  /// microseconds; '1 day' and '24 hours' are equal.
  __int128 span() const {
    return static_cast<__int128>(time) + (static_cast<__int128>(month) * 30 + day) * (86400LL * 1000000);
  }
};
static_assert(sizeof(Interval) == 16, "Interval must have PostgreSQL's layout");

/// Bump allocator for the text bytes of one batch. Blocks are kept across
/// reset() so a steady stream reuses the same memory.
class Arena {
 public:
  /// Copies len bytes and returns a view of the copy, valid until reset().
  std::string_view copy(const char* data, size_t len) {
    char* dst = alloc(len);
    if (len > 0) std::memcpy(dst, data, len);
    return {dst, len};
  }
  /// Uninitialised room for len bytes, valid until reset().
  char* alloc(size_t len) {
    if (len > kBlockSize) {
      big_.emplace_back(new char[len]);
      return big_.back().get();
    }
    if (blocks_.empty()) {
      blocks_.emplace_back(new char[kBlockSize]);
      current_ = 0;
      used_ = 0;
    } else if (used_ + len > kBlockSize) {
      if (++current_ == blocks_.size()) blocks_.emplace_back(new char[kBlockSize]);
      used_ = 0;
    }
    char* dst = blocks_[current_].get() + used_;
    used_ += len;
    return dst;
  }
  /// Forgets every copy; the memory is reused by later copies.
  void reset() {
    current_ = 0;
    used_ = 0;
    big_.clear();
  }
  /// Forgets every copy and frees the memory.
  void release() {
    reset();
    blocks_.clear();
  }
  /// Bytes held in blocks for reuse (not counting copies above the block size).
  size_t capacity() const { return blocks_.size() * kBlockSize; }
  Arena() = default;
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

 private:
  static constexpr size_t kBlockSize = 64 * 1024;
  std::vector<std::unique_ptr<char[]>> blocks_;
  std::vector<std::unique_ptr<char[]>> big_;
  size_t current_ = 0;
  size_t used_ = 0;
};

/// One column of a batch. Only the vector matching `type` is used; `null[i]`
/// is 1 where row i is SQL NULL (its value slot is then unspecified).
struct Column {
  Type type = Type::kInt64;
  bool used = false;  ///< false: no view reads it, so it is not decoded
  std::vector<int64_t> i64;
  std::vector<double> f64;
  std::vector<Decimal> dec;
  std::vector<std::string_view> str;
  std::vector<Interval> iv;
  std::vector<uint8_t> null;

  /// Sizes the vectors for n rows (keeps capacity).
  void resize(size_t n) {
    null.resize(n);
    switch (type) {
      case Type::kInt64: i64.resize(n); break;
      case Type::kFloat64: f64.resize(n); break;
      case Type::kNumeric: dec.resize(n); break;
      case Type::kText: str.resize(n); break;
      case Type::kInterval: iv.resize(n); break;
    }
  }
};

/// A batch of stream records in columnar form. `columns` is indexed by the
/// stream's column number (0-based); `xid[i]` is the full id of the
/// transaction that wrote row i, used to start a view at its creation.
struct RecordBatch {
  size_t rows = 0;
  std::vector<Column> columns;
  std::vector<int64_t> xid;
  Arena arena;

  /// Prepares the batch for n rows, keeping every vector's capacity.
  void reset(size_t n) {
    rows = n;
    arena.reset();
    xid.resize(n);
    for (Column& c : columns)
      if (c.used) c.resize(n);
  }
};

}  // namespace velostream::engine

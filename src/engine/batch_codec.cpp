#include "engine/batch_codec.h"

#include <cstdint>
#include <cstring>

namespace velostream::engine {

namespace {

constexpr uint32_t kMagic = 0x31425356;  // "VSB1"
constexpr uint8_t kNotStored = 0xFF;
constexpr size_t kDecimalBytes = sizeof(__int128) + sizeof(int16_t) + 1;

template <typename T>
void put(std::string* out, const T& v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof(T));
}

// Bounds-checked reader over the serialised bytes.
struct Reader {
  const char* p;
  const char* end;
  bool take(void* dst, size_t n) {
    if ((size_t)(end - p) < n) return false;
    std::memcpy(dst, p, n);
    p += n;
    return true;
  }
  const char* skip(size_t n) {
    if ((size_t)(end - p) < n) return nullptr;
    const char* at = p;
    p += n;
    return at;
  }
};

}  // namespace

void encode_batch(const RecordBatch& b, std::string* out) {
  const size_t n = b.rows;
  put<uint32_t>(out, kMagic);
  put<uint32_t>(out, (uint32_t)n);
  put<uint32_t>(out, (uint32_t)b.columns.size());
  for (const Column& c : b.columns) {
    if (!c.used) {
      put<uint8_t>(out, kNotStored);
      put<uint8_t>(out, 0);
      continue;
    }
    put<uint8_t>(out, (uint8_t)c.type);
    // n == 0: the vectors may have no storage, and memchr(nullptr, ...) is undefined.
    bool has_nulls = n > 0 && std::memchr(c.null.data(), 1, n) != nullptr;
    put<uint8_t>(out, has_nulls ? 1 : 0);
    if (has_nulls) out->append(reinterpret_cast<const char*>(c.null.data()), n);
    switch (c.type) {
      case Type::kInt64: out->append(reinterpret_cast<const char*>(c.i64.data()), n * 8); break;
      case Type::kFloat64: out->append(reinterpret_cast<const char*>(c.f64.data()), n * 8); break;
      case Type::kInterval: out->append(reinterpret_cast<const char*>(c.iv.data()), n * sizeof(Interval)); break;
      case Type::kNumeric:
        for (size_t i = 0; i < n; ++i) {
          put(out, c.dec[i].coef);
          put(out, c.dec[i].scale);
          put<uint8_t>(out, (uint8_t)c.dec[i].kind);
        }
        break;
      case Type::kText: {
        uint32_t end = 0;
        put(out, end);
        for (size_t i = 0; i < n; ++i) {
          if (!c.null[i]) end += (uint32_t)c.str[i].size();
          put(out, end);
        }
        for (size_t i = 0; i < n; ++i)
          if (!c.null[i]) out->append(c.str[i].data(), c.str[i].size());
        break;
      }
    }
  }
}

bool decode_batch(const char* data, size_t len, RecordBatch* b, std::string* error) {
  Reader r{data, data + len};
  uint32_t magic = 0, rows = 0, ncols = 0;
  if (!r.take(&magic, 4) || magic != kMagic || !r.take(&rows, 4) || !r.take(&ncols, 4)) {
    *error = "not a velostream log batch";
    return false;
  }
  if (ncols != b->columns.size()) {
    *error = "log batch has " + std::to_string(ncols) + " columns, the stream " + std::to_string(b->columns.size());
    return false;
  }
  // Nothing is sized for `rows` until the bytes of a column are known to be
  // there, so corrupt bytes cannot make it allocate more than they hold (or,
  // when no column is stored, more than kMaxBatchRows xids).
  b->rows = 0;
  b->xid.clear();
  if (rows > kMaxBatchRows) goto truncated;
  for (uint32_t ci = 0; ci < ncols; ++ci) {
    Column& c = b->columns[ci];
    uint8_t type = 0, has_nulls = 0;
    if (!r.take(&type, 1) || !r.take(&has_nulls, 1) || has_nulls > 1) goto truncated;
    if (type == kNotStored) {
      if (c.used) {
        *error = "column " + std::to_string(ci + 1) + " is not stored in the log batch";
        return false;
      }
      continue;
    }
    if (type > (uint8_t)Type::kInterval || (c.used && type != (uint8_t)c.type)) {
      *error = "column " + std::to_string(ci + 1) + " has another type in the log batch";
      return false;
    }
    const Type stored = (Type)type;
    const char* nulls = nullptr;
    if (has_nulls) {
      nulls = r.skip(rows);
      if (nulls == nullptr) goto truncated;
      for (uint32_t i = 0; i < rows; ++i)
        if ((uint8_t)nulls[i] > 1) goto truncated;
    }
    const char* values = nullptr;  // fixed-width values, or text end offsets
    const char* text = nullptr;
    uint32_t text_len = 0;
    switch (stored) {
      case Type::kInt64:
      case Type::kFloat64: values = r.skip((size_t)rows * 8); break;
      case Type::kNumeric: values = r.skip((size_t)rows * kDecimalBytes); break;
      case Type::kInterval: values = r.skip((size_t)rows * sizeof(Interval)); break;
      case Type::kText:
        values = r.skip(((size_t)rows + 1) * 4);
        if (values == nullptr) goto truncated;
        std::memcpy(&text_len, values + (size_t)rows * 4, 4);
        text = r.skip(text_len);
        if (text == nullptr) goto truncated;
        break;
    }
    if (values == nullptr) goto truncated;
    // A column no view reads is skipped without decoding its values.
    if (!c.used) continue;
    c.resize(rows);
    if (rows == 0) continue;  // empty vectors may have no storage for memcpy
    if (nulls != nullptr) std::memcpy(c.null.data(), nulls, rows);
    else std::memset(c.null.data(), 0, rows);
    switch (stored) {
      case Type::kInt64: std::memcpy(c.i64.data(), values, (size_t)rows * 8); break;
      case Type::kFloat64: std::memcpy(c.f64.data(), values, (size_t)rows * 8); break;
      case Type::kInterval: std::memcpy(c.iv.data(), values, (size_t)rows * sizeof(Interval)); break;
      case Type::kNumeric:
        for (uint32_t i = 0; i < rows; ++i, values += kDecimalBytes) {
          Decimal& d = c.dec[i];
          std::memcpy(&d.coef, values, sizeof(__int128));
          std::memcpy(&d.scale, values + sizeof(__int128), sizeof(int16_t));
          d.kind = (Decimal::Kind)(uint8_t)values[sizeof(__int128) + sizeof(int16_t)];
          if (!c.null[i] && !d.valid()) goto truncated;
        }
        break;
      case Type::kText: {
        uint32_t start;
        std::memcpy(&start, values, 4);
        for (uint32_t i = 0; i < rows; ++i) {
          uint32_t end;
          std::memcpy(&end, values + ((size_t)i + 1) * 4, 4);
          if (end < start || end > text_len) goto truncated;
          c.str[i] = std::string_view(text + start, end - start);
          start = end;
        }
        break;
      }
    }
  }
  b->rows = rows;
  b->xid.resize(rows);
  return true;
truncated:
  *error = "log batch is truncated or corrupt";
  return false;
}

}  // namespace velostream::engine

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
  b->rows = rows;
  b->xid.resize(rows);
  for (uint32_t ci = 0; ci < ncols; ++ci) {
    Column& c = b->columns[ci];
    uint8_t type = 0, has_nulls = 0;
    if (!r.take(&type, 1) || !r.take(&has_nulls, 1)) goto truncated;
    if (type == kNotStored) {
      if (c.used) {
        *error = "column " + std::to_string(ci + 1) + " is not stored in the log batch";
        return false;
      }
      continue;
    }
    if (type > (uint8_t)Type::kText || (c.used && type != (uint8_t)c.type)) {
      *error = "column " + std::to_string(ci + 1) + " has another type in the log batch";
      return false;
    }
    // A column no view reads is skipped without decoding its values.
    const bool keep = c.used;
    const Type stored = (Type)type;
    if (keep) c.resize(rows);
    if (has_nulls) {
      const char* nulls = r.skip(rows);
      if (nulls == nullptr) goto truncated;
      if (keep && rows > 0) std::memcpy(c.null.data(), nulls, rows);
    } else if (keep && rows > 0) {
      std::memset(c.null.data(), 0, rows);
    }
    switch (stored) {
      case Type::kInt64:
      case Type::kFloat64: {
        const char* v = r.skip((size_t)rows * 8);
        if (v == nullptr) goto truncated;
        if (keep && rows > 0)
          std::memcpy(stored == Type::kInt64 ? (void*)c.i64.data() : (void*)c.f64.data(), v, (size_t)rows * 8);
        break;
      }
      case Type::kNumeric: {
        const char* v = r.skip((size_t)rows * kDecimalBytes);
        if (v == nullptr) goto truncated;
        if (!keep) break;
        for (uint32_t i = 0; i < rows; ++i, v += kDecimalBytes) {
          Decimal& d = c.dec[i];
          std::memcpy(&d.coef, v, sizeof(__int128));
          std::memcpy(&d.scale, v + sizeof(__int128), sizeof(int16_t));
          d.kind = (Decimal::Kind)(uint8_t)v[sizeof(__int128) + sizeof(int16_t)];
        }
        break;
      }
      case Type::kText: {
        const char* offsets = r.skip(((size_t)rows + 1) * 4);
        if (offsets == nullptr) goto truncated;
        uint32_t total;
        std::memcpy(&total, offsets + (size_t)rows * 4, 4);
        const char* bytes = r.skip(total);
        if (bytes == nullptr) goto truncated;
        if (!keep) break;
        uint32_t start;
        std::memcpy(&start, offsets, 4);
        for (uint32_t i = 0; i < rows; ++i) {
          uint32_t end;
          std::memcpy(&end, offsets + ((size_t)i + 1) * 4, 4);
          if (end < start || end > total) goto truncated;
          c.str[i] = std::string_view(bytes + start, end - start);
          start = end;
        }
        break;
      }
    }
  }
  return true;
truncated:
  *error = "log batch is truncated or corrupt";
  return false;
}

}  // namespace velostream::engine

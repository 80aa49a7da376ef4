// Raw and varint encodings shared by the engine's binary formats (state
// changelogs, distinct sets). Host byte order.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

namespace velostream::engine::bytes {

/// Appends the bytes of `v`.
template <typename T>
inline void put(std::string* out, const T& v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof(T));
}

/// Reads a T at p and advances p (the caller checked the length).
template <typename T>
inline T get(const char*& p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  p += sizeof(T);
  return v;
}

/// Appends v as a zigzag LEB128 varint (counts and integer sums are mostly
/// small, and changelogs are written at every flush).
inline void put_varint(std::string* out, __int128 v) {
  unsigned __int128 z = (static_cast<unsigned __int128>(v) << 1) ^ static_cast<unsigned __int128>(v >> 127);
  while (z >= 0x80) {
    out->push_back(static_cast<char>(static_cast<uint8_t>(z) | 0x80));
    z >>= 7;
  }
  out->push_back(static_cast<char>(z));
}

/// Reads a varint written by put_varint from [p, end); false if truncated
/// or longer than 128 bits.
inline bool get_varint(const char*& p, const char* end, __int128* v) {
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

}  // namespace velostream::engine::bytes

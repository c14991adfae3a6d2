// The rank order of sort and topk as plain unsigned integers: KeyOf<T>::of(v) is a key whose
// unsigned order is PyTorch's ascending order of T's values, -0 equal to +0 and every NaN equal
// to the others and above +inf (the IEEE bits made monotonic; integers with the sign bit flipped).
// ~key is the descending order. Sorting (key, index) pairs gives the stable sort, ties by index.
#pragma once
#include <cstdint>
#include <cstring>

namespace tapegrad {

template <typename T>
struct KeyOf;
template <>
struct KeyOf<float> {
  using K = uint32_t;
  static K of(float v) {
    uint32_t u;
    v = v == 0.0f ? 0.0f : v;  // -0 -> +0
    std::memcpy(&u, &v, 4);
    if (v != v) return 0xffffffffu;
    return u & 0x80000000u ? ~u : u | 0x80000000u;
  }
};
template <>
struct KeyOf<double> {
  using K = uint64_t;
  static K of(double v) {
    uint64_t u;
    v = v == 0.0 ? 0.0 : v;
    std::memcpy(&u, &v, 8);
    if (v != v) return ~uint64_t(0);
    return u & (uint64_t(1) << 63) ? ~u : u | (uint64_t(1) << 63);
  }
};
template <>
struct KeyOf<int32_t> {
  using K = uint32_t;
  static K of(int32_t v) { return static_cast<uint32_t>(v) ^ 0x80000000u; }
};
template <>
struct KeyOf<int64_t> {
  using K = uint64_t;
  static K of(int64_t v) { return static_cast<uint64_t>(v) ^ (uint64_t(1) << 63); }
};

}  // namespace tapegrad

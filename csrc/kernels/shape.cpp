// Layout: every operand C-contiguous. triangle walks the B * R rows in blocks of rows sized by C
// (about kBlockBytes each); pad_forward walks the outer * P0 * P1 output rows the same way;
// pad_backward gives each task whole slices of the outer dim (a slice's gradient elements are
// added in one order, whoever runs it).
#include "kernels/shape.h"

#include "kernels/parallel.h"

#include <algorithm>
#include <cstring>
#include <cstdint>

namespace tapegrad {
namespace {

constexpr int64_t kBlockBytes = 1 << 15;       // bytes of output per task
constexpr int64_t kParallelMinBytes = 1 << 17;  // smaller copies stay on the caller

// Tasks of whole rows of `row_bytes` each, about kBlockBytes per task: f(r0, r1).
template <typename F>
void for_row_blocks(int64_t rows, int64_t row_bytes, F f) {
  if (rows <= 0) return;
  const int64_t per = std::max<int64_t>(1, kBlockBytes / std::max<int64_t>(row_bytes, 1));
  const int64_t ntasks = (rows + per - 1) / per;
  parallel_tiles(ntasks, rows * row_bytes >= kParallelMinBytes, [&](int64_t t) {
    f(t * per, std::min(rows, (t + 1) * per));
  });
}

// Output rows [r0, r1): the row's (o, p0, p1) counted up from r0's (a division per row cost more
// than a short row's copy: 32x64x32x32 padded by 1 has 70k rows of 34).
template <typename U>
void pad_rows(const PadMaps& p, const U* x, U v, U* out, int64_t r0, int64_t r1) {
  const int64_t P2 = p.P2, a2 = p.a2, b2 = p.b2, off2 = p.off2;
  int64_t p1 = r0 % p.P1, p0 = (r0 / p.P1) % p.P0, o = r0 / (p.P1 * p.P0);
  for (int64_t r = r0; r < r1; ++r) {
    U* dst = out + r * P2;
    const int64_t i0 = p.m0[p0], i1 = p.m1[p1];
    if (i0 < 0 || i1 < 0) {
      std::fill(dst, dst + P2, v);
    } else {
      const U* src = x + ((o * p.n0 + i0) * p.n1 + i1) * p.n2;
      for (int64_t q = 0; q < a2; ++q) dst[q] = p.m2[q] < 0 ? v : src[p.m2[q]];
      if (b2 - a2 >= 64) std::memcpy(dst + a2, src + a2 + off2, sizeof(U) * (b2 - a2));
      else for (int64_t q = a2; q < b2; ++q) dst[q] = src[q + off2];
      for (int64_t q = std::max(a2, b2); q < P2; ++q) dst[q] = p.m2[q] < 0 ? v : src[p.m2[q]];
    }
    if (++p1 == p.P1) {
      p1 = 0;
      if (++p0 == p.P0) {
        p0 = 0;
        ++o;
      }
    }
  }
}

template <typename U>
void pad_typed(const PadMaps& p, const U* x, const U* value, U* out) {
  const U v = *value;
  const int64_t rows = p.outer * p.P0 * p.P1;
  for_row_blocks(rows, p.P2 * int64_t(sizeof(U)), [&](int64_t r0, int64_t r1) { pad_rows<U>(p, x, v, out, r0, r1); });
}

}  // namespace

void triangle(int64_t B, int64_t R, int64_t C, int64_t k, bool lower, int width, const void* x, void* out) {
  if (B <= 0 || R <= 0 || C <= 0) return;
  const auto* src = static_cast<const char*>(x);
  auto* dst = static_cast<char*>(out);
  const int64_t w = width, row_bytes = C * w;
  for_row_blocks(B * R, row_bytes, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0, i = r0 % R; r < r1; ++r, i = i + 1 == R ? 0 : i + 1) {
      // the kept columns [c0, c1)
      const int64_t c0 = lower ? 0 : std::clamp(i + k, int64_t(0), C);
      const int64_t c1 = lower ? std::clamp(i + k + 1, int64_t(0), C) : C;
      char* d = dst + r * row_bytes;
      const char* s = src + r * row_bytes;
      if (c0 > 0) std::memset(d, 0, c0 * w);
      if (c1 > c0 && d != s) std::memcpy(d + c0 * w, s + c0 * w, (c1 - c0) * w);
      if (c1 < C) std::memset(d + std::max(c0, c1) * w, 0, (C - std::max(c0, c1)) * w);
    }
  });
}

void pad_forward(const PadMaps& p, int width, const void* x, const void* value, void* out) {
  if (p.outer <= 0 || p.P0 <= 0 || p.P1 <= 0 || p.P2 <= 0) return;
  switch (width) {
    case 1:
      return pad_typed(p, static_cast<const uint8_t*>(x), static_cast<const uint8_t*>(value),
                       static_cast<uint8_t*>(out));
    case 2:
      return pad_typed(p, static_cast<const uint16_t*>(x), static_cast<const uint16_t*>(value),
                       static_cast<uint16_t*>(out));
    case 4:
      return pad_typed(p, static_cast<const uint32_t*>(x), static_cast<const uint32_t*>(value),
                       static_cast<uint32_t*>(out));
    case 8:
      return pad_typed(p, static_cast<const uint64_t*>(x), static_cast<const uint64_t*>(value),
                       static_cast<uint64_t*>(out));
  }
}

template <typename T>
void pad_backward(const PadMaps& p, const T* g, T* gx) {
  const int64_t in_slice = p.n0 * p.n1 * p.n2, out_slice = p.P0 * p.P1 * p.P2;
  if (p.outer <= 0 || in_slice <= 0) return;
  const int64_t per = std::max<int64_t>(1, kBlockBytes / std::max<int64_t>(out_slice * int64_t(sizeof(T)), 1));
  const int64_t ntasks = (p.outer + per - 1) / per;
  const bool threads = p.outer * out_slice * int64_t(sizeof(T)) >= kParallelMinBytes;
  parallel_tiles(ntasks, threads, [&](int64_t t) {
    const int64_t o1 = std::min(p.outer, (t + 1) * per);
    for (int64_t o = t * per; o < o1; ++o) {
      T* dst0 = gx + o * in_slice;
      std::fill(dst0, dst0 + in_slice, T(0));
      const T* src = g + o * out_slice;
      for (int64_t p0 = 0; p0 < p.P0; ++p0) {
        for (int64_t p1 = 0; p1 < p.P1; ++p1, src += p.P2) {
          const int64_t i0 = p.m0[p0], i1 = p.m1[p1];
          if (i0 < 0 || i1 < 0) continue;
          T* dst = dst0 + (i0 * p.n1 + i1) * p.n2;
          for (int64_t q = 0; q < p.a2; ++q)
            if (p.m2[q] >= 0) dst[p.m2[q]] += src[q];
          T* d = dst + p.a2 + p.off2;
          const T* s = src + p.a2;
          for (int64_t q = 0; q < p.b2 - p.a2; ++q) d[q] += s[q];
          for (int64_t q = std::max(p.a2, p.b2); q < p.P2; ++q)
            if (p.m2[q] >= 0) dst[p.m2[q]] += src[q];
        }
      }
    }
  });
}

template void pad_backward<float>(const PadMaps&, const float*, float*);
template void pad_backward<double>(const PadMaps&, const double*, double*);

}  // namespace tapegrad

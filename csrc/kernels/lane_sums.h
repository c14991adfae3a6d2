// Sums of a run of terms in several independent lanes, shared by the row kernels (rows.cpp) and
// the normalisation kernels (norm.cpp).
//
// An `omp simd reduction` keeps one vector of partial sums, so each vector's add waits for the
// previous one's (4 cycles): a row of 1024 floats then takes longer to sum than to load. These
// keep LaneBytes of partials (several independent vectors at every ISA) and combine them in a
// fixed order, so the arithmetic is the same for every ISA and thread count. Partials of T go
// into double ones every kLaneChunk elements, so that long runs keep the accuracy of a double
// sum. Runs shorter than four lane widths take fewer lanes (by default one AVX2 vector's): fewer
// to total at the end, and each lane still adds at most a few dozen terms in T, as a long run's
// lanes do. (One double accumulator there waited on its adds, 4 cycles each: group_norm's
// backward over planes of 64 floats ran 61 us where these lanes take 47, layer_norm forward and
// backward over 4096 rows of 200 floats 380 and 410 us where they take 300 and 325.)
#pragma once
#include <algorithm>
#include <cstdint>
#include <type_traits>

namespace tapegrad {
namespace lanes {

#define TG_LANES_INLINE inline __attribute__((always_inline))

constexpr int64_t kLaneChunk = 1024;
// Runs shorter than four lane widths take ShortLaneBytes of lanes (a 32-byte vector's by default).
constexpr int64_t kShortLaneBytes = 32;

// The lanes' total, pairwise (upper half added into the lower), in a fixed order.
template <int64_t L>
TG_LANES_INLINE double total(double* t) {
  for (int64_t w = L / 2; w >= 1; w /= 2) {
#pragma omp simd
    for (int64_t l = 0; l < w; ++l) t[l] += t[l + w];
  }
  return t[0];
}

// s1 = sum over j in [0, n) of f1(j) (a T), and s2 that of f2(j) unless F2 is nullptr_t. The
// terms run once per j, in order within a lane, so they may store as a side effect.
template <typename T, int64_t LaneBytes, int64_t ShortLaneBytes = kShortLaneBytes, typename F1, typename F2>
TG_LANES_INLINE void sums(int64_t n, F1 f1, F2 f2, double& s1, double& s2) {
  constexpr int64_t L = LaneBytes / int64_t(sizeof(T));
  constexpr bool two = !std::is_same<F2, std::nullptr_t>::value;
  if constexpr (LaneBytes > ShortLaneBytes) {
    if (n < 4 * L) {
      sums<T, ShortLaneBytes, ShortLaneBytes>(n, f1, f2, s1, s2);
      return;
    }
  }
  alignas(64) double t1[L], t2[L];
  for (int64_t l = 0; l < L; ++l) t1[l] = t2[l] = 0;
  for (int64_t c0 = 0; c0 < n; c0 += kLaneChunk) {
    const int64_t c1 = std::min(n, c0 + kLaneChunk);
    alignas(64) T a1[L], a2[L];
    for (int64_t l = 0; l < L; ++l) a1[l] = a2[l] = T(0);
    int64_t j = c0;
    for (; j + L <= c1; j += L) {
#pragma omp simd aligned(a1, a2 : 64)
      for (int64_t l = 0; l < L; ++l) {
        a1[l] += f1(j + l);
        if constexpr (two) a2[l] += f2(j + l);
      }
    }
    for (int64_t l = 0; j + l < c1; ++l) {
      a1[l] += f1(j + l);
      if constexpr (two) a2[l] += f2(j + l);
    }
#pragma omp simd
    for (int64_t l = 0; l < L; ++l) {
      t1[l] += double(a1[l]);
      t2[l] += double(a2[l]);
    }
  }
  s1 = total<L>(t1);
  s2 = two ? total<L>(t2) : 0.0;
}

#undef TG_LANES_INLINE

}  // namespace lanes
}  // namespace tapegrad

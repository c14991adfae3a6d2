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
#include <cstring>
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

// sums<T, 256>(n, p[j], nullptr, s, _) for n >= 4 lane widths, bit for bit, written in 64-byte
// vectors (GCC's vector extension) so that the lanes, the tail and the totals stay in registers:
// sums' loops over the lanes' arrays went through memory outside the main loop, and for a run of
// 1000 floats that overhead (zeroing, the tail, the pairwise total's narrowing loads each waiting
// on a wider store) took twice as long as the adds. The same adds in the same order: the tail is
// added as a vector zero-padded past the run's end (a lane's sum is never -0, as it starts at +0,
// so adding +0 leaves it as it is), and the total halves vectors, then within the last one.
// sum256's lanes, fed one run of at most kLaneChunk at a time (sum256 feeds it the runs of its
// row; a 16-bit row's caller widens each run into an L1 buffer first, reduce.cpp): the same
// adds, so the same bits, as the row summed whole.
template <typename T>
struct Lanes256 {
  typedef T V __attribute__((vector_size(64)));
  typedef double D __attribute__((vector_size(64)));
  static constexpr int64_t W = 64 / int64_t(sizeof(T)), L = 4 * W, ND = L / 8;  // ND double vectors of lanes
  D t[ND];

  TG_LANES_INLINE Lanes256() {
    for (int64_t k = 0; k < ND; ++k) t[k] = D{};
  }

  // The run p[0, len), len <= kLaneChunk, summed in four vectors of T, then into the double lanes.
  TG_LANES_INLINE void add_run(const T* p, int64_t len) {
    const auto load = [](const T* q) {
      V v;
      std::memcpy(&v, q, sizeof(V));
      return v;
    };
    V a[4] = {V{}, V{}, V{}, V{}};
    int64_t j = 0;
    for (; j + L <= len; j += L)
      for (int v = 0; v < 4; ++v) a[v] += load(p + j + v * W);
    for (int v = 0; v < 4; ++v) {
      const int64_t k = len - j - v * W;
      if (k >= W) {
        a[v] += load(p + j + v * W);
      } else if (k > 0) {
        V tail{};
        std::memcpy(&tail, p + j + v * W, size_t(k) * sizeof(T));
        a[v] += tail;
      }
    }
    for (int v = 0; v < 4; ++v) {
      if constexpr (sizeof(T) == 8) {
        t[v] += a[v];
      } else {
        const auto lo = __builtin_shufflevector(a[v], a[v], 0, 1, 2, 3, 4, 5, 6, 7);
        const auto hi = __builtin_shufflevector(a[v], a[v], 8, 9, 10, 11, 12, 13, 14, 15);
        t[2 * v] += __builtin_convertvector(lo, D);
        t[2 * v + 1] += __builtin_convertvector(hi, D);
      }
    }
  }

  // The lanes' total: vectors halved, then within the last one.
  TG_LANES_INLINE double total() {
    for (int64_t w = ND / 2; w >= 1; w /= 2)
      for (int64_t k = 0; k < w; ++k) t[k] += t[k + w];
    D u = t[0];
    u += __builtin_shufflevector(u, u, 4, 5, 6, 7, 4, 5, 6, 7);
    u += __builtin_shufflevector(u, u, 2, 3, 2, 3, 2, 3, 2, 3);
    u += __builtin_shufflevector(u, u, 1, 1, 1, 1, 1, 1, 1, 1);
    return u[0];
  }
};

// Elements of p (n of them) before the first one on a 64-byte boundary, at most n. An
// elementwise pass that writes p runs these first and the rest from the boundary on, so its
// vector stores each fill one cache line: numpy's arrays start 16 bytes past one, and a store
// split over two lines that both miss (a fresh output) cost layer_norm's forward 12-20% at 1e6
// floats, log_softmax's 10%. Only for passes whose elements are independent: a sum's lanes must
// not move with the address, or its bits would.
template <typename T>
TG_LANES_INLINE int64_t line_head(const T* p, int64_t n) {
  const int64_t h = int64_t((64 - (reinterpret_cast<uintptr_t>(p) & 63)) & 63) / int64_t(sizeof(T));
  return h < n ? h : n;
}

template <typename T>
TG_LANES_INLINE double sum256(int64_t n, const T* p) {
  Lanes256<T> s;
  for (int64_t c0 = 0; c0 < n; c0 += kLaneChunk) s.add_run(p + c0, std::min(kLaneChunk, n - c0));
  return s.total();
}

// sums() in registers: the same lanes, adds and order (so the same bits), with each term a
// vector of N lanes' terms. f(n, j, k) (n: std::integral_constant of N) gives the terms of
// elements j .. j + N - 1 as a vector of N Ts, reading only the first k of them (k = N but at a
// run's tail), and its lanes past k must add nothing: +0 or -0 (a lane's sum is never -0, as it
// starts at +0, so either leaves it as it is). load() fills them with 0; a term that is not 0 at
// 0 masks them with keep_first(), before its last product, so that the product and the add stay
// one multiply-add as in sums(). sums() keeps its lanes in arrays, and for the short runs of the
// normalisation kernels (group_norm's planes of 64 floats) zeroing them, moving them into double
// lanes and totalling them through memory took longer than the adds.
template <typename T, int64_t N>
struct VecOf {
  typedef T type __attribute__((vector_size(N * sizeof(T))));
};
template <typename T, int64_t N>
using Vec = typename VecOf<T, N>::type;

// Elements p[0, k) of a vector of N (k <= N), the rest 0.
template <int64_t N, typename T>
TG_LANES_INLINE Vec<T, N> load(const T* p, int64_t k) {
  Vec<T, N> v{};
  if (k == N) std::memcpy(&v, p, sizeof(v));
  else std::memcpy(&v, p, size_t(k) * sizeof(T));
  return v;
}

// v with its lanes from k on set to 0.
template <int64_t N, typename T>
TG_LANES_INLINE Vec<T, N> keep_first(Vec<T, N> v, int64_t k) {
  if (k == N) return v;
  using I = std::conditional_t<sizeof(T) == 8, int64_t, int32_t>;
  Vec<I, N> iota;
  for (int64_t l = 0; l < N; ++l) iota[l] = I(l);
  return iota < I(k) ? v : Vec<T, N>{};
}

template <typename T, int64_t LaneBytes, int64_t ShortLaneBytes = kShortLaneBytes, typename F1, typename F2>
TG_LANES_INLINE void vsums(int64_t n, F1 f1, F2 f2, double& s1, double& s2) {
  constexpr int64_t L = LaneBytes / int64_t(sizeof(T));
  constexpr bool two = !std::is_same<F2, std::nullptr_t>::value;
  if constexpr (LaneBytes > ShortLaneBytes) {
    if (n < 4 * L) {
      vsums<T, ShortLaneBytes, ShortLaneBytes>(n, f1, f2, s1, s2);
      return;
    }
  }
  using V = Vec<T, L>;
  using DV = Vec<double, L>;
  const std::integral_constant<int64_t, L> nl{};
  DV t1{}, t2{};
  for (int64_t c0 = 0; c0 < n; c0 += kLaneChunk) {
    const int64_t c1 = std::min(n, c0 + kLaneChunk);
    V a1{}, a2{};
    int64_t j = c0;
    for (; j + L <= c1; j += L) {
      a1 += f1(nl, j, L);
      if constexpr (two) a2 += f2(nl, j, L);
    }
    if (j < c1) {
      a1 += f1(nl, j, c1 - j);
      if constexpr (two) a2 += f2(nl, j, c1 - j);
    }
    if constexpr (sizeof(T) == 8) {
      t1 += a1;
      if constexpr (two) t2 += a2;
    } else {
      t1 += __builtin_convertvector(a1, DV);
      if constexpr (two) t2 += __builtin_convertvector(a2, DV);
    }
  }
  alignas(64) double u1[L], u2[L];
  std::memcpy(u1, &t1, sizeof(u1));
  s1 = total<L>(u1);
  if constexpr (two) {
    std::memcpy(u2, &t2, sizeof(u2));
    s2 = total<L>(u2);
  } else {
    s2 = 0.0;
  }
}

#undef TG_LANES_INLINE

}  // namespace lanes
}  // namespace tapegrad

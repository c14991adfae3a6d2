// sum / mean / amax / amin over the middle dim of a C-contiguous (A, N, B) array (see reduce.h).
//
// Two layouts, each a loop body written once (a template, inlined) and compiled for the baseline
// ISA, AVX2+FMA and AVX-512, chosen at run time by CPU feature (cpu.h; the rows family's choice):
//  - B = 1, rows: each row of N is reduced in lanes (lane_sums.h for the sums), rows taken in
//    tasks of about kTaskElems elements. A row longer than kRowChunk is cut into chunks of
//    kRowChunk, each a tile of its own, whose partials are combined in chunk order.
//  - B > 1, columns: the reduction runs down the N rows of B columns, vectorised across the
//    columns. A tile is a strip of at most kStrip columns over a chunk of rows; down the chunk,
//    each block of kRowBlock rows is summed in T, row after row into a buffer that stays in L1
//    (the rows stream in order), and the block's sums are added into double partials (one per
//    column). Chunks' partials are combined in chunk order.
// Every cut depends on the shape alone, never on the thread count, so results are bit-identical
// for any number of threads; and every ISA adds in the same order (lanes fixed in bytes, columns
// independent of the vector width), so they are the same for every ISA too.
#include "kernels/reduce.h"

#include "kernels/cpu.h"
#include "kernels/isa_variants.h"
#include "kernels/lane_sums.h"
#include "kernels/parallel.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

namespace tapegrad {
namespace {


// Elements below which a fork costs more than it saves.
constexpr int64_t kParallelMinElems = 1 << 15;
// Row reductions: a task covers whole rows, about this many elements.
constexpr int64_t kTaskElems = 1 << 14;
// Rows longer than this are cut into chunks of it (a full reduction of 1e6 floats: 31 tiles for
// the threads to share), each summed in its own lanes, the chunks' sums then added in order.
constexpr int64_t kRowChunk = 1 << 15;
// Row sums keep 256 bytes of lanes (four AVX-512 vectors, eight AVX2 ones): independent adds,
// as rows.cpp's row kernels.
constexpr int64_t kLaneBytes = 256;
// Column reductions: a strip of at most kStrip columns (its double partials, 8 KiB, stay in L1)...
constexpr int64_t kStrip = 1024;
// ...runs down its rows kRowBlock at a time, summed in T (as numpy's pairwise sum adds runs of
// 8 x 16 in T) and then added into the double partials...
constexpr int64_t kRowBlock = 16;
// ...in chunks of rows of about kChunkElems elements, at most kMaxChunks of them: chunks are
// what two threads share when there are few strips and few outputs (a column sum over
// 1000 x 1000: 8 chunks of 128 rows), and each costs its partials' share of a final pass.
constexpr int64_t kChunkElems = 1 << 17;
constexpr int64_t kMaxChunks = 16;

Isa isa() {
  static const Isa chosen = kernel_isa(Kernel::rows);
  return chosen;
}

// x replaces m when it is larger (smaller for amin) or NaN: a NaN, once taken, stays (nothing is
// larger than it, and only another NaN replaces it), so a reduction over a NaN gives NaN.
template <typename T, bool Min>
TG_INLINE T pick(T m, T x) {
  return ((Min ? x < m : x > m) | (x != x)) ? x : m;
}

// The sum rounded to T; for mean, divided by the count in T (PyTorch's mean is sum then div_).
template <typename T>
TG_INLINE T finish(double s, bool mean, int64_t count) {
  const T t = T(s);
  return mean ? T(t / T(count)) : t;
}

// ---------------------------------------------------------------- loop bodies
// Rows [0, nrows), each n elements, ld apart: their sums, as doubles into part (when not null),
// else finished into out.
template <typename T>
TG_INLINE void sum_rows_body(int64_t nrows, int64_t n, int64_t ld, const T* x, double* part, T* out, bool mean,
                             int64_t count) {
  for (int64_t r = 0; r < nrows; ++r) {
    const T* p = x + r * ld;
    double s, unused;
    lanes::sums<T, kLaneBytes>(n, [p](int64_t j) { return p[j]; }, nullptr, s, unused);
    if (part) part[r] = s;
    else out[r] = finish<T>(s, mean, count);
  }
}

// The largest (smallest) of p[0, n), n >= L, in L lanes. Max is idempotent, so the last lane
// step overlaps the one before it rather than ending in a scalar loop (which took 40% of the
// time over rows of 1000 floats), and the lanes are combined pairwise in vector steps.
template <typename T, bool Min, int64_t L>
TG_INLINE T max_lanes(int64_t n, const T* p) {
  alignas(64) T lane[L];
  for (int64_t l = 0; l < L; ++l) lane[l] = p[l];
  for (int64_t j = L;; j += L) {
    const T* q = p + std::min(j, n - L);
#pragma omp simd aligned(lane : 64)
    for (int64_t l = 0; l < L; ++l) lane[l] = pick<T, Min>(lane[l], q[l]);
    if (j + L >= n) break;
  }
  for (int64_t w = L / 2; w >= 1; w /= 2) {
#pragma omp simd aligned(lane : 64)
    for (int64_t l = 0; l < w; ++l) lane[l] = pick<T, Min>(lane[l], lane[l + w]);
  }
  return lane[0];
}

// Rows [0, nrows), each n > 0 elements, ld apart: their largest (smallest) element into out.
template <typename T, bool Min>
TG_INLINE void max_rows_body(int64_t nrows, int64_t n, int64_t ld, const T* x, T* out) {
  constexpr int64_t L = kLaneBytes / int64_t(sizeof(T)), S = 32 / int64_t(sizeof(T));
  for (int64_t r = 0; r < nrows; ++r) {
    const T* p = x + r * ld;
    T m = p[0];
    if (n >= L) {
      m = max_lanes<T, Min, L>(n, p);
    } else if (n >= S) {
      m = max_lanes<T, Min, S>(n, p);
    } else {
      for (int64_t j = 1; j < n; ++j) m = pick<T, Min>(m, p[j]);
    }
    out[r] = m;
  }
}

// acc[j] += the sum over rows [0, n) (ld apart) of x[i * ld + j], for j in [0, w <= kStrip):
// blocks of kRowBlock rows summed in T in a buffer (row by row, so the rows stream in order), each
// block's sums then added in double.
template <typename T>
TG_INLINE void sum_cols_body(int64_t n, int64_t w, int64_t ld, const T* x, double* acc) {
  alignas(64) T s[kStrip];
  for (int64_t i = 0; i < n; i += kRowBlock) {
    const T* p = x + i * ld;
    std::copy(p, p + w, s);
    const int64_t rows = std::min(kRowBlock, n - i);
    for (int64_t k = 1; k < rows; ++k) {
      const T* q = p + k * ld;
#pragma omp simd aligned(s : 64)
      for (int64_t j = 0; j < w; ++j) s[j] += q[j];
    }
#pragma omp simd aligned(s : 64)
    for (int64_t j = 0; j < w; ++j) acc[j] += double(s[j]);
  }
}

// acc[j] = the largest (smallest) of acc[j] and x[i * ld + j] over rows [0, n), for j in [0, w).
template <typename T, bool Min>
TG_INLINE void max_cols_body(int64_t n, int64_t w, int64_t ld, const T* x, T* acc) {
  for (int64_t i = 0; i < n; ++i) {
    const T* p = x + i * ld;
#pragma omp simd
    for (int64_t j = 0; j < w; ++j) acc[j] = pick<T, Min>(acc[j], p[j]);
  }
}

// Each body compiled for the baseline ISA, AVX2+FMA and AVX-512.
#undef TG_VARIANTS  // this file's own form
#define TG_VARIANTS(name, tparams, targs, params, args)                                 \
  template <tparams>                                                                   \
  __attribute__((noinline)) void name##_base params { name##_body<targs> args; }        \
  template <tparams>                                                                   \
  TG_AVX2 __attribute__((noinline)) void name##_avx2 params { name##_body<targs> args; } \
  template <tparams>                                                                   \
  TG_AVX512 __attribute__((noinline)) void name##_avx512 params { name##_body<targs> args; }

#define TG_COMMA ,
TG_VARIANTS(sum_rows, typename T, T,
            (int64_t nrows, int64_t n, int64_t ld, const T* x, double* part, T* out, bool mean, int64_t count),
            (nrows, n, ld, x, part, out, mean, count))
TG_VARIANTS(max_rows, typename T TG_COMMA bool Min, T TG_COMMA Min,
            (int64_t nrows, int64_t n, int64_t ld, const T* x, T* out), (nrows, n, ld, x, out))
TG_VARIANTS(sum_cols, typename T, T, (int64_t n, int64_t w, int64_t ld, const T* x, double* acc), (n, w, ld, x, acc))
TG_VARIANTS(max_cols, typename T TG_COMMA bool Min, T TG_COMMA Min, (int64_t n, int64_t w, int64_t ld, const T* x, T* acc),
            (n, w, ld, x, acc))
#undef TG_VARIANTS

// TG_CALL(name, (template args), args...)
#undef TG_CALL
#define TG_CALL(name, targs, ...)                                  \
  (isa() == Isa::avx512 ? name##_avx512<TG_UNPAREN targs>(__VA_ARGS__) \
   : isa() == Isa::avx2 ? name##_avx2<TG_UNPAREN targs>(__VA_ARGS__)   \
                        : name##_base<TG_UNPAREN targs>(__VA_ARGS__))
#define TG_UNPAREN(...) __VA_ARGS__

template <typename T, bool Min>
void max_rows(int64_t nrows, int64_t n, int64_t ld, const T* x, T* out) {
  TG_CALL(max_rows, (T, Min), nrows, n, ld, x, out);
}
template <typename T, bool Min>
void max_cols(int64_t n, int64_t w, int64_t ld, const T* x, T* acc) {
  TG_CALL(max_cols, (T, Min), n, w, ld, x, acc);
}

// ---------------------------------------------------------------- B = 1: rows
template <typename T, bool Min>
void max_rows_all(int64_t A, int64_t N, const T* x, T* out) {
  const bool par = A * N >= kParallelMinElems;
  if (N <= kRowChunk) {
    const int64_t step = std::max<int64_t>(1, kTaskElems / N), ntasks = (A + step - 1) / step;
    parallel_tiles(ntasks, par, [&](int64_t k) {
      const int64_t r0 = k * step, r1 = std::min(A, r0 + step);
      max_rows<T, Min>(r1 - r0, N, N, x + r0 * N, out + r0);
    });
    return;
  }
  const int64_t nchunks = (N + kRowChunk - 1) / kRowChunk;
  std::vector<T> part(A * nchunks);
  parallel_tiles(A * nchunks, par, [&](int64_t t) {
    const int64_t r = t / nchunks, c0 = t % nchunks * kRowChunk;
    max_rows<T, Min>(1, std::min(kRowChunk, N - c0), 0, x + r * N + c0, &part[t]);
  });
  for (int64_t r = 0; r < A; ++r) max_rows<T, Min>(1, nchunks, 0, &part[r * nchunks], out + r);
}

template <typename T>
void reduce_rows(ReduceOp op, int64_t A, int64_t N, const T* x, T* out) {
  if (op == ReduceOp::amax) return max_rows_all<T, false>(A, N, x, out);
  if (op == ReduceOp::amin) return max_rows_all<T, true>(A, N, x, out);
  const bool mean = op == ReduceOp::mean, par = A * N >= kParallelMinElems;
  if (N <= kRowChunk) {
    const int64_t step = std::max<int64_t>(1, kTaskElems / N), ntasks = (A + step - 1) / step;
    parallel_tiles(ntasks, par, [&](int64_t k) {
      const int64_t r0 = k * step, r1 = std::min(A, r0 + step);
      TG_CALL(sum_rows, (T), r1 - r0, N, N, x + r0 * N, nullptr, out + r0, mean, N);
    });
    return;
  }
  const int64_t nchunks = (N + kRowChunk - 1) / kRowChunk;
  std::vector<double> part(A * nchunks);
  parallel_tiles(A * nchunks, par, [&](int64_t t) {
    const int64_t r = t / nchunks, c0 = t % nchunks * kRowChunk;
    TG_CALL(sum_rows, (T), 1, std::min(kRowChunk, N - c0), 0, x + r * N + c0, &part[t], nullptr, mean, N);
  });
  for (int64_t r = 0; r < A; ++r) {
    double s = part[r * nchunks];
    for (int64_t c = 1; c < nchunks; ++c) s += part[r * nchunks + c];
    out[r] = finish<T>(s, mean, N);
  }
}

// ---------------------------------------------------------------- B > 1: columns
template <typename T>
void reduce_cols(ReduceOp op, int64_t A, int64_t N, int64_t B, const T* x, T* out) {
  const bool sum = op == ReduceOp::sum || op == ReduceOp::mean, mean = op == ReduceOp::mean;
  const int64_t w = std::min(B, kStrip), nstrips = (B + kStrip - 1) / kStrip;
  int64_t nchunks = std::min(kMaxChunks, std::max<int64_t>(1, N * w / kChunkElems));
  const int64_t rows = ((N + nchunks - 1) / nchunks + kRowBlock - 1) / kRowBlock * kRowBlock;
  nchunks = (N + rows - 1) / rows;
  const int64_t per_a = nchunks * nstrips;
  // When one tile covers a whole output slice, a task takes several slices of about kTaskElems.
  const int64_t group = per_a == 1 ? std::max<int64_t>(1, kTaskElems / (N * B)) : 1;
  const int64_t ntiles = per_a == 1 ? (A + group - 1) / group : A * per_a;
  std::vector<double> part(sum && nchunks > 1 ? A * nchunks * B : 0);
  std::vector<T> part_m(!sum && nchunks > 1 ? A * nchunks * B : 0);

  const auto tile = [&](int64_t a, int64_t c, int64_t s) {
    const int64_t r0 = c * rows, nr = std::min(N, r0 + rows) - r0, j0 = s * kStrip, wj = std::min(kStrip, B - j0);
    const T* p = x + (a * N + r0) * B + j0;
    if (sum) {
      alignas(64) double acc[kStrip];
      std::fill(acc, acc + wj, 0.0);
      TG_CALL(sum_cols, (T), nr, wj, B, p, acc);
      if (nchunks == 1) {
        T* o = out + a * B + j0;
        for (int64_t j = 0; j < wj; ++j) o[j] = finish<T>(acc[j], mean, N);
      } else {
        std::copy(acc, acc + wj, &part[(a * nchunks + c) * B + j0]);
      }
    } else {
      T* acc = nchunks == 1 ? out + a * B + j0 : &part_m[(a * nchunks + c) * B + j0];
      std::copy(p, p + wj, acc);
      if (op == ReduceOp::amax) max_cols<T, false>(nr - 1, wj, B, p + B, acc);
      else max_cols<T, true>(nr - 1, wj, B, p + B, acc);
    }
  };
  parallel_tiles(ntiles, A * N * B >= kParallelMinElems, [&](int64_t t) {
    if (per_a == 1) {
      for (int64_t a = t * group; a < std::min(A, (t + 1) * group); ++a) tile(a, 0, 0);
    } else {
      const int64_t a = t / per_a, c = t % per_a / nstrips, s = t % nstrips;
      tile(a, c, s);
    }
  });
  if (nchunks == 1) return;
  // The chunks' partials, added in chunk order.
  for (int64_t a = 0; a < A; ++a) {
    T* o = out + a * B;
    if (sum) {
      double* p0 = &part[a * nchunks * B];
      for (int64_t c = 1; c < nchunks; ++c) {
        const double* pc = p0 + c * B;
        for (int64_t j = 0; j < B; ++j) p0[j] += pc[j];
      }
      for (int64_t j = 0; j < B; ++j) o[j] = finish<T>(p0[j], mean, N);
    } else {
      const T* p0 = &part_m[a * nchunks * B];
      std::copy(p0, p0 + B, o);
      if (op == ReduceOp::amax) max_cols<T, false>(nchunks - 1, B, B, p0 + B, o);
      else max_cols<T, true>(nchunks - 1, B, B, p0 + B, o);
    }
  }
}

}  // namespace

template <typename T>
void reduce_middle(ReduceOp op, int64_t A, int64_t N, int64_t B, const T* x, T* out) {
  if (A <= 0 || B <= 0) return;
  if (N <= 0) {  // an empty sum is 0, its mean 0 / 0
    const bool mean = op == ReduceOp::mean;
    std::fill(out, out + A * B, mean ? std::numeric_limits<T>::quiet_NaN() : T(0));
    return;
  }
  if (B == 1) reduce_rows<T>(op, A, N, x, out);
  else reduce_cols<T>(op, A, N, B, x, out);
}

template void reduce_middle<float>(ReduceOp, int64_t, int64_t, int64_t, const float*, float*);
template void reduce_middle<double>(ReduceOp, int64_t, int64_t, int64_t, const double*, double*);

}  // namespace tapegrad

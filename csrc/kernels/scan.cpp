// Cumulative sums along one axis (see scan.h for the layout).
//
// Two loop nests, both compiled for the baseline ISA, AVX2+FMA and AVX-512 as rows.cpp's kernels
// are, and chosen by kernel_isa(Kernel::rows):
//  - inner > 1 (the scanned axis is not the innermost one, e.g. dim 0 of a C-contiguous matrix):
//    a running row of kCols double sums, one per column, to which each step along n adds the
//    next row of x; the adds of one step are independent and vectorise across the columns.
//  - inner == 1 (the scanned axis is innermost, rows of a matrix): each line is one chain of
//    dependent adds, latency-bound on its own (4 cycles an add), so kLines lines run interleaved
//    as independent chains.
// Work is cut into tasks of whole lines (column blocks, or groups of rows) fixed by the shape.
#include "kernels/scan.h"

#include "kernels/cpu.h"
#include "kernels/isa_variants.h"
#include "kernels/parallel.h"

#include <algorithm>

namespace tapegrad {
namespace {


// Elements below which a fork costs more than it saves.
constexpr int64_t kParallelMinElems = 1 << 15;
// A task covers about this many elements (whole lines).
constexpr int64_t kTaskElems = 1 << 14;
// At most this many columns of running sums (doubles, 16 KiB: in L1 with the rows' loads) a
// task keeps. Whole rows of x stream through memory in order: along dim 0 of 1000 x 1000 float32,
// tasks of 128 / 256 / 512 / 1024 columns took 480 / 523 / 435 / 340 us on one thread (a copy of x:
// 270 us); so columns are only cut to give each thread a share.
constexpr int64_t kCols = 2048;
// Column blocks are cut at multiples of this (64 bytes of floats): threads writing neighbouring
// blocks share at most a cache line a row.
constexpr int64_t kColAlign = 16;
// Lines scanned together when the scan runs along the innermost axis: independent chains enough
// to cover the add's latency.
constexpr int kLines = 8;

Isa isa() { return kernel_isa(Kernel::rows); }

// y[i, j] = sum over i' <= i of x[i', j] for i in [0, n), j in [0, m) (m <= kCols); y's rows ys_n
// apart, its columns contiguous.
template <typename T>
TG_INLINE void cols_body(int64_t n, int64_t m, const T* x, int64_t xs_n, int64_t xs_i, T* y, int64_t ys_n) {
  alignas(64) double acc[kCols];
  for (int64_t j = 0; j < m; ++j) acc[j] = 0.0;  // PyTorch's start: cumsum([-0.0]) is +0.0
  if (xs_i == 1) {
    for (int64_t i = 0; i < n; ++i) {
      const T* xi = x + i * xs_n;
      T* yi = y + i * ys_n;
#pragma omp simd aligned(acc : 64)
      for (int64_t j = 0; j < m; ++j) {
        acc[j] += double(xi[j]);
        yi[j] = T(acc[j]);
      }
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      const T* xi = x + i * xs_n;
      T* yi = y + i * ys_n;
#pragma omp simd aligned(acc : 64)
      for (int64_t j = 0; j < m; ++j) {
        acc[j] += double(xi[j * xs_i]);
        yi[j] = T(acc[j]);
      }
    }
  }
}

// K lines of n elements, line k at x + k xs_o (elements xs_n apart) and y + k ys_o (ys_n apart),
// scanned as K interleaved chains.
template <typename T, int K>
TG_INLINE void lines_k(int64_t n, const T* x, int64_t xs_o, int64_t xs_n, T* y, int64_t ys_o, int64_t ys_n) {
  double s[K];
  for (int k = 0; k < K; ++k) s[k] = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const T* xi = x + i * xs_n;
    T* yi = y + i * ys_n;
#pragma GCC unroll 16
    for (int k = 0; k < K; ++k) {
      s[k] += double(xi[k * xs_o]);
      yi[k * ys_o] = T(s[k]);
    }
  }
}

// Lines [r0, r1).
template <typename T>
TG_INLINE void lines_body(int64_t r0, int64_t r1, int64_t n, const T* x, int64_t xs_o, int64_t xs_n, T* y,
                          int64_t ys_o, int64_t ys_n) {
  int64_t r = r0;
  for (; r + kLines <= r1; r += kLines) lines_k<T, kLines>(n, x + r * xs_o, xs_o, xs_n, y + r * ys_o, ys_o, ys_n);
  if (r + 4 <= r1) lines_k<T, 4>(n, x + r * xs_o, xs_o, xs_n, y + r * ys_o, ys_o, ys_n), r += 4;
  if (r + 2 <= r1) lines_k<T, 2>(n, x + r * xs_o, xs_o, xs_n, y + r * ys_o, ys_o, ys_n), r += 2;
  if (r < r1) lines_k<T, 1>(n, x + r * xs_o, xs_o, xs_n, y + r * ys_o, ys_o, ys_n);
}


TG_VARIANTS(cols, (int64_t n, int64_t m, const T* x, int64_t xs_n, int64_t xs_i, T* y, int64_t ys_n),
            (n, m, x, xs_n, xs_i, y, ys_n))
TG_VARIANTS(lines,
            (int64_t r0, int64_t r1, int64_t n, const T* x, int64_t xs_o, int64_t xs_n, T* y, int64_t ys_o,
             int64_t ys_n),
            (r0, r1, n, x, xs_o, xs_n, y, ys_o, ys_n))

}  // namespace

template <typename T>
void cumsum(int64_t outer, int64_t n, int64_t inner, const T* x, int64_t xs_outer, int64_t xs_n, int64_t xs_inner,
            T* y, bool reverse) {
  if (outer <= 0 || n <= 0 || inner <= 0) return;
  const bool par = outer * n * inner >= kParallelMinElems;
  // Reversed: the same forward scan of x and y read from their last step, stepping back.
  int64_t ys_n = inner;
  if (reverse) {
    x += (n - 1) * xs_n;
    y += (n - 1) * inner;
    xs_n = -xs_n;
    ys_n = -inner;
  }
  const int64_t nt = par ? num_threads() : 1;
  if (inner == 1) {
    // Tasks of whole kLines groups, fewer lines where that leaves a thread without a task (a
    // few long lines). Each line's sum is the same whatever the grouping.
    int64_t per = (std::max<int64_t>(1, kTaskElems / n) + kLines - 1) / kLines * kLines;
    if ((outer + per - 1) / per < nt) per = (outer + nt - 1) / nt;
    parallel_tiles((outer + per - 1) / per, par, [&](int64_t t) {
      TG_CALL(lines, T, t * per, std::min(outer, (t + 1) * per), n, x, xs_outer, xs_n, y, n, ys_n);
    });
    return;
  }
  // Blocks of columns as wide as kCols allows, cut narrower only where there are fewer (outer,
  // block) tasks than threads. Each column's sums are the same whatever the blocks.
  int64_t nb = (inner + kCols - 1) / kCols;
  if (outer * nb < nt) nb = std::min((nt + outer - 1) / outer, (inner + kColAlign - 1) / kColAlign);
  const int64_t W = ((inner + nb - 1) / nb + kColAlign - 1) / kColAlign * kColAlign;
  nb = (inner + W - 1) / W;
  parallel_tiles(outer * nb, par, [&](int64_t t) {
    const int64_t o = t / nb, j0 = t % nb * W, m = std::min(W, inner - j0);
    TG_CALL(cols, T, n, m, x + o * xs_outer + j0 * xs_inner, xs_n, xs_inner, y + o * n * inner + j0, ys_n);
  });
}

template void cumsum<float>(int64_t, int64_t, int64_t, const float*, int64_t, int64_t, int64_t, float*, bool);
template void cumsum<double>(int64_t, int64_t, int64_t, const double*, int64_t, int64_t, int64_t, double*, bool);

}  // namespace tapegrad

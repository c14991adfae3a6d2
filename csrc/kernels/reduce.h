// sum, mean, amax, amin, prod, logsumexp and the 1- and 2-norms over a block of dims of a C-contiguous float array: the input viewed
// as (A, N, B), reduced over N into (A, B). Any reduction whose reduced dims are adjacent once
// dims of size 1 are dropped takes this form: the last dims (B = 1, row reductions), the leading
// ones (A = 1, column reductions), all of them (A = B = 1) or a block in the middle.
//
// Sums accumulate in T over short runs (a row's lanes, lane_sums.h, or a block of rows per
// column) and in double beyond, then round once: at least as accurate as numpy's pairwise sum.
// The work is cut into tiles fixed by the shape alone (output rows, column strips, fixed chunks
// of a reduced run whose partials are added in chunk order), so results are bit-identical for
// any thread count; NaN and inf propagate as in PyTorch (amax of a row holding a NaN is NaN).
#pragma once
#include <cstdint>

#include "kernels/convert.h"

namespace tapegrad {

// norm1 is the sum of |x|, norm2 the square root of the sum of squares (rounded to T first, as
// PyTorch's float accumulator; squares past T's range are inf, as there), logsumexp
// log(sum exp(x - m)) + m with m the slice's maximum, taken as 0 where it is +-inf (PyTorch's:
// a slice of -inf gives -inf, one holding +inf gives +inf, NaN gives NaN). prod multiplies rows
// in lanes of double, columns down in T, chunks' products multiplied in T in chunk order.
enum class ReduceOp { sum, mean, amax, amin, prod, logsumexp, norm1, norm2 };

// out[a, b] = op over n in [0, N) of x[a, n, b], for x C-contiguous (A, N, B) and out (A, B).
// N = 0 gives 0 for sum and the norms, 1 for prod, -inf for logsumexp and NaN for mean; amax
// and amin need N > 0 (callers refuse it). mean is the sum rounded to T, divided by N in T (as
// PyTorch's sum then div_).
template <typename T>
void reduce_middle(ReduceOp op, int64_t A, int64_t N, int64_t B, const T* x, T* out);

// sum and mean (op) of a 16-bit input (x: float16 or bfloat16 bits, kind) into out (A, B) of the
// same format: reduce_middle<float> on x widened to float32 (the same cuts and adds, so the same
// bits, for any thread count), each result rounded once to the 16-bit format; PyTorch's float
// accumulator. Each run is widened into an L1 buffer as the sum reaches it, never the whole input
// (which took a float32 copy of it: 4-8x PyTorch's time over 1e6 elements); column sums on AVX2
// and AVX-512 widen each vector in a register as it is added (no buffer), the same adds.
void reduce_middle_half(ReduceOp op, int64_t A, int64_t N, int64_t B, const uint16_t* x, Half kind, uint16_t* out);

// The sum of (x[i] - y[i])^2 over [0, n) (mse_loss's 'sum' and 'mean'), rounded once to T: as
// reduce_middle sums one row of n (chunks of terms in lanes of T, their sums in double, added
// in chunk order), each difference and square in T.
template <typename T>
T sumsq_diff(int64_t n, const T* x, const T* y);

// The first-order gradients of the reductions above, each one pass writing out (A, N, B) from x
// (A, N, B) and the reduced u, v (A, B) (the incoming gradient and the forward's result), as
// PyTorch's formulas round them:
//   norm2:     u * (v == 0 ? 0 : x / v)   (norm_backward: g * (x / norm), 0 where the norm is 0)
//   logsumexp: u * exp(x - v)              (logsumexp_backward)
//   prod:      u * (v / x)                 (prod_backward where no slice holds a zero)
//   var:       u * (x - v)                 (var_backward: u = (2 / dof) * g, v the mean)
enum class ExpandOp { norm2, logsumexp, prod, var };
template <typename T>
void expand_middle(ExpandOp op, int64_t A, int64_t N, int64_t B, const T* x, const T* u, const T* v, T* out);

// sum along a dim's gradient (and mean's, given g / n): out (A, N, B) with out[a, n, b] = u[a, b],
// one threaded pass writing each element once.
template <typename T>
void broadcast_middle(int64_t A, int64_t N, int64_t B, const T* u, T* out);

// max / min along a dim's gradient: out (A, N, B) zero but for out[a, idx[a, b], b] = g[a, b],
// idx in [0, N) (checked by the caller).
template <typename T>
void scatter_middle(int64_t A, int64_t N, int64_t B, const int64_t* idx, const T* g, T* out);

// max / min along a dim with indices (and argmax / argmin): for x C-contiguous (A, N > 0, B),
// idx[a, b] = the n in [0, N) of the largest (smallest, when min) x[a, n, b] and val[a, b] that
// element, as PyTorch picks it: the first NaN where the slice holds one, else the first of the
// ties (-0.0 and 0.0 tie). One pass of the threads over x (rows: each row's extreme in lanes, then
// the first element equal to it, from L1; columns: vectorised across the columns); the work is cut
// by the shape alone, so the result is the same for any thread count. T: float, double and the
// signed integers, uint8.
template <typename T>
void select_middle(bool min, int64_t A, int64_t N, int64_t B, const T* x, T* val, int64_t* idx);

}  // namespace tapegrad

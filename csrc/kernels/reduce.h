// sum, mean, amax and amin over a block of dims of a C-contiguous float array: the input viewed
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

namespace tapegrad {

enum class ReduceOp { sum, mean, amax, amin };

// out[a, b] = op over n in [0, N) of x[a, n, b], for x C-contiguous (A, N, B) and out (A, B).
// N = 0 gives 0 for sum and NaN for mean; amax and amin need N > 0 (callers refuse it).
// mean is the sum rounded to T, divided by N in T (as PyTorch's sum then div_).
template <typename T>
void reduce_middle(ReduceOp op, int64_t A, int64_t N, int64_t B, const T* x, T* out);

}  // namespace tapegrad

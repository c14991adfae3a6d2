// Cumulative sums (cumsum, and its backward, the reversed cumulative sum) of float32 / float64.
//
// Layout: x is seen as (outer, n, inner) with element strides (xs_outer, xs_n, xs_inner), any
// sign, and the sums run along n; y is C-contiguous (outer, n, inner). Every element is one
// sequential sum, y[o, i, j] = x[o, 0, j] + x[o, 1, j] + ... + x[o, i, j] in that order (reverse:
// x[o, n-1, j] + ... + x[o, i, j]), accumulated in double and rounded once per output, as
// PyTorch's CPU cumsum does (for float32 that is bit for bit torch.cumsum, more accurate than
// numpy's float32 running sum). Threads share whole lines (blocks of (o, j)), never a sum, so
// results are bit-identical for any thread count and any ISA; NaN and inf propagate as in the
// sequential sum.
#pragma once
#include <cstdint>

namespace tapegrad {

template <typename T>
void cumsum(int64_t outer, int64_t n, int64_t inner, const T* x, int64_t xs_outer, int64_t xs_n, int64_t xs_inner,
            T* y, bool reverse);

}  // namespace tapegrad

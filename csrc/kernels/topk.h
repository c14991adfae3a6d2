// topk's selection: the indices of the k first entries of each row in PyTorch's order (largest
// first, or smallest first; NaN ranks above every number), ties broken by the lower index, so
// the result is the first k of the stable sort tapegrad's sort() gives, and the same for any
// thread count.
#pragma once
#include <cstdint>

namespace tapegrad {

// x: A x N x B, C-contiguous, selected along N; idx: A x k x B, C-contiguous, each slice's indices
// best first. 0 <= k <= N. Slices run on the kernel threads from 2^15 elements on, in tasks fixed
// by the shape.
template <typename T>
void topk_dim(int64_t A, int64_t N, int64_t B, const T* x, int64_t k, bool largest, int64_t* idx);

}  // namespace tapegrad

// topk's selection: the indices of the k first entries of each row in PyTorch's order (largest
// first, or smallest first; NaN ranks above every number), ties broken by the lower index, so
// the result is the first k of the stable sort tapegrad's sort() gives, and the same for any
// thread count.
#pragma once
#include <cstdint>

namespace tapegrad {

// x: rows x n, row-major; idx: rows x k, row-major, each row's indices best first. 0 <= k <= n.
// Rows run on the kernel threads from kTopkParallelMinElems elements on.
template <typename T>
void topk_rows(int64_t rows, int64_t n, const T* x, int64_t k, bool largest, int64_t* idx);

}  // namespace tapegrad

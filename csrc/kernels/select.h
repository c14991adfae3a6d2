// The elementwise glue around a training step's big kernels: a select with a broadcast
// condition (where / masked_fill, forward and backward), the sum over rows that reduces a
// broadcast input's gradient (a bias's) and the bias add itself. Both are memory-bound single passes, threaded in tasks
// fixed by the shape alone, so results are bit-identical for any thread count.
#pragma once
#include <cstdint>

namespace tapegrad {

// out[o, i] = cond[i] ? a : b for o in [0, outer) and i in [0, inner), elements of `width`
// bytes (1, 2, 4 or 8) copied bit for bit (NaN payloads, infinities and -0.0 kept): a select,
// not arithmetic, so any dtype of that width works. a and b are each either per element
// (C-contiguous, outer * inner elements; a_full / b_full) or one value used everywhere. cond
// is C-contiguous, inner bytes, nonzero for true. out may not overlap cond, a or b.
void select_broadcast(int64_t outer, int64_t inner, int width, const uint8_t* cond, const void* a, bool a_full,
                      const void* b, bool b_full, void* out);

// out[j] = sum over i of x[i, j] for a C-contiguous x (R, C). Rows are summed in chunks of a
// fixed size (chunks run on the threads), then the chunks' partial sums are added in order.
template <typename T>
void sum_rows(int64_t R, int64_t C, const T* x, T* out);

}  // namespace tapegrad

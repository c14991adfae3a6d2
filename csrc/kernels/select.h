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

namespace tapegrad {

// nonzero's two passes over x's n entries (C-contiguous, of any dtype read as the unsigned integer
// U of its width): an entry counts as nonzero when (bits & mask) != 0, so a float's mask leaves out
// the sign bit (-0.0 is zero, NaN is not). The entries are cut into chunks of kNonzeroChunk fixed by
// n alone: nonzero_counts gives each chunk's count, and nonzero_write, from each chunk's offset
// (the counts' exclusive prefix sums), writes the multi-index (shape: nd >= 1 dims) of every
// nonzero entry in flat order, index k's dim d at out[k * item_stride + d * dim_stride].
constexpr int64_t kNonzeroChunk = int64_t(1) << 16;
template <typename U>
void nonzero_counts(int64_t n, const U* x, U mask, int64_t* counts);
// masked_select's two passes over the broadcast shape of x and mask (nd dims, C order), each
// addressed by its own element strides (0 along a dim it is broadcast in, so a broadcast input or
// mask is read where it lies, never copied): masked_counts gives the count of nonzero mask bytes
// in each chunk of kNonzeroChunk flat elements (nonzero_counts' chunks of an n-element mask), and
// compress, from each chunk's offset (the counts' exclusive prefix sums, nchunks + 1 entries),
// writes out[offsets[c], offsets[c + 1]) = the entries of x in chunk c where mask is nonzero, in
// order; U any type of the element's width.
void masked_counts(int nd, const int64_t* shape, const uint8_t* mask, const int64_t* ms, int64_t* counts);
template <typename U>
void compress(int nd, const int64_t* shape, const U* x, const int64_t* xs, const uint8_t* mask, const int64_t* ms,
              const int64_t* offsets, U* out);
template <typename U>
void nonzero_write(int nd, const int64_t* shape, int64_t n, const U* x, U mask, const int64_t* offsets, int64_t* out,
                   int64_t item_stride, int64_t dim_stride);

}  // namespace tapegrad

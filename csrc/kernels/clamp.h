// clamp with tensor bounds (PyTorch's clamp.Tensor), forward and backward, each one pass over
// memory where numpy's composite made two (forward) or four per gradient (backward), on any
// strides: a bound broadcast against x (stride 0 along its broadcast dims), a transposed or sliced
// x, and an out that is x itself (clamp_ through a strided view) cost no copy. The number-bound
// clamp of contiguous arrays is pointwise.h's.
//
// Layout: every operand is addressed through the result's shape (nd dims) by its own element
// strides (any sign; 0 broadcasts). Each element's result depends on its own inputs alone, so
// results are bit-identical for any thread count and any ISA (selects, no arithmetic).
#pragma once
#include <cstdint>

namespace tapegrad {

// out = clamp(x, lo, hi) elementwise, as numpy's maximum then minimum compute it with x first:
//   y = x where x >= lo or x is NaN, else lo;   out = y where y <= hi or y is NaN, else hi.
// So x is kept on a tie (clamp(-0.0, min=0.0) is -0.0, as PyTorch's clamp), a NaN x propagates
// (its bits), a NaN bound gives NaN (the bound's bits; PyTorch gives a NaN there too), and
// min > max gives max. A bound left out is passed as a 0-d infinity (stride 0), which changes
// nothing. out may be x itself (the same address and strides: an in-place clamp); it may not
// overlap lo or hi.
template <typename T>
void clamp_tensor_forward(int nd, const int64_t* shape, const T* x, const int64_t* xs, const T* lo, const int64_t* ls,
                          const T* hi, const int64_t* hs, T* out, const int64_t* os);

// PyTorch's clamp_backward_min_max for upstream gradient g, each output skipped where null:
//   gx  = g where lo <= x <= hi           else +0
//   glo = g where x < lo and lo < hi      else +0
//   ghi = g where x > hi or hi < lo       else +0
// (the bits of where(pred, g, 0)). The outputs have the result's shape and the strides os (each
// its own memory); their reduction to a broadcast bound's shape is the caller's.
template <typename T>
void clamp_tensor_backward(int nd, const int64_t* shape, const T* g, const int64_t* gs, const T* x, const int64_t* xs,
                           const T* lo, const int64_t* ls, const T* hi, const int64_t* hs, T* gx, T* glo, T* ghi,
                           const int64_t* os);

}  // namespace tapegrad

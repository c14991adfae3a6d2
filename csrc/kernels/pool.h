// 2-D and 3-D max and average pooling (NCHW, NCDHW) and their backward passes.
//
// Layout: x (N, C, D, H, W) and y (N, C, Do, Ho, Wo) contiguous (a 2-D pooling is the case
// D = Do = kd = 1); the kernels see N*C independent volumes ("planes") and parallelise over them, so every output is computed by one thread in a fixed
// order: results do not depend on the thread count.
#pragma once
#include <cstdint>

#include "kernels/checked.h"

namespace tapegrad {

struct PoolShape {
  int64_t planes, D, H, W, Do, Ho, Wo;  // planes = N*C
  int64_t kd, kh, kw, sd, sh, sw, pd, ph, pw, dd, dh, dw;
};

// PyTorch's rule: floor (or ceil) of (in + 2 pad - dil (k - 1) - 1) / stride, plus one; in
// ceil mode the last window must start inside the input or the left padding. May be <= 0.
// false when an intermediate overflows int64. in, k, stride, dil > 0, pad >= 0.
inline bool pool_out_size(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dil, bool ceil_mode,
                            int64_t& out) {
  int64_t padded, reach, num;
  if (!mul_ok(pad, 2, padded) || !add_ok(in, padded, padded) || !mul_ok(dil, k - 1, reach) ||
      !sub_ok(padded, reach, num) || !sub_ok(num, 1, num))
    return false;
  // floor or ceil of num / stride; num may be negative (but not INT64_MIN: padded >= 1)
  const int64_t q = num >= 0 ? (ceil_mode ? ceil_div(num, stride) : num / stride)
                             : (ceil_mode ? -(-num / stride) : -ceil_div(-num, stride));
  out = q + 1;
  if (ceil_mode && q > 0 && q >= ceil_div(in + pad, stride)) --out;  // q * stride >= in + pad
  return true;
}

// y = max over each window (padding is -inf); idx = flat index into its D*H*W volume of the
// first maximum in (depth, row, column) order (a NaN wins over numbers). A window lying wholly
// in the padding yields -inf and index -1, which the backward pass skips.
template <typename T>
void max_pool_forward(const PoolShape& s, const T* x, T* y, int64_t* idx);

// gx (planes, V) = scatter-add of gy (planes, Vo) at idx; idx in [-1, V).
template <typename T>
void max_pool_backward(int64_t planes, int64_t V, int64_t Vo, const T* gy, const int64_t* idx, T* gx);

// y = window sum / divisor: divisor_override if > 0, else the window's size counting the
// padding (count_include_pad, clipped at the padded edge as in PyTorch) or not. No dilation.
template <typename T>
void avg_pool_forward(const PoolShape& s, bool count_include_pad, int64_t divisor_override, const T* x, T* y);

// gx = adjoint of avg_pool_forward applied to gy.
template <typename T>
void avg_pool_backward(const PoolShape& s, bool count_include_pad, int64_t divisor_override, const T* gy, T* gx);

}  // namespace tapegrad

// 2-D convolution (NCHW) by im2col + GEMM, and its two adjoints.
//
// Layout: x (N, C, H, W), w (O, C/groups, kh, kw), y (N, O, Ho, Wo), all contiguous.
// One kernel, conv2d_input_grad, serves both conv2d's input gradient and
// conv_transpose2d's forward (they are the same linear map).
//
// Determinism: every output element is summed in an order fixed by the shapes alone,
// so results are bit-identical for any thread count. The weight gradient, which sums
// over the batch, accumulates per fixed-size chunk of images and reduces the chunks in
// a fixed order.
#pragma once
#include <cstdint>

#include "kernels/checked.h"

namespace tapegrad {

struct Conv2dShape {
  int64_t N, C, H, W;       // input
  int64_t O, kh, kw;        // weight is (O, C / groups, kh, kw)
  int64_t Ho, Wo;           // output; conv2d's own is conv2d_out_size(), conv_transpose2d
                            // passes Ho <= that (the taps beyond the input read zeros)
  int64_t sh, sw, ph, pw, dh, dw, groups;
};

// PyTorch's rule: floor((in + 2 pad - dil (k - 1) - 1) / stride) + 1, or 0 for an empty output;
// false when an intermediate overflows int64. in, k, stride, dil > 0, pad >= 0. The kernels'
// index arithmetic stays within [-pad, in + pad] once this has succeeded.
inline bool conv2d_out_size(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dil, int64_t& out) {
  int64_t padded, reach, span;
  if (!mul_ok(pad, 2, padded) || !add_ok(in, padded, padded) || !mul_ok(dil, k - 1, reach) ||
      !sub_ok(padded, reach, span))
    return false;
  out = span < 1 ? 0 : (span - 1) / stride + 1;
  return true;
}

// y = conv2d(x, w) + bias; bias may be null.
template <typename T>
void conv2d_forward(const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y);

// gx (N, C, H, W) = adjoint of conv2d w.r.t. x, applied to gy (N, O, Ho, Wo).
template <typename T>
void conv2d_input_grad(const Conv2dShape& s, const T* gy, const T* w, T* gx);

// gw (O, C/groups, kh, kw) = adjoint of conv2d w.r.t. w, applied to gy, at x.
template <typename T>
void conv2d_weight_grad(const Conv2dShape& s, const T* x, const T* gy, T* gw);

// gb (O) = sum of gy (N, O, HW) over N and HW.
template <typename T>
void conv2d_bias_grad(int64_t N, int64_t O, int64_t HW, const T* gy, T* gb);

}  // namespace tapegrad

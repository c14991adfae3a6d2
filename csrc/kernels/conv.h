// 2-D and 3-D convolution (NCHW, NCDHW) by vol2col + GEMM, and its two adjoints.
//
// Layout: x (N, C, D, H, W), w (O, C/groups, kd, kh, kw), y (N, O, Do, Ho, Wo), all contiguous.
// A 2-D convolution is the case D = kd = Do = 1 (stride, dilation 1 and padding 0 in depth), so
// one set of kernels serves both. One kernel, conv_input_grad, serves both the input gradient
// and the transposed convolution's forward (they are the same linear map).
//
// Determinism: every output element is summed in an order fixed by the shapes alone,
// so results are bit-identical for any thread count. The weight gradient, which sums
// over the batch, accumulates per fixed-size chunk of images and reduces the chunks in
// a fixed order.
#pragma once
#include <cstdint>

#include "kernels/checked.h"

namespace tapegrad {

struct ConvShape {
  int64_t N, C, D, H, W;    // input
  int64_t O, kd, kh, kw;    // weight is (O, C / groups, kd, kh, kw)
  int64_t Do, Ho, Wo;       // output; the convolution's own is conv_out_size(), the transposed
                            // one passes Ho <= that (the taps beyond the input read zeros)
  int64_t sd, sh, sw, pd, ph, pw, dd, dh, dw, groups;
  const char* op = "conv";  // the entry point, named in the errors a kernel raises (sizes too large)
};

// PyTorch's rule: floor((in + 2 pad - dil (k - 1) - 1) / stride) + 1, or 0 for an empty output;
// false when an intermediate overflows int64. in, k, stride, dil > 0, pad >= 0. The kernels'
// index arithmetic stays within [-pad, in + pad] once this has succeeded.
inline bool conv_out_size(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dil, int64_t& out) {
  int64_t padded, reach, span;
  if (!mul_ok(pad, 2, padded) || !add_ok(in, padded, padded) || !mul_ok(dil, k - 1, reach) ||
      !sub_ok(padded, reach, span))
    return false;
  out = span < 1 ? 0 : (span - 1) / stride + 1;
  return true;
}

// y = conv(x, w) + bias; bias may be null.
template <typename T>
void conv_forward(const ConvShape& s, const T* x, const T* w, const T* bias, T* y);

// gx (N, C, D, H, W) = adjoint of conv w.r.t. x, applied to gy (N, O, Do, Ho, Wo).
template <typename T>
void conv_input_grad(const ConvShape& s, const T* gy, const T* w, T* gx);

// gw (O, C/groups, kd, kh, kw) = adjoint of conv w.r.t. w, applied to gy, at x.
template <typename T>
void conv_weight_grad(const ConvShape& s, const T* x, const T* gy, T* gw);

// gb (O) = sum of gy (N, O, P) over N and the P output positions.
template <typename T>
void conv_bias_grad(int64_t N, int64_t O, int64_t P, const T* gy, T* gb);

}  // namespace tapegrad

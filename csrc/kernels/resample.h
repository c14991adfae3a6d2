// 2-D resampling of NCHW planes: bilinear and nearest interpolation (F.interpolate) and adaptive
// average pooling, forward and backward.
//
// Layout: x (planes, H, W) and y (planes, Ho, Wo) contiguous, planes = N*C. Every kernel works
// plane by plane and parallelises over planes, so each output (and each input gradient, whose
// scatter stays inside one plane) is computed by one thread in a fixed order: results are the
// same for every thread count.
#pragma once
#include <cstdint>

namespace tapegrad {

enum class Resample { bilinear, nearest, nearest_exact, adaptive_avg };

struct ResampleShape {
  int64_t planes, H, W, Ho, Wo;
  bool align_corners;      // bilinear only
  double scale_h, scale_w;  // the user's scale_factor per dim, <= 0 for none (bilinear and nearest)
};

// PyTorch's source positions (aten/src/ATen/native/UpSample.h):
//  - bilinear: in the op's math type (float for float32), scale = (in - 1) / (out - 1) with
//    align_corners, else 1 / scale_factor when given, else in / out; src = scale * i (align
//    corners) or max(scale * (i + 0.5) - 0.5, 0); taps floor(src) and the next (clamped), weight
//    of the second min(max(src - floor, 0), 1). A dim whose size does not change is copied.
//  - nearest: floorf(i * scale), nearest-exact floorf((i + 0.5) * scale), clamped to in - 1,
//    with the float scale 1 / scale_factor or in / out (nearest: i for out == in, i / 2 for
//    out == 2 in).
//  - adaptive_avg: the window [floor(i in / out), ceil((i + 1) in / out)) of each dim, its mean.
template <typename T>
void resample2d_forward(const ResampleShape& s, Resample mode, const T* x, T* y);

// gx = the adjoint of resample2d_forward applied to gy.
template <typename T>
void resample2d_backward(const ResampleShape& s, Resample mode, const T* gy, T* gx);

// adaptive_max_pool2d: y = the max over each adaptive window, idx = its flat index in the H*W
// plane, PyTorch's rule: the running max starts at -inf with the window's first index and moves on
// a strictly greater value or any NaN (so the last NaN's index).
template <typename T>
void adaptive_max_pool2d_forward(const ResampleShape& s, const T* x, T* y, int64_t* idx);

}  // namespace tapegrad

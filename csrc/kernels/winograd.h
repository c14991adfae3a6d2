// Winograd convolution F(m x m, 3 x 3) for 2-D 3x3, stride-1, undilated, ungrouped convolutions
// with padding 0 or 1 (see winograd.cpp): the forward pass and the input gradient.
//
// conv.cpp calls these first; each returns false, having written nothing, when the route is not
// taken: a shape it does not cover, a shape the routing rule (winograd_pays) leaves to the other
// routes, or a non-finite value in the input or the weights (Winograd's transforms mix
// neighbouring inputs, so an inf would reach outputs a direct convolution keeps finite).
// TAPEGRAD_CONV_KERNEL=winograd takes the route wherever it applies, =gemm and =direct never
// (the others' own routes, for comparisons; cpu.h).
#pragma once

#include "kernels/conv.h"

namespace tapegrad {

// y = conv(x, w) + bias (bias may be null), or false.
template <typename T>
bool conv_forward_winograd(const ConvShape& s, const T* x, const T* w, const T* bias, T* y);

// gx = the input gradient of conv at gy (a forward convolution of gy with the flipped,
// transposed weights and padding 2 - pad), or false.
template <typename T>
bool conv_input_grad_winograd(const ConvShape& s, const T* gy, const T* w, T* gx);

}  // namespace tapegrad

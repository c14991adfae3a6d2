// Elementwise ops of three operands, each one pass over memory where numpy takes three or more
// (and a temporary): lerp, its gradients, addcmul and addcdiv, and add / sub with alpha.
//
// Layout: every array holds n elements in one memory order (the callers pass C-contiguous arrays
// of one shape); a weight or a gradient with w_step 0 is one element read for all. Each element's
// result depends on its own inputs alone, so results are bit-identical for any thread count.
// The arithmetic is the numpy operations the ops ran before, one IEEE operation each and never
// contracted into a fused multiply-add (ternary.cpp is compiled with -ffp-contract=off), so the
// bits are numpy's, on every ISA (a NaN's sign where two NaN operands meet may follow the
// compiler's operand order, as in numpy's own loops).
#pragma once
#include <cstdint>

namespace tapegrad {

// out = lerp(a, b, w), PyTorch's two-sided formula, d = b - a:
//   |w| < 0.5: a + w d       else: b - d (1 - w)     (a NaN w takes the second branch)
// w one element (w_step 0: its branch picked once, 1 - w rounded once) or n (w_step 1). out may be a.
template <typename T>
void lerp_forward(int64_t n, const T* a, const T* b, const T* w, int64_t w_step, T* out);

// lerp's gradients for the upstream gradient g, each output skipped where null:
//   ga = g (1 - w)      gb = g w      gw = g (b - a)
// w as lerp_forward's (a and b are read only for gw).
template <typename T>
void lerp_backward(int64_t n, const T* g, const T* a, const T* b, const T* w, int64_t w_step, T* ga, T* gb, T* gw);

// out = x + (t1 * t2) * value (addcmul) or x + (t1 / t2) * value (divide: addcdiv), the
// composite's order of rounding. out may be x.
template <typename T>
void addc_forward(bool divide, int64_t n, const T* x, const T* t1, const T* t2, double value, T* out);

// out = x + y * value (subtract: x - y * value), the product rounded before the sum: add(x, y,
// alpha=value) / sub's composite of numpy's multiply and add, in one pass. out may be x.
template <typename T>
void axpy_forward(bool subtract, int64_t n, const T* x, const T* y, double value, T* out);

}  // namespace tapegrad

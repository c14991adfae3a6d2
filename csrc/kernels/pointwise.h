// Elementwise functions of one tensor, forward and backward, each one pass over memory: the
// activations and math functions that numpy computes in several passes (sigmoid, softplus,
// logsigmoid, elu, mish, ...) or more slowly than a vectorised polynomial (exp, log, erf).
//
// Layout: x, y, g, s and gx are n elements each in one memory order (the callers pass C- or
// F-contiguous arrays). Each element's result depends on its own inputs alone, so results are
// bit-identical for any thread count (they may differ by an ulp between ISA builds). float and
// double use the branch-free polynomials of vmath.h (sin, cos and tan the C library's beyond
// vmath::trig_max, and for inf and NaN). The parameters p0..p2 are the op's scalars (below), cast to T.
#pragma once
#include <cstdint>

namespace tapegrad {

// The functions, with the operand each backward reads (y: the output, x: the input):
//   sigmoid      1 / (1 + exp(-x))                       backward from y: g (1 - y) y
//   tanh         tanh x                                  from y: g (1 - y^2)
//   exp          e^x                                     from y: g y
//   log          ln x                                    from x: g / x
//   erf          erf x                                   from x: g 2/sqrt(pi) exp(-x^2)
//   rsqrt        1 / sqrt x                              from y: g y^3 (-1/2)
//   abs          |x|                                     from x: g sign(x)
//   sign         -1, 0 or 1 (0 for NaN)                  (no backward: the gradient is 0)
//   softplus     p0 = beta, p1 = threshold, p2 = 1 / beta: x where beta x > threshold, else
//                log(1 + exp(beta x)) / beta (computed without overflow, times p2)
//                                                        from x: g, or g sigmoid(beta x)
//   logsigmoid   min(x, 0) - log(1 + exp(-|x|))          from x: g / (1 + exp(x))
//   elu          p0 = alpha, p1 = scale, p2 = input_scale (> 0): scale x for x > 0, else
//                alpha scale (exp(input_scale x) - 1)    from x: as PyTorch's elu_backward
//   leaky_relu   p0 = slope: x for x > 0, else slope x   from x
//   hardswish    x min(max(x + 3, 0), 6) / 6             from x: PyTorch's hardswish_backward
//   hardsigmoid  min(max(x + 3, 0), 6) / 6               from x
//   mish         x tanh(softplus(x))                     from x
//   hardtanh     p0 = min, p1 = max: x clamped (NaN kept) from x: g strictly inside (min, max), else 0
//   hardshrink   p0 = lambd: 0 for x in [-lambd, lambd], else x (NaN kept)
//                                                        from x: 0 for x in [-lambd, lambd], else g
//   softshrink   p0 = lambd: x - lambd above lambd, x + lambd below -lambd, else x * 0
//                                                        from x: as hardshrink's
//   threshold    p0 = threshold, p1 = value: value where x <= threshold, else x (NaN kept)
//                                                        from x: 0 where x <= threshold, else g
//   logit        log(x / (1 - x)): NaN outside [0, 1]    from x: NaN outside [0, 1], else
//                                                        g / (x (1 - x))
//   frac         x - trunc(x)                            (no backward kernel: the gradient is g)
//   cube         x x x, as (x x) x                       from x: g ((x x) 3)
//   nan_to_num   p0 where x is NaN, p1 where +inf, p2 where -inf, else x  (no backward kernel)
//   sin, cos, tan (radians)                              (no backward: the ops' composites)
//   erfc                                                 (no backward: the op's composite)
//   log2, log10  the logarithms in base 2 and 10         (no backward: the ops' composites)
//   clamp        p0 = min, p1 = max (neither NaN): min(max(x, min), max), numpy's minimum/maximum
//                bits (x kept on a tie, so -0.0 stays; NaN kept; max where min > max)
//                                                        from x: g where min <= x <= max, else 0
// (PyTorch's kernels' formulas, so their NaN and signed-zero results.)
enum class Pointwise : int {
  sigmoid, tanh, exp, log, erf, rsqrt, abs, sign, softplus, logsigmoid, elu, leaky_relu, hardswish,
  hardsigmoid, mish, hardtanh, hardshrink, softshrink, threshold, logit, frac, cube, nan_to_num, sin, cos,
  tan, erfc, clamp, log2, log10
};

// y[i] = f(x[i]); y may be x.
template <typename T>
void pointwise_forward(Pointwise op, int64_t n, const T* x, T* y, double p0, double p1, double p2);

// gx[i] = g[i] f'(...) from s = the output or the input (the table above); gx may be g.
// Throws std::invalid_argument for sign, frac, nan_to_num, sin, cos, tan, erfc, log2 and log10.
template <typename T>
void pointwise_backward(Pointwise op, int64_t n, const T* g, const T* s, T* gx, double p0, double p1, double p2);

// binary_cross_entropy_with_logits without pos_weight, elementwise, for logits x and targets y:
// loss = (1 - y) x - logsigmoid(x) (the logsigmoid above), in one pass over x and y.
template <typename T>
void bce_logits_forward(int64_t n, const T* x, const T* y, T* loss);

// gx = g (sigmoid(x) - y), PyTorch's logits gradient; g holds n elements, or one (a reduction's
// gradient, the same for every element) when g_step is 0.
template <typename T>
void bce_logits_backward(int64_t n, const T* g, int64_t g_step, const T* x, const T* y, T* gx);

// mse_loss' gradient: gx = (g (x - y)) 2, negated for the target when negate (the composite's
// t + t with t = g d, bit for bit); g holds n elements, or one when g_step is 0.
template <typename T>
void mse_backward(int64_t n, const T* g, int64_t g_step, const T* x, const T* y, T* gx, bool negate);

// smooth_l1_loss (huber false) and huber_loss elementwise, as the composite
// where(|d| < b, d d c, |d| - h) (Huber: (|d| - h) b) computes it, d = x - y, bit for bit: c is
// 0.5 / beta (Huber 0.5), h 0.5 beta, b beta (delta), each cast to T as the composite's scalars.
template <typename T>
void huber_forward(int64_t n, const T* x, const T* y, T* loss, double c, double h, double b, bool huber);

// The composite's gradient of that loss for x (for y when negate: the same, negated), bit for bit:
// t + t + G2 sign(d) (Huber: (G2 b) sign(d)) with t = (G1 c) d, G1 = g where |d| < b else +0 and
// G2 = g elsewhere else +0. g holds n elements, or one when g_step is 0.
template <typename T>
void huber_backward(int64_t n, const T* g, int64_t g_step, const T* x, const T* y, T* gx, double c, double b,
                    bool huber, bool negate);

}  // namespace tapegrad

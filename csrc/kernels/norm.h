// batch_norm and group_norm (instance_norm is group_norm with one channel a group), forward and
// backward, each a few passes over the data instead of a chain of elementwise ops.
//
// Layout: x is C-contiguous and seen as (N, C, S): S = the product of the spatial dims (1 for an
// (N, C) input), so channel c of sample n is the S contiguous elements at (n C + c) S.
// batch_norm's statistics are per channel, over (N, S); group_norm's are per (sample, group),
// over the group's C / G channels: a contiguous run of (C / G) S elements.
//
// Statistics accumulate in double for both dtypes, two passes (the mean, then the squares about
// it) over blocks small enough to stay in cache, and blocks are merged by Chan's pairwise
// formula in a fixed order. Every block's arithmetic and every merge order is fixed by the shape
// alone, never by the thread that runs it: results are bit-identical for any thread count.
#pragma once
#include <cstdint>

namespace tapegrad {

// Per-channel mean and biased variance of x (N, C, S), in double (C each).
template <typename T>
void batch_norm_stats(int64_t N, int64_t C, int64_t S, const T* x, double* mean, double* var);

// y = (x - mean[c]) * scale[c] + shift[c] over x (N, C, S): a per-channel affine map. The
// centring is kept apart from the scaling so that an input whose mean is large against its
// spread keeps its accuracy (x * a + b would cancel).
template <typename T>
void channel_affine(int64_t N, int64_t C, int64_t S, const T* x, const T* mean, const T* scale, const T* shift,
                    T* y);

// Per-channel sum(g) and sum(g * (x - mean[c])) over (N, S), in double (C each).
template <typename T>
void batch_norm_backward_reduce(int64_t N, int64_t C, int64_t S, const T* g, const T* x, const T* mean,
                                double* sum_g, double* sum_gxc);

// gx = (g - mg[c] - (x - mean[c]) * k[c]) * a[c] (the training form, with mg = sum_g / M, k =
// sum_gxc rstd^2 / M, a = w rstd); with mg = k = 0 it is the evaluation form g * a.
template <typename T>
void batch_norm_backward_input(int64_t N, int64_t C, int64_t S, const T* g, const T* x, const T* mean,
                               const T* mg, const T* k, const T* a, T* gx);

// group_norm forward over x (N, C, S) in G groups: mean and rstd (N G each, the dtype's), and
// var (N G, biased, double; may be null: instance_norm's running statistics read it);
// y = (x - mean) rstd w[c] + b[c] (w, b may be null).
template <typename T>
void group_norm_forward(int64_t N, int64_t C, int64_t S, int64_t G, const T* x, const T* w, const T* b, double eps,
                        T* y, T* mean, T* rstd, double* var);

// group_norm's gradients from one reduction pass: gx = rstd (g w - mean(g w) - xhat mean(g w xhat))
// over each (sample, group), xhat = (x - mean) rstd; gw[c] = sum over (n, s) of g xhat, gb[c] =
// sum of g (C each). w may be null; gx, gw, gb each null when not wanted.
template <typename T>
void group_norm_backward(int64_t N, int64_t C, int64_t S, int64_t G, const T* g, const T* x, const T* mean,
                         const T* rstd, const T* w, T* gx, T* gw, T* gb);

}  // namespace tapegrad

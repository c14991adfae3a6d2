// Elementwise activations and row kernels: GELU, SiLU, dropout, softmax / log_softmax,
// layer_norm, cross_entropy and embedding's backward (an index-add), forward and backward.
//
// Layout: every operand is C-contiguous; a "row" kernel sees x as (R, D) with D the last
// (innermost) dimension and works on whole rows. Each row (each element, for GELU) is computed
// by one thread with arithmetic fixed by its position alone, and cross-row sums (layer_norm's
// weight and bias gradients) add fixed chunks of rows in a fixed order: results are
// bit-identical for any thread count. float uses a vectorised exp (range reduction plus a
// polynomial, as Cephes/SLEEF); double uses the C library's exp/erfc (correctly rounded or
// nearly), element by element.
#pragma once
#include <cstdint>
#include <vector>

namespace tapegrad {

// y = gelu(x) for n elements; tanh_approx selects 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
template <typename T>
void gelu_forward(int64_t n, const T* x, T* y, bool tanh_approx);

// gx = g * gelu'(x), in one pass.
template <typename T>
void gelu_backward(int64_t n, const T* g, const T* x, T* gx, bool tanh_approx);

// y = x sigmoid(x) (SiLU, swish) for n elements, as PyTorch: x / (1 + exp(-x)).
template <typename T>
void silu_forward(int64_t n, const T* x, T* y);

// gx = g s (1 + x (1 - s)), s = sigmoid(x), in one pass.
template <typename T>
void silu_backward(int64_t n, const T* g, const T* x, T* gx);

// out[i] = a[i] op b[i] for i in [0, n), op one of BinaryOp, where an operand is read at i mod its
// period: n for a full operand, the length of its rows for one broadcast along leading dims, 1 for
// a scalar (n a multiple of each period). out may be a or b (in place). Each element is one IEEE
// operation, so the result is bit for bit numpy's ufunc (np.add, ...) for any ISA and thread count.
enum class BinaryOp { add, sub, mul, div };
template <typename T>
void binary_op(BinaryOp op, int64_t n, const T* a, int64_t a_period, const T* b, int64_t b_period, T* out);

// out[i] = op(x[i]) for i in [0, n), op one of UnaryOp: negation and |x| on the sign bit, and the
// IEEE square root, so the result is bit for bit numpy's np.negative, np.absolute and np.sqrt.
enum class UnaryOp { neg, abs, sqrt };
template <typename T>
void unary_op(UnaryOp op, int64_t n, const T* x, T* out);

// y = max(x, 0) for n elements as numpy's maximum (NaN kept); gx = g where out > 0, else 0 (a
// select, as PyTorch's threshold_backward: an inf or NaN g where out <= 0 gives 0).
template <typename T>
void relu_forward(int64_t n, const T* x, T* y);
template <typename T>
void relu_backward(int64_t n, const T* g, const T* out, T* gx);

// Dropout of n elements: element i is kept when a 32-bit hash of (seed, i) is at least
// threshold (keep probability 1 - threshold / 2^32), mask[i] = 1 and y[i] = x[i] scale then,
// else mask[i] = 0 and y[i] = 0. A counter-based generator: element i's draw depends on seed
// and i alone, so the result is the same for any thread count and any blocking.
template <typename T>
void dropout_forward(int64_t n, const T* x, uint64_t seed, uint32_t threshold, T scale, T* y, uint8_t* mask);

// gx = g mask scale.
template <typename T>
void dropout_backward(int64_t n, const T* g, const uint8_t* mask, T scale, T* gx);

// cdist's product route, finished: out is P rows of R entries holding -2 a_i.b_j, the rows in
// batches of PB (row i's batch is i / PB); with d2 = (out + n2[batch, j]) + n1[i] (|b_j|^2 and
// |a_i|^2), out becomes sqrt(max(d2, 0)). Returns the flat indices i R + j, ascending, of the
// entries with d2 <= bound[i] or NaN: those the caller recomputes from differences.
template <typename T>
std::vector<int64_t> cdist_finish(int64_t P, int64_t R, int64_t PB, T* out, const T* n1, const T* n2,
                                  const T* bound);

// y = softmax(x) (log_softmax when log) over each row of x (R, D). A row whose maximum is
// +-inf or NaN comes out NaN, as in PyTorch.
template <typename T>
void softmax_forward(int64_t R, int64_t D, const T* x, T* y, bool log);

// gx from g and the forward's output y: y (g - sum(g y)) for softmax, g - exp(y) sum(g) for
// log_softmax.
template <typename T>
void softmax_backward(int64_t R, int64_t D, const T* g, const T* y, T* gx, bool log);

// y = (x - mean) * rstd * w + b over each row of x (R, D); w, b may be null. mean and rstd (R)
// are written for the backward pass. Statistics accumulate in double.
template <typename T>
void layer_norm_forward(int64_t R, int64_t D, const T* x, const T* w, const T* b, double eps, T* y, T* mean,
                        T* rstd);

// gx = rstd (g w - mean(g w) - xhat mean(g w xhat)), xhat = (x - mean) rstd (w may be null),
// gw = sum over rows of g xhat and gb = sum over rows of g (D each), in one pass over g and x;
// any of gx, gw, gb may be null (not computed). gw and gb add fixed chunks of rows, then the
// chunks in order.
template <typename T>
void layer_norm_backward(int64_t R, int64_t D, const T* g, const T* x, const T* mean, const T* rstd, const T* w,
                         T* gx, T* gw, T* gb);

// loss[i] = w[i] (logsumexp(x[i]) - x[i, t[i]]) for x (R, C); t[i] in [0, C), or -1: ignored
// (loss 0, gradient 0). logsumexp is kept in two parts for the backward pass, each row's max
// (rmax) and log sum exp(x - rmax) (logsum), so that log_softmax = (x - rmax) - logsum keeps
// its accuracy where x is near the max.
template <typename T>
void cross_entropy_forward(int64_t R, int64_t C, const T* x, const int64_t* t, const T* w, T* loss, T* rmax,
                           T* logsum);

// gx[i, j] = g[i] w[i] (exp((x[i, j] - rmax[i]) - logsum[i]) - [j == t[i]]).
template <typename T>
void cross_entropy_backward(int64_t R, int64_t C, const T* g, const T* x, const int64_t* t, const T* w,
                            const T* rmax, const T* logsum, T* gx);

// Embedding's weight gradient, an index-add into gw (num_weights, D), which the caller zeroes
// (calloc'd pages that no index touches then stay untouched): for each n in order with
// idx[n] != padding_idx (-1: none), gw[idx[n]] += g[n] (times 1 / the number of times idx[n]
// occurs in idx, with scale_grad_by_freq, as PyTorch). idx holds N values in [0, num_weights).
// Parallel over blocks of columns: each element's sum runs in index order for any thread count.
template <typename T>
void embedding_backward(int64_t N, const int64_t* idx, int64_t D, const T* g, int64_t num_weights,
                        int64_t padding_idx, bool scale_grad_by_freq, T* gw);

}  // namespace tapegrad

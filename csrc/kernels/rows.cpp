// GELU, SiLU, dropout, softmax / log_softmax, layer_norm, cross_entropy and embedding-backward
// kernels (see rows.h for layouts).
//
// Every kernel is a loop body written once (a template, inlined) and compiled three times: for
// the baseline ISA and, through target attributes, for AVX2+FMA and AVX-512, chosen at run time
// by CPU feature (cpu.h) (results may differ by an ulp between ISAs, never between
// thread counts). The bodies are plain loops under `omp simd` that the compiler vectorises; the
// float transcendentals are the branch-free exp variants below (range reduction, a polynomial,
// selects for the special cases), each with only the cases its callers can reach, so they vectorise.
#include "kernels/rows.h"

#include "kernels/cpu.h"
#include "kernels/isa_variants.h"
#include "kernels/lane_sums.h"
#include "kernels/parallel.h"
#include "kernels/vmath.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <type_traits>
#include <vector>

namespace tapegrad {
namespace {


// Elements (rows x columns) below which a fork costs more than it saves.
constexpr int64_t kParallelMinElems = 1 << 15;
// Elementwise kernels work in blocks of this many elements (a multiple of every vector width).
constexpr int64_t kBlock = 4096;
// A task (what a thread takes from the shared counter) covers about this many elements, whole
// rows or kBlock blocks: every task costs a fetch_add on a cache line that both cores write, and
// tasks of one block made a 1e6-element pass 245 of them.
constexpr int64_t kTaskElems = 4 * kBlock;
// layer_norm's parameter gradients sum rows in chunks of at least this many (and at most
// kMaxChunks chunks), then the chunks in order. Each chunk costs a zeroed partial and its share
// of the final sum (2 D elements each): 64 chunks of 16 rows made that 7% of a 1024 x 1024
// backward pass, which 16 chunks of 64 rows bring to 1.5% (1.58-1.63 -> 1.45-1.52 cycles an
// element at 1 thread, still 16 tasks for 2 threads to share).
constexpr int64_t kRowsPerChunk = 16;
constexpr int64_t kMaxChunks = 16;

Isa isa() { return kernel_isa(Kernel::rows); }

using vmath::bits_to_float;
using vmath::exp_reduced;
using vmath::float_to_bits;

// exp for float, within 2 ulp of the correctly rounded result over its whole range (denormal
// results included): vmath::exp (branch-free: the special cases are selects, so loops vectorise).
TG_INLINE float exp_f(float x) { return vmath::exp(x); }

// exp_f for the softmax family, whose arguments are x - max(x) <= 0, or NaN (rows that hold a
// NaN or +inf, and the backward passes' NaN outputs): vmath::exp_nonpos, the same result for every
// a <= 0 in fewer instructions; a NaN argument gives NaN, so that log_softmax's and cross_entropy's
// gradients of a NaN row are NaN, as in float64 and PyTorch.
TG_INLINE float exp_nonpos_full_f(float a) { return vmath::exp_nonpos(a); }

template <typename T>
TG_INLINE T exp_nonpos(T a);
template <>
TG_INLINE float exp_nonpos<float>(float a) { return exp_nonpos_full_f(a); }
template <>
TG_INLINE double exp_nonpos<double>(double a) { return vmath::exp_d(a); }

template <typename T>
TG_INLINE T exp_t(T x);
template <>
TG_INLINE float exp_t<float>(float x) { return exp_f(x); }
template <>
TG_INLINE double exp_t<double>(double x) { return vmath::exp_d(x); }

constexpr double kSqrt1_2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;
constexpr double kTanhK = 0.79788456080286535588;  // sqrt(2 / pi)
constexpr double kTanhC = 0.044715;

// exp(a) for a <= 0, 0 below -86 (where GELU's users of it no longer need it), within 2 ulp
// elsewhere: exp_f without its overflow, denormal and NaN cases, and with one power-of-two
// scaling (2^n stays a normal float for n >= -125). A NaN a gives a finite value: the callers
// let NaN through another operand.
TG_INLINE float exp_nonpos_f(float a) {
  const float ac = a > -86.0f ? a : -86.0f;
  const float fm = ac * 1.44269504088896341f + 12582912.0f;  // 1.5 * 2^23 + n: n in its low bits
  const float n = fm - 12582912.0f;
  const float p = exp_reduced(ac, n);
  const float y = bits_to_float(float_to_bits(p) + ((float_to_bits(fm) - 0x4B400000u) << 23));
  return a < -86.0f ? 0.0f : y;
}

// Phi(x) (the normal CDF) and phi(x) (its density). float: Abramowitz-Stegun 7.1.26 for
// erfc(|x| / sqrt 2) (absolute error below 1.5e-7, as PyTorch's vectorised erf), written as
// erfc so that Phi keeps its relative accuracy in the left tail; double: vmath::erfc_upto6 (and
// its tail), the same form.
// exp(-x^2 / 2) is 0 beyond |x| = 13.1, so Phi is exactly 0 or 1 there; |x| / sqrt 2 is capped
// at 16 so that t stays finite at +-inf. A NaN x makes Phi NaN (through t).
template <bool kTail>
TG_INLINE void normal_cdf_pdf(float x, float& cdf, float& pdf) {
  float z = std::fabs(x) * float(kSqrt1_2);
  z = z > 16.0f ? 16.0f : z;
  const float t = 1.0f / (1.0f + 0.3275911f * z);
  const float poly =
      t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
  const float e = exp_nonpos_f(x * x * -0.5f);
  const float half_erfc = (0.5f * poly) * e;
  cdf = x < 0.0f ? half_erfc : 1.0f - half_erfc;
  pdf = e * float(kInvSqrt2Pi);
}

// kTail: x may lie below -6 sqrt 2, where erfc's argument passes 6 (vmath::erfc_upto6's end).
template <bool kTail>
TG_INLINE void normal_cdf_pdf(double x, double& cdf, double& pdf) {
  const double u = -x * kSqrt1_2;
  cdf = 0.5 * (kTail ? vmath::erfc_upto6_or_tail(u) : vmath::erfc_upto6(u));
  pdf = vmath::exp_d(-0.5 * x * x) * kInvSqrt2Pi;
}

// |x| beyond which Phi(x) is exactly 0 or 1 and phi(x) exactly 0 (exp(-x^2 / 2) underflows).
template <typename T>
constexpr T gelu_flat() { return sizeof(T) == 4 ? T(16) : T(40); }

// The tanh form as x * sigmoid(2u): 0.5 (1 + tanh u) = 1 / (1 + exp(-2u)), which keeps its
// relative accuracy where 1 + tanh u cancels (large negative x).
template <typename T>
TG_INLINE T gelu_tanh_sigmoid(T x, T& du_dx2) {
  const T x2 = x * x;
  const T u = T(kTanhK) * (x + T(kTanhC) * x2 * x);
  du_dx2 = T(2 * kTanhK) * (T(1) + T(3 * kTanhC) * x2);
  return T(1) / (T(1) + exp_t<T>(T(-2) * u));
}

// The erf form of GELU over n elements, forward and backward; kTail: some x may lie below
// -6 sqrt 2, where erfc's argument passes 6 (normal_cdf_pdf).
template <bool kTail, typename T>
TG_INLINE void gelu_erf_forward_run(int64_t n, const T* x, T* y) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    T cdf, pdf;
    normal_cdf_pdf<kTail>(x[i], cdf, pdf);
    // Phi is exactly 0 below -gelu_flat, where x * Phi would be -inf * 0 = NaN at -inf: gelu(-inf)
    // = -0 (PyTorch's gives NaN). A NaN x stays NaN (through cdf).
    y[i] = (x[i] < -gelu_flat<T>() ? -gelu_flat<T>() : x[i]) * cdf;
  }
}

template <bool kTail, typename T>
TG_INLINE void gelu_erf_backward_run(int64_t n, const T* g, const T* x, T* gx) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    T cdf, pdf;
    normal_cdf_pdf<kTail>(x[i], cdf, pdf);
    // phi is exactly 0 beyond gelu_flat, so clamping x there changes nothing but inf * 0:
    // gelu'(+-inf) = 1, 0 (PyTorch: NaN).
    const T xc = x[i] < -gelu_flat<T>() ? -gelu_flat<T>() : x[i] > gelu_flat<T>() ? gelu_flat<T>() : x[i];
    gx[i] = g[i] * (cdf + xc * pdf);
  }
}

// The double ones in chunks: a chunk holding an x below -6 sqrt 2 computes fdlibm's erfc tail as
// well (vmath::erfc_upto6_or_tail, twice the arithmetic) and selects it there; its other elements get the same
// bits either way. float's erfc covers every x in one pass.
constexpr int64_t kGeluChunk = 256;

TG_INLINE bool gelu_chunk_has_tail(int64_t n, const double* x) {
  int tail = 0;
#pragma omp simd reduction(| : tail)
  for (int64_t i = 0; i < n; ++i) tail |= -x[i] * kSqrt1_2 > 6.0;
  return tail != 0;
}

// ---------------------------------------------------------------- row reductions
// In lanes (lane_sums.h): 256 bytes of partials, several independent vectors at every ISA.
constexpr int64_t kLaneBytes = 256;

// Short rows of softmax's sums of exp take 64 bytes of lanes, not lane_sums.h's 32: the exp
// polynomial is then one full AVX-512 vector wide (rows of 64 / 128 / 200 floats: 165 / 280 /
// 730 us for 4096 of them in one double accumulator, 270 / 430 / 620 in 32 bytes of lanes,
// 140 / 250 / 490 in 64).
constexpr int64_t kExpShortLaneBytes = 64;

// Embedding tables from this size have their gradient cut by rows (embedding_backward).
constexpr int64_t kEmbRowsCutBytes = int64_t(8) << 20;
// Smaller ones take 2 threads from this many gradient elements (indices x D): below it the
// second thread cost more than it saved (1000 x 128 at 700 / 2800 indices, float32: 18 / 52 us
// on one thread, 33 / 106 on two; 1000 x 256 at 1600: 110 and 114; at 20000: 1.68 and 0.97 ms).
constexpr int64_t kEmbParallelMinElems = int64_t(1) << 20;

template <typename T>
constexpr int64_t lanes() { return kLaneBytes / int64_t(sizeof(T)); }

// s1 = sum over j in [0, D) of f1(j) (a T), and s2 that of f2(j) unless F2 is nullptr_t. Short
// rows take ShortBytes of lanes (lane_sums.h).
template <typename T, int64_t ShortBytes = lanes::kShortLaneBytes, typename F1, typename F2>
TG_INLINE void row_sums(int64_t D, F1 f1, F2 f2, double& s1, double& s2) {
  lanes::sums<T, kLaneBytes, ShortBytes>(D, f1, f2, s1, s2);
}

template <typename T, int64_t ShortBytes = lanes::kShortLaneBytes, typename F>
TG_INLINE double row_sum(int64_t D, F f) {
  double s, unused;
  row_sums<T, ShortBytes>(D, f, nullptr, s, unused);
  return s;
}

// The maximum of the row's non-NaN values (-inf if none), in lanes as row_sums. Its users shift
// the row by it and sum exp of the result: a NaN in the row, or a maximum of +-inf (inf - inf =
// NaN), makes that sum NaN, and with it the whole row, as in PyTorch.
template <typename T>
TG_INLINE T row_max(int64_t D, const T* x) {
  constexpr int64_t L = lanes<T>();
  if (D < 4 * L) {
    T mx = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : mx)
    for (int64_t j = 0; j < D; ++j) mx = x[j] > mx ? x[j] : mx;
    return mx;
  }
  alignas(64) T m[L];
  for (int64_t l = 0; l < L; ++l) m[l] = -std::numeric_limits<T>::infinity();
  int64_t j = 0;
  for (; j + L <= D; j += L) {
#pragma omp simd aligned(m : 64)
    for (int64_t l = 0; l < L; ++l) m[l] = x[j + l] > m[l] ? x[j + l] : m[l];
  }
  for (int64_t l = 0; j + l < D; ++l) m[l] = x[j + l] > m[l] ? x[j + l] : m[l];
  for (int64_t w = L / 2; w >= 1; w /= 2) {
#pragma omp simd
    for (int64_t l = 0; l < w; ++l) m[l] = m[l + w] > m[l] ? m[l + w] : m[l];
  }
  return m[0];
}

// ---------------------------------------------------------------- loop bodies
template <typename T>
TG_INLINE void gelu_forward_body(int64_t n, const T* x, T* y, bool tanh_approx) {
  if (tanh_approx) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      T d;
      const T s = gelu_tanh_sigmoid<T>(x[i], d);
      y[i] = s == T(0) ? T(-0.0) : x[i] * s;  // gelu(-inf) = -0, where PyTorch's gives NaN
    }
  } else if constexpr (sizeof(T) == 4) {
    gelu_erf_forward_run<false>(n, x, y);
  } else {
    for (int64_t c = 0; c < n; c += kGeluChunk) {
      const int64_t len = std::min(kGeluChunk, n - c);
      if (gelu_chunk_has_tail(len, x + c)) gelu_erf_forward_run<true>(len, x + c, y + c);
      else gelu_erf_forward_run<false>(len, x + c, y + c);
    }
  }
}

template <typename T>
TG_INLINE void gelu_backward_body(int64_t n, const T* g, const T* x, T* gx, bool tanh_approx) {
  if (tanh_approx) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      T d;
      const T s = gelu_tanh_sigmoid<T>(x[i], d);
      const T ds = s * (T(1) - s);  // 0 at +-inf, where x ds d would be 0 * inf
      gx[i] = g[i] * (s + (ds == T(0) ? T(0) : x[i] * ds * d));
    }
  } else if constexpr (sizeof(T) == 4) {
    gelu_erf_backward_run<false>(n, g, x, gx);
  } else {
    for (int64_t c = 0; c < n; c += kGeluChunk) {
      const int64_t len = std::min(kGeluChunk, n - c);
      if (gelu_chunk_has_tail(len, x + c)) gelu_erf_backward_run<true>(len, g + c, x + c, gx + c);
      else gelu_erf_backward_run<false>(len, g + c, x + c, gx + c);
    }
  }
}

// 1 + exp(-x), inf where exp overflows (x < -88.72), for sigmoid as 1 / (1 + exp(-x)). float:
// exp of -x clamped to [-86, 88.8] with p 2^(n-1) 2 as the power-of-two scaling (2^(n-1) stays
// normal there, and the last product overflows to inf exactly where exp(-x) does; below -86
// exp(-x) vanishes next to 1). The clamps are integer minima of the bits, which order as the
// floats do (signed for the upper bound; unsigned for the lower, where every negative float below
// -86 has larger bits and every positive one smaller), so no comparison issues: those go to one
// port on Intel cores, and the four this took (two clamps, overflow, and the compiler's masks)
// made SiLU forward 0.304 ns an element in L1 where it is now 0.293 (backward 0.387 -> 0.370).
// A NaN x comes out NaN through the caller's x.
template <typename T>
TG_INLINE T one_plus_exp_neg(T x);
template <>
TG_INLINE float one_plus_exp_neg<float>(float x) {
  constexpr int32_t kHi = 0x42B1999A;     // 88.8f
  constexpr uint32_t kLo = 0xC2AC0000u;   // -86.0f
  const int32_t zs = static_cast<int32_t>(float_to_bits(-x));
  const uint32_t zh = static_cast<uint32_t>(zs < kHi ? zs : kHi);
  const float zc = bits_to_float(zh < kLo ? zh : kLo);
  const float fm = zc * 1.44269504088896341f + 12582912.0f;  // 1.5 * 2^23 + n: n in its low bits
  const float p = exp_reduced(zc, fm - 12582912.0f);
  return 1.0f + bits_to_float(float_to_bits(p) + ((float_to_bits(fm) - 0x4B400001u) << 23)) * 2.0f;
}
template <>
TG_INLINE double one_plus_exp_neg<double>(double x) { return 1.0 + vmath::exp_d(-x); }

// silu(-inf) = -inf / inf = NaN and silu(x < -88.7) = -0, as PyTorch's x / (1 + exp(-x)).
template <typename T>
TG_INLINE void silu_forward_body(int64_t n, const T* x, T* y) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] / one_plus_exp_neg<T>(x[i]);
}

template <typename T>
TG_INLINE void silu_backward_body(int64_t n, const T* g, const T* x, T* gx) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const T s = T(1) / one_plus_exp_neg<T>(x[i]);
    gx[i] = g[i] * s * (T(1) + x[i] * (T(1) - s));
  }
}

// out = a op b over [0, n); kA / kB: the operand is a scalar (its element 0), else read in step
// with out.
template <typename T, BinaryOp kOp, bool kA, bool kB>
TG_INLINE void binary_run(int64_t n, const T* a, const T* b, T* out) {  // out may be a or b
  const T a0 = a[0], b0 = b[0];
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const T x = kA ? a0 : a[i], y = kB ? b0 : b[i];
    out[i] = kOp == BinaryOp::add ? x + y : kOp == BinaryOp::sub ? x - y : kOp == BinaryOp::mul ? x * y : x / y;
  }
}

template <typename T, BinaryOp kOp>
TG_INLINE void binary_segments(int64_t i0, int64_t len, const T* a, int64_t pa, const T* b, int64_t pb, T* out) {
  // Segments that stay inside one row of each broadcast operand (a period of 1 is a scalar).
  for (int64_t i = i0, end = i0 + len; i < end;) {
    const int64_t ja = i % pa, jb = i % pb;
    int64_t seg = end - i;
    if (pa > 1) seg = std::min(seg, pa - ja);
    if (pb > 1) seg = std::min(seg, pb - jb);
    if (pa == 1 && pb == 1) binary_run<T, kOp, true, true>(seg, a, b, out + i);
    else if (pa == 1) binary_run<T, kOp, true, false>(seg, a, b + jb, out + i);
    else if (pb == 1) binary_run<T, kOp, false, true>(seg, a + ja, b, out + i);
    else binary_run<T, kOp, false, false>(seg, a + ja, b + jb, out + i);
    i += seg;
  }
}

template <typename T>
TG_INLINE void binary_body(BinaryOp op, int64_t i0, int64_t len, const T* a, int64_t pa, const T* b, int64_t pb,
                           T* out) {
  switch (op) {
    case BinaryOp::add: return binary_segments<T, BinaryOp::add>(i0, len, a, pa, b, pb, out);
    case BinaryOp::sub: return binary_segments<T, BinaryOp::sub>(i0, len, a, pa, b, pb, out);
    case BinaryOp::mul: return binary_segments<T, BinaryOp::mul>(i0, len, a, pa, b, pb, out);
    case BinaryOp::div: return binary_segments<T, BinaryOp::div>(i0, len, a, pa, b, pb, out);
  }
}

// relu as numpy's maximum(x, 0) (NaN kept, -0.0 to 0), and its backward as a select (PyTorch's
// threshold_backward): g where out > 0, else 0, so an inf or NaN g where out <= 0 gives 0. One
// pass each, where numpy took one and five (ResNet-20's 19 relus: 11 of a step's 158 ms).
// The sign bit of T's representation (float: bit 31, double: bit 63), as an unsigned integer.
template <typename T>
using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;

template <typename T, UnaryOp kOp>
TG_INLINE void unary_run(int64_t n, const T* x, T* out) {
  constexpr Bits<T> kSign = Bits<T>(1) << (8 * sizeof(T) - 1);
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    if constexpr (kOp == UnaryOp::sqrt) {
      // the builtin: std::sqrt stayed an out-of-line call under the AVX variants' target attributes
      if constexpr (sizeof(T) == 4) out[i] = __builtin_sqrtf(x[i]);
      else out[i] = __builtin_sqrt(x[i]);
    } else {  // on the bits, as numpy's: a NaN keeps its payload, -0 and +0 swap or lose the sign
      Bits<T> b;
      std::memcpy(&b, &x[i], sizeof b);
      b = kOp == UnaryOp::neg ? b ^ kSign : b & ~kSign;
      std::memcpy(&out[i], &b, sizeof b);
    }
  }
}

template <typename T>
TG_INLINE void unary_body(UnaryOp op, int64_t n, const T* x, T* out) {
  switch (op) {
    case UnaryOp::neg: return unary_run<T, UnaryOp::neg>(n, x, out);
    case UnaryOp::abs: return unary_run<T, UnaryOp::abs>(n, x, out);
    case UnaryOp::sqrt: return unary_run<T, UnaryOp::sqrt>(n, x, out);
  }
}

template <typename T>
TG_INLINE void relu_forward_body(int64_t n, const T* x, T* y) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] > T(0) || x[i] != x[i] ? x[i] : T(0);
}

template <typename T>
TG_INLINE void relu_backward_body(int64_t n, const T* g, const T* out, T* gx) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) gx[i] = out[i] > T(0) ? g[i] : T(0);
}

// Dropout's draw for element lo of a block whose keys are (k0, k1): two rounds of Wellons'
// lowbias32 integer hash with the second key between them (32-bit multiplies only, so the loop
// vectorises on AVX2 as well). A bijection of lo for fixed keys.
TG_INLINE uint32_t dropout_hash(uint32_t lo, uint32_t k0, uint32_t k1) {
  uint32_t h = lo ^ k0;
  h ^= h >> 16;
  h *= 0x7feb352du;
  h ^= h >> 15;
  h *= 0x846ca68bu;
  h ^= h >> 16;
  h ^= k1;
  h ^= h >> 16;
  h *= 0x7feb352du;
  h ^= h >> 15;
  h *= 0x846ca68bu;
  h ^= h >> 16;
  return h;
}

// A dropped element is x * 0 (NaN for an inf or NaN x), as PyTorch's input * mask / (1 - p).
template <typename T>
TG_INLINE void dropout_forward_body(int64_t n, const T* x, uint32_t lo0, uint32_t k0, uint32_t k1, uint32_t thr,
                                    T scale, T* y, uint8_t* mask) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const bool keep = dropout_hash(lo0 + static_cast<uint32_t>(i), k0, k1) >= thr;
    mask[i] = keep;
    y[i] = x[i] * (keep ? scale : T(0));
  }
}

template <typename T>
TG_INLINE void dropout_backward_body(int64_t n, const T* g, const uint8_t* mask, T scale, T* gx) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) gx[i] = g[i] * (mask[i] ? scale : T(0));
}

template <typename T>
TG_INLINE void softmax_forward_body(int64_t r0, int64_t r1, int64_t D, const T* x, T* y, bool log) {
  for (int64_t r = r0; r < r1; ++r) {
    const T* xr = x + r * D;
    T* yr = y + r * D;
    const T m = row_max(D, xr);
    if (log) {
      // x - m stored by the exp pass, so that the row's stores (whose cache lines must first be
      // read from memory) overlap the exp arithmetic instead of following it in a pass of their
      // own: the same values, 0.51 -> 0.47 ms for 1e6 floats on one thread.
      const double s = row_sum<T, kExpShortLaneBytes>(D, [&](int64_t j) {
        const T c = xr[j] - m;
        yr[j] = c;
        return exp_nonpos<T>(c);
      });
      const T ls = T(std::log(s));  // (x - m) - log s, not x - (m + log s): exact where x is near m
      const int64_t h = lanes::line_head(yr, D);
#pragma omp simd
      for (int64_t j = 0; j < h; ++j) yr[j] -= ls;
#pragma omp simd
      for (int64_t j = h; j < D; ++j) yr[j] -= ls;
    } else {
      const double s = row_sum<T, kExpShortLaneBytes>(D, [&](int64_t j) {
        const T e = exp_nonpos<T>(xr[j] - m);
        yr[j] = e;
        return e;
      });
      const T inv = T(1.0 / s);
      const int64_t h = lanes::line_head(yr, D);
#pragma omp simd
      for (int64_t j = 0; j < h; ++j) yr[j] *= inv;
#pragma omp simd
      for (int64_t j = h; j < D; ++j) yr[j] *= inv;
    }
  }
}

template <typename T>
TG_INLINE void softmax_backward_body(int64_t r0, int64_t r1, int64_t D, const T* g, const T* y, T* gx,
                                     bool log) {
  for (int64_t r = r0; r < r1; ++r) {
    const T* gr = g + r * D;
    const T* yr = y + r * D;
    T* o = gx + r * D;
    if (log) {
      const T s = T(row_sum<T>(D, [&](int64_t j) { return gr[j]; }));
#pragma omp simd
      for (int64_t j = 0; j < D; ++j) o[j] = gr[j] - exp_nonpos<T>(yr[j]) * s;
    } else {
      const T s = T(row_sum<T>(D, [&](int64_t j) { return gr[j] * yr[j]; }));
#pragma omp simd
      for (int64_t j = 0; j < D; ++j) o[j] = yr[j] * (gr[j] - s);
    }
  }
}

// y = (x - m) q w + b over [j0, j1) of a row (w, b may be null), one loop per case: the
// forward's output pass, run from the row's first 64-byte boundary on (lanes::line_head) after
// the elements before it (1024 x 1024 float32 into numpy's arrays: 0.42-0.47 -> 0.37 ns an
// element on one thread).
template <typename T>
TG_INLINE void layer_norm_out_run(int64_t j0, int64_t j1, const T* xr, const T* w, const T* b, T m, T q, T* yr) {
  if (w && b) {
#pragma omp simd
    for (int64_t j = j0; j < j1; ++j) yr[j] = (xr[j] - m) * q * w[j] + b[j];
  } else if (w) {
#pragma omp simd
    for (int64_t j = j0; j < j1; ++j) yr[j] = (xr[j] - m) * q * w[j];
  } else if (b) {
#pragma omp simd
    for (int64_t j = j0; j < j1; ++j) yr[j] = (xr[j] - m) * q + b[j];
  } else {
#pragma omp simd
    for (int64_t j = j0; j < j1; ++j) yr[j] = (xr[j] - m) * q;
  }
}

template <typename T>
TG_INLINE void layer_norm_forward_body(int64_t r0, int64_t r1, int64_t D, const T* x, const T* w, const T* b,
                                       double eps, T* y, T* mean, T* rstd) {
  for (int64_t r = r0; r < r1; ++r) {
    const T* xr = x + r * D;
    T* yr = y + r * D;
    const T m = T(row_sum<T>(D, [&](int64_t j) { return xr[j]; }) / double(D));
    // Squares about m, the mean rounded to T: the deviations are exact where x is near m, and
    // the rounding adds (mean - m)^2 to the variance, far below T's resolution of it.
    const double v = row_sum<T>(D, [&](int64_t j) {
      const T c = xr[j] - m;
      return c * c;
    });
    const T q = T(1.0 / std::sqrt(v / double(D) + eps));
    mean[r] = m;
    rstd[r] = q;
    const int64_t h = lanes::line_head(yr, D);
    layer_norm_out_run(0, h, xr, w, b, m, q, yr);
    layer_norm_out_run(h, D, xr, w, b, m, q, yr);
  }
}

// mean(g w) and mean(g w xhat) over row r (w may be null: 1), in am and cm.
template <typename T>
TG_INLINE void layer_norm_row_means(int64_t D, const T* gr, const T* xr, const T* w, T m, T q, T& am, T& cm) {
  double a, c;
  if (w)
    row_sums<T>(D, [&](int64_t j) { return gr[j] * w[j]; },
                [&](int64_t j) { return (gr[j] * w[j]) * ((xr[j] - m) * q); }, a, c);
  else
    row_sums<T>(D, [&](int64_t j) { return gr[j]; }, [&](int64_t j) { return gr[j] * ((xr[j] - m) * q); }, a, c);
  am = T(a / double(D));
  cm = T(c / double(D));
}

// Rows [r0, r1): each row's input gradient into gx (when not null) and its g xhat and g added
// into pw / pb (D each, when not null), in one pass over the row after its two sums.
template <typename T>
TG_INLINE void layer_norm_backward_body(int64_t r0, int64_t r1, int64_t D, const T* g, const T* x, const T* mean,
                                        const T* rstd, const T* w, T* gx, T* pw, T* pb) {
  for (int64_t r = r0; r < r1; ++r) {
    const T* gr = g + r * D;
    const T* xr = x + r * D;
    T* o = gx ? gx + r * D : nullptr;
    const T m = mean[r], q = rstd[r];
    T am = 0, cm = 0;
    if (o) layer_norm_row_means(D, gr, xr, w, m, q, am, cm);
    // One loop per case, each vectorised without tests inside.
    if (o && w && pw && pb) {
#pragma omp simd
      for (int64_t j = 0; j < D; ++j) {
        const T xh = (xr[j] - m) * q;
        o[j] = q * (gr[j] * w[j] - am - xh * cm);
        pw[j] += gr[j] * xh;
        pb[j] += gr[j];
      }
      continue;
    }
    if (o && w) {
#pragma omp simd
      for (int64_t j = 0; j < D; ++j) o[j] = q * (gr[j] * w[j] - am - (xr[j] - m) * q * cm);
    } else if (o) {
#pragma omp simd
      for (int64_t j = 0; j < D; ++j) o[j] = q * (gr[j] - am - (xr[j] - m) * q * cm);
    }
    if (pw && pb) {
#pragma omp simd
      for (int64_t j = 0; j < D; ++j) {
        pw[j] += gr[j] * ((xr[j] - m) * q);
        pb[j] += gr[j];
      }
    } else if (pw) {
#pragma omp simd
      for (int64_t j = 0; j < D; ++j) pw[j] += gr[j] * ((xr[j] - m) * q);
    } else if (pb) {
#pragma omp simd
      for (int64_t j = 0; j < D; ++j) pb[j] += gr[j];
    }
  }
}

// Embedding's index-add for columns [j0, j0 + nj) of weight rows [k0, k1): the rows of g added
// into gw in index order. scale (per weight row) may be null.
template <typename T>
TG_INLINE void embedding_backward_body(int64_t N, const int64_t* idx, int64_t D, int64_t j0, int64_t nj,
                                       int64_t k0, int64_t k1, const T* g, int64_t pad, const T* scale, T* gw) {
  for (int64_t i = 0; i < N; ++i) {
    const int64_t k = idx[i];
    if (k == pad || k < k0 || k >= k1) continue;
    T* o = gw + k * D + j0;
    const T* gi = g + i * D + j0;
    if (scale) {
      const T s = scale[k];
#pragma omp simd
      for (int64_t j = 0; j < nj; ++j) o[j] += gi[j] * s;
    } else {
#pragma omp simd
      for (int64_t j = 0; j < nj; ++j) o[j] += gi[j];
    }
  }
}

template <typename T>
TG_INLINE void cross_entropy_forward_body(int64_t r0, int64_t r1, int64_t C, const T* x, const int64_t* t,
                                          const T* w, T* loss, T* rmax, T* logsum) {
  for (int64_t r = r0; r < r1; ++r) {
    const T* xr = x + r * C;
    const T m = row_max(C, xr);
    T s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < C; ++j) s += exp_nonpos<T>(xr[j] - m);
    const T ls = std::log(s);
    rmax[r] = m;
    logsum[r] = ls;
    loss[r] = t[r] < 0 ? T(0) : w[r] * (ls - (xr[t[r]] - m));
  }
}

template <typename T>
TG_INLINE void cross_entropy_backward_body(int64_t r0, int64_t r1, int64_t C, const T* g, const T* x,
                                           const int64_t* t, const T* w, const T* rmax, const T* logsum, T* gx) {
  for (int64_t r = r0; r < r1; ++r) {
    const T* xr = x + r * C;
    T* o = gx + r * C;
    if (t[r] < 0) {
      std::fill(o, o + C, T(0));
      continue;
    }
    const T k = g[r] * w[r], m = rmax[r], ls = logsum[r];
#pragma omp simd
    for (int64_t j = 0; j < C; ++j) o[j] = k * exp_nonpos<T>((xr[j] - m) - ls);
    o[t[r]] -= k;
  }
}

// Each body compiled for the baseline ISA, AVX2+FMA and AVX-512 (16 floats a vector).

// cdist's rows r0..r1 of R distances (rows.h, cdist_finish): d2 = (out + n2[batch, j]) + n1[r];
// the count of entries not above bound[r] first (the row stays in L1 for the second loop), their
// columns listed, then out = sqrt(max(d2, 0)). A NaN d2 (an inf or NaN in a row: inf - inf in
// the formula) is listed too, for the differences to decide.
template <typename T>
TG_INLINE void cdist_finish_body(int64_t r0, int64_t r1, int64_t R, int64_t PB, T* out, const T* n1, const T* n2,
                                 const T* bound, std::vector<int64_t>* close) {
  for (int64_t r = r0; r < r1; ++r) {
    T* o = out + r * R;
    const T* nb = n2 + (r / PB) * R;
    const T a = n1[r], b = bound[r];
    int64_t count = 0;
#pragma omp simd reduction(+ : count)
    for (int64_t j = 0; j < R; ++j) count += !((o[j] + nb[j]) + a > b) ? 1 : 0;
    if (count != 0)
      for (int64_t j = 0; j < R; ++j)
        if (!((o[j] + nb[j]) + a > b)) close->push_back(r * R + j);
#pragma omp simd
    for (int64_t j = 0; j < R; ++j) {
      const T d2 = (o[j] + nb[j]) + a, c = d2 < T(0) ? T(0) : d2;
      // the builtins: std::sqrt stays an out-of-line call under the AVX variants' target attributes
      if constexpr (sizeof(T) == 4) o[j] = __builtin_sqrtf(c);
      else o[j] = __builtin_sqrt(c);
    }
  }
}

TG_VARIANTS(gelu_forward, (int64_t n, const T* x, T* y, bool th), (n, x, y, th))
TG_VARIANTS(gelu_backward, (int64_t n, const T* g, const T* x, T* gx, bool th), (n, g, x, gx, th))
TG_VARIANTS(silu_forward, (int64_t n, const T* x, T* y), (n, x, y))
TG_VARIANTS(silu_backward, (int64_t n, const T* g, const T* x, T* gx), (n, g, x, gx))
TG_VARIANTS(binary, (BinaryOp op, int64_t i0, int64_t len, const T* a, int64_t pa, const T* b, int64_t pb, T* out),
            (op, i0, len, a, pa, b, pb, out))
TG_VARIANTS(unary, (UnaryOp op, int64_t n, const T* x, T* out), (op, n, x, out))
TG_VARIANTS(relu_forward, (int64_t n, const T* x, T* y), (n, x, y))
TG_VARIANTS(cdist_finish, (int64_t r0, int64_t r1, int64_t R, int64_t PB, T* out, const T* n1, const T* n2,
                           const T* bound, std::vector<int64_t>* close), (r0, r1, R, PB, out, n1, n2, bound, close))
TG_VARIANTS(relu_backward, (int64_t n, const T* g, const T* out, T* gx), (n, g, out, gx))
TG_VARIANTS(dropout_forward,
            (int64_t n, const T* x, uint32_t lo0, uint32_t k0, uint32_t k1, uint32_t thr, T scale, T* y,
             uint8_t* mask),
            (n, x, lo0, k0, k1, thr, scale, y, mask))
TG_VARIANTS(dropout_backward, (int64_t n, const T* g, const uint8_t* mask, T scale, T* gx), (n, g, mask, scale, gx))
TG_VARIANTS(embedding_backward,
            (int64_t N, const int64_t* idx, int64_t D, int64_t j0, int64_t nj, int64_t k0, int64_t k1, const T* g,
             int64_t pad, const T* scale, T* gw),
            (N, idx, D, j0, nj, k0, k1, g, pad, scale, gw))
TG_VARIANTS(softmax_forward, (int64_t r0, int64_t r1, int64_t D, const T* x, T* y, bool log),
            (r0, r1, D, x, y, log))
TG_VARIANTS(softmax_backward, (int64_t r0, int64_t r1, int64_t D, const T* g, const T* y, T* gx, bool log),
            (r0, r1, D, g, y, gx, log))
TG_VARIANTS(layer_norm_forward,
            (int64_t r0, int64_t r1, int64_t D, const T* x, const T* w, const T* b, double eps, T* y, T* mean,
             T* rstd),
            (r0, r1, D, x, w, b, eps, y, mean, rstd))
TG_VARIANTS(layer_norm_backward,
            (int64_t r0, int64_t r1, int64_t D, const T* g, const T* x, const T* mean, const T* rstd, const T* w,
             T* gx, T* pw, T* pb),
            (r0, r1, D, g, x, mean, rstd, w, gx, pw, pb))
TG_VARIANTS(cross_entropy_forward,
            (int64_t r0, int64_t r1, int64_t C, const T* x, const int64_t* t, const T* w, T* loss, T* rmax,
             T* logsum),
            (r0, r1, C, x, t, w, loss, rmax, logsum))
TG_VARIANTS(cross_entropy_backward,
            (int64_t r0, int64_t r1, int64_t C, const T* g, const T* x, const int64_t* t, const T* w,
             const T* rmax, const T* logsum, T* gx),
            (r0, r1, C, g, x, t, w, rmax, logsum, gx))

// Rows per task: whole rows, about kTaskElems elements, fixed by the shape alone.
inline int64_t rows_per_task(int64_t D) { return std::max<int64_t>(1, kTaskElems / std::max<int64_t>(D, 1)); }

// Runs f(r0, r1) over [0, R) in tasks of rows_per_task(D) rows, tasks taken dynamically by the
// threads when large enough (parallel_tiles): each task's arithmetic is fixed by the shape.
template <typename F>
void for_rows(int64_t R, int64_t D, F f) {
  const int64_t step = rows_per_task(D), ntasks = (R + step - 1) / step;
  parallel_tiles(ntasks, R * D >= kParallelMinElems, [&](int64_t k) { f(k * step, std::min(R, (k + 1) * step)); });
}

// Runs f(i, len) over [0, n) in blocks of at most kBlock elements, each starting at a multiple of
// kBlock (tasks of kTaskElems hold whole blocks): an elementwise kernel's work.
template <typename F>
void for_blocks(int64_t n, F f) {
  for_rows(n, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i += kBlock) f(i, std::min(kBlock, i1 - i));
  });
}

}  // namespace

template <typename T>
void gelu_forward(int64_t n, const T* x, T* y, bool tanh_approx) {
  for_blocks(n, [&](int64_t i, int64_t len) { TG_CALL(gelu_forward, T, len, x + i, y + i, tanh_approx); });
}

template <typename T>
void gelu_backward(int64_t n, const T* g, const T* x, T* gx, bool tanh_approx) {
  for_blocks(n, [&](int64_t i, int64_t len) { TG_CALL(gelu_backward, T, len, g + i, x + i, gx + i, tanh_approx); });
}

template <typename T>
void silu_forward(int64_t n, const T* x, T* y) {
  for_blocks(n, [&](int64_t i, int64_t len) { TG_CALL(silu_forward, T, len, x + i, y + i); });
}

template <typename T>
void silu_backward(int64_t n, const T* g, const T* x, T* gx) {
  for_blocks(n, [&](int64_t i, int64_t len) { TG_CALL(silu_backward, T, len, g + i, x + i, gx + i); });
}

template <typename T>
void binary_op(BinaryOp op, int64_t n, const T* a, int64_t a_period, const T* b, int64_t b_period, T* out) {
  for_blocks(n, [&](int64_t i, int64_t len) { TG_CALL(binary, T, op, i, len, a, a_period, b, b_period, out); });
}

template <typename T>
void unary_op(UnaryOp op, int64_t n, const T* x, T* out) {
  for_blocks(n, [&](int64_t i, int64_t len) { TG_CALL(unary, T, op, len, x + i, out + i); });
}

template <typename T>
void relu_forward(int64_t n, const T* x, T* y) {
  for_blocks(n, [&](int64_t i, int64_t len) { TG_CALL(relu_forward, T, len, x + i, y + i); });
}

template <typename T>
void relu_backward(int64_t n, const T* g, const T* out, T* gx) {
  for_blocks(n, [&](int64_t i, int64_t len) { TG_CALL(relu_backward, T, len, g + i, out + i, gx + i); });
}

// SplitMix64's finaliser: a block's two 32-bit hash keys from the seed and the block's high
// index bits (blocks of kBlock elements never straddle a multiple of 2^32).
inline uint64_t splitmix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

template <typename T>
void dropout_forward(int64_t n, const T* x, uint64_t seed, uint32_t threshold, T scale, T* y, uint8_t* mask) {
  static_assert((int64_t(1) << 32) % kBlock == 0, "a block must not straddle 2^32");
  for_blocks(n, [&](int64_t i, int64_t len) {
    const uint64_t key = splitmix64(seed ^ splitmix64(static_cast<uint64_t>(i) >> 32));
    TG_CALL(dropout_forward, T, len, x + i, static_cast<uint32_t>(i), static_cast<uint32_t>(key),
            static_cast<uint32_t>(key >> 32), threshold, scale, y + i, mask + i);
  });
}

template <typename T>
void dropout_backward(int64_t n, const T* g, const uint8_t* mask, T scale, T* gx) {
  for_blocks(n, [&](int64_t i, int64_t len) { TG_CALL(dropout_backward, T, len, g + i, mask + i, scale, gx + i); });
}

template <typename T>
void softmax_forward(int64_t R, int64_t D, const T* x, T* y, bool log) {
  for_rows(R, D, [&](int64_t r0, int64_t r1) { TG_CALL(softmax_forward, T, r0, r1, D, x, y, log); });
}

template <typename T>
void softmax_backward(int64_t R, int64_t D, const T* g, const T* y, T* gx, bool log) {
  for_rows(R, D, [&](int64_t r0, int64_t r1) { TG_CALL(softmax_backward, T, r0, r1, D, g, y, gx, log); });
}

template <typename T>
void layer_norm_forward(int64_t R, int64_t D, const T* x, const T* w, const T* b, double eps, T* y, T* mean,
                        T* rstd) {
  for_rows(R, D, [&](int64_t r0, int64_t r1) {
    TG_CALL(layer_norm_forward, T, r0, r1, D, x, w, b, eps, y, mean, rstd);
  });
}

template <typename T>
void layer_norm_backward(int64_t R, int64_t D, const T* g, const T* x, const T* mean, const T* rstd, const T* w,
                         T* gx, T* gw, T* gb) {
  if (!gw && !gb) {
    if (gx)
      for_rows(R, D, [&](int64_t r0, int64_t r1) {
        TG_CALL(layer_norm_backward, T, r0, r1, D, g, x, mean, rstd, w, gx, nullptr, nullptr);
      });
    return;
  }
  // Chunks of rows fixed by R alone (at least kRowsPerChunk rows, at most kMaxChunks chunks).
  const int64_t rows = std::max(kRowsPerChunk, (R + kMaxChunks - 1) / kMaxChunks);
  const int64_t nchunks = (R + rows - 1) / rows;
  // Chunk c's sums at slot[c * ld] (gw) and slot[c * ld + pbo] (gb); every one is written.
  // Placed 2 KiB (gw) and 1 KiB (gb) past gx modulo 4 KiB: the loop stores gx[j], then loads
  // pw[j] and pb[j], and a load whose address matches an earlier store's in its low 12 bits waits
  // for it (4K aliasing). With rows of 4 KiB and both arrays page-aligned plus malloc's header,
  // that was every load: the fused pass took 1.3-1.4x the time of the pass without gw, gb.
  constexpr int64_t kPage = 4096;
  const int64_t e = static_cast<int64_t>(sizeof(T));
  const int64_t half = (D * e + 1024 + kPage - 1) / kPage * kPage;  // bytes from pw to pb's page
  const int64_t ld = 2 * half / e, pbo = (half + 1024) / e;          // in elements
  std::unique_ptr<T[]> part(new T[static_cast<size_t>(nchunks * ld + 2 * kPage / e)]);
  const uintptr_t raw = reinterpret_cast<uintptr_t>(part.get());
  const uintptr_t phase = ((gx ? reinterpret_cast<uintptr_t>(gx) : 0) + 2048) & (kPage - 1) & ~uintptr_t(63);
  T* slot = reinterpret_cast<T*>(((raw + kPage - 1) & ~uintptr_t(kPage - 1)) + phase);
  const bool par = R * D >= kParallelMinElems;
  parallel_tiles(nchunks, par, [&](int64_t c) {
    T* pw = gw ? slot + c * ld : nullptr;
    T* pb = gb ? slot + c * ld + pbo : nullptr;
    if (pw) std::fill(pw, pw + D, T(0));
    if (pb) std::fill(pb, pb + D, T(0));
    // Each row's input gradient (the same arithmetic as without gw, gb) and its share of the
    // sums in one pass over the row.
    TG_CALL(layer_norm_backward, T, c * rows, std::min(R, (c + 1) * rows), D, g, x, mean, rstd, w, gx, pw, pb);
  });
  // The chunks in order, columns in blocks (each thread a block): contiguous, vectorised adds.
  constexpr int64_t kCols = 256;
  const int64_t nblocks = (D + kCols - 1) / kCols;
  parallel_tiles(nblocks, par, [&](int64_t blk) {
    const int64_t j0 = blk * kCols, n = std::min(kCols, D - j0);
    double sw[kCols], sb[kCols];
    std::fill(sw, sw + n, 0.0);
    std::fill(sb, sb + n, 0.0);
    for (int64_t c = 0; c < nchunks; ++c) {
      const T* pw = slot + c * ld + j0;
      const T* pb = slot + c * ld + pbo + j0;
      if (gw) {
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) sw[j] += double(pw[j]);
      }
      if (gb) {
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) sb[j] += double(pb[j]);
      }
    }
    for (int64_t j = 0; j < n; ++j) {
      if (gw) gw[j0 + j] = T(sw[j]);
      if (gb) gb[j0 + j] = T(sb[j]);
    }
  });
}

template <typename T>
void cross_entropy_forward(int64_t R, int64_t C, const T* x, const int64_t* t, const T* w, T* loss, T* rmax,
                           T* logsum) {
  for_rows(R, C, [&](int64_t r0, int64_t r1) {
    TG_CALL(cross_entropy_forward, T, r0, r1, C, x, t, w, loss, rmax, logsum);
  });
}

template <typename T>
void cross_entropy_backward(int64_t R, int64_t C, const T* g, const T* x, const int64_t* t, const T* w,
                            const T* rmax, const T* logsum, T* gx) {
  for_rows(R, C, [&](int64_t r0, int64_t r1) {
    TG_CALL(cross_entropy_backward, T, r0, r1, C, g, x, t, w, rmax, logsum, gx);
  });
}

template <typename T>
void embedding_backward(int64_t N, const int64_t* idx, int64_t D, const T* g, int64_t num_weights,
                        int64_t padding_idx, bool scale_grad_by_freq, T* gw) {
  std::vector<T> scale;
  if (scale_grad_by_freq) {  // 1 / count as PyTorch (in double, then the dtype)
    std::vector<int64_t> count(static_cast<size_t>(num_weights), 0);
    for (int64_t i = 0; i < N; ++i) ++count[static_cast<size_t>(idx[i])];
    scale.resize(static_cast<size_t>(num_weights));
    for (int64_t k = 0; k < num_weights; ++k) scale[k] = count[k] ? T(1.0 / double(count[k])) : T(0);
  }
  const T* s = scale_grad_by_freq ? scale.data() : nullptr;
  // Every element of gw gets its additions in index order whatever the tiles, so any cut gives
  // the same result. A large table (numpy's calloc: pages faulted in on the first write) is cut
  // by weight rows, each tile scanning all the indices for its own rows, so that no two threads
  // fault in the same pages: cut by columns, both threads wrote every row named and waited on
  // each other's page faults (50000 x 512 float32 at 64 x 128 indices: 11.9 ms on one thread,
  // 15.3 on two).
  if (double(num_weights) * double(D) * sizeof(T) >= double(kEmbRowsCutBytes)) {
    const int64_t parts = std::min<int64_t>(num_weights, 8 * int64_t(num_threads()));
    parallel_tiles(parts, N * D >= kParallelMinElems, [&](int64_t t) {
      TG_CALL(embedding_backward, T, N, idx, D, 0, D, num_weights * t / parts, num_weights * (t + 1) / parts, g,
              padding_idx, s, gw);
    });
    return;
  }
  // Otherwise blocks of about kEmbCols columns. Where every row of gw starts at the same offset
  // in its cache line, the blocks after the first start on a line, so that two threads' blocks
  // share none (numpy's 16-byte aligned rows of 128 float32 shared one at the block boundary in
  // every row: 1000 x 128 at 50000 indices took 1.83 ms on one thread and 1.87 on two; now 1.57
  // and 1.48). Each thread streams all of g, so below kEmbParallelMinElems one thread is faster.
  constexpr int64_t kEmbCols = 64;
  const int64_t shift = (D * int64_t(sizeof(T))) % 64 == 0
                            ? int64_t((64 - reinterpret_cast<uintptr_t>(gw) % 64) % 64 / sizeof(T)) : 0;
  const int64_t nblocks = std::max<int64_t>(1, (D - shift + kEmbCols - 1) / kEmbCols);
  parallel_tiles(nblocks, N * D >= kEmbParallelMinElems, [&](int64_t blk) {
    const int64_t j0 = blk == 0 ? 0 : shift + blk * kEmbCols, j1 = std::min(D, shift + (blk + 1) * kEmbCols);
    TG_CALL(embedding_backward, T, N, idx, D, j0, j1 - j0, 0, num_weights, g, padding_idx, s, gw);
  });
}

template <typename T>
std::vector<int64_t> cdist_finish(int64_t P, int64_t R, int64_t PB, T* out, const T* n1, const T* n2,
                                  const T* bound) {
  const int64_t step = rows_per_task(R), ntasks = (P + step - 1) / step;
  std::vector<std::vector<int64_t>> close(static_cast<size_t>(ntasks));
  parallel_tiles(ntasks, P * R >= kParallelMinElems, [&](int64_t k) {
    TG_CALL(cdist_finish, T, k * step, std::min(P, (k + 1) * step), R, PB, out, n1, n2, bound, &close[size_t(k)]);
  });
  std::vector<int64_t> all;  // tasks in row order: the flat indices ascending, whatever the threads
  for (auto& c : close) all.insert(all.end(), c.begin(), c.end());
  return all;
}

#define TG_INSTANTIATE(T)                                                                                   \
  template void gelu_forward<T>(int64_t, const T*, T*, bool);                                              \
  template void gelu_backward<T>(int64_t, const T*, const T*, T*, bool);                                   \
  template void softmax_forward<T>(int64_t, int64_t, const T*, T*, bool);                                  \
  template void softmax_backward<T>(int64_t, int64_t, const T*, const T*, T*, bool);                       \
  template void layer_norm_forward<T>(int64_t, int64_t, const T*, const T*, const T*, double, T*, T*, T*); \
  template void layer_norm_backward<T>(int64_t, int64_t, const T*, const T*, const T*, const T*, const T*, T*, T*, \
                                       T*);                                                                \
  template void silu_forward<T>(int64_t, const T*, T*);                                                    \
  template void silu_backward<T>(int64_t, const T*, const T*, T*);                                         \
  template void binary_op<T>(BinaryOp, int64_t, const T*, int64_t, const T*, int64_t, T*);                 \
  template void unary_op<T>(UnaryOp, int64_t, const T*, T*);                                               \
  template void relu_forward<T>(int64_t, const T*, T*);                                                    \
  template std::vector<int64_t> cdist_finish<T>(int64_t, int64_t, int64_t, T*, const T*, const T*, const T*);           \
  template void relu_backward<T>(int64_t, const T*, const T*, T*);                                         \
  template void dropout_forward<T>(int64_t, const T*, uint64_t, uint32_t, T, T*, uint8_t*);                \
  template void dropout_backward<T>(int64_t, const T*, const uint8_t*, T, T*);                             \
  template void embedding_backward<T>(int64_t, const int64_t*, int64_t, const T*, int64_t, int64_t, bool, T*); \
  template void cross_entropy_forward<T>(int64_t, int64_t, const T*, const int64_t*, const T*, T*, T*, T*); \
  template void cross_entropy_backward<T>(int64_t, int64_t, const T*, const T*, const int64_t*, const T*,  \
                                          const T*, const T*, T*);
TG_INSTANTIATE(float)
TG_INSTANTIATE(double)
#undef TG_INSTANTIATE

}  // namespace tapegrad

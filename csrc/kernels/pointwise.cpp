// The elementwise functions of pointwise.h: each a scalar formula (forward_one / backward_one)
// applied by one loop under `omp simd`, compiled for the baseline ISA, AVX2+FMA and AVX-512 (the
// rows family's choice, cpu.h), in blocks that the threads take as rows.cpp's elementwise kernels (parallel.h's for_element_blocks).
#include "kernels/pointwise.h"

#include "kernels/cpu.h"
#include "kernels/isa_variants.h"
#include "kernels/parallel.h"
#include "kernels/vmath.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace tapegrad {
namespace {


Isa isa() { return kernel_isa(Kernel::rows); }

using P = Pointwise;

// exp(-|x|), in (0, 1]: NaN for NaN. vmath::exp, not exp_nonpos: inside these kernels' loops the
// general one measured faster (0.40 against 0.48 ns an element in L1, AVX-512).
template <typename T>
TG_INLINE T exp_neg_abs(T x) {
  return vmath::exp_v(x < T(0) ? x : -x);
}

// 1 / (1 + exp(-x)), as PyTorch's: 0 below -88.7 in float, where exp(-x) overflows (the true value
// is a denormal there). The stable form e / (1 + e) with e = exp(-|x|) for x < 0, which keeps the
// denormals, cost 35% more (0.58 against 0.43 ns an element in L1, AVX-512).
template <typename T>
TG_INLINE T sigmoid_of(T x) {
  return T(1) / (T(1) + vmath::exp_v(-x));
}

// The float one with an exp of only the cases sigmoid can see: z = -x clamped to [-87, 88.7], where
// 2^n for n = round(z / ln2) in [-126, 128] goes into p's exponent field in one integer add (p
// in [0.7, 1) when n = 128), and 1 + exp(z) is 1 below -87 whatever tiny value exp gives there;
// above 88.7 the result is 0 (exp overflows: as 1 / (1 + inf) above 88.72) and NaN stays NaN by
// a select. 0.29 against 0.44 ns an element in L1 (AVX-512), the same values in between.
template <>
TG_INLINE float sigmoid_of<float>(float x) {
  const float z = -x;
  float zc = z < 88.7f ? z : 88.7f;
  zc = zc > -87.0f ? zc : -87.0f;
  const float fm = zc * 1.44269504088896341f + 12582912.0f;  // 1.5 * 2^23 + n
  const float p = vmath::exp_reduced(zc, fm - 12582912.0f);
  const float e = vmath::bits_to_float(vmath::float_to_bits(p) + ((vmath::float_to_bits(fm) - 0x4B400000u) << 23));
  const float r = 1.0f / (1.0f + e);
  const float tail = z > 88.7f ? 0.0f : r;
  return x != x ? x : tail;
}

// log(1 + exp(z)) for any z, without overflow: max(z, 0) + log1p(exp(-|z|)).
template <typename T>
TG_INLINE T softplus_of(T z) {
  return (z > T(0) ? z : T(0)) + vmath::log1p_unit(exp_neg_abs(z));
}

// tanh(softplus(x)) for mish, from e = exp(-|x|) alone: with n = e^x, tanh(log(1 + n)) =
// n (n + 2) / (n (n + 2) + 2), which is e (e + 2) / (e (e + 2) + 2) for x < 0 and, multiplied
// through by e^2 where n = 1 / e, (1 + 2e) / (1 + 2e + 2e^2) for x >= 0: no overflow anywhere.
template <typename T>
TG_INLINE T tanh_softplus(T x, T e) {
  const T num = x >= T(0) ? T(1) + T(2) * e : e * (e + T(2));
  return num / (num + (x >= T(0) ? T(2) * e * e : T(2)));
}

template <P Op, typename T>
TG_INLINE T forward_one(T x, T p0, T p1, T p2) {
  if constexpr (Op == P::sigmoid) {
    return sigmoid_of(x);
  } else if constexpr (Op == P::tanh) {
    return x == T(0) ? x : vmath::tanh(x);  // tanh(-0) = -0
  } else if constexpr (Op == P::exp) {
    return vmath::exp_v(x);
  } else if constexpr (Op == P::log) {
    return vmath::log(x);
  } else if constexpr (Op == P::log2 || Op == P::log10) {  // float: in double, rounded once
    return static_cast<T>(vmath::log_table_any<Op == P::log2 ? 1 : 2>(static_cast<double>(x)));
  } else if constexpr (Op == P::erf) {
    return vmath::erf(x);
  } else if constexpr (Op == P::erfc) {
    // float: in double, rounded once (vmath has no float erfc)
    if constexpr (sizeof(T) == 4) return static_cast<float>(vmath::erfc(static_cast<double>(x)));
    else return vmath::erfc(x);
  } else if constexpr (Op == P::rsqrt) {
    // The builtin, not std::sqrt: under the AVX variants' target attributes std::sqrt(float) stayed
    // an out-of-line call and the loop scalar (1.5 ms for 1e6 floats, against 0.3).
    if constexpr (sizeof(T) == 4) return T(1) / __builtin_sqrtf(x);
    else return T(1) / __builtin_sqrt(x);
  } else if constexpr (Op == P::abs) {
    return std::fabs(x);
  } else if constexpr (Op == P::sign) {
    return x > T(0) ? T(1) : x < T(0) ? T(-1) : T(0);
  } else if constexpr (Op == P::softplus) {  // p0 beta, p1 threshold, p2 1 / beta
    const T z = x * p0;
    return z > p1 ? x : softplus_of(z) * p2;
  } else if constexpr (Op == P::logsigmoid) {
    return (x < T(0) ? x : T(0)) - vmath::log1p_unit(exp_neg_abs(x));
  } else if constexpr (Op == P::elu) {  // p0 alpha, p1 scale, p2 input_scale
    return x > T(0) ? x * p1 : vmath::expm1_nonpos(x * p2) * (p0 * p1);
  } else if constexpr (Op == P::leaky_relu) {
    return x > T(0) ? x : x * p0;
  } else if constexpr (Op == P::hardswish || Op == P::hardsigmoid) {
    T c = x + T(3);
    c = c < T(0) ? T(0) : c;  // selects that keep a NaN, as std::min/max in PyTorch's kernel
    c = c > T(6) ? T(6) : c;
    if constexpr (Op == P::hardswish) return x * c / T(6);
    else return c / T(6);
  } else if constexpr (Op == P::mish) {
    return x * tanh_softplus(x, exp_neg_abs(x));
  } else if constexpr (Op == P::hardshrink) {
    return x >= -p0 && x <= p0 ? T(0) : x;
  } else if constexpr (Op == P::softshrink) {
    return x > p0 ? x - p0 : x < -p0 ? x + p0 : x * T(0);
  } else if constexpr (Op == P::threshold) {
    return x <= p0 ? p1 : x;
  } else if constexpr (Op == P::logit) {
    return vmath::log(x / (T(1) - x));  // 1 / 0 = inf at x = 1, log(inf) = inf as PyTorch's
  } else if constexpr (Op == P::frac) {
    // the builtins, not std::trunc: out of line under the AVX variants' attributes (see rsqrt)
    if constexpr (sizeof(T) == 4) return x - __builtin_truncf(x);
    else return x - __builtin_trunc(x);
  } else if constexpr (Op == P::cube) {
    return x * x * x;
  } else if constexpr (Op == P::nan_to_num) {
    const T inf = std::numeric_limits<T>::infinity();
    return x != x ? p0 : x == inf ? p1 : x == -inf ? p2 : x;
  } else if constexpr (Op == P::sin || Op == P::cos || Op == P::tan) {  // |x| <= vmath::trig_max<T>()
    if constexpr (sizeof(T) == 4 && Op != P::tan) return vmath::sin_cos_f<Op == P::sin ? 0 : 1>(x);
    else return vmath::trig<Op == P::sin ? 0 : Op == P::cos ? 1 : 2>(x);
  } else if constexpr (Op == P::clamp) {  // selects that keep x on a tie and a NaN x, as np.maximum/minimum
    const T m = x < p0 ? p0 : x;
    return m > p1 ? p1 : m;
  } else {
    static_assert(Op == P::hardtanh, "an op without a forward formula");
    return x < p0 ? p0 : x > p1 ? p1 : x;
  }
}

template <P Op, typename T>
TG_INLINE T trig_libm(T x) {
  if constexpr (Op == P::sin) return std::sin(x);
  else if constexpr (Op == P::cos) return std::cos(x);
  else return std::tan(x);
}

// gx for g and the saved operand s (the output y or the input x: pointwise.h's table).
template <P Op, typename T>
TG_INLINE T backward_one(T g, T s, T p0, T p1, T p2) {
  if constexpr (Op == P::sigmoid) {
    return g * (T(1) - s) * s;  // PyTorch's sigmoid_backward
  } else if constexpr (Op == P::tanh) {
    return g * (T(1) - s * s);
  } else if constexpr (Op == P::exp) {
    return g * s;
  } else if constexpr (Op == P::log) {
    return g / s;
  } else if constexpr (Op == P::erf) {
    return g * (T(1.12837916709551257390) * vmath::exp_v(-(s * s)));
  } else if constexpr (Op == P::rsqrt) {
    return g * (s * s * s * T(-0.5));
  } else if constexpr (Op == P::abs) {
    return g * (s > T(0) ? T(1) : s < T(0) ? T(-1) : T(0));
  } else if constexpr (Op == P::softplus) {
    const T z = s * p0;
    return z > p1 ? g : g * sigmoid_of(z);
  } else if constexpr (Op == P::logsigmoid) {
    return g * sigmoid_of(-s);
  } else if constexpr (Op == P::elu) {  // exp's argument is <= 0 where it is used (p2 > 0)
    return s > T(0) ? g * p1 : g * (p2 * p0 * p1) * vmath::exp_v(s * p2);
  } else if constexpr (Op == P::leaky_relu) {
    return s > T(0) ? g : g * p0;
  } else if constexpr (Op == P::hardswish) {  // PyTorch's hardswish_backward: a NaN x passes g
    return s < T(-3) ? T(0) : s <= T(3) ? g * (s / T(3) + T(0.5)) : g;
  } else if constexpr (Op == P::hardsigmoid) {
    return s > T(-3) && s < T(3) ? g * T(1.0 / 6.0) : T(0);
  } else if constexpr (Op == P::mish) {
    const T e = exp_neg_abs(s);
    const T t = tanh_softplus(s, e);
    const T sig = (s >= T(0) ? T(1) : e) / (T(1) + e);
    return g * (t + s * sig * (T(1) - t * t));
  } else if constexpr (Op == P::hardshrink || Op == P::softshrink) {
    return s >= -p0 && s <= p0 ? T(0) : g;
  } else if constexpr (Op == P::threshold) {
    return s <= p0 ? T(0) : g;
  } else if constexpr (Op == P::logit) {
    return s < T(0) || s > T(1) ? std::numeric_limits<T>::quiet_NaN() : g / (s * (T(1) - s));
  } else if constexpr (Op == P::cube) {
    return g * (s * s * T(3));
  } else if constexpr (Op == P::clamp) {  // PyTorch's clamp_backward_min_max: a NaN x gives 0
    return s >= p0 && s <= p1 ? g : T(0);
  } else {
    static_assert(Op == P::hardtanh, "an op without a backward formula");
    return s > p0 && s < p1 ? g : T(0);
  }
}

// The double erf and erfc in groups of 8 (one AVX-512 vector): a group with no large element
// (|x| >= 3, or NaN) takes vmath::erf_below3 / erfc_below3 alone; the others vmath::erf, and for
// erfc vmath::erfc_to6 where no element lies beyond 6, else vmath::erfc (fdlibm's tail, with its
// division, as well): each of them gives an element the values of the cheaper ones where they
// apply (the same bits: tests/csrc), as SLEEF's erf (PyTorch's) branches per vector. For standard
// normal input 98% of the groups are of the first kind, where erf's large branch (1 - erfc, an
// exp) would double every element's work.
constexpr int64_t kErfGroup = 8;

template <P Op>
TG_INLINE void erf_group(const double* x, double* y) {
  int big = 0, tail = 0;
#pragma omp simd reduction(| : big, tail)
  for (int64_t j = 0; j < kErfGroup; ++j) {
    big |= !(std::fabs(x[j]) < 3.0);
    tail |= x[j] > 6.0;
  }
  if (!big) {
#pragma omp simd
    for (int64_t j = 0; j < kErfGroup; ++j) y[j] = Op == P::erf ? vmath::erf_below3(x[j]) : vmath::erfc_below3(x[j]);
  } else if (Op == P::erfc && !tail) {
#pragma omp simd
    for (int64_t j = 0; j < kErfGroup; ++j) y[j] = vmath::erfc_to6(x[j]);
  } else {
#pragma omp simd
    for (int64_t j = 0; j < kErfGroup; ++j) y[j] = Op == P::erf ? vmath::erf(x[j]) : vmath::erfc(x[j]);
  }
}

// The costly elementwise functions (log, the trig functions, float64 erf / erfc) prefetch their
// input and output this many elements ahead. 1e6 doubles (16 MB, from L3 here) are read and
// written at 28 GB/s by one core doing nothing else (0.58 ms), and the hardware prefetchers alone
// did not keep a compute-bound loop fed: log's loop took 0.90 ms where its arithmetic alone (in
// L1) takes 0.63, and 0.73 with these (2 KB ahead; 4 KB: 0.75, 6 KB: 0.78; a burst of 32 lines
// at a time instead of 8 was slower than none). erf: 1.65 -> 1.31 ms.
constexpr int64_t kAhead = 256;

// prefetches the lines of x[i + kAhead, i + kAhead + len) and y's (for writing), inside [0, n)
template <typename T>
TG_INLINE void prefetch_ahead(const T* x, T* y, int64_t i, int64_t len, int64_t n) {
  constexpr int64_t kLine = 64 / sizeof(T);
  for (int64_t j = i + kAhead; j < std::min(n, i + kAhead + len); j += kLine) {
    __builtin_prefetch(x + j, 0, 3);
    __builtin_prefetch(y + j, 1, 3);
  }
}

// float sin and cos: vmath::sin_cos_float for every element of a chunk (one loop, one call site,
// so the same bits wherever an element lies), then, in a chunk holding an argument beyond
// kSinCosFloatMax (or inf, NaN), sin_cos_f's (in double: correctly rounded nearly everywhere) for
// those up to trig_max, from one vectorised loop of the chunk's copy, and the C library's beyond.
template <P Op>
TG_INLINE void sin_cos_float_forward(int64_t n, const float* x, float* y) {
  constexpr int kFn = Op == P::sin ? 0 : 1;
  constexpr int64_t kChunk = 64;
  for (int64_t c = 0; c < n; c += kChunk) {
    const int64_t len = std::min(kChunk, n - c);
    prefetch_ahead(x, y, c, len, n);
    const float* xc = x + c;
    float* yc = y + c;
    int far = 0;
#pragma omp simd reduction(| : far)
    for (int64_t i = 0; i < len; ++i) far |= !(std::fabs(xc[i]) <= vmath::kSinCosFloatMax);
    float keep[kChunk], wide[kChunk];  // the chunk's arguments (y may be x), their values in double
    if (far) std::copy(xc, xc + len, keep);
#pragma omp simd
    for (int64_t i = 0; i < len; ++i) yc[i] = vmath::sin_cos_float<kFn>(xc[i]);
    if (far) {
#pragma omp simd
      for (int64_t i = 0; i < len; ++i) wide[i] = vmath::sin_cos_f<kFn>(std::fabs(keep[i]) <= vmath::trig_max<float>() ? keep[i] : 0.0f);
      for (int64_t i = 0; i < len; ++i) {
        const float v = keep[i];
        if (!(std::fabs(v) <= vmath::kSinCosFloatMax))
          yc[i] = std::fabs(v) <= vmath::trig_max<float>() ? wide[i] : trig_libm<Op, float>(v);
      }
    }
  }
}

// log2 and log10 (kBase 1, 2) on the AVX2 and generic builds, as log's chunks below: vmath::log_table
// for every element of a chunk, then log_table_any for its arguments that are not positive normal
// numbers (0, denormals, negatives, inf, NaN). float: in double, rounded once, element by element.
template <int kBase, typename T>
TG_INLINE void log_table_forward(int64_t n, const T* x, T* y) {
  if constexpr (sizeof(T) == 4) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>(vmath::log_table_any<kBase>(x[i]));
  } else {
    constexpr int64_t kChunk = 64;
    constexpr double lo = std::numeric_limits<double>::min(), hi = std::numeric_limits<double>::max();
    for (int64_t c = 0; c < n; c += kChunk) {
      const int64_t len = std::min(kChunk, n - c);
      prefetch_ahead(x, y, c, len, n);
      const double* xc = x + c;
      double* yc = y + c;
      int out = 0;
#pragma omp simd reduction(| : out)
      for (int64_t i = 0; i < len; ++i) out |= !(xc[i] >= lo && xc[i] <= hi);
      double keep[kChunk];  // the chunk's arguments, for the special ones (y may be x)
      if (out) std::copy(xc, xc + len, keep);
#pragma omp simd
      for (int64_t i = 0; i < len; ++i) yc[i] = vmath::log_table<kBase>(xc[i]);
      if (out) {
        for (int64_t i = 0; i < len; ++i)
          if (!(keep[i] >= lo && keep[i] <= hi)) yc[i] = vmath::log_table_any<kBase>(keep[i]);
      }
    }
  }
}

// The AVX-512 float64 log, log2 and log10 (kBase 0, 1, 2): vmath::log_table's expressions on 8
// lanes, with the table's 16 invc and 16 logc in two registers each, looked up by vpermt2pd
// (which reads the index's low 4 bits: the lane's bits 48..51 after the offset), where the
// compiler's code for log_table loaded the entries one by one. A vector holding an argument that is
// not a positive normal number (one unsigned comparison) takes log_table_any's value for those
// lanes. 1e6 doubles on one thread into an existing array: 0.72 ms, where log_normal's degree-19
// polynomial took 0.99. log2 and log10 (bench_ops.py --only math64, one thread): 0.70 and 0.75 ms,
// PyTorch's 0.70 and 0.69; 0.81 and 0.80 before log_table_finish left out r times 1 / ln b's low part.
template <int kBase>
TG_AVX512 TG_INLINE __m512d log_table_v(__m512d x, __m512d inv0, __m512d inv1, __m512d lc0, __m512d lc1) {
  constexpr vmath::LogBase b = vmath::kLogBases[kBase];
  constexpr const double* c = vmath::kLogPoly[kBase];
  const __m512i ix = _mm512_castpd_si512(x);
  const __m512i tmp = _mm512_sub_epi64(ix, _mm512_set1_epi64(static_cast<int64_t>(vmath::kLogTableOff)));
  const __m512i idx = _mm512_srli_epi64(tmp, 48);
  const __m512d kd = _mm512_cvtepi64_pd(_mm512_srai_epi64(tmp, 52));
  const __m512d z = _mm512_castsi512_pd(
      _mm512_sub_epi64(ix, _mm512_and_si512(tmp, _mm512_set1_epi64(static_cast<int64_t>(0xfff0000000000000ull)))));
  const __m512d r = _mm512_fmadd_pd(z, _mm512_permutex2var_pd(inv0, idx, inv1), _mm512_set1_pd(-1.0));
  const __m512d logc = _mm512_permutex2var_pd(lc0, idx, lc1);
  // vmath::log_table_finish
  __m512d t1 = r, t2;
  if constexpr (kBase == 0) {
    t2 = _mm512_mul_pd(kd, _mm512_set1_pd(b.klo));
  } else {
    const __m512d ihi = _mm512_set1_pd(b.ihi);
    t1 = _mm512_mul_pd(r, ihi);
    t2 = _mm512_fmsub_pd(r, ihi, t1);
    if constexpr (kBase == 2) t2 = _mm512_fmadd_pd(kd, _mm512_set1_pd(b.klo), t2);
  }
  const __m512d w = _mm512_fmadd_pd(kd, _mm512_set1_pd(b.khi), logc);
  const __m512d hi = _mm512_add_pd(w, t1);
  const __m512d lo = _mm512_add_pd(_mm512_add_pd(_mm512_sub_pd(w, hi), t1), t2);
  const __m512d r2 = _mm512_mul_pd(r, r), r4 = _mm512_mul_pd(r2, r2);
  __m512d pair[4];  // c[2j] + r c[2j + 1]
  for (int j = 0; j < 4; ++j) pair[j] = _mm512_fmadd_pd(r, _mm512_set1_pd(c[2 * j + 1]), _mm512_set1_pd(c[2 * j]));
  const __m512d q0 = _mm512_fmadd_pd(r2, pair[1], pair[0]);
  const __m512d q1 = _mm512_fmadd_pd(r4, _mm512_set1_pd(c[8]), _mm512_fmadd_pd(r2, pair[3], pair[2]));
  const __m512d p = _mm512_fmadd_pd(r4, q1, q0);
  return _mm512_add_pd(hi, _mm512_fmadd_pd(r2, p, lo));
}

template <int kBase>
TG_AVX512 __attribute__((noinline)) void log_table_avx512(int64_t n, const double* x, double* y) {
  const vmath::LogTable& t = vmath::kLogTables[kBase];
  const __m512d inv0 = _mm512_loadu_pd(t.invc), inv1 = _mm512_loadu_pd(t.invc + 8);
  const __m512d lc0 = _mm512_loadu_pd(t.logc), lc1 = _mm512_loadu_pd(t.logc + 8);
  // x - DBL_MIN's bits below this (unsigned): a positive normal number
  const __m512i min_bits = _mm512_set1_epi64(0x0010000000000000ll), span = _mm512_set1_epi64(0x7fe0000000000000ll);
  for (int64_t i = 0; i < n; i += 8) {
    if (i % 64 == 0) prefetch_ahead(x, y, i, 64, n);
    const __mmask8 m = n - i >= 8 ? __mmask8(0xff) : __mmask8((1u << (n - i)) - 1);
    const __m512d v = _mm512_maskz_loadu_pd(m, x + i);
    const __m512d r = log_table_v<kBase>(v, inv0, inv1, lc0, lc1);
    const __mmask8 odd = _mm512_mask_cmpge_epu64_mask(m, _mm512_sub_epi64(_mm512_castpd_si512(v), min_bits), span);
    _mm512_mask_storeu_pd(y + i, m, r);
    if (odd) {
      alignas(64) double keep[8];
      _mm512_store_pd(keep, v);
      for (int j = 0; j < 8; ++j)
        if (odd >> j & 1) y[i + j] = vmath::log_table_any<kBase>(keep[j]);
    }
  }
}

template <P Op, typename T>
TG_INLINE void forward_body(int64_t n, const T* x, T* y, T p0, T p1, T p2) {
  if constexpr (sizeof(T) == 4 && (Op == P::sin || Op == P::cos)) {
    sin_cos_float_forward<Op>(n, x, y);
  } else if constexpr (Op == P::sin || Op == P::cos || Op == P::tan || Op == P::log) {
    // In chunks: one that holds an argument beyond trig_max (or inf, NaN) takes the C library's
    // value there, element by element; the other elements get the polynomial's (the same bits
    // as in the vectorised loop: tests/csrc/test_pointwise_kernels.py). log: the polynomial for
    // positive normal x (vmath::log_normal) on every chunk, then vmath::log element by element
    // on the others (0, denormals, negatives, inf, NaN) of a chunk that holds some: its selects
    // cost 0.1 / 0.2 ns an element in L1 (float / double), and a second vectorised loop for such
    // a chunk gave other bits to some of the normal elements (another contraction into fused
    // multiply-adds).
    constexpr int64_t kChunk = 64;  // with prefetch_ahead's, 8 lines of doubles at a time
    const T lo = Op == P::log ? std::numeric_limits<T>::min() : -vmath::trig_max<T>();
    const T hi = Op == P::log ? std::numeric_limits<T>::max() : vmath::trig_max<T>();
    for (int64_t c = 0; c < n; c += kChunk) {
      const int64_t len = std::min(kChunk, n - c);
      prefetch_ahead(x, y, c, len, n);
      const T* xc = x + c;
      T* yc = y + c;
      int out = 0;
#pragma omp simd reduction(| : out)
      for (int64_t i = 0; i < len; ++i) out |= !(xc[i] >= lo && xc[i] <= hi);
      if constexpr (Op == P::log) {
        T keep[kChunk];  // the chunk's arguments, for the special ones (y may be x)
        if (out) std::copy(xc, xc + len, keep);
#pragma omp simd
        for (int64_t i = 0; i < len; ++i) yc[i] = vmath::log_normal(xc[i]);
        if (out) {
          for (int64_t i = 0; i < len; ++i)
            if (!(keep[i] >= lo && keep[i] <= hi)) yc[i] = vmath::log(keep[i]);
        }
      } else if (!out) {
#pragma omp simd
        for (int64_t i = 0; i < len; ++i) yc[i] = forward_one<Op, T>(xc[i], p0, p1, p2);
      } else {
        for (int64_t i = 0; i < len; ++i) {
          const T v = xc[i];
          yc[i] = std::fabs(v) <= vmath::trig_max<T>() ? forward_one<Op, T>(v, p0, p1, p2) : trig_libm<Op, T>(v);
        }
      }
    }
  } else if constexpr (Op == P::log2 || Op == P::log10) {
    log_table_forward<Op == P::log2 ? 1 : 2>(n, x, y);
  } else if constexpr ((Op == P::erf || Op == P::erfc) && sizeof(T) == 8) {
    // the remainder padded with zeros through the same code, one call site (a scalar loop's
    // contractions, or a second inlined copy's, gave an ulp's difference)
    for (int64_t i = 0; i < n; i += kErfGroup) {
      prefetch_ahead(x, y, i, kErfGroup, n);
      const bool part = n - i < kErfGroup;
      double xb[kErfGroup] = {}, yb[kErfGroup];
      if (part) std::copy(x + i, x + n, xb);
      erf_group<Op>(part ? xb : x + i, part ? yb : y + i);
      if (part) std::copy(yb, yb + (n - i), y + i);
    }
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = forward_one<Op, T>(x[i], p0, p1, p2);
  }
}

template <P Op, typename T>
TG_INLINE void backward_body(int64_t n, const T* g, const T* s, T* gx, T p0, T p1, T p2) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) gx[i] = backward_one<Op, T>(g[i], s[i], p0, p1, p2);
}

template <typename T>
TG_INLINE void bce_logits_forward_body(int64_t n, const T* x, const T* y, T* loss) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i)
    loss[i] = (T(1) - y[i]) * x[i] - forward_one<P::logsigmoid, T>(x[i], T(0), T(0), T(0));
}

template <typename T, bool kScalarG>
TG_INLINE void bce_logits_backward_body(int64_t n, const T* g, const T* x, const T* y, T* gx) {
  const T g0 = g[0];
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) gx[i] = (kScalarG ? g0 : g[i]) * (sigmoid_of(x[i]) - y[i]);
}

template <typename T>
TG_INLINE void bce_logits_backward_any_body(int64_t n, const T* g, int64_t g_step, const T* x, const T* y, T* gx) {
  if (g_step == 0) bce_logits_backward_body<T, true>(n, g, x, y, gx);
  else bce_logits_backward_body<T, false>(n, g, x, y, gx);
}

template <typename T, bool kScalarG>
TG_INLINE void mse_backward_body(int64_t n, const T* g, const T* x, const T* y, T* gx, T sign) {
  const T g0 = g[0];
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) gx[i] = (T(2) * ((kScalarG ? g0 : g[i]) * (x[i] - y[i]))) * sign;  // exact * 2, * -1
}

template <typename T>
TG_INLINE void mse_backward_any_body(int64_t n, const T* g, int64_t g_step, const T* x, const T* y, T* gx, T sign) {
  if (g_step == 0) mse_backward_body<T, true>(n, g, x, y, gx, sign);
  else mse_backward_body<T, false>(n, g, x, y, gx, sign);
}

template <typename T>
TG_INLINE void huber_forward_body(int64_t n, const T* x, const T* y, T* loss, T c, T h, T b, bool huber) {
  // (the composite's operations one by one; no sum of products here that -ffp-contract could fuse)
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const T d = x[i] - y[i];
    const T ad = std::fabs(d);
    const T lin = ad - h;
    loss[i] = ad < b ? d * d * c : huber ? lin * b : lin;
  }
}

template <typename T, bool kScalarG>
TG_INLINE void huber_backward_body(int64_t n, const T* g, const T* x, const T* y, T* gx, T c, T b, bool huber,
                                   T sign) {
  const T g0 = g[0];
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const T G = kScalarG ? g0 : g[i];
    const T d = x[i] - y[i];
    const bool in = std::fabs(d) < b;
    const T t = (in ? G : T(0)) * c * d;
    const T g2 = in ? T(0) : G;
    const T sd = d > T(0) ? T(1) : d < T(0) ? T(-1) : T(0);  // tapegrad's sign (a NaN d makes t NaN)
    // t * 2 is t + t exactly, and no sum a contraction into a fused multiply-add could round
    // differently: the only products beside an addition (t * 2, and (g2 b) sign) are exact
    gx[i] = (t * T(2) + (huber ? g2 * b : g2) * sd) * sign;
  }
}

template <typename T>
TG_INLINE void huber_backward_any_body(int64_t n, const T* g, int64_t g_step, const T* x, const T* y, T* gx, T c,
                                       T b, bool huber, T sign) {
  if (g_step == 0) huber_backward_body<T, true>(n, g, x, y, gx, c, b, huber, sign);
  else huber_backward_body<T, false>(n, g, x, y, gx, c, b, huber, sign);
}

TG_VARIANTS(huber_forward, (int64_t n, const T* x, const T* y, T* loss, T c, T h, T b, bool huber),
            (n, x, y, loss, c, h, b, huber))
TG_VARIANTS(huber_backward_any,
            (int64_t n, const T* g, int64_t g_step, const T* x, const T* y, T* gx, T c, T b, bool huber, T sign),
            (n, g, g_step, x, y, gx, c, b, huber, sign))
TG_VARIANTS(bce_logits_forward, (int64_t n, const T* x, const T* y, T* loss), (n, x, y, loss))
TG_VARIANTS(bce_logits_backward_any, (int64_t n, const T* g, int64_t g_step, const T* x, const T* y, T* gx),
            (n, g, g_step, x, y, gx))
TG_VARIANTS(mse_backward_any, (int64_t n, const T* g, int64_t g_step, const T* x, const T* y, T* gx, T sign),
            (n, g, g_step, x, y, gx, sign))

// The pointwise functions' variants take the function (Op) as a template parameter as well.
#define TG_OP_VARIANTS(name, params, args)                                                  \
  template <P Op, typename T>                                                           \
  __attribute__((noinline)) void name##_base params { name##_body<Op, T> args; }         \
  template <P Op, typename T>                                                           \
  TG_AVX2 __attribute__((noinline)) void name##_avx2 params { name##_body<Op, T> args; } \
  template <P Op, typename T>                                                           \
  TG_AVX512 __attribute__((noinline)) void name##_avx512 params { name##_body<Op, T> args; }

TG_OP_VARIANTS(forward, (int64_t n, const T* x, T* y, T p0, T p1, T p2), (n, x, y, p0, p1, p2))
TG_OP_VARIANTS(backward, (int64_t n, const T* g, const T* s, T* gx, T p0, T p1, T p2), (n, g, s, gx, p0, p1, p2))
#undef TG_OP_VARIANTS

#define TG_OP_CALL(name, Op, T, ...)                                \
  (isa() == Isa::avx512 ? name##_avx512<Op, T>(__VA_ARGS__)     \
   : isa() == Isa::avx2 ? name##_avx2<Op, T>(__VA_ARGS__)       \
                        : name##_base<Op, T>(__VA_ARGS__))

template <P Op, typename T>
void run_forward(int64_t n, const T* x, T* y, T p0, T p1, T p2) {
  if constexpr (sizeof(T) == 8 && (Op == P::log || Op == P::log2 || Op == P::log10)) {
    if (isa() == Isa::avx512) {
      constexpr int kBase = Op == P::log ? 0 : Op == P::log2 ? 1 : 2;
      for_element_blocks(n, [&](int64_t i, int64_t len) { log_table_avx512<kBase>(len, x + i, y + i); });
      return;
    }
  }
  for_element_blocks(n, [&](int64_t i, int64_t len) { TG_OP_CALL(forward, Op, T, len, x + i, y + i, p0, p1, p2); });
}

template <P Op, typename T>
void run_backward(int64_t n, const T* g, const T* s, T* gx, T p0, T p1, T p2) {
  for_element_blocks(n, [&](int64_t i, int64_t len) { TG_OP_CALL(backward, Op, T, len, g + i, s + i, gx + i, p0, p1, p2); });
}

}  // namespace

#define TG_POINTWISE_CASE(name, run, ...) \
  case P::name:                           \
    return run<P::name, T>(__VA_ARGS__);

template <typename T>
void pointwise_forward(Pointwise op, int64_t n, const T* x, T* y, double p0, double p1, double p2) {
  const T a = T(p0), b = T(p1), c = T(p2);
  switch (op) {
    TG_POINTWISE_CASE(sigmoid, run_forward, n, x, y, a, b, c)
    TG_POINTWISE_CASE(tanh, run_forward, n, x, y, a, b, c)
    TG_POINTWISE_CASE(exp, run_forward, n, x, y, a, b, c)
    TG_POINTWISE_CASE(log, run_forward, n, x, y, a, b, c)
    TG_POINTWISE_CASE(log2, run_forward, n, x, y, a, b, c)
    TG_POINTWISE_CASE(log10, run_forward, n, x, y, a, b, c)
    TG_POINTWISE_CASE(erf, run_forward, n, x, y, a, b, c)
    TG_POINTWISE_CASE(rsqrt, run_forward, n, x, y, a, b, c)
    TG_POINTWISE_CASE(abs, run_forward, n, x, y, a, b, c)
    TG_POINTWISE_CASE(sign, run_forward, n, x, y, a, b, c)
    TG_POINTWISE_CASE(softplus, run_forward, n, x, y, a, b, c)
    TG_POINTWISE_CASE(logsigmoid, run_forward, n, x, y, a, b, c)
    TG_POINTWISE_CASE(elu, run_forward, n, x, y, a, b, c)
    TG_POINTWISE_CASE(leaky_relu, run_forward, n, x, y, a, b, c)
    TG_POINTWISE_CASE(hardswish, run_forward, n, x, y, a, b, c)
    TG_POINTWISE_CASE(hardsigmoid, run_forward, n, x, y, a, b, c)
    TG_POINTWISE_CASE(mish, run_forward, n, x, y, a, b, c)
    TG_POINTWISE_CASE(hardtanh, run_forward, n, x, y, a, b, c)
    TG_POINTWISE_CASE(hardshrink, run_forward, n, x, y, a, b, c)
    TG_POINTWISE_CASE(softshrink, run_forward, n, x, y, a, b, c)
    TG_POINTWISE_CASE(threshold, run_forward, n, x, y, a, b, c)
    TG_POINTWISE_CASE(logit, run_forward, n, x, y, a, b, c)
    TG_POINTWISE_CASE(frac, run_forward, n, x, y, a, b, c)
    TG_POINTWISE_CASE(cube, run_forward, n, x, y, a, b, c)
    TG_POINTWISE_CASE(nan_to_num, run_forward, n, x, y, a, b, c)
    TG_POINTWISE_CASE(sin, run_forward, n, x, y, a, b, c)
    TG_POINTWISE_CASE(cos, run_forward, n, x, y, a, b, c)
    TG_POINTWISE_CASE(tan, run_forward, n, x, y, a, b, c)
    TG_POINTWISE_CASE(erfc, run_forward, n, x, y, a, b, c)
    TG_POINTWISE_CASE(clamp, run_forward, n, x, y, a, b, c)
  }
  throw std::invalid_argument("pointwise_forward: unknown op " + std::to_string(static_cast<int>(op)));
}

template <typename T>
void pointwise_backward(Pointwise op, int64_t n, const T* g, const T* s, T* gx, double p0, double p1, double p2) {
  const T a = T(p0), b = T(p1), c = T(p2);
  switch (op) {
    TG_POINTWISE_CASE(sigmoid, run_backward, n, g, s, gx, a, b, c)
    TG_POINTWISE_CASE(tanh, run_backward, n, g, s, gx, a, b, c)
    TG_POINTWISE_CASE(exp, run_backward, n, g, s, gx, a, b, c)
    TG_POINTWISE_CASE(log, run_backward, n, g, s, gx, a, b, c)
    TG_POINTWISE_CASE(erf, run_backward, n, g, s, gx, a, b, c)
    TG_POINTWISE_CASE(rsqrt, run_backward, n, g, s, gx, a, b, c)
    TG_POINTWISE_CASE(abs, run_backward, n, g, s, gx, a, b, c)
    TG_POINTWISE_CASE(softplus, run_backward, n, g, s, gx, a, b, c)
    TG_POINTWISE_CASE(logsigmoid, run_backward, n, g, s, gx, a, b, c)
    TG_POINTWISE_CASE(elu, run_backward, n, g, s, gx, a, b, c)
    TG_POINTWISE_CASE(leaky_relu, run_backward, n, g, s, gx, a, b, c)
    TG_POINTWISE_CASE(hardswish, run_backward, n, g, s, gx, a, b, c)
    TG_POINTWISE_CASE(hardsigmoid, run_backward, n, g, s, gx, a, b, c)
    TG_POINTWISE_CASE(mish, run_backward, n, g, s, gx, a, b, c)
    TG_POINTWISE_CASE(hardtanh, run_backward, n, g, s, gx, a, b, c)
    TG_POINTWISE_CASE(hardshrink, run_backward, n, g, s, gx, a, b, c)
    TG_POINTWISE_CASE(softshrink, run_backward, n, g, s, gx, a, b, c)
    TG_POINTWISE_CASE(threshold, run_backward, n, g, s, gx, a, b, c)
    TG_POINTWISE_CASE(logit, run_backward, n, g, s, gx, a, b, c)
    TG_POINTWISE_CASE(cube, run_backward, n, g, s, gx, a, b, c)
    TG_POINTWISE_CASE(clamp, run_backward, n, g, s, gx, a, b, c)
    case P::sign:
    case P::frac:
    case P::nan_to_num:
    case P::sin:
    case P::cos:
    case P::tan:
    case P::erfc:
    case P::log2:
    case P::log10:
      break;
  }
  throw std::invalid_argument("pointwise_backward: no backward kernel for op " + std::to_string(static_cast<int>(op)));
}
#undef TG_POINTWISE_CASE

template <typename T>
void bce_logits_forward(int64_t n, const T* x, const T* y, T* loss) {
  for_element_blocks(n, [&](int64_t i, int64_t len) { TG_CALL(bce_logits_forward, T, len, x + i, y + i, loss + i); });
}

template <typename T>
void bce_logits_backward(int64_t n, const T* g, int64_t g_step, const T* x, const T* y, T* gx) {
  for_element_blocks(n, [&](int64_t i, int64_t len) {
    TG_CALL(bce_logits_backward_any, T, len, g + i * g_step, g_step, x + i, y + i, gx + i);
  });
}

template <typename T>
void mse_backward(int64_t n, const T* g, int64_t g_step, const T* x, const T* y, T* gx, bool negate) {
  const T sign = negate ? T(-1) : T(1);
  for_element_blocks(n, [&](int64_t i, int64_t len) {
    TG_CALL(mse_backward_any, T, len, g + i * g_step, g_step, x + i, y + i, gx + i, sign);
  });
}

template <typename T>
void huber_forward(int64_t n, const T* x, const T* y, T* loss, double c, double h, double b, bool huber) {
  const T ct = T(c), ht = T(h), bt = T(b);
  for_element_blocks(n, [&](int64_t i, int64_t len) {
    TG_CALL(huber_forward, T, len, x + i, y + i, loss + i, ct, ht, bt, huber);
  });
}

template <typename T>
void huber_backward(int64_t n, const T* g, int64_t g_step, const T* x, const T* y, T* gx, double c, double b,
                    bool huber, bool negate) {
  const T ct = T(c), bt = T(b), sign = negate ? T(-1) : T(1);
  for_element_blocks(n, [&](int64_t i, int64_t len) {
    TG_CALL(huber_backward_any, T, len, g + i * g_step, g_step, x + i, y + i, gx + i, ct, bt, huber, sign);
  });
}

template void huber_forward<float>(int64_t, const float*, const float*, float*, double, double, double, bool);
template void huber_forward<double>(int64_t, const double*, const double*, double*, double, double, double, bool);
template void huber_backward<float>(int64_t, const float*, int64_t, const float*, const float*, float*, double,
                                    double, bool, bool);
template void huber_backward<double>(int64_t, const double*, int64_t, const double*, const double*, double*, double,
                                     double, bool, bool);
template void mse_backward<float>(int64_t, const float*, int64_t, const float*, const float*, float*, bool);
template void mse_backward<double>(int64_t, const double*, int64_t, const double*, const double*, double*, bool);
template void bce_logits_forward<float>(int64_t, const float*, const float*, float*);
template void bce_logits_forward<double>(int64_t, const double*, const double*, double*);
template void bce_logits_backward<float>(int64_t, const float*, int64_t, const float*, const float*, float*);
template void bce_logits_backward<double>(int64_t, const double*, int64_t, const double*, const double*, double*);

template void pointwise_forward<float>(Pointwise, int64_t, const float*, float*, double, double, double);
template void pointwise_forward<double>(Pointwise, int64_t, const double*, double*, double, double, double);
template void pointwise_backward<float>(Pointwise, int64_t, const float*, const float*, float*, double, double,
                                        double);
template void pointwise_backward<double>(Pointwise, int64_t, const double*, const double*, double*, double, double,
                                         double);

}  // namespace tapegrad

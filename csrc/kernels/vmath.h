// Branch-free float exp, sigmoid and tanh that vectorise inside `omp simd` loops (the special
// cases are selects, not branches), for kernels that apply them per element. Built with
// -fno-trapping-math (CMakeLists.txt) so that the selects vectorise.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

namespace tapegrad {
namespace vmath {

#define TG_VMATH_INLINE inline __attribute__((always_inline))

TG_VMATH_INLINE float bits_to_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

TG_VMATH_INLINE uint32_t float_to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

// exp(x - n ln2) for the n = round(x / ln2) of an x already clamped to where n is a normal int:
// the Cody-Waite reduction (ln2 in two parts) and Cephes' degree-6 polynomial, the core that every
// float exp here and in rows.cpp shares (they differ only in their clamps and the 2^n scaling).
TG_VMATH_INLINE float exp_reduced(float xc, float n) {
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  return p * r * r + r + 1.0f;
}

// exp within 2 ulp of the correctly rounded result over its whole range (denormal results
// included): n = round(x / ln2), exp_reduced, then two power-of-two scalings (2^n may not be a
// normal float by itself). rows.cpp's exp_f is this one.
//
// One comparison: each select is a compare into a mask register, and those issue on one port
// only on Intel cores, so the eight of a NaN select, an overflow select and three clamps made the
// loop 0.33 ns an element where this one takes 0.25 (AVX-512, in L1), with the same bits for every
// non-NaN x (checked over all 2^32 floats). Overflow needs no select (2^64 2^64 p is inf), and a
// NaN x needs none either: neither clamp below replaces it (a comparison with NaN is false), so
// p is NaN and the products stay NaN whatever bits n has.
TG_VMATH_INLINE float exp(float x) {
  // Below -103.97 the result is 0 (the select at the end); the polynomial then runs on 0 rather
  // than on the clamp, because a denormal intermediate (2^-150) costs a ~150-cycle microcode
  // assist per vector on Intel CPUs, and masked scores (-inf) are half of a causal softmax.
  const bool zero = x < -103.972084045410156f;
  float xc = zero ? 0.0f : x;
  xc = 88.8f < xc ? 88.8f : xc;
  const float fm = xc * 1.44269504088896341f + 12582912.0f;  // 1.5 * 2^23 + n: n in its low bits
  const float n = fm - 12582912.0f;
  const float p = exp_reduced(xc, n);
  const int32_t ni = static_cast<int32_t>(float_to_bits(fm) - 0x4B400000u), n1 = ni >> 1, n2 = ni - n1;
  const float y = p * bits_to_float(static_cast<uint32_t>(n1 + 127) << 23) *
                  bits_to_float(static_cast<uint32_t>(n2 + 127) << 23);
  return zero ? 0.0f : y;
}

TG_VMATH_INLINE double exp(double x) { return std::exp(x); }

// exp(a) for a <= 0 or NaN, the same value as exp(a) for every such a, in fewer instructions: no
// overflow to handle, and 2^n as one exact exponent shift and one rounding product (p 2^(n + 64)
// exact for every n in [-150, 0], times 2^-64, which rounds once, also to a denormal). Positive
// a is taken as 0 (callers never pass one). A NaN a gives NaN, through `a - a` (0 for every other
// a that gets there). The softmax family (rows.cpp) and the pointwise kernels' exp(-|x|) use it.
TG_VMATH_INLINE float exp_nonpos(float a) {
  // 0 (not the clamp -104) for the a that give 0 and for NaN: the int conversion below stays
  // defined, and no denormal intermediate (a microcode assist on Intel) is made for the -inf of
  // masked scores.
  float ac = a > -103.972084045410156f ? a : 0.0f;
  ac = ac < 0.0f ? ac : 0.0f;
  const float fm = ac * 1.44269504088896341f + 12582912.0f;
  const float n = fm - 12582912.0f;
  const float p = exp_reduced(ac, n);
  const float y = bits_to_float(float_to_bits(p) + ((float_to_bits(fm) - (0x4B400000u - 64u)) << 23)) * 0x1p-64f;
  return a < -103.972084045410156f ? 0.0f : y + (a - a);
}

// 1 / (1 + exp(-x)): exp(-x) overflowing to inf gives 0, as it should.
template <typename T>
TG_VMATH_INLINE T sigmoid(T x) {
  return T(1) / (T(1) + exp(-x));
}

// exp(v) for v >= 0 or NaN (exp's arithmetic without its zero path: overflow to inf comes from
// the products, and the clamp keeps a NaN v, which the products carry).
TG_VMATH_INLINE float exp_nonneg(float v) {
  const float vc = 88.8f < v ? 88.8f : v;
  const float fm = vc * 1.44269504088896341f + 12582912.0f;
  const float p = exp_reduced(vc, fm - 12582912.0f);
  const int32_t ni = static_cast<int32_t>(float_to_bits(fm) - 0x4B400000u), n1 = ni >> 1, n2 = ni - n1;
  return p * bits_to_float(static_cast<uint32_t>(n1 + 127) << 23) * bits_to_float(static_cast<uint32_t>(n2 + 127) << 23);
}

// tanh within a few ulp: Cephes' odd polynomial below |x| = 0.625 (where 1 - 2 / (e^2x + 1)
// would cancel), 1 - 2 / (e^2|x| + 1) with x's sign above; NaN stays NaN (it fails the
// comparison into the large branch, whose exp is NaN). |x| and the sign are bit operations: one
// comparison, where the selects took three.
TG_VMATH_INLINE float tanh(float x) {
  const uint32_t sign = float_to_bits(x) & 0x80000000u;
  const float a = bits_to_float(float_to_bits(x) ^ sign), z = x * x;
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  const float small = p * z * x + x;
  const float t = 1.0f - 2.0f / (exp_nonneg(2.0f * a) + 1.0f);
  const float large = bits_to_float(float_to_bits(t) | sign);
  return a < 0.625f ? small : large;
}


// ---------------------------------------------------------------- more vectorisable math
// The functions below are branch-free as the ones above (special cases as selects), for the
// pointwise kernels (pointwise.cpp), in float and double. Accuracy is tested against numpy/scipy
// in tests/ops/test_pointwise_kernels.py.

TG_VMATH_INLINE double bits_to_double(uint64_t u) {
  double f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

TG_VMATH_INLINE uint64_t double_to_bits(double f) {
  uint64_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

// r = x - n ln2 for n = round(x / ln2) (fm = 1.5 * 2^52 + n, whose low bits hold n), ln2 in
// fdlibm's two parts (ln2_hi has trailing zeros, so n ln2_hi is exact): exp_d's and expm1's
// reduction.
TG_VMATH_INLINE double reduce_ln2_d(double x, double& fm, double& n) {
  fm = x * 1.4426950408889634074 + 6755399441055744.0;
  n = fm - 6755399441055744.0;
  return (x - n * 6.93147180369123816490e-01) - n * 1.90821492927058770002e-10;
}

// Horner's rule from p down the Taylor coefficients 1/12!, 1/11!, ..., 1/3!, 1/2 of exp.
TG_VMATH_INLINE double taylor_from_half_d(double p, double r) {
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  return p * r + 0.5;
}

// exp for double within 1 ulp over its whole range, vectorisable (vmath::exp(double) above is the
// C library's, which existing kernels keep): n = round(x / ln2), r = x - n ln2 in two parts
// (fdlibm's ln2_hi has trailing zeros, so n ln2_hi is exact), the Taylor polynomial of degree 13
// (|r| <= 0.347: the next term is below 2^-58 of the result), then 2^n as two normal factors.
TG_VMATH_INLINE double exp_d(double x) {
  // One comparison, as exp(float): no denormal intermediates on the 0 path, overflow to inf in
  // the products, and a NaN x kept by both clamps and so carried through p.
  const bool zero = x < -745.2;
  double xc = zero ? 0.0 : x;
  xc = 709.8 < xc ? 709.8 : xc;
  double fm, n;
  const double r = reduce_ln2_d(xc, fm, n);
  const double p = taylor_from_half_d(1.0 / 6227020800.0, r) * r * r + r + 1.0;  // 1 / 13!
  const int64_t ni = static_cast<int64_t>(double_to_bits(fm) - double_to_bits(6755399441055744.0));
  const int64_t n1 = ni >> 1, n2 = ni - n1;
  const double y = p * bits_to_double(static_cast<uint64_t>(n1 + 1023) << 52) *
                   bits_to_double(static_cast<uint64_t>(n2 + 1023) << 52);
  return zero ? 0.0 : y;
}

TG_VMATH_INLINE float exp_v(float x) { return exp(x); }
TG_VMATH_INLINE double exp_v(double x) { return exp_d(x); }

// expm1 for x <= 0 (elu's negative side; positive x is taken as 0), accurate near 0 where
// exp(x) - 1 cancels: n = round(x / ln2), r reduced as in exp, expm1(r) by its own polynomial
// (r + r^2 (1/2 + r / 6 + ...)), then 2^n expm1(r) + (2^n - 1), both exact to a rounding.
// Below -18 (float) / -40 (double) the result is -1, as the correctly rounded one; NaN stays NaN.
TG_VMATH_INLINE float expm1_nonpos(float x) {
  float xc = x < 0.0f ? x : 0.0f;
  xc = xc > -18.0f ? xc : -18.0f;
  const float fm = xc * 1.44269504088896341f + 12582912.0f;
  const float n = fm - 12582912.0f;
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.0f / 40320.0f;
  p = p * r + 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  const float em = p * r * r + r;
  const float s = bits_to_float(static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23);
  const float y = s * em + (s - 1.0f);
  const float out = x < -18.0f ? -1.0f : y;
  return x != x ? x : out;
}

TG_VMATH_INLINE double expm1_nonpos(double x) {
  double xc = x < 0.0 ? x : 0.0;
  xc = xc > -40.0 ? xc : -40.0;
  double fm, n;
  const double r = reduce_ln2_d(xc, fm, n);
  const double em = taylor_from_half_d(r * (1.0 / 87178291200.0) + 1.0 / 6227020800.0, r) * r * r + r;  // 1/14!, 1/13!
  const int64_t ni = static_cast<int64_t>(double_to_bits(fm) - double_to_bits(6755399441055744.0));
  const double s = bits_to_double(static_cast<uint64_t>(ni + 1023) << 52);
  const double y = s * em + (s - 1.0);
  const double out = x < -40.0 ? -1.0 : y;
  return x != x ? x : out;
}

// Natural log of a positive normal x (log below takes every x): x = 2^k m with m in [2/3, 4/3)
// by integer operations alone (as musl's logf: no compare or select), f = m - 1 (exact), and
// log(1 + f) = f - f^2/2 + f^3 P(f) with P from Chebyshev interpolation on [-1/3, 1/3] in 50-digit
// arithmetic: float degree 8 (P's error 2.9e-8, 2^-28 of the result), double degree 19 (6e-17,
// 2^-57), no division. k ln2 in two parts (the first with trailing zeros: k ln2_hi exact). drop is
// subtracted from k (log's denormals, scaled up) before k's floating-point arithmetic, so that
// log's values are the same bits as log_normal's where both apply (pointwise.cpp uses either; its
// AVX-512 float64 log takes log_table, below, instead). The previous kernels (Cephes' logf with its
// m in [sqrt(2)/2, sqrt(2)) by compares and selects; fdlibm's log with s = f / (2 + f)) took 0.51 /
// 0.97 ms for 1e6 floats / doubles on one thread, where PyTorch's take 0.31 / 0.73 (AVX-512: a
// double division issues once per 16 cycles).
TG_VMATH_INLINE float log_normal(float x, int32_t drop = 0) {
  const uint32_t ix = float_to_bits(x), tmp = ix - 0x3f2aaaabu;  // 2/3
  const float k = static_cast<float>((static_cast<int32_t>(tmp) >> 23) - drop);
  const float f = bits_to_float(ix - (tmp & 0xff800000u)) - 1.0f;
  const float z = f * f;
  float p = 0.11330617385023778f;
  p = p * f - 0.12422200575409693f;
  p = p * f + 0.10915654793276691f;
  p = p * f - 0.12288721609296725f;
  p = p * f + 0.14291867181988005f;
  p = p * f - 0.1667331625320225f;
  p = p * f + 0.19999948351310606f;
  p = p * f - 0.24999944186243983f;
  p = p * f + 0.3333333333333333f;
  float y = p * f * z;
  y += -2.12194440e-4f * k;
  y += -0.5f * z;
  return (f + y) + 0.693359375f * k;
}

TG_VMATH_INLINE double log_normal(double x, int32_t drop = 0) {
  // u >> 52 is k + 1023 (u's exponent field, read as an integer without an int64 -> double
  // conversion, which AVX2 lacks: placed in the mantissa of 2^52 and subtracted)
  const uint64_t u = double_to_bits(x) + 0x000aaaaaaaaaaaabull;  // bits(1) - bits(2/3)
  const double k = bits_to_double((u >> 52) | 0x4330000000000000ull) - (4503599627370496.0 + 1023.0 + drop);
  const double f = bits_to_double((u & 0x000fffffffffffffull) + 0x3fe5555555555555ull) - 1.0;
  const double z = f * f, w = z * z;
  // P = sum c_j f^j in four chains of w = f^4 (c_j in the chain j mod 4), written out: as a loop
  // over a coefficient table the kernel was not vectorised (10.6 against 0.9 ms for 1e6 doubles),
  // and one Horner chain of 19 dependent multiply-adds made the loop wait on their latency (0.79
  // against 0.63 ns an element in L1, AVX-512; 0.8 ulp from the exact value either way)
  double p0 = 0.04400369243072337;  // c16
  p0 = p0 * w + 0.06657072104827468;
  p0 = p0 * w + 0.09090894718066429;
  p0 = p0 * w + 0.1428571428355438;
  p0 = p0 * w + 0.3333333333333333;  // c0
  double p1 = -0.041719942791435476;  // c17
  p1 = p1 * w - 0.0624079013522121;
  p1 = p1 * w - 0.08333319535532796;
  p1 = p1 * w - 0.12499999997926427;
  p1 = p1 * w - 0.24999999999999997;  // c1
  double p2 = 0.08082022805971766;  // c18
  p2 = p2 * w + 0.06000536404795356;
  p2 = p2 * w + 0.07692785032479312;
  p2 = p2 * w + 0.11111111358713932;
  p2 = p2 * w + 0.20000000000007292;  // c2
  double p3 = -0.07730769181911153;  // c19
  p3 = p3 * w - 0.056689908563992544;
  p3 = p3 * w - 0.07143315368653184;
  p3 = p3 * w - 0.10000000237702213;
  p3 = p3 * w - 0.16666666666673666;  // c3
  const double p = (p0 + f * p1) + z * (p2 + f * p3);
  const double hfsq = 0.5 * z;
  return k * 6.93147180369123816490e-01 + (f - (hfsq - (p * f * z + k * 1.90821492927058770002e-10)));
}

// log for every x: denormals scaled up first (2^25, 2^54); 0 gives -inf, negatives and NaN give
// NaN, inf gives inf.
template <typename T>
TG_VMATH_INLINE T log(T x) {
  constexpr bool kF = sizeof(T) == 4;
  const bool sub = x < std::numeric_limits<T>::min();
  const T y = log_normal(sub ? x * (kF ? T(33554432.0) : T(18014398509481984.0)) : x, sub ? (kF ? 25 : 54) : 0);
  const T inf = std::numeric_limits<T>::infinity();
  const T pos = x == inf ? inf : y;
  const T nonneg = x == T(0) ? -inf : pos;
  return x >= T(0) ? nonneg : std::numeric_limits<T>::quiet_NaN();  // NaN and x < 0
}

// ---------------------------------------------------------------- log, log2, log10 by a table
// The logarithms in base e, 2 and 10 of a positive normal double (musl's / ARM optimized-routines'
// log.c with a 16-entry table): x = 2^k z with z in [0.671875, 1.34375) by integer operations
// (z's interval i from its bits' 4 leading mantissa bits after the offset, 1 in the middle of
// interval 10), r = z invc_i - 1 in one fused multiply-add (|r| < 2^-5), and
// log_b x = k log_b 2 + logc_i + log_b(1 + r), log_b(1 + r) = r / ln b + r^2 P(r) with P of degree 8
// (Chebyshev interpolation of (log1p(r) - r) / r^2 on |r| <= 1.01 2^-5 in 50-digit arithmetic,
// then scaled by 1 / ln b: relative error 2^-61 near x = 1, absolute 2^-66 elsewhere). Each
// invc_i was chosen near 1 / (interval i's centre) among 2^21 candidates so that logc_i =
// -log_b(invc_i) lies within 2^-62 of a multiple of 2^-43 (2^-42 for base 2), so that
// k log_b(2)_hi + logc_i is exact (log_b(2)_hi with 12 trailing zero bits); interval 10 has
// invc = 1 and logc = 0, so near 1 the result is r's own terms. hi + lo carries the sum of the
// larger terms exactly (musl's), so the result is within an ulp of the exact value. kBase: 0 e,
// 1 two, 2 ten. The AVX-512 kernels (pointwise.cpp) take the table from registers (vpermt2pd);
// 16 entries, where the 128 of musl's log would need gathers, which were slower here than the
// degree-19 polynomial of log_normal.
struct LogTable {
  double invc[16], logc[16];
};

inline constexpr LogTable kLogTables[3] = {
    {// base e
     {0x1.745a49de2b589p+0, 0x1.642a92bab8b83p+0, 0x1.5558a4df61a13p+0, 0x1.47af373db690ap+0, 0x1.3b15c32f6ea97p+0,
      0x1.2f66b8cfedcb2p+0, 0x1.24918935147d5p+0, 0x1.1a7a4162c639fp+0, 0x1.110fa6b7d8d6dp+0, 0x1.084011bf6e645p+0,
      0x1.0000000000000p+0, 0x1.e1e2dc08c768ap-1, 0x1.c71befc9b5ce7p-1, 0x1.af2b45599e55fp-1, 0x1.999d775bbd864p-1,
      0x1.861a83290ab07p-1},
     {-0x1.7fa7eed90c000p-2, -0x1.5225464871000p-2, -0x1.26a00fa51e000p-2, -0x1.f998e009ca000p-3,
      -0x1.a94c4871ac000p-3, -0x1.5be96629ba000p-3, -0x1.1173a89455000p-3, -0x1.932299e22c000p-4,
      -0x1.0844501182000p-4, -0x1.03d7fe910c000p-5, 0x0.0p+0, 0x1.f0926f7028000p-5, 0x1.e27508cbf2000p-4,
      0x1.5fe57dac3d000p-3, 0x1.c8ec27c651000p-3, 0x1.16703272e8000p-2}},
    {// base 2
     {0x1.745a38dd388a5p+0, 0x1.642e5468eb31dp+0, 0x1.55590b1ee0916p+0, 0x1.47afc50deafd9p+0, 0x1.3b126b02eeba6p+0,
      0x1.2f68b7cc79d75p+0, 0x1.248e890d59013p+0, 0x1.1a7b98a0f8bbfp+0, 0x1.110f0b002315cp+0, 0x1.083f801ec4999p+0,
      0x1.0000000000000p+0, 0x1.e1df5d51308fdp-1, 0x1.c718e9ed53273p-1, 0x1.af252f3398caep-1, 0x1.999a6573d9741p-1,
      0x1.861a6fda3ed83p-1},
     {-0x1.14bfb01f13000p-1, -0x1.e7e6dfa3ab000p-2, -0x1.a90fa5c456000p-2, -0x1.6cb894bba6000p-2,
      -0x1.32b9f4a3a8000p-2, -0x1.f601a5c4c2000p-3, -0x1.8a63a09a2c000p-3, -0x1.22daf6f102000p-3,
      -0x1.7d347e1784000p-4, -0x1.76c69fb478000p-5, 0x0.0p+0, 0x1.665e4fff9c000p-4, 0x1.5c188fa092000p-3,
      0x1.fbd799cb7c000p-3, 0x1.49a4a57f6d000p-2, 0x1.91b3df5836000p-2}},
    {// base 10
     {0x1.74610444d2d82p+0, 0x1.642f2edb0709fp+0, 0x1.55531510502fbp+0, 0x1.47ae88cce81e5p+0, 0x1.3b10a854f51e5p+0,
      0x1.2f6b2710302c2p+0, 0x1.2493cbe5db891p+0, 0x1.1a7f7dc211e42p+0, 0x1.110df579dca33p+0, 0x1.0842d30e5595cp+0,
      0x1.0000000000000p+0, 0x1.e1e376a34d783p-1, 0x1.c71c00c36339fp-1, 0x1.af2b1c3411052p-1, 0x1.9995afbab5e3cp-1,
      0x1.8618b3ff3409fp-1},
     {-0x1.4d4d58a863000p-3, -0x1.25c1275fa3000p-3, -0x1.ffb4077240000p-4, -0x1.b724448e0e000p-4,
      -0x1.714bea9168000p-4, -0x1.2e4b330a58000p-4, -0x1.db244c7380000p-5, -0x1.5e6a9500c8000p-5,
      -0x1.cae8011ac0000p-6, -0x1.c3f96fde80000p-7, 0x0.0p+0, 0x1.af483a19c0000p-6, 0x1.a30e10d908000p-5,
      0x1.31a7ed237c000p-4, 0x1.8d0282aed8000p-4, 0x1.e3baa29b52000p-4}},
};

// P's coefficients (of r^0 .. r^8), for base e, 2 and 10
inline constexpr double kLogPoly[3][9] = {
    {-0x1.0000000000000p-1, 0x1.555555555551dp-2, -0x1.fffffffffff98p-3, 0x1.9999999b0cd8ep-3,
     -0x1.55555556a9a6cp-3, 0x1.249234acd7c28p-3, -0x1.ffffda799f956p-4, 0x1.c7f261257b2c7p-4,
     -0x1.9a5db5d89db2bp-4},
    {-0x1.71547652b82fep-1, 0x1.ec709dc3a03abp-2, -0x1.71547652b82b3p-2, 0x1.2776c510058c4p-2,
     -0x1.ec709dc58b398p-3, 0x1.a617452059528p-3, -0x1.71545b412efb3p-3, 0x1.48e56625f9a6bp-3,
     -0x1.28043bc458bc4p-3},
    {-0x1.bcb7b1526e50ep-3, 0x1.287a7636f432dp-3, -0x1.bcb7b1526e4b4p-4, 0x1.63c627766783ap-4,
     -0x1.287a76381bceap-4, 0x1.fc3f8286b9173p-5, -0x1.bcb790ba702e0p-5, 0x1.8c07c548ec5a3p-5,
     -0x1.64707e4fce77dp-5}};

// log_b(2) in two parts (hi with 12 trailing zero bits: k hi is exact) and 1 / ln b in two parts
// (log_table_finish takes ilo no more: see there)
struct LogBase {
  double khi, klo, ihi, ilo;
};
inline constexpr LogBase kLogBases[3] = {{0x1.62e42fefa3000p-1, 0x1.3de6af278ece6p-42, 1.0, 0.0},
                                         {1.0, 0.0, 0x1.71547652b82fep+0, 0x1.777d0ffda0d24p-56},
                                         {0x1.34413509f7000p-2, 0x1.3fde623e2566bp-43, 0x1.bcb7b1526e50ep-2,
                                          0x1.95355baaafad3p-57}};
constexpr uint64_t kLogTableOff = 0x3fe5800000000000ull;  // 0.671875

// The result from r, k (as a double) and logc_i: the AVX-512 kernels compute the same
// expressions on vectors (pointwise.cpp), in the same order.
template <int kBase>
TG_VMATH_INLINE double log_table_finish(double r, double kd, double logc) {
  constexpr LogBase b = kLogBases[kBase];
  constexpr const double* c = kLogPoly[kBase];
  // r / ln b = t1 + t2 as r times 1 / ln b's leading part, exactly (the product of r and its low
  // part, 2^-56 of the result near 1 (base 10: 2^-55), is left out: 0.1-0.2 ulp, two instructions
  // fewer), plus k's low part (base 2 has none)
  double t1 = r, t2 = kd * b.klo;
  if constexpr (kBase == 1) {
    t1 = r * b.ihi;
    t2 = __builtin_fma(r, b.ihi, -t1);
  } else if constexpr (kBase == 2) {
    t1 = r * b.ihi;
    t2 = __builtin_fma(kd, b.klo, __builtin_fma(r, b.ihi, -t1));
  }
  const double w = __builtin_fma(kd, b.khi, logc);  // exact
  const double hi = w + t1;
  const double lo = ((w - hi) + t1) + t2;
  const double r2 = r * r, r4 = r2 * r2;
  const double q0 = __builtin_fma(r2, __builtin_fma(r, c[3], c[2]), __builtin_fma(r, c[1], c[0]));
  const double q1 = __builtin_fma(r4, c[8], __builtin_fma(r2, __builtin_fma(r, c[7], c[6]), __builtin_fma(r, c[5], c[4])));
  const double p = __builtin_fma(r4, q1, q0);
  return hi + __builtin_fma(r2, p, lo);
}

// log_b of a positive normal x; drop is subtracted from k (a denormal scaled up, as log_normal's).
template <int kBase>
TG_VMATH_INLINE double log_table(double x, int32_t drop = 0) {
  const uint64_t ix = double_to_bits(x), tmp = ix - kLogTableOff;
  const int i = static_cast<int>((tmp >> 48) & 15);
  const double kd = static_cast<double>((static_cast<int64_t>(tmp) >> 52) - drop);
  const double z = bits_to_double(ix - (tmp & 0xfff0000000000000ull));
  const double r = __builtin_fma(z, kLogTables[kBase].invc[i], -1.0);
  return log_table_finish<kBase>(r, kd, kLogTables[kBase].logc[i]);
}

// log_b for every x, from log_table: denormals scaled up by 2^54 first; 0 gives -inf, negatives
// and NaN give NaN, inf gives inf.
template <int kBase>
TG_VMATH_INLINE double log_table_any(double x) {
  const bool sub = x < std::numeric_limits<double>::min();
  const double y = log_table<kBase>(sub ? x * 18014398509481984.0 : x, sub ? 54 : 0);
  const double inf = std::numeric_limits<double>::infinity();
  const double pos = x == inf ? inf : y;
  const double nonneg = x == 0.0 ? -inf : pos;
  return x >= 0.0 ? nonneg : std::numeric_limits<double>::quiet_NaN();  // NaN and x < 0
}

// log(1 + u) for u in [0, 1] (softplus's log1p(exp(-|z|))): w = 1 + u rounded, log(w) plus the
// first-order correction of that rounding, c / w with c = u - (w - 1). |c| is at most half an ulp
// of w, so 1 / w is taken as the line 1.5 - w / 2 through (1, 1) and (2, 1/2) (off by at most 12%
// of c, a fifth of an ulp of the result, and without a division); exact to a rounding for tiny u
// (w = 1: log(w) = 0 and the correction is u). NaN stays NaN.
template <typename T>
TG_VMATH_INLINE T log1p_unit(T u) {
  const T w = T(1) + u;  // in [1, 2], or NaN (carried by the correction)
  return log_normal(w) + (u - (w - T(1))) * (T(1.5) - T(0.5) * w);
}

// erf(x): float: Cephes' erff polynomial x P(x^2) below |x| = 1 (within an ulp), and
// 1 - erfc(|x|) above it by Abramowitz-Stegun 7.1.26 (absolute error below 1.5e-7, the formula
// PyTorch's vectorised float erf uses) with erfc's exp(-x^2) computed as exp of a clamped
// argument; +-1 beyond |x| = 4 (erf rounds to +-1 in float from 3.9). double: below.
//
// One comparison (|x| < 1): |x|, the clamp at 4 and x's sign on the large branch are bit
// operations, exp(-a^2) for a in [0, 4] needs none of exp's range cases, and a NaN x fails the
// comparison into the small branch, x P(x^2), which is NaN. Each compare issues on one port on
// Intel cores: the six this took made it 0.61 ms for 1e6 floats, against PyTorch's 0.48.
TG_VMATH_INLINE float erf(float x) {
  const uint32_t sign = float_to_bits(x) & 0x80000000u;
  const uint32_t ab = float_to_bits(x) ^ sign;
  const float z = x * x;
  float p = 7.853861353153693e-5f;
  p = p * z - 8.010193625184903e-4f;
  p = p * z + 5.188327685732524e-3f;
  p = p * z - 2.685381193529856e-2f;
  p = p * z + 1.128358514861418e-1f;
  p = p * z - 3.761262582423300e-1f;
  p = p * z + 1.128379165726710e+0f;
  const float small = x * p;
  const float ac = bits_to_float(ab < 0x40800000u ? ab : 0x40800000u);  // min(|x|, 4); NaN: 4
  const float t = 1.0f / (1.0f + 0.3275911f * ac);
  const float poly =
      t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
  // exp(-ac^2), ac^2 <= 16: 2^n p with n >= -24, a normal float (exp_nonpos's value there)
  const float a2 = -(ac * ac);
  const float fm = a2 * 1.44269504088896341f + 12582912.0f;
  const float e = bits_to_float(float_to_bits(exp_reduced(a2, fm - 12582912.0f)) + ((float_to_bits(fm) - 0x4B400000u) << 23));
  const float large = bits_to_float(float_to_bits(1.0f - poly * e) | sign);
  return bits_to_float(ab) >= 1.0f ? large : small;
}

// tanh for double from expm1 (its own accuracy near 0, where 1 - 2 / (e^2x + 1) cancels):
// tanh|x| = -em / (em + 2) for em = expm1(-2|x|) in [-1, 0], within 2 ulp (tested against numpy);
// x's sign put back on the bits, so +-0 keep theirs, and NaN stays NaN through expm1. Where this
// was the C library's tanh, 1e6 doubles took 1.5 ms on one thread (PyTorch's 1.36).
TG_VMATH_INLINE double tanh(double x) {
  const uint64_t sign = double_to_bits(x) & 0x8000000000000000ull;
  const double em = expm1_nonpos(-2.0 * bits_to_double(double_to_bits(x) ^ sign));
  const double t = em / (em + 2.0);  // in [-1, 0]
  return bits_to_double((double_to_bits(t) & 0x7fffffffffffffffull) | sign);
}

// exp(hi + lo) for |lo| far below 1 and hi + lo <= 0 or NaN: exp_d with the argument in two
// parts, so that its reduction r = (hi - n ln2_hi) + (lo - n ln2_lo) keeps lo's bits (hi - n
// ln2_hi is exact where hi's last bit is 2^-43 or above, as for the z^2 of erfc_mid and
// erfc_tail below). exp_d's zero path below -745.2, its 2^n in two factors for denormal results.
TG_VMATH_INLINE double exp_d2(double hi, double lo) {
  const double s = hi + lo;
  const bool zero = s < -745.2;
  const double h = zero ? 0.0 : hi, l = zero ? 0.0 : lo;
  const double fm = (h + l) * 1.4426950408889634074 + 6755399441055744.0;
  const double n = fm - 6755399441055744.0;
  const double r = (h - n * 6.93147180369123816490e-01) + (l - n * 1.90821492927058770002e-10);
  // 1 + r + r^2 (1/2! + r/3! + ... + r^11/13!), the sum in four chains of r^4 (Estrin's scheme:
  // erf's loop waited on the latency of one chain of 11)
  const double r2 = r * r, r4 = r2 * r2;
  const double c0 = (r4 * (1.0 / 3628800.0) + 1.0 / 720.0) * r4 + 1.0 / 2.0;
  const double c1 = (r4 * (1.0 / 39916800.0) + 1.0 / 5040.0) * r4 + 1.0 / 6.0;
  const double c2 = (r4 * (1.0 / 479001600.0) + 1.0 / 40320.0) * r4 + 1.0 / 24.0;
  const double c3 = (r4 * (1.0 / 6227020800.0) + 1.0 / 362880.0) * r4 + 1.0 / 120.0;
  const double p = ((c0 + r * c1) + r2 * (c2 + r * c3)) * r2 + r + 1.0;
  const int64_t ni = static_cast<int64_t>(double_to_bits(fm) - double_to_bits(6755399441055744.0));
  const int64_t n1 = ni >> 1, n2 = ni - n1;
  const double y = p * bits_to_double(static_cast<uint64_t>(n1 + 1023) << 52) *
                   bits_to_double(static_cast<uint64_t>(n2 + 1023) << 52);
  return zero ? 0.0 : y;
}

// erfc(x) for x from 6 (fdlibm's s_erf.c beyond 1 / 0.35, as musl's): exp(-z^2 - 0.5625 +
// (z - x)(z + x) + R(w) / S(w)) / x for w = 1 / x^2 and z = x with its low 32 bits cleared (z^2
// exact), x capped at 28 (erfc is 0 there), fdlibm's two exps as one of the two-part argument
// (exp_d2); within an ulp.
TG_VMATH_INLINE double erfc_tail(double x) {
  const double a = x < 28.0 ? x : 28.0;
  const double inv = 1.0 / a, w = inv * inv;
  const double r = -9.86494292470009928597e-03 +
                   w * (-7.99283237680523006574e-01 +
                        w * (-1.77579549177547519889e+01 +
                             w * (-1.60636384855821916062e+02 +
                                  w * (-6.37566443368389627722e+02 +
                                       w * (-1.02509513161107724954e+03 + w * -4.83519191608651397019e+02)))));
  const double s = 1.0 + w * (3.03380607434824582924e+01 +
                              w * (3.25792512996573918826e+02 +
                                   w * (1.53672958608443695994e+03 +
                                        w * (3.19985821950859553908e+03 +
                                             w * (2.55305040643316442583e+03 +
                                                  w * (4.74528541206955367215e+02 + w * -2.24409524465858183362e+01))))));
  const double z = bits_to_double(double_to_bits(a) & 0xffffffff00000000ull);
  return exp_d2(-z * z - 0.5625, (z - a) * (z + a) + r / s) * inv;
}

// log(e^(t^2) erfc(t)) for t in [0.84375, 6]: a polynomial of degree 24 in t - 3 (Chebyshev
// interpolation in 50-digit arithmetic, then monomials; largest error 4.4e-16, rounding included).
TG_VMATH_INLINE double log_erfcx_mid(double t) {
  // in four interleaved chains of w = v^4 (Estrin's scheme): one chain of 24 dependent
  // multiply-adds made the loop wait on their latency (erf 2.8 ns an element in L1, AVX-512)
  const double v = t - 3.0, v2 = v * v, w = v2 * v2;
  double p0 = 5.671770480907834e-19;
  p0 = p0 * w + 1.8394456139962277e-15;
  p0 = p0 * w + -1.3677522190051052e-12;
  p0 = p0 * w + -6.10377699348412e-10;
  p0 = p0 * w + 1.0693888809008526e-06;
  p0 = p0 * w + 0.001353310438014628;
  p0 = p0 * w + -1.7203630419811127;
  double p1 = -5.568624140941886e-16;
  p1 = p1 * w + 1.659400691700825e-13;
  p1 = p1 * w + 1.890657122161063e-10;
  p1 = p1 * w + -1.3617678274148138e-07;
  p1 = p1 * w + -0.0002456921337886833;
  p1 = p1 * w + -0.30375368900323424;
  double p2 = 1.0704037007187998e-16;
  p2 = p2 * w + -8.686002032087822e-15;
  p2 = p2 * w + -4.403052749681827e-11;
  p2 = p2 * w + 1.1460237749382523e-08;
  p2 = p2 * w + 4.3081791179146154e-05;
  p2 = p2 * w + 0.042605781198760885;
  double p3 = -1.1807465297165091e-17;
  p3 = p3 * w + -3.409597380128056e-15;
  p3 = p3 * w + 8.528102748291939e-12;
  p3 = p3 * w + 6.337668445811553e-10;
  p3 = p3 * w + -7.115465330889537e-06;
  p3 = p3 * w + -0.007411891795570584;
  return (p0 + v * p1) + v2 * (p2 + v * p3);
}

// exp(hi + lo) for hi + lo in [-40, 0] (erfc_mid's exponents): exp_d2's reduction and polynomial,
// without its zero path, and 2^n (n >= -58: p 2^n is a normal double) added to p's exponent field
// as in erf_3to6, where exp_d2's two factors and selects were a tenth of erfc's instructions.
TG_VMATH_INLINE double exp_d2_mid(double hi, double lo) {
  const double fm = (hi + lo) * 1.4426950408889634074 + 6755399441055744.0;
  const double n = fm - 6755399441055744.0;
  const double r = (hi - n * 6.93147180369123816490e-01) + (lo - n * 1.90821492927058770002e-10);
  const double r2 = r * r, r4 = r2 * r2;
  const double c0 = (r4 * (1.0 / 3628800.0) + 1.0 / 720.0) * r4 + 1.0 / 2.0;
  const double c1 = (r4 * (1.0 / 39916800.0) + 1.0 / 5040.0) * r4 + 1.0 / 6.0;
  const double c2 = (r4 * (1.0 / 479001600.0) + 1.0 / 40320.0) * r4 + 1.0 / 24.0;
  const double c3 = (r4 * (1.0 / 6227020800.0) + 1.0 / 362880.0) * r4 + 1.0 / 120.0;
  const double p = ((c0 + r * c1) + r2 * (c2 + r * c3)) * r2 + r + 1.0;
  const uint64_t scale = (double_to_bits(fm) - double_to_bits(6755399441055744.0)) << 52;  // n in the exponent
  return bits_to_double(double_to_bits(p) + scale);
}

// erfc(a) for a in [0.84375, 6]: exp(-a^2 + log_erfcx_mid(a)) with a^2 in two parts (z^2 exact
// for z = a with its low 32 bits cleared, and (a - z)(a + z)), so that the exponent's rounding
// stays that of log_erfcx_mid's value (below 2.3 in magnitude): within 3 ulp.
TG_VMATH_INLINE double erfc_mid(double a) {
  const double z = bits_to_double(double_to_bits(a) & 0xffffffff00000000ull);
  return exp_d2_mid(-(z * z), log_erfcx_mid(a) - (a - z) * (a + z));
}

// erf(x) / x - 1 for t = x^2 in [0, 1]: a polynomial of degree 12 in t (Chebyshev interpolation
// in 50-digit arithmetic, then monomials; largest error 1.9e-17 relative to erf(x) / x). As
// fdlibm's erf below 0.84375, erf = x + x Q keeps Q's rounding errors a tenth of x's ulp.
TG_VMATH_INLINE double erf_q_below1(double t) {
  double q = 5.957176147748911e-11;
  q = q * t - 1.1372848856791674e-09;
  q = q * t + 1.4659775274047436e-08;
  q = q * t - 1.6350312701054695e-07;
  q = q * t + 1.6461000484121368e-06;
  q = q * t - 1.4925595266831182e-05;
  q = q * t + 0.0001205533111164271;
  q = q * t - 0.000854832698083379;
  q = q * t + 0.0052239776248180145;
  q = q * t - 0.026866170645076792;
  q = q * t + 0.11283791670954879;
  q = q * t - 0.3761263890318375;
  q = q * t + 0.1283791670955126;
  return q;
}

// erfc(2 + v) for v in [-1, 1]: a polynomial of degree 22 (Chebyshev interpolation; largest error
// 3.3e-17, absolute, against erf's ulp of 1.1e-16 above 0.84, and the sum of its terms' magnitudes
// is 0.17: no cancellation). Even and odd powers in two chains of v^2 (one chain of 22 dependent
// multiply-adds made the loop wait on their latency).
TG_VMATH_INLINE double erfc_1to3(double v) {
  const double w = v * v;
  double e = 3.6069912868185266e-11;
  e = e * w + 2.3562040329196847e-09;
  e = e * w - 6.058201342356727e-08;
  e = e * w + 7.007439330003989e-07;
  e = e * w - 3.951392498012822e-06;
  e = e * w - 5.2298882520774305e-06;
  e = e * w + 0.000262802383804249;
  e = e * w - 0.0015910298215206851;
  e = e * w - 0.00045926634148048625;
  e = e * w + 0.0344449755901641;
  e = e * w + 0.04133397070818399;
  e = e * w + 0.004677734981047266;
  double o = -1.3609577816485311e-09;
  o = o * w + 1.6870181866292832e-08;
  o = o * w - 5.686777244023729e-08;
  o = o * w - 9.594273613602591e-07;
  o = o * w + 1.6244032539386257e-05;
  o = o * w - 0.00010376614601612563;
  o = o * w + 5.011846074575143e-05;
  o = o * w + 0.003378888065246;
  o = o * w - 0.013089090722889772;
  o = o * w - 0.04822296582626737;
  o = o * w - 0.020666985354091456;
  return e + v * o;
}

// erf for |x| < 3 (and NaN): x + x erf_q_below1(x^2) below |x| = 1, so erf(-x) = -erf(x) and
// erf(-0) = -0; 1 - erfc_1to3(|x| - 2) with x's sign above (|x| - 2 exact there). Within an ulp
// (tests/csrc/test_pointwise_kernels.py). The double kernel (pointwise.cpp) takes this alone for
// the groups of elements that are all below 3 (98% of standard normal ones). A NaN x fails the
// comparison into the small branch, and erfc_1to3's value is NaN.
TG_VMATH_INLINE double erf_below3(double x) {
  const uint64_t sign = double_to_bits(x) & 0x8000000000000000ull;
  const double ax = bits_to_double(double_to_bits(x) ^ sign);
  const double small = x + x * erf_q_below1(x * x);
  const double large = bits_to_double(double_to_bits(1.0 - erfc_1to3(ax - 2.0)) | sign);
  return ax < 1.0 ? small : large;
}

// erf(a) for a in [3, 6] (larger a taken as 6, where erf rounds to 1): 1 - erfc(a), and erfc(a)
// below 2.3e-5 there needs only an absolute error far below erf's ulp (2^-53 below 1): erfc(a) =
// exp(L(a) - a^2), L = log(e^(a^2) erfc(a)) by a polynomial of degree 12 in a - 4.5 (Chebyshev
// interpolation; erfc's absolute error from it below 2e-18), exp by Taylor's degree 11 on |r| <=
// ln2 / 2 (relative 7e-15) and 2^n for n in [-56, -15] put into the exponent field.
TG_VMATH_INLINE double erf_3to6(double a) {
  const double v = (a < 6.0 ? a : 6.0) - 4.5;
  double l = 3.557074125461757e-11;
  l = l * v - 3.658034356338338e-10;
  l = l * v + 2.935376443421565e-09;
  l = l * v - 2.2836243252743565e-08;
  l = l * v + 1.694841915862674e-07;
  l = l * v - 1.210352855956568e-06;
  l = l * v + 8.432036975683925e-06;
  l = l * v - 5.7982909346856585e-05;
  l = l * v + 0.0003994338405226801;
  l = l * v - 0.002825260864908224;
  l = l * v + 0.02163711034073506;
  l = l * v - 0.21240127528524289;
  l = l * v - 2.099768303435941;
  const double ac = v + 4.5;
  const double s = l - ac * ac;  // in [-38.5, -10.7]
  double fm, n;
  const double r = reduce_ln2_d(s, fm, n);
  double p = 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r * r + r + 1.0;
  const uint64_t scale = (double_to_bits(fm) - double_to_bits(6755399441055744.0)) << 52;  // n in the exponent
  return 1.0 - bits_to_double(double_to_bits(p) + scale);
}

// erf for double: erf_below3 below |x| = 3, erf_3to6(|x|) with x's sign above (+-1 from 5.93 and
// for +-inf); within an ulp of the exact value, no division. A NaN x fails the comparison into
// the large branch, and erf_below3's value is NaN. (The previous one, fdlibm's rational below
// 0.84375 and 1 - erfc above, took 2.2 times PyTorch's time for 1e6 doubles.)
TG_VMATH_INLINE double erf(double x) {
  const uint64_t sign = double_to_bits(x) & 0x8000000000000000ull;
  const double ax = bits_to_double(double_to_bits(x) ^ sign);
  const double large = bits_to_double(double_to_bits(erf_3to6(ax)) | sign);
  return ax >= 3.0 ? large : erf_below3(x);
}

// log(e^(a^2) erfc(a)) / a - kLogErfcxBelow3Hi for a in [0, 3]: a polynomial of degree 23 in
// v = a - 1.5 (scripts/vmath/erfc_poly.py: Chebyshev interpolation in 50-digit arithmetic, then
// monomials; a times its error below 3.9e-17), in four chains of v^4 as log_erfcx_mid. The
// constant term's leading part, kLogErfcxBelow3Hi (a multiple of 2^-20), stays out of the sum:
// erfc_below3 multiplies it by z (21 bits: exact) and exp_d3_mid adds that exactly, so that the
// exponent a K(a) is not rounded at its own ulp, nor K's rounding multiplied by a (the previous
// form, exp(-a^2 + a K(a)) with K whole, was up to 5.6 ulp off near 2.5).
constexpr double kLogErfcxBelow3Hi = -0.7563276290893555;

TG_VMATH_INLINE double log_erfcx_below3(double a) {
  const double v = a - 1.5, v2 = v * v, w = v2 * v2;
  double p0 = 7.393463076203638e-13;  // c20
  p0 = p0 * w + -2.9063354084405725e-11;
  p0 = p0 * w + -7.919697077412692e-09;
  p0 = p0 * w + 4.086329026508457e-06;
  p0 = p0 * w + -0.001602107331170757;
  p0 = p0 * w + -4.30611679672466e-07;  // c0 - kLogErfcxBelow3Hi
  double p1 = -8.808255430686916e-14;  // c21
  p1 = p1 * w + -8.709688206852137e-12;
  p1 = p1 * w + 4.55873291783141e-09;
  p1 = p1 * w + -1.1436626671386667e-06;
  p1 = p1 * w + 0.0002299270962043899;
  p1 = p1 * w + 0.16501817194767163;  // c1
  double p2 = -5.437013921013518e-14;  // c22
  p2 = p2 * w + 5.256852289902782e-12;
  p2 = p2 * w + -1.4370476709905362e-09;
  p2 = p2 * w + 2.1660319835597176e-07;
  p2 = p2 * w + -9.309194217035343e-06;
  p2 = p2 * w + -0.038439001708472934;  // c2
  double p3 = 1.541176247238003e-14;  // c23
  p3 = p3 * w + -2.0184360983098186e-12;
  p3 = p3 * w + 3.048326777243232e-10;
  p3 = p3 * w + -1.5996787715650377e-08;
  p3 = p3 * w + -8.776328773919273e-06;
  p3 = p3 * w + 0.008409907383219487;  // c3
  return (p0 + v * p1) + v2 * (p2 + v * p3);
}

// log(e^(a^2) erfc(a)) - kLogErfcx3to6Hi for a in [3, 6]: as log_erfcx_below3, degree 17 in
// v = a - 4.5 (largest error 2.1e-17), for erfc_to6 (GELU's erfc_mid keeps log_erfcx_mid).
constexpr double kLogErfcx3to6Hi = -2.099768303334713;

TG_VMATH_INLINE double log_erfcx_3to6(double a) {
  const double v = a - 4.5, v2 = v * v, w = v2 * v2;
  double p0 = -2.4046167186100017e-14;  // c16
  p0 = p0 * w + 3.606591202071989e-11;
  p0 = p0 * w + 1.6948751123232257e-07;
  p0 = p0 * w + 0.00039943384120608394;
  p0 = p0 * w + -1.0122778364072895e-10;  // c0 - kLogErfcx3to6Hi
  double p1 = 4.625704505950161e-15;  // c17
  p1 = p1 * w + -2.7740370340968894e-12;
  p1 = p1 * w + -2.2884466801752658e-08;
  p1 = p1 * w + -5.798295044336219e-05;
  p1 = p1 * w + -0.21240127528616162;  // c1
  double p2 = 4.0492090598013827e-14;  // c14
  p2 = p2 * w + 2.93326050523985e-09;
  p2 = p2 * w + 8.432034633032023e-06;
  p2 = p2 * w + 0.02163711034067945;  // c2
  double p3 = 5.343659221040282e-14;  // c15
  p3 = p3 * w + -3.478225195739362e-10;
  p3 = p3 * w + -1.2102893449269568e-06;
  p3 = p3 * w + -0.002825260853439138;  // c3
  return (p0 + v * p1) + v2 * (p2 + v * p3);
}

// exp(hi + c + lo) for hi = -z^2 of erfc's z (a = |x| with its low 32 bits cleared), c = z
// kLogErfcxBelow3Hi or kLogErfcx3to6Hi and hi + c + lo in [-40, 0]: exp_d2_mid with hi - n ln2_hi
// + c exact (z^2, z c and n ln2_hi on one grid, 2^-44 or finer where n = 0, and the sum below 4 in
// magnitude), so that only lo's own roundings reach the result (erfc within 2.1 ulp, tests/csrc).
TG_VMATH_INLINE double exp_d3_mid(double hi, double c, double lo) {
  const double fm = (hi + (c + lo)) * 1.4426950408889634074 + 6755399441055744.0;
  const double n = fm - 6755399441055744.0;
  const double r = ((hi - n * 6.93147180369123816490e-01) + c) + (lo - n * 1.90821492927058770002e-10);
  // 1 + r + r^2 G(r), G of degree 9 (Chebyshev interpolation of (e^r - 1 - r) / r^2 on |r| <= 0.35
  // in 50-digit arithmetic: exp's relative error 2e-17, where exp_d2_mid's Taylor polynomial of
  // degree 13 takes two multiply-adds more)
  const double r2 = r * r, r4 = r2 * r2;
  const double c0 = (r4 * 2.7621324269313687e-07 + 0.0013888888918918907) * r4 + 0.5000000000000001;
  const double c1 = (r4 * 2.5101335854788522e-08 + 0.00019841269864364933) * r4 + 0.16666666666666669;
  const double c2 = r4 * 2.4801518672268355e-05 + 0.04166666666662068;
  const double c3 = r4 * 2.7557266442353424e-06 + 0.008333333333329796;
  const double p = ((c0 + r * c1) + r2 * (c2 + r * c3)) * r2 + r + 1.0;
  const uint64_t scale = (double_to_bits(fm) - double_to_bits(6755399441055744.0)) << 52;  // n in the exponent
  return bits_to_double(double_to_bits(p) + scale);
}

// erfc for |x| < 3: e = erfc(|x|) = exp(-a^2 + a K(a)) for a = |x| and K = log_erfcx_below3 +
// kLogErfcxBelow3Hi, with a^2 and a kLogErfcxBelow3Hi in two parts each (z^2 and z
// kLogErfcxBelow3Hi exact for z = a with its low 32 bits cleared; (a - z)(a + z), (a - z) times it),
// 2 - e for negative x (e in (1, 2] there, so -0 gives 1). One polynomial and one exp: the double
// kernel (pointwise.cpp) takes this alone for the groups of elements all below 3 in magnitude (98%
// of standard normal ones), where the kernel before computed fdlibm's rational below 0.84375 and
// erfc_mid above for every element (1.6-1.8 times PyTorch's time for 1e6 doubles). Not for NaN
// (exp_d3_mid's 2^n is an integer add).
TG_VMATH_INLINE double erfc_below3(double x) {
  const uint64_t sign = double_to_bits(x) & 0x8000000000000000ull;
  const double a = bits_to_double(double_to_bits(x) ^ sign);
  const double z = bits_to_double(double_to_bits(a) & 0xffffffff00000000ull);
  // the selects (true for every a here) as in erfc_to6, so that both fuse (a - z)(a + z) into
  // the subtraction alike: the same bits
  const bool below = a < 3.0;
  const double l = below ? (a - z) * kLogErfcxBelow3Hi + a * log_erfcx_below3(a) : 0.0;
  const double c = below ? z * kLogErfcxBelow3Hi : kLogErfcx3to6Hi;
  const double e = exp_d3_mid(-(z * z), c, l - (a - z) * (a + z));
  return sign ? 2.0 - e : e;
}

// erfc for x <= 6 in the GELU kernels' form (rows.cpp, which compute it for every element): below
// |x| = 0.84375 fdlibm's forms with erf = x + x erf_q_below1(x^2) (a polynomial, where fdlibm's
// ratio's division cost a fifth of the time), erfc_mid (or 2 minus it for negative x, 2 exactly
// below -6) above. NaN fails the comparison into the large branch and stays NaN in the small one.
TG_VMATH_INLINE double erfc_upto6(double x) {
  const uint64_t sign = double_to_bits(x) & 0x8000000000000000ull;
  const uint64_t ab = double_to_bits(x) ^ sign;
  const double ac = bits_to_double(ab < 0x4018000000000000ull ? ab : 0x4018000000000000ull);
  const double e = erfc_mid(ac);
  const double large = sign ? 2.0 - e : e;
  const double q = erf_q_below1(x * x);
  const double small = x < 0.25 ? 1.0 - (x + x * q) : 0.5 - (x * q + (x - 0.5));
  return bits_to_double(ab) >= 0.84375 ? large : small;
}

// erfc_upto6, and fdlibm's erfc_tail beyond 6: the GELU kernels' erfc for every x (rows.cpp).
TG_VMATH_INLINE double erfc_upto6_or_tail(double x) { return x > 6.0 ? erfc_tail(x) : erfc_upto6(x); }

// erfc for x <= 6 and NaN: erfc_below3's value below |x| = 3 (its expression: the same bits,
// tests/csrc), exp(-a^2 + log_erfcx_3to6's L) (or 2 minus it for negative x, 2 exactly below -6)
// above, one exp of whichever exponent the element takes; NaN stays NaN.
TG_VMATH_INLINE double erfc_to6(double x) {
  const uint64_t sign = double_to_bits(x) & 0x8000000000000000ull;
  const uint64_t ab = double_to_bits(x) ^ sign;
  const double a = bits_to_double(ab < 0x4018000000000000ull ? ab : 0x4018000000000000ull);  // min(|x|, 6); NaN: 6
  const double z = bits_to_double(double_to_bits(a) & 0xffffffff00000000ull);
  const bool below = a < 3.0;
  const double l = below ? (a - z) * kLogErfcxBelow3Hi + a * log_erfcx_below3(a) : log_erfcx_3to6(a);
  const double c = below ? z * kLogErfcxBelow3Hi : kLogErfcx3to6Hi;
  const double e = exp_d3_mid(-(z * z), c, l - (a - z) * (a + z));
  const double y = sign ? 2.0 - e : e;
  return x != x ? x : y;
}

// erfc for every x: erfc_to6, and fdlibm's erfc_tail beyond 6 (to its underflow at 27.2).
TG_VMATH_INLINE double erfc(double x) { return x > 6.0 ? erfc_tail(x) : erfc_to6(x); }

// ---------------------------------------------------------------- sin, cos, tan
// The functions for |x| <= trig_max<T>() (below): x - q pi/2 for q = round(x 2/pi), in double
// with pi/2 in fdlibm's three parts (e_rem_pio2.c: pio2_1 and pio2_2 of 33
// bits, so that q pio2_1 and q pio2_2 are exact for |q| < 2^20; then pio2_2t), the kernel
// polynomials on |r| <= pi/4 (+ a rounding) with r's sign put back on the bits (so sin(-0) = -0),
// and q's low bits choosing sin or cos and the sign. Larger, infinite and NaN arguments are the
// caller's (pointwise.cpp takes the C library's value there, as numpy's SIMD loops do).
constexpr double kTrigMax = 1.6e6;  // below 2^20 pi/2

// x - n pi/2 for an integer n, |n| < 2^20, accurate to about an ulp of the result.
TG_VMATH_INLINE double minus_pio2_times(double x, double n) {
  return ((x - n * 1.57079632673412561417e+00) - n * 6.07710050630396597660e-11) - n * 2.02226624879595063154e-21;
}

// r = x - q pi/2, accurate to about an ulp of r; q's low bits in q.
TG_VMATH_INLINE double reduce_pio2(double x, uint64_t& q) {
  const double fm = x * 6.36619772367581382433e-01 + 6755399441055744.0;  // 1.5 * 2^52 + q
  q = double_to_bits(fm);
  return minus_pio2_times(x, fm - 6755399441055744.0);
}

// sin and cos of a in [0, pi/4] (+ a rounding): fdlibm's k_sin.c and k_cos.c (as musl's __sin and
// __cos) without the argument's tail, within an ulp.
TG_VMATH_INLINE double sin_kernel(double a) {
  const double z = a * a, w = z * z;
  const double r = 8.33333333332248946124e-03 + z * (-1.98412698298579493134e-04 + z * 2.75573137070700676789e-06) +
                   z * w * (-2.50507602534068634195e-08 + z * 1.58969099521155010221e-10);
  return a + z * a * (-1.66666666666666324348e-01 + z * r);
}

TG_VMATH_INLINE double cos_kernel(double a) {
  const double z = a * a, w = z * z;
  const double r = z * (4.16666666666666019037e-02 + z * (-1.38888888888741095749e-03 + z * 2.48015872894767294178e-05)) +
                   w * w * (-2.75573143513906633035e-07 + z * (2.08757232129817482790e-09 + z * -1.13596475577881948265e-11));
  const double hz = 0.5 * z, w1 = 1.0 - hz;
  return w1 + (((1.0 - w1) - hz) + z * r);
}

// Cephes' sinf and cosf polynomials (within an ulp on [0, pi/4]), for float.
TG_VMATH_INLINE float sin_kernel(float a) {
  const float z = a * a;
  return a + ((-1.9515295891e-4f * z + 8.3321608736e-3f) * z - 1.6666654611e-1f) * z * a;
}

TG_VMATH_INLINE float cos_kernel(float a) {
  const float z = a * a;
  return ((2.443315711809948e-5f * z - 1.388731625493765e-3f) * z + 4.166664568298827e-2f) * z * z - 0.5f * z + 1.0f;
}

template <typename T>
using TrigBits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;

template <typename T>
TG_VMATH_INLINE T bits_to(TrigBits<T> u) {
  T f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

template <typename T>
TG_VMATH_INLINE TrigBits<T> to_bits(T f) {
  TrigBits<T> u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

// The largest |x| that trig takes (the caller's C library beyond).
template <typename T>
constexpr T trig_max() { return T(kTrigMax); }

// kFn: 0 sin, 1 cos, 2 tan (as sin / cos, or -cos / sin in the odd quadrants: within 3 ulp in
// double, 4 in float), for |x| <= trig_max<T>(). float reduces in double (exact to float's
// precision below kTrigMax, with or without fused multiply-adds: reducing in float, 0.25 against
// 0.45 ns an element in L1, was 8-15 ulp off near multiples of pi/2 on the baseline ISA). The
// float kernels take sin_cos_float (below) for sin and cos up to 200, sin_cos_f beyond, this one
// for tan.
template <int kFn, typename T>
TG_VMATH_INLINE T trig(T x) {
  using U = TrigBits<T>;
  constexpr int kShift = 8 * sizeof(T) - 2;  // q's bit 1 to the sign bit
  constexpr U kSign = U(1) << (8 * sizeof(T) - 1);
  uint64_t q;
  const T r = static_cast<T>(reduce_pio2(static_cast<double>(x), q));
  const U rs = to_bits(r) & kSign;
  const T a = bits_to<T>(to_bits(r) ^ rs);
  const T s = bits_to<T>(to_bits(sin_kernel(a)) | rs), c = cos_kernel(a);
  const bool odd = (q & 1) != 0;
  if constexpr (kFn == 0) {
    return bits_to<T>(to_bits(odd ? c : s) ^ (static_cast<U>(q & 2) << kShift));
  } else if constexpr (kFn == 1) {
    return bits_to<T>(to_bits(odd ? s : c) ^ (static_cast<U>((q + 1) & 2) << kShift));
  } else {
    return (odd ? -c : s) / (odd ? s : c);
  }
}

// sin (kFn 0) or cos (kFn 1) of a float with |x| <= trig_max, in double and rounded once to float:
// the correctly rounded value but where the exact one lies within about 2^-17 ulp of a midpoint
// between floats (checked over all floats below trig_max: see tests/csrc), so within an ulp of
// numpy's and PyTorch's everywhere. One polynomial instead of trig's two and a select: x = r +
// n pi (sin) or r + (n + 1/2) pi (cos) with r in [-pi/2, pi/2] (x - q pi/2 for q = 2n or 2n + 1,
// minus_pio2_times: exact to double precision for q < 2^20), sin x = (-1)^n sin r and cos x =
// (-1)^(n+1) sin r, sin r = r (1 + r^2 P(r^2)) with P of degree 5 (Chebyshev interpolation in 40-digit
// arithmetic: relative error 2e-13, 2^-42). The session-19 float kernel (float polynomials on r
// rounded to float) was up to 3 ulp from numpy, which moved the DDPM port's sinusoidal embedding
// past its float32 tolerance against PyTorch.
template <int kFn>
TG_VMATH_INLINE float sin_cos_f(float xf) {
  const double x = xf;
  // 1.5 * 2^52 + n: round(x / pi) for sin, round(x / pi - 1/2) for cos
  const double fm = (kFn == 0 ? x * 0.318309886183790671538 : x * 0.318309886183790671538 - 0.5) + 6755399441055744.0;
  const double n = fm - 6755399441055744.0;
  const double r = minus_pio2_times(x, kFn == 0 ? n + n : n + n + 1.0);
  const double z = r * r;
  double p = 1.550250902793809e-10;
  p = p * z - 2.5036745008428295e-08;
  p = p * z + 2.755712317437327e-06;
  p = p * z - 0.0001984126870905615;
  p = p * z + 0.008333333330940365;
  p = p * z - 0.16666666666658467;
  const double s = r * (p * z + 1.0);  // r times a positive factor: sin(-0) = -0 (r + r z p gives +0)
  // n's parity is fm's last bit: to the sign bit (cos: the opposite parity)
  const uint64_t flip = (kFn == 0 ? double_to_bits(fm) : ~double_to_bits(fm)) << 63;
  return static_cast<float>(bits_to_double(double_to_bits(s) ^ flip));
}

// sin (kFn 0) or cos (kFn 1) of a float with |x| <= kSinCosFloatMax, in float arithmetic: twice as
// many elements a vector as sin_cos_f's doubles (0.26 against 0.39 ns an element in L1, AVX-512),
// within 0.85 ulp of the exact value (over all floats up to 200: sin 0.840, cos 0.849, in the
// AVX-512 and the baseline builds alike; 0.3% not correctly rounded; the baseline build's bits
// differ from the AVX builds' on 1 in 75,000). x - n pi/2 for n = round(x 2/pi), |n| < 2^7,
// Cody-Waite with pi/2 in four parts: the first two (17 and 7 bits, to 2^-23) leave t = x - n (C1 +
// C2) exact, the third (16 bits) makes an exact product c3 that Fast2Sum subtracts into rh + rl
// (exact also where |t| < |c3|: t - c3 then fits in 24 bits), the fourth goes into rl. Every
// product before rl is exact, so fused multiply-adds (the AVX builds contract them) change nothing
// there. Then Cephes' sinf and cosf polynomials on |rh| <= pi/4 with rl's first-order terms, sin(rh
// + rl) = rh + rh z S(z) + rl (1 - z/2) and cos(rh + rl) = 1 - z/2 + z^2 C(z) - rh rl, 1 - z/2 as
// fdlibm's w + ((1 - w) - z/2) (z = rh^2); n's low bits (+ 1 for cos) choose and sign them. sin(-0)
// = -0 by a select.
constexpr float kSinCosFloatMax = 200.0f;  // below 2^7 pi/2

template <int kFn>
TG_VMATH_INLINE float sin_cos_float(float x) {
  const float fm = x * 0.636619772367581343f + 12582912.0f;  // 1.5 * 2^23 + n
  const float n = fm - 12582912.0f;
  const float t = (x - n * 0x1.921fp0f) - n * 0x1.68p-17f;
  const float c3 = n * 0x1.4442p-24f;
  const float rh = t - c3;
  const float rl = ((t - rh) - c3) - n * 0x1.a308d4p-41f;
  const float z = rh * rh, hz = 0.5f * z, w = 1.0f - hz;
  float s = -1.9515295891e-4f;
  s = s * z + 8.3321608736e-3f;
  s = s * z - 1.6666654611e-1f;
  const float sv = rh + ((rh * z) * s + rl * w);
  float c = 2.443315711809948e-5f;
  c = c * z - 1.388731625493765e-3f;
  c = c * z + 4.166664568298827e-2f;
  const float cv = w + (((1.0f - w) - hz) + ((z * z) * c - rh * rl));
  const uint32_t q = float_to_bits(fm) + kFn;  // n + kFn in its low bits: odd takes cos, bit 1 the sign
  const float v = (q & 1) ? cv : sv;
  const float y = bits_to_float(float_to_bits(v) ^ ((q & 2u) << 30));
  return kFn == 0 && x == 0.0f ? x : y;
}

#undef TG_VMATH_INLINE

}  // namespace vmath
}  // namespace tapegrad

// Branch-free float exp, sigmoid and tanh that vectorise inside `omp simd` loops (the special
// cases are selects, not branches), for kernels that apply them per element. Built with
// -fno-trapping-math (CMakeLists.txt) so that the selects vectorise.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

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
TG_VMATH_INLINE float exp(float x) {
  // Below -103.97 the result is 0 (the select at the end); the polynomial then runs on 0 rather
  // than on the clamp, because a denormal intermediate (2^-150) costs a ~150-cycle microcode
  // assist per vector on Intel CPUs, and masked scores (-inf) are half of a causal softmax.
  float xc = x < -103.972084045410156f ? 0.0f : x;
  xc = xc > 88.8f ? 88.8f : xc;
  xc = xc == xc ? xc : 0.0f;  // NaN never reaches the int cast
  const float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float p = exp_reduced(xc, n);
  const int32_t ni = static_cast<int32_t>(n), n1 = ni >> 1, n2 = ni - n1;
  const float y = p * bits_to_float(static_cast<uint32_t>(n1 + 127) << 23) *
                  bits_to_float(static_cast<uint32_t>(n2 + 127) << 23);
  const float big = x > 88.72283935546875f ? std::numeric_limits<float>::infinity() : y;
  const float out = x < -103.972084045410156f ? 0.0f : big;
  return x != x ? x : out;
}

TG_VMATH_INLINE double exp(double x) { return std::exp(x); }

// 1 / (1 + exp(-x)): exp(-x) overflowing to inf gives 0, as it should.
template <typename T>
TG_VMATH_INLINE T sigmoid(T x) {
  return T(1) / (T(1) + exp(-x));
}

// tanh within a few ulp: Cephes' odd polynomial below |x| = 0.625 (where 1 - 2 / (e^2x + 1)
// would cancel), 1 - 2 / (e^2|x| + 1) with x's sign above; NaN stays NaN.
TG_VMATH_INLINE float tanh(float x) {
  const float a = x < 0.0f ? -x : x, z = x * x;  // selects, not fabs/copysign: those stay scalar at SSE2
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  const float small = p * z * x + x;
  const float t = 1.0f - 2.0f / (exp(2.0f * a) + 1.0f);
  const float large = x < 0.0f ? -t : t;
  return a < 0.625f ? small : large;
}

TG_VMATH_INLINE double tanh(double x) { return std::tanh(x); }

#undef TG_VMATH_INLINE

}  // namespace vmath
}  // namespace tapegrad

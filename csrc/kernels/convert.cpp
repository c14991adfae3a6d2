// float32 <-> float16 / bfloat16 (convert.h). float16 goes through F16C's vcvtps2ph / vcvtph2ps
// (eight lanes an instruction; round to nearest even as numpy), bfloat16 through integer
// arithmetic the compiler vectorises. NaN lanes, rare, are redone by the scalar reference, which
// gives numpy's and ml_dtypes' NaN bits where the instructions would quiet a signalling NaN.
#include "kernels/convert.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/cpu.h"
#include "kernels/parallel.h"
#include "kernels/vmath.h"

namespace tapegrad {
namespace {

bool f16c() {
  static const bool has = cpu_isa() >= Isa::avx2 && __builtin_cpu_supports("f16c");
  return has;
}

bool avx512bw() {
  static const bool has = cpu_isa() >= Isa::avx512 && __builtin_cpu_supports("avx512bw");
  return has;
}

// bfloat16: the loops the compiler vectorises, built for the baseline and for AVX2.
template <int>
inline __attribute__((always_inline)) void to_bf16_body(const float* x, uint16_t* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    uint32_t u;
    std::memcpy(&u, x + i, 4);
    const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    const uint32_t nan = ((u >> 16) & 0x8000u) | 0x7fc0u;
    y[i] = uint16_t((u & 0x7fffffffu) > 0x7f800000u ? nan : rounded);
  }
}

template <int>
inline __attribute__((always_inline)) void from_bf16_body(const uint16_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t u = uint32_t(x[i]) << 16;
    std::memcpy(y + i, &u, 4);
  }
}

void to_bf16_base(const float* x, uint16_t* y, int64_t n) { to_bf16_body<0>(x, y, n); }
__attribute__((target("avx2"))) void to_bf16_avx2(const float* x, uint16_t* y, int64_t n) {
  to_bf16_body<1>(x, y, n);
}
// AVX-512 (BW for the 32 -> 16-bit narrowing, vpmovdw): float32 -> bfloat16 of 1e6 elements 0.27
// -> 0.23 ms on one thread, and _binary_half's bfloat16 multiply of 1e6 (its blocks in L1) 0.40 ->
// 0.36 ms on one thread, 0.22 -> 0.14 on two; the same integer arithmetic, so the same bits.
#define TG_CONVERT_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,prefer-vector-width=512")))
TG_CONVERT_AVX512 void to_bf16_avx512(const float* x, uint16_t* y, int64_t n) { to_bf16_body<2>(x, y, n); }
TG_CONVERT_AVX512 void from_bf16_avx512(const uint16_t* x, float* y, int64_t n) { from_bf16_body<2>(x, y, n); }
void from_bf16_base(const uint16_t* x, float* y, int64_t n) { from_bf16_body<0>(x, y, n); }
__attribute__((target("avx2"))) void from_bf16_avx2(const uint16_t* x, float* y, int64_t n) {
  from_bf16_body<1>(x, y, n);
}

__attribute__((target("avx2,f16c"))) void to_f16_f16c(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
    if (_mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)))
      for (int64_t j = i; j < i + 8; ++j) y[j] = float_to_half_bits(vmath::float_to_bits(x[j]), Half::f16);
  }
  for (; i < n; ++i) y[i] = float_to_half_bits(vmath::float_to_bits(x[i]), Half::f16);
}

__attribute__((target("avx2,f16c"))) void from_f16_f16c(const uint16_t* x, float* y, int64_t n) {
  const __m128i abs_mask = _mm_set1_epi16(0x7fff), inf = _mm_set1_epi16(0x7c00);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i));
    _mm256_storeu_ps(y + i, _mm256_cvtph_ps(h));
    if (_mm_movemask_epi8(_mm_cmpgt_epi16(_mm_and_si128(h, abs_mask), inf)))
      for (int64_t j = i; j < i + 8; ++j) y[j] = vmath::bits_to_float(half_to_float_bits(x[j], Half::f16));
  }
  for (; i < n; ++i) y[i] = vmath::bits_to_float(half_to_float_bits(x[i], Half::f16));
}

// The AVX-512 builds' float16 conversions: 16 lanes an instruction, where to_f16_f16c and
// from_f16_f16c take 8 (every 16-bit op through map_half widens and rounds each block: float16 exp
// of 1e6 elements on one thread 0.49 -> 0.45 ms); the same instructions, so the same bits, NaN lanes
// redone by the scalar reference as there.
TG_CONVERT_AVX512 __attribute__((target("f16c"))) void to_f16_avx512(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
    if (_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q))
      for (int64_t j = i; j < i + 16; ++j) y[j] = float_to_half_bits(vmath::float_to_bits(x[j]), Half::f16);
  }
  to_f16_f16c(x + i, y + i, n - i);
}

TG_CONVERT_AVX512 __attribute__((target("f16c"))) void from_f16_avx512(const uint16_t* x, float* y, int64_t n) {
  const __m256i abs_mask = _mm256_set1_epi16(0x7fff), inf = _mm256_set1_epi16(0x7c00);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i));
    _mm512_storeu_ps(y + i, _mm512_cvtph_ps(h));
    if (_mm256_movemask_epi8(_mm256_cmpgt_epi16(_mm256_and_si256(h, abs_mask), inf)))
      for (int64_t j = i; j < i + 16; ++j) y[j] = vmath::bits_to_float(half_to_float_bits(x[j], Half::f16));
  }
  from_f16_f16c(x + i, y + i, n - i);
}

// sqrt of 16-bit values (sqrt_half): each vector widened, its float32 square root, rounded back,
// all in registers. map_half ran the three as passes over a block through L1 one after another
// (widen, the float32 kernel, round); here the conversions overlap vsqrtps, which sets the pace:
// 1e6 elements on one thread, float16 0.42 -> 0.27 ms, bfloat16 0.46 -> 0.33 (PyTorch 0.25, 0.30).
// The same float32 root rounded once, so the same bits; a NaN lane is rounded again by the scalar
// reference, as to_f16_f16c does.
__attribute__((target("avx2,f16c"))) void sqrt_f16_f16c(const uint16_t* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_sqrt_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i))));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
    if (_mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q))) {
      alignas(32) float t[8];
      _mm256_store_ps(t, v);
      for (int j = 0; j < 8; ++j) y[i + j] = float_to_half_bits(vmath::float_to_bits(t[j]), Half::f16);
    }
  }
  for (; i < n; ++i) {
    const float v = __builtin_sqrtf(vmath::bits_to_float(half_to_float_bits(x[i], Half::f16)));
    y[i] = float_to_half_bits(vmath::float_to_bits(v), Half::f16);
  }
}

TG_CONVERT_AVX512 __attribute__((target("f16c"))) void sqrt_f16_avx512(const uint16_t* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_sqrt_ps(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i))));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
    if (_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q)) {
      alignas(64) float t[16];
      _mm512_store_ps(t, v);
      for (int j = 0; j < 16; ++j) y[i + j] = float_to_half_bits(vmath::float_to_bits(t[j]), Half::f16);
    }
  }
  sqrt_f16_f16c(x + i, y + i, n - i);
}

// bfloat16: the widening shift, the root and to_bf16_body's rounding in one loop the compiler
// vectorises.
template <int>
inline __attribute__((always_inline)) void sqrt_bf16_body(const uint16_t* x, uint16_t* y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t u = vmath::float_to_bits(__builtin_sqrtf(vmath::bits_to_float(uint32_t(x[i]) << 16)));
    const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    const uint32_t nan = ((u >> 16) & 0x8000u) | 0x7fc0u;
    y[i] = uint16_t((u & 0x7fffffffu) > 0x7f800000u ? nan : rounded);
  }
}
void sqrt_bf16_base(const uint16_t* x, uint16_t* y, int64_t n) { sqrt_bf16_body<0>(x, y, n); }
__attribute__((target("avx2"))) void sqrt_bf16_avx2(const uint16_t* x, uint16_t* y, int64_t n) {
  sqrt_bf16_body<1>(x, y, n);
}
TG_CONVERT_AVX512 void sqrt_bf16_avx512(const uint16_t* x, uint16_t* y, int64_t n) { sqrt_bf16_body<2>(x, y, n); }

// rsqrt of 16-bit values (rsqrt_half), AVX-512 only: vrsqrt14ps (relative error below 2^-14 by
// its specification) and one Newton step, y0 (1.5 - (x / 2) y0 y0), within 2^-22.3 of 1 / sqrt(x)
// (1.5 e0^2 and three roundings), where the float32 detour's 1 / sqrt(x) is within 2^-23: no
// 16-bit x has 1 / sqrt(x) within 2^-21.4 (float16) or 2^-17.8 (bfloat16) of a midpoint between two
// 16-bit numbers (tests/csrc/test_fused_half.py), so both round to the same 16-bit number, for every
// x. The division and the root cost twice the step: 1e6 float16 on one thread took 0.65 ms through
// map_half (PyTorch 0.45). +-0 and +inf keep y0 (+-inf, 0), where the step gives NaN; a vector
// holding a negative number, -inf or a NaN redoes those lanes by the scalar reference, as do the
// last n % 16 elements.
#define TG_RSQRT_AVX512 TG_CONVERT_AVX512 __attribute__((target("avx512dq,f16c")))
TG_RSQRT_AVX512 inline __attribute__((always_inline)) __m512 rsqrt_step(__m512 v) {
  const __m512 y0 = _mm512_rsqrt14_ps(v);
  const __m512 t = _mm512_fnmadd_ps(_mm512_mul_ps(_mm512_mul_ps(v, _mm512_set1_ps(0.5f)), y0), y0, _mm512_set1_ps(1.5f));
  return _mm512_mask_blend_ps(_mm512_fpclass_ps_mask(v, 0x02 | 0x04 | 0x08), _mm512_mul_ps(y0, t), y0);
}

uint16_t rsqrt_reference(uint16_t h, Half kind) {
  const float v = 1.0f / __builtin_sqrtf(vmath::bits_to_float(half_to_float_bits(h, kind)));
  return float_to_half_bits(vmath::float_to_bits(v), kind);
}

template <bool BF16>
TG_RSQRT_AVX512 void rsqrt_half_avx512(const uint16_t* x, uint16_t* y, int64_t n) {
  constexpr Half kind = BF16 ? Half::bf16 : Half::f16;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i));
    const __m512 v = BF16 ? _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)) : _mm512_cvtph_ps(h);
    const __m512 r = rsqrt_step(v);
    __m256i out;
    if constexpr (BF16) {  // to_bf16_body's rounding (no NaN here: those lanes are redone)
      const __m512i u = _mm512_castps_si512(r);
      const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
      out = _mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), odd), 16));
    } else {
      out = _mm512_cvtps_ph(r, _MM_FROUND_TO_NEAREST_INT);
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), out);
    // QNaN, SNaN, -inf, negative finite
    const __mmask16 odd = _mm512_fpclass_ps_mask(v, 0x01 | 0x80 | 0x10 | 0x40);
    if (odd) {
      alignas(32) uint16_t keep[16];
      _mm256_store_si256(reinterpret_cast<__m256i*>(keep), h);
      for (int j = 0; j < 16; ++j)
        if (odd >> j & 1) y[i + j] = rsqrt_reference(keep[j], kind);
    }
  }
  for (; i < n; ++i) y[i] = rsqrt_reference(x[i], kind);
}

// false: no fused loop for this build (the generic one's float16), map_half runs it.
bool sqrt_run(const uint16_t* x, uint16_t* y, int64_t n, Half kind) {
  if (kind == Half::bf16) {
    if (avx512bw()) sqrt_bf16_avx512(x, y, n);
    else if (cpu_isa() >= Isa::avx2) sqrt_bf16_avx2(x, y, n);
    else sqrt_bf16_base(x, y, n);
    return true;
  }
  if (!f16c()) return false;
  if (avx512bw()) sqrt_f16_avx512(x, y, n);
  else sqrt_f16_f16c(x, y, n);
  return true;
}

// neg / abs / relu on the bits (bits_half): 16-bit integer lanes, built for the baseline, AVX2 and
// AVX-512BW. A bfloat16 NaN result is the quiet NaN 0x7fc0 of its sign, as the float32 detour's
// rounding (ml_dtypes') makes it; a float16 one keeps its payload there too.
template <HalfBits Op, bool BF16>
inline __attribute__((always_inline)) void bits_body(const uint16_t* x, uint16_t* y, int64_t n) {
  constexpr uint16_t inf = BF16 ? 0x7f80 : 0x7c00;
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t h = x[i], a = uint16_t(h & 0x7fffu);
    const bool nan = a > inf, neg = (h & 0x8000u) != 0;
    uint16_t r;
    if constexpr (Op == HalfBits::neg) r = uint16_t(h ^ 0x8000u);
    else if constexpr (Op == HalfBits::abs) r = a;
    else r = neg && !nan ? uint16_t(0) : h;  // x > 0 || x != x ? x : +0
    if constexpr (BF16) r = nan ? uint16_t((r & 0x8000u) | 0x7fc0u) : r;
    y[i] = r;
  }
}

template <HalfBits Op, bool BF16>
void bits_base(const uint16_t* x, uint16_t* y, int64_t n) { bits_body<Op, BF16>(x, y, n); }
template <HalfBits Op, bool BF16>
__attribute__((target("avx2"))) void bits_avx2(const uint16_t* x, uint16_t* y, int64_t n) {
  bits_body<Op, BF16>(x, y, n);
}
template <HalfBits Op, bool BF16>
TG_CONVERT_AVX512 void bits_avx512(const uint16_t* x, uint16_t* y, int64_t n) {
  bits_body<Op, BF16>(x, y, n);
}

template <HalfBits Op, bool BF16>
void bits_run(const uint16_t* x, uint16_t* y, int64_t n) {
  if (avx512bw()) bits_avx512<Op, BF16>(x, y, n);
  else if (cpu_isa() >= Isa::avx2) bits_avx2<Op, BF16>(x, y, n);
  else bits_base<Op, BF16>(x, y, n);
}

template <HalfBits Op>
void bits_run(const uint16_t* x, uint16_t* y, int64_t n, Half kind) {
  if (kind == Half::bf16) bits_run<Op, true>(x, y, n);
  else bits_run<Op, false>(x, y, n);
}

void to_half_run(const float* x, uint16_t* y, int64_t n, Half kind) {
  if (kind == Half::bf16) {
    if (avx512bw()) to_bf16_avx512(x, y, n);
    else if (cpu_isa() >= Isa::avx2) to_bf16_avx2(x, y, n);
    else to_bf16_base(x, y, n);
  } else if (avx512bw() && f16c()) {
    to_f16_avx512(x, y, n);
  } else if (f16c()) {
    to_f16_f16c(x, y, n);
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = float_to_half_bits(vmath::float_to_bits(x[i]), Half::f16);
  }
}

void from_half_run(const uint16_t* x, float* y, int64_t n, Half kind) {
  if (kind == Half::bf16) {
    if (avx512bw()) from_bf16_avx512(x, y, n);
    else if (cpu_isa() >= Isa::avx2) from_bf16_avx2(x, y, n);
    else from_bf16_base(x, y, n);
  } else if (avx512bw() && f16c()) {
    from_f16_avx512(x, y, n);
  } else if (f16c()) {
    from_f16_f16c(x, y, n);
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = vmath::bits_to_float(half_to_float_bits(x[i], Half::f16));
  }
}

}  // namespace

uint16_t float_to_half_bits(uint32_t f, Half kind) {
  const uint32_t sign = (f >> 16) & 0x8000u, a = f & 0x7fffffffu;
  if (kind == Half::bf16) {
    if (a > 0x7f800000u) return uint16_t(sign | 0x7fc0u);  // ml_dtypes: the quiet NaN of the sign
    return uint16_t((f + 0x7fffu + ((f >> 16) & 1u)) >> 16);
  }
  if (a > 0x7f800000u) {  // numpy: the payload's top ten bits, kept a NaN
    const uint32_t m = (a & 0x7fffffu) >> 13;
    return uint16_t(sign | 0x7c00u | (m ? m : 1u));
  }
  if (a >= 0x47800000u) return uint16_t(sign | 0x7c00u);  // 2^16 and above (and inf): inf
  if (a < 0x38800000u) {  // below 2^-14: a subnormal half or zero. Adding 0.5 puts the half's
    // ten significand bits at the bottom of the float's, rounded to nearest even by the addition.
    const float r = vmath::bits_to_float(a) + 0.5f;
    return uint16_t(sign | (vmath::float_to_bits(r) - 0x3f000000u));
  }
  // rebias the exponent (127 -> 15) and round the 13 dropped bits to nearest even; a carry out
  // of the significand steps the exponent, up to inf for 65520 and above
  const uint32_t odd = (a >> 13) & 1u;
  return uint16_t(sign | ((a - 0x38000000u + 0xfffu + odd) >> 13));
}

uint32_t half_to_float_bits(uint16_t h, Half kind) {
  if (kind == Half::bf16) return uint32_t(h) << 16;
  const uint32_t sign = uint32_t(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0x1f) return sign | 0x7f800000u | (m << 13);  // inf, or a NaN with its payload (numpy's)
  if (e == 0) return sign | vmath::float_to_bits(float(m) * 0x1p-24f);  // zero or subnormal: exact
  return sign | ((uint32_t(h & 0x7fffu) << 13) + 0x38000000u);
}

void half_to_floats_block(const uint16_t* x, float* y, int64_t n, Half kind) { from_half_run(x, y, n, kind); }
void floats_to_half_block(const float* x, uint16_t* y, int64_t n, Half kind) { to_half_run(x, y, n, kind); }

void floats_to_half(const float* x, uint16_t* y, int64_t n, Half kind) {
  for_element_blocks(n, [&](int64_t i, int64_t len) { to_half_run(x + i, y + i, len, kind); });
}

void binary_half(int op, const uint16_t* a, float sa, const uint16_t* b, float sb, uint16_t* y, int64_t n,
                 Half kind) {
  for_element_blocks(n, [&](int64_t i, int64_t len) {
    float ta[kElementBlock], tb[kElementBlock];
    if (a) from_half_run(a + i, ta, len, kind);
    else std::fill_n(ta, len, sa);
    if (b) from_half_run(b + i, tb, len, kind);
    else std::fill_n(tb, len, sb);
    switch (op) {
      case 0: for (int64_t k = 0; k < len; ++k) ta[k] += tb[k]; break;
      case 1: for (int64_t k = 0; k < len; ++k) ta[k] -= tb[k]; break;
      case 2: for (int64_t k = 0; k < len; ++k) ta[k] *= tb[k]; break;
      default: for (int64_t k = 0; k < len; ++k) ta[k] /= tb[k]; break;
    }
    to_half_run(ta, y + i, len, kind);
  });
}

void bits_half(HalfBits op, const uint16_t* x, uint16_t* y, int64_t n, Half kind) {
  for_element_blocks(n, [&](int64_t i, int64_t len) {
    switch (op) {
      case HalfBits::neg: bits_run<HalfBits::neg>(x + i, y + i, len, kind); break;
      case HalfBits::abs: bits_run<HalfBits::abs>(x + i, y + i, len, kind); break;
      default: bits_run<HalfBits::relu>(x + i, y + i, len, kind); break;
    }
  });
}

bool sqrt_half(const uint16_t* x, uint16_t* y, int64_t n, Half kind) {
  if (kind == Half::f16 && !f16c()) return false;
  for_element_blocks(n, [&](int64_t i, int64_t len) { sqrt_run(x + i, y + i, len, kind); });
  return true;
}

bool rsqrt_half(const uint16_t* x, uint16_t* y, int64_t n, Half kind) {
  if (!avx512bw() || !__builtin_cpu_supports("avx512dq")) return false;
  for_element_blocks(n, [&](int64_t i, int64_t len) {
    if (kind == Half::bf16) rsqrt_half_avx512<true>(x + i, y + i, len);
    else rsqrt_half_avx512<false>(x + i, y + i, len);
  });
  return true;
}

void half_to_floats(const uint16_t* x, float* y, int64_t n, Half kind) {
  for_element_blocks(n, [&](int64_t i, int64_t len) { from_half_run(x + i, y + i, len, kind); });
}

}  // namespace tapegrad

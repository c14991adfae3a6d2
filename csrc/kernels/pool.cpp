// 2-D and 3-D max and average pooling (see pool.h for layouts and conventions).
#include "kernels/pool.h"

#include <algorithm>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/cpu.h"
#include "kernels/parallel.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace tapegrad {
namespace {

// Taps i in [lo, hi) of a window starting at `start` with dilation d that land in [0, n).
inline void tap_range(int64_t start, int64_t k, int64_t d, int64_t n, int64_t& lo, int64_t& hi) {
  lo = start >= 0 ? 0 : ceil_div(-start, d);
  hi = start >= n ? 0 : std::min(k, ceil_div(n - start, d));
  hi = std::max(hi, lo);
}

// avg_pool's window clipped to the input, and the divisor PyTorch uses for it.
struct AvgWindow {
  int64_t d0, d1, h0, h1, w0, w1, divisor;
  bool empty() const { return d0 >= d1 || h0 >= h1 || w0 >= w1; }
};

inline AvgWindow avg_window(const PoolShape& s, int64_t od, int64_t oh, int64_t ow, bool count_include_pad,
                            int64_t divisor_override) {
  int64_t d0 = od * s.sd - s.pd, h0 = oh * s.sh - s.ph, w0 = ow * s.sw - s.pw;
  int64_t d1 = std::min(d0 + s.kd, s.D + s.pd), h1 = std::min(h0 + s.kh, s.H + s.ph),
          w1 = std::min(w0 + s.kw, s.W + s.pw);
  const int64_t padded_size = (d1 - d0) * (h1 - h0) * (w1 - w0);
  d0 = std::max<int64_t>(d0, 0);
  h0 = std::max<int64_t>(h0, 0);
  w0 = std::max<int64_t>(w0, 0);
  d1 = std::min(d1, s.D);
  h1 = std::min(h1, s.H);
  w1 = std::min(w1, s.W);
  int64_t divisor = divisor_override > 0 ? divisor_override
                    : count_include_pad  ? padded_size
                                         : (d1 - d0) * (h1 - h0) * (w1 - w0);
  return {d0, d1, h0, h1, w0, w1, divisor};
}

// ---- max_pool fast path: no padding, no dilation, every window inside the input.
// Layout: one plane is D x H x W row-major; a window's taps are visited in (depth, row, column)
// order, and for each tap the whole block of up to kBlock outputs of one output row is updated
// with a compare and a select (no branches, so random data costs no mispredictions and the
// compiler vectorises over the outputs). What is kept per output is the winning tap's offset from
// the window's start, in an integer as wide as T so the select on it vectorises alongside the one
// on the value (int64 for float32 too when an offset can exceed INT32_MAX: kWideTap).
// The update rule is the general path's (strictly greater, or NaN), applied in the same order,
// and the first tap's value seeds the maximum: -inf > -inf is false, so an all -inf window
// keeps the first tap, as the general path does. Results are identical to it.
constexpr int64_t kBlock = 64;  // outputs per block: values and taps stay in L1
// Planes per thread chunk below which a fork costs more than it saves (elements read).
constexpr int64_t kParallelMinElems = 1 << 15;

template <typename T, int SW, bool kWideTap>  // SW > 0: the column stride known at compile time
inline __attribute__((always_inline)) void max_pool_plane_fast(const PoolShape& s, const T* xp, T* yp,
                                                               int64_t* ip) {
  using Tap = std::conditional_t<sizeof(T) == 4 && !kWideTap, int32_t, int64_t>;
  const int64_t sw = SW > 0 ? SW : s.sw, HW = s.H * s.W;
  T best[kBlock];
  Tap tap[kBlock];
  for (int64_t od = 0; od < s.Do; ++od) {
    for (int64_t oh = 0; oh < s.Ho; ++oh) {
      const int64_t rs = od * s.sd * HW + oh * s.sh * s.W;  // the row's first window
      for (int64_t ow0 = 0; ow0 < s.Wo; ow0 += kBlock) {
        const int64_t n = std::min(kBlock, s.Wo - ow0);
        const T* r = xp + rs + ow0 * sw;
        for (int64_t o = 0; o < n; ++o) {
          best[o] = r[o * sw];
          tap[o] = 0;
        }
        for (int64_t a = 0; a < s.kd; ++a)
          for (int64_t i = 0; i < s.kh; ++i)
            for (int64_t j = a == 0 && i == 0 ? 1 : 0; j < s.kw; ++j) {
              const int64_t off = a * HW + i * s.W + j;
              const T* q = r + off;
              const Tap tt = Tap(off);
              for (int64_t o = 0; o < n; ++o) {
                const T v = q[o * sw];
                const bool take = (v > best[o]) | (v != v);  // PyTorch: strictly greater, or NaN
                best[o] = take ? v : best[o];
                tap[o] = take ? tt : tap[o];
              }
            }
        const int64_t at = (od * s.Ho + oh) * s.Wo + ow0, base = rs + ow0 * sw;
        for (int64_t o = 0; o < n; ++o) {
          yp[at + o] = best[o];
          ip[at + o] = base + o * sw + int64_t(tap[o]);
        }
      }
    }
  }
}

template <typename T, int SW, bool kWideTap>
void max_pool_planes_generic(const PoolShape& s, const T* x, T* y, int64_t* idx, int64_t p0, int64_t p1) {
  const int64_t V = s.D * s.H * s.W, Vo = s.Do * s.Ho * s.Wo;
  for (int64_t p = p0; p < p1; ++p) max_pool_plane_fast<T, SW, kWideTap>(s, x + p * V, y + p * Vo, idx + p * Vo);
}

// Outputs [o0, Wo) of the output row whose first window starts at plane offset rs, one at a time
// (the vector kernels' remainders); the block loop's rule and tap order.
template <typename T>
void max_pool_row_tail(const PoolShape& s, const T* xp, int64_t rs, int64_t o0, T* y, int64_t* idx) {
  const int64_t HW = s.H * s.W;
  for (int64_t o = o0; o < s.Wo; ++o) {
    const int64_t w0 = rs + o * s.sw;
    T best = xp[w0];
    int64_t tap = 0;
    for (int64_t a = 0; a < s.kd; ++a)
      for (int64_t i = 0; i < s.kh; ++i)
        for (int64_t j = a == 0 && i == 0 ? 1 : 0; j < s.kw; ++j) {
          const int64_t off = a * HW + i * s.W + j;
          const T v = xp[w0 + off];
          if (v > best || v != v) {
            best = v;
            tap = off;
          }
        }
    y[o] = best;
    idx[o] = w0 + tap;
  }
}

#if defined(__x86_64__)
#define TG_POOL_AVX2 __attribute__((target("avx2")))

template <typename T, int SW, bool kWideTap>
__attribute__((target("avx2"))) void max_pool_planes_avx2(const PoolShape& s, const T* x, T* y, int64_t* idx,
                                                          int64_t p0, int64_t p1) {
  const int64_t V = s.D * s.H * s.W, Vo = s.Do * s.Ho * s.Wo;
  for (int64_t p = p0; p < p1; ++p) max_pool_plane_fast<T, SW, kWideTap>(s, x + p * V, y + p * Vo, idx + p * Vo);
}

bool pool_use_avx2() { return kernel_isa(Kernel::pool) >= Isa::avx2; }

// ---- max_pool fast path for column stride 2 (2x2/s2, 3x3/s2, ...), AVX2.
// The compiler does not vectorise the block loop above for a column stride of 2 (strided loads),
// and its scalar code branches on every compare: ~5 ns per input on random data (LeNet's two
// pools took 1.9 ms of an 8-12 ms training step). Here tap j of outputs o .. o+L-1 is the even
// elements of the 2L contiguous inputs from the window row's start + j: two vector loads and a
// shuffle (the odd elements are read and dropped). A vector of L outputs keeps its maximum and
// its winning tap's offset in registers, visiting the taps in the same (depth, row, column) order
// with the same update rule as the block loop, so the results are identical to it. Lanes: 8 or
// 4 floats, 4 or 2 doubles (LeNet's second pool has rows of 4 outputs). Each vector reads one
// element past its last window's last tap, so it runs only where that element is inside the
// input; the rest goes to a scalar loop with the same rule.
// EvenF8: 8 floats, reads p[0, 16).
struct EvenF8 {
  using T = float;
  static constexpr int L = 8;
  using V = __m256;
  TG_POOL_AVX2 static V load(const float* p) {
    const __m256 s = _mm256_shuffle_ps(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8), 0x88);  // a0 a2 b0 b2 | a4 a6 b4 b6
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(s), 0xD8));
  }
  TG_POOL_AVX2 static V take(V v, V best) {
    return _mm256_or_ps(_mm256_cmp_ps(v, best, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  }
  TG_POOL_AVX2 static V blend(V a, V b, V m) { return _mm256_blendv_ps(a, b, m); }
  TG_POOL_AVX2 static V tap(int64_t off) { return _mm256_castsi256_ps(_mm256_set1_epi32(int32_t(off))); }
  // y[0, L) = best; idx[l] = base + 2 l + the tap offset in lane l
  TG_POOL_AVX2 static void store(V best, V tap, int64_t base, float* y, int64_t* idx) {
    _mm256_storeu_ps(y, best);
    const __m256i t = _mm256_castps_si256(tap), b = _mm256_set1_epi64x(base);
    const __m256i lo = _mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(t)),
                                        _mm256_add_epi64(b, _mm256_setr_epi64x(0, 2, 4, 6)));
    const __m256i hi = _mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_extracti128_si256(t, 1)),
                                        _mm256_add_epi64(b, _mm256_setr_epi64x(8, 10, 12, 14)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx), lo);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx + 4), hi);
  }
};

// EvenF4: 4 floats, reads p[0, 8).
struct EvenF4 {
  using T = float;
  static constexpr int L = 4;
  using V = __m128;
  TG_POOL_AVX2 static V load(const float* p) { return _mm_shuffle_ps(_mm_loadu_ps(p), _mm_loadu_ps(p + 4), 0x88); }
  TG_POOL_AVX2 static V take(V v, V best) {
    return _mm_or_ps(_mm_cmp_ps(v, best, _CMP_GT_OQ), _mm_cmp_ps(v, v, _CMP_UNORD_Q));
  }
  TG_POOL_AVX2 static V blend(V a, V b, V m) { return _mm_blendv_ps(a, b, m); }
  TG_POOL_AVX2 static V tap(int64_t off) { return _mm_castsi128_ps(_mm_set1_epi32(int32_t(off))); }
  TG_POOL_AVX2 static void store(V best, V tap, int64_t base, float* y, int64_t* idx) {
    _mm_storeu_ps(y, best);
    const __m128i t = _mm_castps_si128(tap);
    const __m256i i = _mm256_add_epi64(_mm256_cvtepi32_epi64(t),
                                       _mm256_add_epi64(_mm256_set1_epi64x(base), _mm256_setr_epi64x(0, 2, 4, 6)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx), i);
  }
};

// EvenD4: 4 doubles, reads p[0, 8); the tap offset is an int64 lane.
struct EvenD4 {
  using T = double;
  static constexpr int L = 4;
  using V = __m256d;
  TG_POOL_AVX2 static V load(const double* p) {  // a0 b0 a2 b2 = p0 p4 p2 p6, then 64-bit lanes 0 2 1 3
    return _mm256_permute4x64_pd(_mm256_unpacklo_pd(_mm256_loadu_pd(p), _mm256_loadu_pd(p + 4)), 0xD8);
  }
  TG_POOL_AVX2 static V take(V v, V best) {
    return _mm256_or_pd(_mm256_cmp_pd(v, best, _CMP_GT_OQ), _mm256_cmp_pd(v, v, _CMP_UNORD_Q));
  }
  TG_POOL_AVX2 static V blend(V a, V b, V m) { return _mm256_blendv_pd(a, b, m); }
  TG_POOL_AVX2 static V tap(int64_t off) { return _mm256_castsi256_pd(_mm256_set1_epi64x(off)); }
  TG_POOL_AVX2 static void store(V best, V tap, int64_t base, double* y, int64_t* idx) {
    _mm256_storeu_pd(y, best);
    const __m256i i = _mm256_add_epi64(_mm256_castpd_si256(tap),
                                       _mm256_add_epi64(_mm256_set1_epi64x(base), _mm256_setr_epi64x(0, 2, 4, 6)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx), i);
  }
};

// EvenD2: 2 doubles, reads p[0, 4).
struct EvenD2 {
  using T = double;
  static constexpr int L = 2;
  using V = __m128d;
  TG_POOL_AVX2 static V load(const double* p) { return _mm_unpacklo_pd(_mm_loadu_pd(p), _mm_loadu_pd(p + 2)); }
  TG_POOL_AVX2 static V take(V v, V best) {
    return _mm_or_pd(_mm_cmp_pd(v, best, _CMP_GT_OQ), _mm_cmp_pd(v, v, _CMP_UNORD_Q));
  }
  TG_POOL_AVX2 static V blend(V a, V b, V m) { return _mm_blendv_pd(a, b, m); }
  TG_POOL_AVX2 static V tap(int64_t off) { return _mm_castsi128_pd(_mm_set1_epi64x(off)); }
  TG_POOL_AVX2 static void store(V best, V tap, int64_t base, double* y, int64_t* idx) {
    _mm_storeu_pd(y, best);
    const __m128i i = _mm_add_epi64(_mm_castpd_si128(tap), _mm_add_epi64(_mm_set1_epi64x(base), _mm_set_epi64x(2, 0)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(idx), i);
  }
};

// Outputs [o, n) of one output row whose first window starts at r (row offset rs in the plane),
// L at a time while the vector's reads stay among the `room` elements from r on; returns where
// it stopped.
template <class E>
TG_POOL_AVX2 inline int64_t max_pool_row_s2(const PoolShape& s, const typename E::T* r, int64_t rs, int64_t o,
                                            int64_t n, int64_t last_tap, int64_t room, typename E::T* y,
                                            int64_t* idx) {
  using V = typename E::V;
  const int64_t HW = s.H * s.W;
  for (; o + E::L <= n && 2 * o + last_tap + 2 * E::L <= room; o += E::L) {
    const typename E::T* q = r + 2 * o;
    V best = E::load(q), tap = E::tap(0);
    for (int64_t a = 0; a < s.kd; ++a)
      for (int64_t i = 0; i < s.kh; ++i)
        for (int64_t j = a == 0 && i == 0 ? 1 : 0; j < s.kw; ++j) {
          const int64_t off = a * HW + i * s.W + j;
          const V v = E::load(q + off), m = E::take(v, best);
          best = E::blend(best, v, m);
          tap = E::blend(tap, E::tap(off), m);
        }
    E::store(best, tap, rs + 2 * o, y + o, idx + o);
  }
  return o;
}

template <typename T>
TG_POOL_AVX2 void max_pool_planes_avx2_s2(const PoolShape& s, const T* x, T* y, int64_t* idx, int64_t p0,
                                          int64_t p1) {
  using Wide = std::conditional_t<std::is_same_v<T, float>, EvenF8, EvenD4>;
  using Narrow = std::conditional_t<std::is_same_v<T, float>, EvenF4, EvenD2>;
  const int64_t HW = s.H * s.W, V = s.D * HW, Vo = s.Do * s.Ho * s.Wo;
  const int64_t last_tap = (s.kd - 1) * HW + (s.kh - 1) * s.W + s.kw - 1;
  for (int64_t p = p0; p < p1; ++p) {
    const T* xp = x + p * V;
    for (int64_t od = 0; od < s.Do; ++od)
      for (int64_t oh = 0; oh < s.Ho; ++oh) {
        const int64_t rs = od * s.sd * HW + oh * s.sh * s.W, at = p * Vo + (od * s.Ho + oh) * s.Wo;
        const int64_t room = (s.planes - p) * V - rs;  // elements of x from the row's first window on
        int64_t o = max_pool_row_s2<Wide>(s, xp + rs, rs, 0, s.Wo, last_tap, room, y + at, idx + at);
        o = max_pool_row_s2<Narrow>(s, xp + rs, rs, o, s.Wo, last_tap, room, y + at, idx + at);
        if (o < s.Wo) max_pool_row_tail<T>(s, xp, rs, o, y + at, idx + at);
      }
  }
}
#endif

template <typename T>
using PlanesFn = void (*)(const PoolShape&, const T*, T*, int64_t*, int64_t, int64_t);

template <typename T>
PlanesFn<T> max_pool_fast_kernel(const PoolShape& s) {
  // the last tap's offset from its window's start; the fast path applies, so it lies in the plane
  const int64_t last_tap = (s.kd - 1) * s.H * s.W + (s.kh - 1) * s.W + s.kw - 1;
  if (last_tap > std::numeric_limits<int32_t>::max()) return max_pool_planes_generic<T, 0, true>;
#if defined(__x86_64__)
  if (pool_use_avx2() && s.sw == 2) return max_pool_planes_avx2_s2<T>;
  if (pool_use_avx2())
    return s.sw == 1   ? max_pool_planes_avx2<T, 1, false>
           : s.sw == 2 ? max_pool_planes_avx2<T, 2, false>
                       : max_pool_planes_avx2<T, 0, false>;
#endif
  return s.sw == 1   ? max_pool_planes_generic<T, 1, false>
         : s.sw == 2 ? max_pool_planes_generic<T, 2, false>
                     : max_pool_planes_generic<T, 0, false>;
}

// The fast path's preconditions: no padding, no dilation, and (ceil_mode can make the last
// window overhang) every window wholly inside the input.
inline bool max_pool_fast_applies(const PoolShape& s) {
  return s.pd == 0 && s.ph == 0 && s.pw == 0 && s.dd == 1 && s.dh == 1 && s.dw == 1 &&
         (s.Do - 1) * s.sd + s.kd <= s.D && (s.Ho - 1) * s.sh + s.kh <= s.H && (s.Wo - 1) * s.sw + s.kw <= s.W;
}

// Any geometry: padding, dilation, windows clipped at the edges.
template <typename T>
void max_pool_forward_general(const PoolShape& s, const T* x, T* y, int64_t* idx);

}  // namespace

template <typename T>
void max_pool_forward(const PoolShape& s, const T* x, T* y, int64_t* idx) {
  if (max_pool_fast_applies(s)) {
    const PlanesFn<T> kernel = max_pool_fast_kernel<T>(s);
    // Each plane is one thread's work in a fixed order, so the thread count changes nothing.
    const int64_t elems = s.planes * s.D * s.H * s.W;
    parallel_for(s.planes, elems >= kParallelMinElems,
                 [&](int64_t p0, int64_t p1) { kernel(s, x, y, idx, p0, p1); });
    return;
  }
  max_pool_forward_general(s, x, y, idx);
}

namespace {
template <typename T>
void max_pool_forward_general(const PoolShape& s, const T* x, T* y, int64_t* idx) {
  // Tap ranges per output depth, row and column, computed once (they cost divisions).
  std::vector<int64_t> alo(s.Do), ahi(s.Do), ilo(s.Ho), ihi(s.Ho), jlo(s.Wo), jhi(s.Wo);
  for (int64_t od = 0; od < s.Do; ++od) tap_range(od * s.sd - s.pd, s.kd, s.dd, s.D, alo[od], ahi[od]);
  for (int64_t oh = 0; oh < s.Ho; ++oh) tap_range(oh * s.sh - s.ph, s.kh, s.dh, s.H, ilo[oh], ihi[oh]);
  for (int64_t ow = 0; ow < s.Wo; ++ow) tap_range(ow * s.sw - s.pw, s.kw, s.dw, s.W, jlo[ow], jhi[ow]);
  const int64_t HW = s.H * s.W, V = s.D * HW, Vo = s.Do * s.Ho * s.Wo;
  parallel_for(s.planes, true, [&](int64_t p_begin, int64_t p_end) {
    for (int64_t p = p_begin; p < p_end; ++p) {
      const T* xp = x + p * V;
      T* yp = y + p * Vo;
      int64_t* ip = idx + p * Vo;
      for (int64_t od = 0; od < s.Do; ++od) {
        const int64_t ds = od * s.sd - s.pd, a0 = alo[od], a1 = ahi[od];
        for (int64_t oh = 0; oh < s.Ho; ++oh) {
          const int64_t hs = oh * s.sh - s.ph, i0 = ilo[oh], i1 = ihi[oh];
          for (int64_t ow = 0; ow < s.Wo; ++ow) {
            const int64_t ws = ow * s.sw - s.pw, j0 = jlo[ow], j1 = jhi[ow];
            T best = -std::numeric_limits<T>::infinity();
            int64_t best_at = (a0 < a1 && i0 < i1 && j0 < j1)
                                  ? (ds + a0 * s.dd) * HW + (hs + i0 * s.dh) * s.W + ws + j0 * s.dw
                                  : -1;
            for (int64_t a = a0; a < a1; ++a) {
              const int64_t depth = (ds + a * s.dd) * HW;
              for (int64_t i = i0; i < i1; ++i) {
                const int64_t row = depth + (hs + i * s.dh) * s.W;
                for (int64_t j = j0; j < j1; ++j) {
                  const int64_t at = row + ws + j * s.dw;
                  const T v = xp[at];
                  // PyTorch's rule: strictly greater keeps the first maximum; a NaN always wins.
                  if (v > best || v != v) {
                    best = v;
                    best_at = at;
                  }
                }
              }
            }
            const int64_t o = (od * s.Ho + oh) * s.Wo + ow;
            yp[o] = best;
            ip[o] = best_at;
          }
        }
      }
    }
  });
}
}  // namespace

template <typename T>
void max_pool_backward(int64_t planes, int64_t V, int64_t Vo, const T* gy, const int64_t* idx, T* gx) {
  parallel_for(planes, true, [&](int64_t p_begin, int64_t p_end) {
    for (int64_t p = p_begin; p < p_end; ++p) {
      T* gxp = gx + p * V;
      const T* gyp = gy + p * Vo;
      const int64_t* ip = idx + p * Vo;
      std::fill(gxp, gxp + V, T(0));
      for (int64_t o = 0; o < Vo; ++o)
        if (ip[o] >= 0) gxp[ip[o]] += gyp[o];
    }
  });
}

template <typename T>
void avg_pool_forward(const PoolShape& s, bool count_include_pad, int64_t divisor_override, const T* x, T* y) {
  const int64_t HW = s.H * s.W, V = s.D * HW, Vo = s.Do * s.Ho * s.Wo;
  parallel_for(s.planes, true, [&](int64_t p_begin, int64_t p_end) {
    for (int64_t p = p_begin; p < p_end; ++p) {
      const T* xp = x + p * V;
      T* yp = y + p * Vo;
      for (int64_t od = 0; od < s.Do; ++od)
        for (int64_t oh = 0; oh < s.Ho; ++oh)
          for (int64_t ow = 0; ow < s.Wo; ++ow) {
            const AvgWindow win = avg_window(s, od, oh, ow, count_include_pad, divisor_override);
            T sum = 0;
            for (int64_t id = win.d0; id < win.d1; ++id)
              for (int64_t ih = win.h0; ih < win.h1; ++ih)
                for (int64_t iw = win.w0; iw < win.w1; ++iw) sum += xp[id * HW + ih * s.W + iw];
            // An empty window (possible only in ceil mode without count_include_pad) gives 0.
            yp[(od * s.Ho + oh) * s.Wo + ow] = win.empty() ? T(0) : sum / T(win.divisor);
          }
    }
  });
}

template <typename T>
void avg_pool_backward(const PoolShape& s, bool count_include_pad, int64_t divisor_override, const T* gy, T* gx) {
  const int64_t HW = s.H * s.W, V = s.D * HW, Vo = s.Do * s.Ho * s.Wo;
  parallel_for(s.planes, true, [&](int64_t p_begin, int64_t p_end) {
    for (int64_t p = p_begin; p < p_end; ++p) {
      T* gxp = gx + p * V;
      const T* gyp = gy + p * Vo;
      std::fill(gxp, gxp + V, T(0));
      for (int64_t od = 0; od < s.Do; ++od)
        for (int64_t oh = 0; oh < s.Ho; ++oh)
          for (int64_t ow = 0; ow < s.Wo; ++ow) {
            const AvgWindow win = avg_window(s, od, oh, ow, count_include_pad, divisor_override);
            if (win.empty()) continue;
            const T g = gyp[(od * s.Ho + oh) * s.Wo + ow] / T(win.divisor);
            for (int64_t id = win.d0; id < win.d1; ++id)
              for (int64_t ih = win.h0; ih < win.h1; ++ih)
                for (int64_t iw = win.w0; iw < win.w1; ++iw) gxp[id * HW + ih * s.W + iw] += g;
          }
    }
  });
}

#define TAPEGRAD_INSTANTIATE(T)                                                                 \
  template void max_pool_forward<T>(const PoolShape&, const T*, T*, int64_t*);                 \
  template void max_pool_backward<T>(int64_t, int64_t, int64_t, const T*, const int64_t*, T*); \
  template void avg_pool_forward<T>(const PoolShape&, bool, int64_t, const T*, T*);            \
  template void avg_pool_backward<T>(const PoolShape&, bool, int64_t, const T*, T*);
TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE

}  // namespace tapegrad

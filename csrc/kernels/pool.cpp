// 2-D max and average pooling (see pool.h for layouts and conventions).
#include "kernels/pool.h"

#include <algorithm>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/parallel.h"

namespace tapegrad {
namespace {

// Taps i in [lo, hi) of a window starting at `start` with dilation d that land in [0, n).
inline void tap_range(int64_t start, int64_t k, int64_t d, int64_t n, int64_t& lo, int64_t& hi) {
  lo = start >= 0 ? 0 : ceil_div(-start, d);
  hi = start >= n ? 0 : std::min(k, ceil_div(n - start, d));
  hi = std::max(hi, lo);
}

// avg_pool2d's window clipped to the input, and the divisor PyTorch uses for it.
struct AvgWindow {
  int64_t h0, h1, w0, w1, divisor;
};

inline AvgWindow avg_window(const Pool2dShape& s, int64_t oh, int64_t ow, bool count_include_pad,
                            int64_t divisor_override) {
  int64_t h0 = oh * s.sh - s.ph, w0 = ow * s.sw - s.pw;
  int64_t h1 = std::min(h0 + s.kh, s.H + s.ph), w1 = std::min(w0 + s.kw, s.W + s.pw);
  const int64_t padded_size = (h1 - h0) * (w1 - w0);
  h0 = std::max<int64_t>(h0, 0);
  w0 = std::max<int64_t>(w0, 0);
  h1 = std::min(h1, s.H);
  w1 = std::min(w1, s.W);
  int64_t divisor = divisor_override > 0 ? divisor_override
                    : count_include_pad  ? padded_size
                                         : (h1 - h0) * (w1 - w0);
  return {h0, h1, w0, w1, divisor};
}

// ---- max_pool2d fast path: no padding, no dilation, every window inside the input.
// Layout: one plane is H x W row-major; a window's taps are visited in row-major order, and
// for each tap the whole block of up to kBlock outputs of one output row is updated with a
// compare and a select (no branches, so random data costs no mispredictions and the compiler
// vectorises over the outputs). The tap number is kept in an integer as wide as T so the select
// on it vectorises alongside the one on the value (int64 for float32 too when a window has more
// than INT32_MAX taps: kWideTap); it becomes a flat index at the end.
// The update rule is the general path's (strictly greater, or NaN), applied in the same order,
// and the first tap's value seeds the maximum: -inf > -inf is false, so an all -inf window
// keeps the first tap, as the general path does. Results are identical to it.
constexpr int64_t kBlock = 64;  // outputs per block: values and taps stay in L1
// Planes per thread chunk below which a fork costs more than it saves (elements read).
constexpr int64_t kParallelMinElems = 1 << 15;

template <typename T, int SW, bool kWideTap>  // SW > 0: the column stride known at compile time
inline __attribute__((always_inline)) void max_pool_plane_fast(const Pool2dShape& s, const T* xp, T* yp,
                                                               int64_t* ip) {
  using Tap = std::conditional_t<sizeof(T) == 4 && !kWideTap, int32_t, int64_t>;
  const int64_t sw = SW > 0 ? SW : s.sw, taps = s.kh * s.kw;
  T best[kBlock];
  Tap tap[kBlock];
  for (int64_t oh = 0; oh < s.Ho; ++oh) {
    const int64_t hs = oh * s.sh;
    for (int64_t ow0 = 0; ow0 < s.Wo; ow0 += kBlock) {
      const int64_t n = std::min(kBlock, s.Wo - ow0);
      const T* r = xp + hs * s.W + ow0 * sw;
      for (int64_t o = 0; o < n; ++o) {
        best[o] = r[o * sw];
        tap[o] = 0;
      }
      for (int64_t t = 1; t < taps; ++t) {
        const T* q = r + (t / s.kw) * s.W + t % s.kw;
        const Tap tt = Tap(t);
        for (int64_t o = 0; o < n; ++o) {
          const T v = q[o * sw];
          const bool take = (v > best[o]) | (v != v);  // PyTorch: strictly greater, or NaN
          best[o] = take ? v : best[o];
          tap[o] = take ? tt : tap[o];
        }
      }
      T* yo = yp + oh * s.Wo + ow0;
      int64_t* io = ip + oh * s.Wo + ow0;
      const int64_t base = hs * s.W + ow0 * sw;
      for (int64_t o = 0; o < n; ++o) {
        const int64_t t = int64_t(tap[o]);
        yo[o] = best[o];
        io[o] = base + o * sw + (t / s.kw) * s.W + t % s.kw;
      }
    }
  }
}

template <typename T, int SW, bool kWideTap>
void max_pool_planes_generic(const Pool2dShape& s, const T* x, T* y, int64_t* idx, int64_t p0, int64_t p1) {
  for (int64_t p = p0; p < p1; ++p)
    max_pool_plane_fast<T, SW, kWideTap>(s, x + p * s.H * s.W, y + p * s.Ho * s.Wo, idx + p * s.Ho * s.Wo);
}

#if defined(__x86_64__)
template <typename T, int SW, bool kWideTap>
__attribute__((target("avx2"))) void max_pool_planes_avx2(const Pool2dShape& s, const T* x, T* y, int64_t* idx,
                                                          int64_t p0, int64_t p1) {
  for (int64_t p = p0; p < p1; ++p)
    max_pool_plane_fast<T, SW, kWideTap>(s, x + p * s.H * s.W, y + p * s.Ho * s.Wo, idx + p * s.Ho * s.Wo);
}

bool pool_use_avx2() {
  static const bool yes = __builtin_cpu_supports("avx2");
  return yes;
}
#endif

template <typename T>
using PlanesFn = void (*)(const Pool2dShape&, const T*, T*, int64_t*, int64_t, int64_t);

template <typename T>
PlanesFn<T> max_pool_fast_kernel(const Pool2dShape& s) {
  if (s.kh * s.kw > std::numeric_limits<int32_t>::max()) return max_pool_planes_generic<T, 0, true>;
#if defined(__x86_64__)
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
inline bool max_pool_fast_applies(const Pool2dShape& s) {
  return s.ph == 0 && s.pw == 0 && s.dh == 1 && s.dw == 1 && (s.Ho - 1) * s.sh + s.kh <= s.H &&
         (s.Wo - 1) * s.sw + s.kw <= s.W;
}

// Any geometry: padding, dilation, windows clipped at the edges.
template <typename T>
void max_pool2d_forward_general(const Pool2dShape& s, const T* x, T* y, int64_t* idx);

}  // namespace

template <typename T>
void max_pool2d_forward(const Pool2dShape& s, const T* x, T* y, int64_t* idx) {
  if (max_pool_fast_applies(s)) {
    const PlanesFn<T> kernel = max_pool_fast_kernel<T>(s);
    // Each plane is one thread's work in a fixed order, so the thread count changes nothing.
    const int64_t elems = s.planes * s.H * s.W;
    parallel_for(s.planes, elems >= kParallelMinElems,
                 [&](int64_t p0, int64_t p1) { kernel(s, x, y, idx, p0, p1); });
    return;
  }
  max_pool2d_forward_general(s, x, y, idx);
}

namespace {
template <typename T>
void max_pool2d_forward_general(const Pool2dShape& s, const T* x, T* y, int64_t* idx) {
  // Tap ranges per output row and column, computed once (they cost divisions).
  std::vector<int64_t> ilo(s.Ho), ihi(s.Ho), jlo(s.Wo), jhi(s.Wo);
  for (int64_t oh = 0; oh < s.Ho; ++oh) tap_range(oh * s.sh - s.ph, s.kh, s.dh, s.H, ilo[oh], ihi[oh]);
  for (int64_t ow = 0; ow < s.Wo; ++ow) tap_range(ow * s.sw - s.pw, s.kw, s.dw, s.W, jlo[ow], jhi[ow]);
  parallel_for(s.planes, true, [&](int64_t p_begin, int64_t p_end) {
    for (int64_t p = p_begin; p < p_end; ++p) {
      const T* xp = x + p * s.H * s.W;
      T* yp = y + p * s.Ho * s.Wo;
      int64_t* ip = idx + p * s.Ho * s.Wo;
      for (int64_t oh = 0; oh < s.Ho; ++oh) {
        const int64_t hs = oh * s.sh - s.ph, i0 = ilo[oh], i1 = ihi[oh];
        for (int64_t ow = 0; ow < s.Wo; ++ow) {
          const int64_t ws = ow * s.sw - s.pw, j0 = jlo[ow], j1 = jhi[ow];
          T best = -std::numeric_limits<T>::infinity();
          int64_t best_at = (i0 < i1 && j0 < j1) ? (hs + i0 * s.dh) * s.W + ws + j0 * s.dw : -1;
          for (int64_t i = i0; i < i1; ++i) {
            const int64_t row = (hs + i * s.dh) * s.W;
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
          yp[oh * s.Wo + ow] = best;
          ip[oh * s.Wo + ow] = best_at;
        }
      }
    }
  });
}
}  // namespace

template <typename T>
void max_pool2d_backward(int64_t planes, int64_t HW, int64_t HWo, const T* gy, const int64_t* idx,
                         T* gx) {
  parallel_for(planes, true, [&](int64_t p_begin, int64_t p_end) {
    for (int64_t p = p_begin; p < p_end; ++p) {
      T* gxp = gx + p * HW;
      const T* gyp = gy + p * HWo;
      const int64_t* ip = idx + p * HWo;
      std::fill(gxp, gxp + HW, T(0));
      for (int64_t o = 0; o < HWo; ++o)
        if (ip[o] >= 0) gxp[ip[o]] += gyp[o];
    }
  });
}

template <typename T>
void avg_pool2d_forward(const Pool2dShape& s, bool count_include_pad, int64_t divisor_override,
                        const T* x, T* y) {
  parallel_for(s.planes, true, [&](int64_t p_begin, int64_t p_end) {
    for (int64_t p = p_begin; p < p_end; ++p) {
      const T* xp = x + p * s.H * s.W;
      T* yp = y + p * s.Ho * s.Wo;
      for (int64_t oh = 0; oh < s.Ho; ++oh) {
        for (int64_t ow = 0; ow < s.Wo; ++ow) {
          const AvgWindow win = avg_window(s, oh, ow, count_include_pad, divisor_override);
          T sum = 0;
          for (int64_t ih = win.h0; ih < win.h1; ++ih)
            for (int64_t iw = win.w0; iw < win.w1; ++iw) sum += xp[ih * s.W + iw];
          // An empty window (possible only in ceil mode without count_include_pad) gives 0.
          yp[oh * s.Wo + ow] = win.h0 < win.h1 && win.w0 < win.w1 ? sum / T(win.divisor) : T(0);
        }
      }
    }
  });
}

template <typename T>
void avg_pool2d_backward(const Pool2dShape& s, bool count_include_pad, int64_t divisor_override,
                         const T* gy, T* gx) {
  parallel_for(s.planes, true, [&](int64_t p_begin, int64_t p_end) {
    for (int64_t p = p_begin; p < p_end; ++p) {
      T* gxp = gx + p * s.H * s.W;
      const T* gyp = gy + p * s.Ho * s.Wo;
      std::fill(gxp, gxp + s.H * s.W, T(0));
      for (int64_t oh = 0; oh < s.Ho; ++oh) {
        for (int64_t ow = 0; ow < s.Wo; ++ow) {
          const AvgWindow win = avg_window(s, oh, ow, count_include_pad, divisor_override);
          if (win.h0 >= win.h1 || win.w0 >= win.w1) continue;
          const T g = gyp[oh * s.Wo + ow] / T(win.divisor);
          for (int64_t ih = win.h0; ih < win.h1; ++ih)
            for (int64_t iw = win.w0; iw < win.w1; ++iw) gxp[ih * s.W + iw] += g;
        }
      }
    }
  });
}

#define TAPEGRAD_INSTANTIATE(T)                                                                     \
  template void max_pool2d_forward<T>(const Pool2dShape&, const T*, T*, int64_t*);                 \
  template void max_pool2d_backward<T>(int64_t, int64_t, int64_t, const T*, const int64_t*, T*);   \
  template void avg_pool2d_forward<T>(const Pool2dShape&, bool, int64_t, const T*, T*);            \
  template void avg_pool2d_backward<T>(const Pool2dShape&, bool, int64_t, const T*, T*);
TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE

}  // namespace tapegrad

// 2-D bilinear / nearest interpolation and adaptive average pooling (see resample.h).
#include "kernels/resample.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu.h"
#include "kernels/isa_variants.h"
#include "kernels/lane_sums.h"
#include "kernels/parallel.h"

namespace tapegrad {
namespace {

Isa isa() {
  static const Isa chosen = kernel_isa(Kernel::pool);
  return chosen;
}

// Below this many elements (input plus output) a fork costs more than it saves.
constexpr int64_t kParallelMinElems = 1 << 15;
// Sums of a global pool: 64 bytes of lanes (lane_sums.h).
constexpr int64_t kLaneBytes = 64;

// One dim's taps: output i reads i0[i] with weight l0[i] and i1[i] with l1[i] (no second tap when
// !two: nearest). `identity`: the dim keeps its size and is copied.
template <typename T>
struct Taps {
  std::vector<int64_t> i0, i1;
  std::vector<double> l0, l1;  // double whatever T (see linear_taps)
  bool two, identity;
  // The adjoint's gather lists: for input j, entries [start[j], start[j+1]) of (out, w), in the
  // order a scatter over outputs (first tap, then second) would add them.
  std::vector<int64_t> start, out;
  std::vector<double> w;
};

template <typename T>
Taps<T> linear_taps(int64_t in, int64_t out, bool align_corners, double scale) {
  // PyTorch's formulas, evaluated in double for float32 too: PyTorch's own float32 paths differ by
  // more than that (its separable kernel, taken for 3 channels on one thread, normalises its
  // weights), and double weights with a double mix keep tapegrad within an ulp of the exact result.
  Taps<T> t{std::vector<int64_t>(out), std::vector<int64_t>(out), std::vector<double>(out),
            std::vector<double>(out), true, in == out, {}, {}, {}};
  double s;
  if (align_corners)
    s = out > 1 ? double(in - 1) / double(out - 1) : 0.0;
  else
    s = scale > 0 ? 1.0 / scale : double(in) / double(out);
  for (int64_t i = 0; i < out; ++i) {
    if (t.identity) {
      t.i0[i] = t.i1[i] = i;
      t.l0[i] = 1.0;
      t.l1[i] = 0.0;
      continue;
    }
    const double src = align_corners ? s * double(i) : std::max(s * (double(i) + 0.5) - 0.5, 0.0);
    const int64_t lo = std::min(int64_t(std::floor(src)), in - 1);
    const double l = std::min(std::max(src - double(lo), 0.0), 1.0);
    t.i0[i] = lo;
    t.i1[i] = lo + (lo < in - 1 ? 1 : 0);
    t.l0[i] = 1.0 - l;
    t.l1[i] = l;
  }
  return t;
}

template <typename T>
Taps<T> nearest_taps(int64_t in, int64_t out, bool exact, double scale) {
  Taps<T> t{std::vector<int64_t>(out), {}, std::vector<double>(out, 1.0), {}, false, in == out && !exact, {}, {}, {}};
  const float s = scale > 0 ? float(1.0 / scale) : float(in) / float(out);  // PyTorch's float scale
  for (int64_t i = 0; i < out; ++i) {
    int64_t j;
    if (!exact && out == in)
      j = i;
    else if (!exact && out == 2 * in)
      j = i >> 1;
    else
      j = std::min(int64_t(std::floor(exact ? (float(i) + 0.5f) * s : float(i) * s)), in - 1);
    t.i0[i] = j;
  }
  return t;
}

template <typename T>
void build_adjoint(Taps<T>& t, int64_t in) {
  const int64_t out = int64_t(t.i0.size());
  t.start.assign(in + 1, 0);
  for (int64_t i = 0; i < out; ++i) {
    ++t.start[t.i0[i] + 1];
    if (t.two) ++t.start[t.i1[i] + 1];
  }
  for (int64_t j = 0; j < in; ++j) t.start[j + 1] += t.start[j];
  std::vector<int64_t> fill(t.start.begin(), t.start.end() - 1);
  t.out.resize(t.start[in]);
  t.w.resize(t.start[in]);
  for (int64_t i = 0; i < out; ++i) {
    t.out[fill[t.i0[i]]] = i;
    t.w[fill[t.i0[i]]++] = t.l0[i];
    if (t.two) {
      t.out[fill[t.i1[i]]] = i;
      t.w[fill[t.i1[i]]++] = t.l1[i];
    }
  }
}

// ---- bilinear forward. Each input row the outputs need is mixed along W once (W first, then H,
// as PyTorch) into one of two cached rows; upsampling reuses them for consecutive output rows.
template <typename T>
TG_INLINE void bilinear_fwd_body(const ResampleShape& s, const Taps<T>& th, const Taps<T>& tw, const T* x, T* y,
                                 int64_t p0, int64_t p1) {
  std::vector<double> buf(2 * s.Wo);  // the mix in double (see linear_taps)
  const int64_t *i0 = tw.i0.data(), *i1 = tw.i1.data();
  const double *l0 = tw.l0.data(), *l1 = tw.l1.data();
  for (int64_t p = p0; p < p1; ++p) {
    const T* xp = x + p * s.H * s.W;
    T* yp = y + p * s.Ho * s.Wo;
    int64_t rows[2] = {-1, -1};
    auto mixed = [&](int64_t h, int64_t keep) -> const double* {
      if (tw.identity) {  // widened once per row
        double* r = buf.data() + (rows[0] == keep ? 1 : 0) * s.Wo;
        const T* xr = xp + h * s.W;
        for (int64_t o = 0; o < s.Wo; ++o) r[o] = double(xr[o]);
        rows[rows[0] == keep ? 1 : 0] = h;
        return r;
      }
      for (int k = 0; k < 2; ++k)
        if (rows[k] == h) return buf.data() + k * s.Wo;
      const int k = keep >= 0 ? (rows[0] == keep ? 1 : 0) : (rows[0] <= rows[1] ? 0 : 1);
      rows[k] = h;
      double* r = buf.data() + k * s.Wo;
      const T* xr = xp + h * s.W;
      for (int64_t o = 0; o < s.Wo; ++o) r[o] = double(xr[i0[o]]) * l0[o] + double(xr[i1[o]]) * l1[o];
      return r;
    };
    for (int64_t oh = 0; oh < s.Ho; ++oh) {
      T* yr = yp + oh * s.Wo;
      const int64_t h0 = th.i0[oh];
      const double* a = mixed(h0, -1);
      if (th.identity) {
        for (int64_t o = 0; o < s.Wo; ++o) yr[o] = T(a[o]);
        continue;
      }
      const double* b = mixed(th.i1[oh], h0);
      const double w0 = th.l0[oh], w1 = th.l1[oh];
#pragma omp simd
      for (int64_t o = 0; o < s.Wo; ++o) yr[o] = T(a[o] * w0 + b[o] * w1);
    }
  }
}
TG_VARIANTS(bilinear_fwd, (const ResampleShape& s, const Taps<T>& th, const Taps<T>& tw, const T* x, T* y,
                           int64_t p0, int64_t p1),
            (s, th, tw, x, y, p0, p1))

// ---- nearest forward: a gather per output row; a row equal to the one before is copied.
template <typename T>
TG_INLINE void nearest_fwd_body(const ResampleShape& s, const Taps<T>& th, const Taps<T>& tw, const T* x, T* y,
                                int64_t p0, int64_t p1) {
  const int64_t* iw = tw.i0.data();
  for (int64_t p = p0; p < p1; ++p) {
    const T* xp = x + p * s.H * s.W;
    T* yp = y + p * s.Ho * s.Wo;
    for (int64_t oh = 0; oh < s.Ho; ++oh) {
      T* yr = yp + oh * s.Wo;
      if (oh > 0 && th.i0[oh] == th.i0[oh - 1]) {
        std::copy(yr - s.Wo, yr, yr);
        continue;
      }
      const T* xr = xp + th.i0[oh] * s.W;
      if (tw.identity)
        std::copy(xr, xr + s.W, yr);
      else
        for (int64_t o = 0; o < s.Wo; ++o) yr[o] = xr[iw[o]];
    }
  }
}
TG_VARIANTS(nearest_fwd, (const ResampleShape& s, const Taps<T>& th, const Taps<T>& tw, const T* x, T* y,
                          int64_t p0, int64_t p1),
            (s, th, tw, x, y, p0, p1))

// ---- bilinear / nearest backward, the forward's adjoint in its reverse order: gy's rows are
// added into rows of input height (H, Wo) with the H weights (row axpys, in output order), then
// each of those rows is gathered along W through tw's adjoint lists (no scatter, so no chain of
// read-modify-writes to one address).
template <typename T>
TG_INLINE void interp_bwd_body(const ResampleShape& s, const Taps<T>& th, const Taps<T>& tw, const T* gy, T* gx,
                               int64_t p0, int64_t p1) {
  std::vector<T> rg(tw.identity ? 0 : s.H * s.Wo);
  const int64_t *st = tw.start.data(), *oo = tw.out.data();
  const double* ww = tw.w.data();
  for (int64_t p = p0; p < p1; ++p) {
    const T* gp = gy + p * s.Ho * s.Wo;
    T* xp = gx + p * s.H * s.W;
    T* acc = tw.identity ? xp : rg.data();  // rows of width Wo (== W when identity)
    std::fill(acc, acc + s.H * s.Wo, T(0));
    for (int64_t oh = 0; oh < s.Ho; ++oh) {
      const T* g = gp + oh * s.Wo;
      T* r0 = acc + th.i0[oh] * s.Wo;
      const T w0 = T(th.l0[oh]);
#pragma omp simd
      for (int64_t o = 0; o < s.Wo; ++o) r0[o] += g[o] * w0;
      if (th.two && !th.identity) {
        T* r1 = acc + th.i1[oh] * s.Wo;
        const T w1 = T(th.l1[oh]);
#pragma omp simd
        for (int64_t o = 0; o < s.Wo; ++o) r1[o] += g[o] * w1;
      }
    }
    if (tw.identity) continue;
    for (int64_t h = 0; h < s.H; ++h) {
      const T* r = acc + h * s.Wo;
      T* xr = xp + h * s.W;
      for (int64_t j = 0; j < s.W; ++j) {
        T sum = T(0);
        for (int64_t e = st[j]; e < st[j + 1]; ++e) sum += r[oo[e]] * T(ww[e]);
        xr[j] = sum;
      }
    }
  }
}
TG_VARIANTS(interp_bwd, (const ResampleShape& s, const Taps<T>& th, const Taps<T>& tw, const T* gy, T* gx,
                         int64_t p0, int64_t p1),
            (s, th, tw, gy, gx, p0, p1))

// ---- adaptive average pooling. Windows of each dim as PyTorch's start_index / end_index.
struct Windows {
  std::vector<int64_t> lo, hi;
};
Windows adaptive_windows(int64_t in, int64_t out) {
  Windows w{std::vector<int64_t>(out), std::vector<int64_t>(out)};
  for (int64_t i = 0; i < out; ++i) {
    w.lo[i] = (i / out) * in + ((i % out) * in) / out;
    w.hi[i] = 1 + ((i + 1) * in - 1) / out;
  }
  return w;
}

// Global pool (1 x 1): each plane's mean in lanes (lane_sums.h), as PyTorch's mean over (H, W).
// Else per output row: the window's input rows summed into a column-sum row (vectorised), then
// each output its columns' total / (kh kw).
template <typename T>
TG_INLINE void adaptive_avg_fwd_body(const ResampleShape& s, const Windows& wh, const Windows& ww, const T* x, T* y,
                                     int64_t p0, int64_t p1) {
  const int64_t HW = s.H * s.W;
  if (s.Ho == 1 && s.Wo == 1) {
    for (int64_t p = p0; p < p1; ++p) {
      const T* xp = x + p * HW;
      double s1, s2;
      lanes::sums<T, kLaneBytes>(HW, [&](int64_t j) { return xp[j]; }, nullptr, s1, s2);
      y[p] = T(s1 / double(HW));
    }
    return;
  }
  std::vector<T> col(s.W);
  for (int64_t p = p0; p < p1; ++p) {
    const T* xp = x + p * HW;
    T* yp = y + p * s.Ho * s.Wo;
    for (int64_t oh = 0; oh < s.Ho; ++oh) {
      const int64_t h0 = wh.lo[oh], h1 = wh.hi[oh];
      std::copy(xp + h0 * s.W, xp + (h0 + 1) * s.W, col.begin());
      for (int64_t h = h0 + 1; h < h1; ++h) {
        const T* xr = xp + h * s.W;
#pragma omp simd
        for (int64_t j = 0; j < s.W; ++j) col[j] += xr[j];
      }
      for (int64_t ow = 0; ow < s.Wo; ++ow) {
        T sum = T(0);
        for (int64_t j = ww.lo[ow]; j < ww.hi[ow]; ++j) sum += col[j];
        yp[oh * s.Wo + ow] = sum / T((h1 - h0) * (ww.hi[ow] - ww.lo[ow]));
      }
    }
  }
}
TG_VARIANTS(adaptive_avg_fwd, (const ResampleShape& s, const Windows& wh, const Windows& ww, const T* x, T* y,
                               int64_t p0, int64_t p1),
            (s, wh, ww, x, y, p0, p1))

// Adjoint: each output's gradient / (kh kw) spread along W into a row (in output order), which
// is added to the window's input rows.
template <typename T>
TG_INLINE void adaptive_avg_bwd_body(const ResampleShape& s, const Windows& wh, const Windows& ww, const T* gy,
                                     T* gx, int64_t p0, int64_t p1) {
  const int64_t HW = s.H * s.W;
  std::vector<T> row(s.W);
  for (int64_t p = p0; p < p1; ++p) {
    const T* gp = gy + p * s.Ho * s.Wo;
    T* xp = gx + p * HW;
    if (s.Ho == 1 && s.Wo == 1) {
      const T g = gp[0] / T(HW);
      std::fill(xp, xp + HW, g);
      continue;
    }
    std::fill(xp, xp + HW, T(0));
    for (int64_t oh = 0; oh < s.Ho; ++oh) {
      const int64_t h0 = wh.lo[oh], h1 = wh.hi[oh];
      std::fill(row.begin(), row.end(), T(0));
      for (int64_t ow = 0; ow < s.Wo; ++ow) {
        const T g = gp[oh * s.Wo + ow] / T((h1 - h0) * (ww.hi[ow] - ww.lo[ow]));
        for (int64_t j = ww.lo[ow]; j < ww.hi[ow]; ++j) row[j] += g;
      }
      for (int64_t h = h0; h < h1; ++h) {
        T* xr = xp + h * s.W;
#pragma omp simd
        for (int64_t j = 0; j < s.W; ++j) xr[j] += row[j];
      }
    }
  }
}
TG_VARIANTS(adaptive_avg_bwd, (const ResampleShape& s, const Windows& wh, const Windows& ww, const T* gy, T* gx,
                               int64_t p0, int64_t p1),
            (s, wh, ww, gy, gx, p0, p1))

// Per output row: for each input row of the window, the running (max, index) of every output is
// updated along its columns; rows in order, then columns, as PyTorch's row-major scan.
template <typename T>
TG_INLINE void adaptive_max_fwd_body(const ResampleShape& s, const Windows& wh, const Windows& ww, const T* x, T* y,
                                     int64_t* idx, int64_t p0, int64_t p1) {
  const int64_t HW = s.H * s.W;
  for (int64_t p = p0; p < p1; ++p) {
    const T* xp = x + p * HW;
    T* yp = y + p * s.Ho * s.Wo;
    int64_t* ip = idx + p * s.Ho * s.Wo;
    for (int64_t oh = 0; oh < s.Ho; ++oh) {
      T* yr = yp + oh * s.Wo;
      int64_t* ir = ip + oh * s.Wo;
      for (int64_t ow = 0; ow < s.Wo; ++ow) {
        T best = -std::numeric_limits<T>::infinity();
        int64_t at = wh.lo[oh] * s.W + ww.lo[ow];
        for (int64_t h = wh.lo[oh]; h < wh.hi[oh]; ++h) {
          const T* xr = xp + h * s.W;
          for (int64_t j = ww.lo[ow]; j < ww.hi[ow]; ++j) {
            const T v = xr[j];
            const bool take = (v > best) | (v != v);
            best = take ? v : best;
            at = take ? h * s.W + j : at;
          }
        }
        yr[ow] = best;
        ir[ow] = at;
      }
    }
  }
}
TG_VARIANTS(adaptive_max_fwd, (const ResampleShape& s, const Windows& wh, const Windows& ww, const T* x, T* y,
                               int64_t* idx, int64_t p0, int64_t p1),
            (s, wh, ww, x, y, idx, p0, p1))

template <typename T>
Taps<T> taps(const ResampleShape& s, Resample mode, bool rows) {
  const int64_t in = rows ? s.H : s.W, out = rows ? s.Ho : s.Wo;
  const double scale = rows ? s.scale_h : s.scale_w;
  return mode == Resample::bilinear ? linear_taps<T>(in, out, s.align_corners, scale)
                                    : nearest_taps<T>(in, out, mode == Resample::nearest_exact, scale);
}

bool parallel_worth(const ResampleShape& s) {
  return s.planes * (s.H * s.W + s.Ho * s.Wo) >= kParallelMinElems;
}

}  // namespace

template <typename T>
void resample2d_forward(const ResampleShape& s, Resample mode, const T* x, T* y) {
  if (s.planes == 0 || s.Ho * s.Wo == 0) return;
  if (mode == Resample::adaptive_avg) {
    const Windows wh = adaptive_windows(s.H, s.Ho), ww = adaptive_windows(s.W, s.Wo);
    parallel_for(s.planes, parallel_worth(s),
                 [&](int64_t p0, int64_t p1) { TG_CALL(adaptive_avg_fwd, T, s, wh, ww, x, y, p0, p1); });
    return;
  }
  const Taps<T> th = taps<T>(s, mode, true), tw = taps<T>(s, mode, false);
  parallel_for(s.planes, parallel_worth(s), [&](int64_t p0, int64_t p1) {
    if (mode == Resample::bilinear)
      TG_CALL(bilinear_fwd, T, s, th, tw, x, y, p0, p1);
    else
      TG_CALL(nearest_fwd, T, s, th, tw, x, y, p0, p1);
  });
}

template <typename T>
void resample2d_backward(const ResampleShape& s, Resample mode, const T* gy, T* gx) {
  if (s.planes == 0 || s.H * s.W == 0) return;
  if (mode == Resample::adaptive_avg) {
    const Windows wh = adaptive_windows(s.H, s.Ho), ww = adaptive_windows(s.W, s.Wo);
    parallel_for(s.planes, parallel_worth(s),
                 [&](int64_t p0, int64_t p1) { TG_CALL(adaptive_avg_bwd, T, s, wh, ww, gy, gx, p0, p1); });
    return;
  }
  const Taps<T> th = taps<T>(s, mode, true);
  Taps<T> tw = taps<T>(s, mode, false);
  build_adjoint(tw, s.W);
  parallel_for(s.planes, parallel_worth(s),
               [&](int64_t p0, int64_t p1) { TG_CALL(interp_bwd, T, s, th, tw, gy, gx, p0, p1); });
}

template <typename T>
void adaptive_max_pool2d_forward(const ResampleShape& s, const T* x, T* y, int64_t* idx) {
  if (s.planes == 0 || s.Ho * s.Wo == 0) return;
  const Windows wh = adaptive_windows(s.H, s.Ho), ww = adaptive_windows(s.W, s.Wo);
  parallel_for(s.planes, parallel_worth(s),
               [&](int64_t p0, int64_t p1) { TG_CALL(adaptive_max_fwd, T, s, wh, ww, x, y, idx, p0, p1); });
}

template void adaptive_max_pool2d_forward<float>(const ResampleShape&, const float*, float*, int64_t*);
template void adaptive_max_pool2d_forward<double>(const ResampleShape&, const double*, double*, int64_t*);
template void resample2d_forward<float>(const ResampleShape&, Resample, const float*, float*);
template void resample2d_forward<double>(const ResampleShape&, Resample, const double*, double*);
template void resample2d_backward<float>(const ResampleShape&, Resample, const float*, float*);
template void resample2d_backward<double>(const ResampleShape&, Resample, const double*, double*);

}  // namespace tapegrad

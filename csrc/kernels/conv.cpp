// 2-D convolution by im2col + GEMM (see conv.h for layouts and the determinism contract).
//
// Per image and group g, with Cg = C/groups, Og = O/groups, K = Cg*kh*kw, P = Ho*Wo:
//   forward      y[n, g]  (Og, P) = w[g] (Og, K) @ col(x[n, g]) (K, P)
//   input grad   col      (K, P)  = w[g]^T (K, Og) @ gy[n, g] (Og, P), then col2im into gx[n, g]
//   weight grad  gw[g]    (Og, K) += gy[n, g] (Og, P) @ col(x[n, g])^T (P, K)
// A 1x1, stride-1, unpadded convolution needs no im2col: col(x[n, g]) is x[n, g] itself.
//
// Threading: work is split into independent tasks (an image, or a chunk of images for the
// weight gradient) whose count depends on the shapes only. With at least as many tasks as
// threads, threads take whole tasks and each GEMM runs single-threaded inside the parallel
// region; otherwise tasks run in turn and each GEMM uses all threads. Either way every
// output element sees the same sequence of operations, so results do not depend on the
// thread count (given a GEMM whose result does not depend on it either).
#include "kernels/conv.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/gemm.h"

namespace tapegrad {
namespace {

// The weight gradient sums over the batch in at most this many chunks of images; the
// chunk partials are reduced in chunk order. Fixed, so the sum order never depends on
// the thread count; large enough to keep 16 threads busy.
constexpr int64_t kWeightGradMaxChunks = 16;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Output columns ow whose input column ow*sw + off lies in [0, W): [lo, hi).
void valid_range(int64_t off, int64_t stride, int64_t W, int64_t Wo, int64_t& lo, int64_t& hi) {
  lo = off >= 0 ? 0 : ceil_div(-off, stride);
  hi = off >= W ? 0 : ceil_div(W - off, stride);
  lo = std::min(lo, Wo);
  hi = std::clamp(hi, lo, Wo);
}

bool is_pointwise(const Conv2dShape& s) {
  return s.kh == 1 && s.kw == 1 && s.sh == 1 && s.sw == 1 && s.ph == 0 && s.pw == 0 && s.Ho == s.H &&
         s.Wo == s.W;
}

// col (Cg*kh*kw, Ho*Wo) <- patches of x (Cg, H, W), zeros where a tap falls in the padding.
template <typename T>
void im2col(const Conv2dShape& s, int64_t Cg, const T* x, T* col) {
  const int64_t P = s.Ho * s.Wo;
  for (int64_t c = 0; c < Cg; ++c) {
    const T* xc = x + c * s.H * s.W;
    for (int64_t i = 0; i < s.kh; ++i) {
      for (int64_t j = 0; j < s.kw; ++j) {
        T* row = col + ((c * s.kh + i) * s.kw + j) * P;
        const int64_t off = j * s.dw - s.pw;
        int64_t lo, hi;
        valid_range(off, s.sw, s.W, s.Wo, lo, hi);
        for (int64_t oh = 0; oh < s.Ho; ++oh) {
          T* r = row + oh * s.Wo;
          const int64_t ih = oh * s.sh - s.ph + i * s.dh;
          if (ih < 0 || ih >= s.H) {
            std::fill(r, r + s.Wo, T(0));
            continue;
          }
          const T* xr = xc + ih * s.W;
          std::fill(r, r + lo, T(0));
          if (s.sw == 1) {
            if (hi > lo) std::memcpy(r + lo, xr + lo + off, (hi - lo) * sizeof(T));
          } else {
            for (int64_t ow = lo; ow < hi; ++ow) r[ow] = xr[ow * s.sw + off];
          }
          std::fill(r + hi, r + s.Wo, T(0));
        }
      }
    }
  }
}

// x (Cg, H, W) += the patches in col (Cg*kh*kw, Ho*Wo); taps in the padding are dropped.
template <typename T>
void col2im(const Conv2dShape& s, int64_t Cg, const T* col, T* x) {
  const int64_t P = s.Ho * s.Wo;
  for (int64_t c = 0; c < Cg; ++c) {
    T* xc = x + c * s.H * s.W;
    for (int64_t i = 0; i < s.kh; ++i) {
      for (int64_t j = 0; j < s.kw; ++j) {
        const T* row = col + ((c * s.kh + i) * s.kw + j) * P;
        const int64_t off = j * s.dw - s.pw;
        int64_t lo, hi;
        valid_range(off, s.sw, s.W, s.Wo, lo, hi);
        for (int64_t oh = 0; oh < s.Ho; ++oh) {
          const int64_t ih = oh * s.sh - s.ph + i * s.dh;
          if (ih < 0 || ih >= s.H) continue;
          const T* r = row + oh * s.Wo;
          T* xr = xc + ih * s.W;
          if (s.sw == 1) {
            for (int64_t ow = lo; ow < hi; ++ow) xr[ow + off] += r[ow];
          } else {
            for (int64_t ow = lo; ow < hi; ++ow) xr[ow * s.sw + off] += r[ow];
          }
        }
      }
    }
  }
}

// Runs fn(task, scratch) for task in [0, ntasks), each with its own scratch buffer of
// `scratch_len` elements (see the threading note at the top of the file).
template <typename T, typename Fn>
void for_each_task(int64_t ntasks, int64_t scratch_len, Fn fn) {
  if (ntasks >= omp_get_max_threads() && ntasks > 1 && !omp_in_parallel()) {
#pragma omp parallel
    {
      std::vector<T> scratch(scratch_len);
#pragma omp for schedule(static)
      for (int64_t t = 0; t < ntasks; ++t) fn(t, scratch.data());
    }
  } else {
    std::vector<T> scratch(scratch_len);
    for (int64_t t = 0; t < ntasks; ++t) fn(t, scratch.data());
  }
}

}  // namespace

template <typename T>
void conv2d_forward(const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y) {
  const int64_t Cg = s.C / s.groups, Og = s.O / s.groups, K = Cg * s.kh * s.kw, P = s.Ho * s.Wo;
  const bool pointwise = is_pointwise(s);
  for_each_task<T>(s.N, pointwise ? 0 : K * P, [&](int64_t n, T* col) {
    for (int64_t g = 0; g < s.groups; ++g) {
      const T* xg = x + (n * s.C + g * Cg) * s.H * s.W;
      if (!pointwise) im2col(s, Cg, xg, col);
      gemm<T>(Og, P, K, T(1), w + g * Og * K, K, 1, pointwise ? xg : col, P, 1, T(0),
              y + (n * s.O + g * Og) * P, P, 1);
    }
    if (bias) {
      for (int64_t o = 0; o < s.O; ++o) {
        T* yo = y + (n * s.O + o) * P;
        const T b = bias[o];
        for (int64_t p = 0; p < P; ++p) yo[p] += b;
      }
    }
  });
}

template <typename T>
void conv2d_input_grad(const Conv2dShape& s, const T* gy, const T* w, T* gx) {
  const int64_t Cg = s.C / s.groups, Og = s.O / s.groups, K = Cg * s.kh * s.kw, P = s.Ho * s.Wo;
  const bool pointwise = is_pointwise(s);
  for_each_task<T>(s.N, pointwise ? 0 : K * P, [&](int64_t n, T* col) {
    T* gxn = gx + n * s.C * s.H * s.W;
    if (!pointwise) std::fill(gxn, gxn + s.C * s.H * s.W, T(0));
    for (int64_t g = 0; g < s.groups; ++g) {
      T* gxg = gxn + g * Cg * s.H * s.W;
      // w[g] is (Og, K) row-major, so its transpose has row stride 1, column stride K.
      gemm<T>(K, P, Og, T(1), w + g * Og * K, 1, K, gy + (n * s.O + g * Og) * P, P, 1, T(0),
              pointwise ? gxg : col, P, 1);
      if (!pointwise) col2im(s, Cg, col, gxg);
    }
  });
}

template <typename T>
void conv2d_weight_grad(const Conv2dShape& s, const T* x, const T* gy, T* gw) {
  const int64_t Cg = s.C / s.groups, Og = s.O / s.groups, K = Cg * s.kh * s.kw, P = s.Ho * s.Wo;
  const int64_t W_len = s.O * K;
  if (s.N == 0) {
    std::fill(gw, gw + W_len, T(0));
    return;
  }
  const bool pointwise = is_pointwise(s);
  const int64_t nchunks = std::min(s.N, kWeightGradMaxChunks);
  // Chunk c holds images [c*N/nchunks, (c+1)*N/nchunks); its partial sum goes to gw itself
  // when there is a single chunk.
  std::vector<T> partials(nchunks > 1 ? nchunks * W_len : 0);
  for_each_task<T>(nchunks, pointwise ? 0 : K * P, [&](int64_t c, T* col) {
    T* part = nchunks > 1 ? partials.data() + c * W_len : gw;
    const int64_t n0 = c * s.N / nchunks, n1 = (c + 1) * s.N / nchunks;
    for (int64_t n = n0; n < n1; ++n) {
      for (int64_t g = 0; g < s.groups; ++g) {
        const T* xg = x + (n * s.C + g * Cg) * s.H * s.W;
        if (!pointwise) im2col(s, Cg, xg, col);
        // col is (K, P) row-major, so its transpose has row stride 1, column stride P.
        gemm<T>(Og, K, P, T(1), gy + (n * s.O + g * Og) * P, P, 1, pointwise ? xg : col, 1, P,
                n == n0 ? T(0) : T(1), part + g * Og * K, K, 1);
      }
    }
  });
  if (nchunks > 1) {
    const T* parts = partials.data();
#pragma omp parallel for schedule(static)
    for (int64_t e = 0; e < W_len; ++e) {
      T acc = parts[e];
      for (int64_t c = 1; c < nchunks; ++c) acc += parts[c * W_len + e];
      gw[e] = acc;
    }
  }
}

template <typename T>
void conv2d_bias_grad(int64_t N, int64_t O, int64_t HW, const T* gy, T* gb) {
  // Eight interleaved partial sums per row (vectorisable, fixed order), rows summed in order.
  constexpr int kLanes = 8;
#pragma omp parallel for schedule(static)
  for (int64_t o = 0; o < O; ++o) {
    T total = 0;
    for (int64_t n = 0; n < N; ++n) {
      const T* r = gy + (n * O + o) * HW;
      T lane[kLanes] = {};
      int64_t p = 0;
      for (; p + kLanes <= HW; p += kLanes)
        for (int l = 0; l < kLanes; ++l) lane[l] += r[p + l];
      for (int l = 0; p < HW; ++p, ++l) lane[l] += r[p];
      T row = 0;
      for (int l = 0; l < kLanes; ++l) row += lane[l];
      total += row;
    }
    gb[o] = total;
  }
}

#define TAPEGRAD_INSTANTIATE(T)                                                              \
  template void conv2d_forward<T>(const Conv2dShape&, const T*, const T*, const T*, T*);    \
  template void conv2d_input_grad<T>(const Conv2dShape&, const T*, const T*, T*);           \
  template void conv2d_weight_grad<T>(const Conv2dShape&, const T*, const T*, T*);          \
  template void conv2d_bias_grad<T>(int64_t, int64_t, int64_t, const T*, T*);
TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE

}  // namespace tapegrad
